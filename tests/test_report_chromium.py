"""The tear sheet opens in headless Chromium with no JavaScript errors, and a screenshot is taken.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages separated by NUL on
file descriptors 3 and 4) with a few lines of standard library — no extra dependency. Skips when
no Chromium is installed (Debian: ``apt-get install chromium``). Set ``GRUOW_SCREENSHOT_DIR`` to
keep the screenshot.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backtests import run_backtest
from data import read_candles

from conftest import shared_file

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]


class DevToolsPipe:
    """A minimal DevTools-protocol client over Chromium's pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, user_data_dir: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # a tiny exec wrapper moves our pipe ends to the fd numbers Chromium expects
        wrapper = (f"import os, sys; os.dup2({to_chrome_r}, 3); os.dup2({from_chrome_w}, 4); "
                   "os.execv(sys.argv[1], sys.argv[1:])")
        cmd = [sys.executable, "-c", wrapper, CHROMIUM, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict | None:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: " + self.proc.stderr.read().decode()[-2000:])
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply is None:
                raise TimeoutError(f"no reply to {method}")
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while True:
            ev = self._read_message(deadline)
            if ev is None:
                raise TimeoutError(f"no {method} event")
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (ev := self._read_message(deadline)) is not None:
            self.events.append(ev)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def open_page(html: Path, user_data_dir: Path) -> tuple[list[str], bytes]:
    """Load ``html`` in headless Chromium: (JavaScript/console errors, full-page PNG screenshot)."""
    cdp = DevToolsPipe(user_data_dir)
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
        cdp.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
        cdp.wait_for("Page.loadEventFired")
        cdp.drain(0.5)  # late errors
        shot = cdp.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                        session=session)
        errors = []
        for ev in cdp.events:
            p = ev.get("params", {})
            if ev.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "") + " " +
                              str(p["exceptionDetails"].get("exception", {}).get("description", "")))
            elif ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif ev.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"log ({p['entry'].get('source')}): {p['entry'].get('text')}")
        return errors, base64.b64decode(shot["data"])
    finally:
        cdp.close()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_tearsheet_opens_in_headless_chromium_without_js_errors(tmp_path):
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid")
    r = run_backtest(c, strategy="sma", start="2025-07-24", out_dir=tmp_path / "backtests", progress=False)
    sheet = r.out_dir / "tearsheet.html"

    # the checker works: a page with a JavaScript error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script>ok</body></html>")
    errors, _ = open_page(bad, tmp_path / "profile-bad")
    assert any("undefinedFunction" in e for e in errors)

    errors, png = open_page(sheet, tmp_path / "profile")
    assert errors == []
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = np.frombuffer(png[16:24], dtype=">u4")
    assert 1_200 <= width <= 1_280 and height > 2_000  # the full, long page was rendered
    keep = os.environ.get("GRUOW_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "tearsheet.png").write_bytes(png)
    (r.out_dir.parent / "tearsheet.png").write_bytes(png)
