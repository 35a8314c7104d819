"""Benchmark the backtest runner on a month of real 1-minute bars, as ratios measured in this process.

    python benchmarks/bench_backtest.py [--model PATH] [--repeat 5] [--file eth_usdt_1m_binance_2025-06.csv]

Prints:

1. strategy throughput: bars/s of ``GRUForecastStrategy`` (forecasts precomputed, orders placed)
   divided by bars/s of bare backtrader — a do-nothing strategy on the same feed, same cerebro
   settings (target >= 0.8). Best of ``--repeat`` runs each, interleaved. Measured at ``--fee``
   (default 0.001, where a model trades rarely) and again at ``--busy-fee`` (0.0001, where it
   trades thousands of times a month): the second shows what backtrader's own order and position
   handling adds per bar, which a do-nothing reference never pays;
2. end-to-end time of a one-month ``run_backtest`` with a trained model, results folder and tear
   sheet included, forecast cache cold (target <= 10 s);
3. the same run again, reusing the cached forecasts: its time and the speed-up (target >= 5x), with
   the time per stage (forecast, backtrader loop, tear sheet) of both runs, and for reference the
   times of the same cold and warm pair of runs without the tear sheet (``--no-tearsheet``): the
   quantstats report costs the same in both runs, whatever is cached.

Without ``--model`` a small model is trained first on the month's first three weeks
(``TrainConfig(max_epochs=3)``, seed 0) and the script says so; pass ``--model`` to time a
fully trained checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backtrader as bt  # noqa: E402

from backtests import run_backtest  # noqa: E402
from backtests._feed import make_feed  # noqa: E402
from data import read_candles  # noqa: E402
from _shared import shared_data_dir  # noqa: E402
from strategies import GRUForecastStrategy, IdleStrategy, configure_broker, make_rules  # noqa: E402


def time_cerebro(candles, fee, strategy_cls, **kwargs) -> tuple[float, int]:
    """Seconds of ``cerebro.run()`` and the number of fills the strategy made (0 for IdleStrategy)."""
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, maxcpus=1, quicknotify=False)
    cerebro.adddata(make_feed(candles))
    configure_broker(cerebro, fee, 0.0, 10_000.0)
    cerebro.addstrategy(strategy_cls, **kwargs)
    t0 = time.perf_counter()
    strat = cerebro.run()[0]
    return time.perf_counter() - t0, len(getattr(strat, "fills", ()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="eth_usdt_1m_binance_2025-06.csv")
    ap.add_argument("--model", type=Path, default=None, help="trained checkpoint (.pt); default: train a small one")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--fee", type=float, default=0.001,
                    help="fee fraction for every run (default: the runner's, 0.001)")
    ap.add_argument("--busy-fee", type=float, default=0.0001,
                    help="a second fee for figure 1 only, at which the model trades often (a maker fee), so "
                         "the loop is also timed placing and filling orders, not mostly waiting; 0 skips it")
    args = ap.parse_args()
    path = shared_data_dir() / args.file
    if not path.exists():
        print(f"real data file {path} is absent (set GRUOW_SHARED_DATA)", file=sys.stderr)
        return 1
    candles = read_candles(path, symbol="ETH/USDT", exchange="binance")
    # the runs below cover the model's training weeks: in-sample, which is fine for timing; the
    # runner's in-sample warning would be repeated for each run
    logging.getLogger("backtests").setLevel(logging.ERROR)
    n = len(candles)
    print(f"data: {path.name}, {n:,} 1-minute bars")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from forecaster import TrainConfig, train

            three_weeks = candles.iloc[: 3 * 7 * 1440]
            model = tmp / "bench.pt"
            t0 = time.perf_counter()
            train(three_weeks, TrainConfig(max_epochs=3, seed=0), model, progress=False)
            print(f"model: trained here on the first 3 weeks, 3 epochs ({time.perf_counter() - t0:.1f} s) "
                  "— a small but trained GRU")
        else:
            print(f"model: {model}")
        from forecaster import forecast, load_checkpoint

        ckpt = load_checkpoint(model)
        fc = forecast(ckpt, candles, progress=False)

        # 1. strategy vs bare backtrader, same feed and settings
        for fee in [args.fee] + ([args.busy_fee] if args.busy_fee > 0 and args.busy_fee != args.fee else []):
            rules = make_rules("gru", None, fee=fee, slippage_bps=0.0)
            sig = rules.signals(candles, fc)
            signals = list(zip(*(sig[c].to_numpy(np.float64).tolist() for c in rules.columns)))
            flat_hold = rules.flat_hold(sig).tolist()
            idle, strat = [], []
            for _ in range(args.repeat):
                idle.append(time_cerebro(candles, fee, IdleStrategy)[0])
                t, fills = time_cerebro(candles, fee, GRUForecastStrategy, rules=rules, signals=signals,
                                        first_decision=127, last_decision=n - 2, record_from=128,
                                        flat_hold=flat_hold)
                strat.append(t)
            bare_bps, strat_bps = n / min(idle), n / min(strat)
            label = "target >= 0.8" if fee == args.fee else "for reference: most of the gap is backtrader's own order handling"
            print(f"1. fee {fee:g} ({fills} fills): bare backtrader (do-nothing strategy) {bare_bps:,.0f} bars/s; "
                  f"GRUForecastStrategy {strat_bps:,.0f} bars/s; ratio {strat_bps / bare_bps:.2f} ({label})")

        # 2./3. end-to-end one-month backtest, cold then warm forecast cache
        cache, out = tmp / "cache", tmp / "backtests"
        # first use of backtrader, quantstats and matplotlib (imports, font cache): not timed
        run_backtest(candles.iloc[:3000], strategy="buyhold", out_dir=tmp / "warm-up", progress=False)

        def cold_then_warm(cache_dir: Path, tearsheet: bool) -> tuple[list[float], list]:
            """Two identical runs on an empty forecast cache: seconds and results of each."""
            secs, res = [], []
            for _ in range(2):
                t0 = time.perf_counter()
                res.append(run_backtest(candles, strategy="gru", model=model, cache_dir=cache_dir, out_dir=out,
                                        fee=args.fee, progress=False, tearsheet=tearsheet))
                secs.append(time.perf_counter() - t0)
            return secs, res

        times, results = cold_then_warm(cache, tearsheet=True)
        # the same pair without the tear sheet (--no-tearsheet): the quantstats report is a fixed
        # cost that no forecast cache can remove
        no_sheet, _ = cold_then_warm(tmp / "cache-2", tearsheet=False)
        m = results[0].metrics
        same = results[0].trades.equals(results[1].trades)

        def stages(r) -> str:
            t = r.timings
            return (f"forecast {t.get('forecast_s', 0):.2f} s, backtrader {t['backtrader_s']:.2f} s, "
                    f"tear sheet {t.get('tearsheet_s', 0):.2f} s")

        print(f"2. end-to-end one-month backtest (load model, forecast {n:,} bars, backtest, metrics, "
              f"5 files incl. tear sheet): {times[0]:.2f} s (target <= 10 s) [{stages(results[0])}]; "
              f"fee {args.fee:g}, {m['n_fills']} fills, return {100 * m['total_return']:+.2f} %")
        print(f"3. second run reusing cached forecasts: {times[1]:.2f} s [{stages(results[1])}]; "
              f"speed-up {times[0] / times[1]:.1f}x (target >= 5x); identical trades: {same}")
        print(f"   the same two runs without the tear sheet (--no-tearsheet): {no_sheet[0]:.2f} s, then "
              f"{no_sheet[1]:.2f} s reusing cached forecasts; speed-up {no_sheet[0] / no_sheet[1]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
