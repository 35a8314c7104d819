"""Benchmark the data layer against bare pandas, as ratios measured in this process.

    python benchmarks/bench_data.py [--repeat 15] [--file eth_usdt_1m_binance_2025-06.csv]

Prints, for one real month of 1m candles (43,199 rows, ``../shared/data``):

- load of one stored month (``CandleStore.load`` with a [start, end) range) / a bare
  ``pandas.read_parquet`` of the same month file (target: <= 1.5x);
- load of the whole 43,199-candle range (two month files) / bare reads of both files + concat;
- import of the month's CSV (``read_candles``: detect, parse, validate) / a bare
  ``pandas.read_csv`` + ``to_datetime`` of the same file, and the full import into an empty
  store (``read_candles`` + ``CandleStore.write``) / the same bare read.

Medians of ``--repeat`` runs; absolute times are printed for orientation only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from data import CandleStore, read_candles  # noqa: E402
from _shared import shared_data_dir  # noqa: E402


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up: imports, page cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--file", default="eth_usdt_1m_binance_2025-06.csv")
    args = ap.parse_args()
    csv = shared_data_dir() / args.file
    if not csv.exists():
        print(f"real data file {csv} is absent (set GRUOW_SHARED_DATA)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        store = CandleStore(root)
        candles = read_candles(csv, symbol="ETH/USDT", exchange="binance")
        store.write(candles)
        files = sorted((root / "binance" / "ETH-USDT" / "1m").glob("*.parquet"))
        month = max(files, key=lambda p: p.stat().st_size)  # the full month (June)
        m0 = pd.Timestamp(month.stem + "-01", tz="UTC")
        m1 = m0 + pd.offsets.MonthBegin(1)
        n_month = len(pd.read_parquet(month))

        bare_month = median_time(lambda: pd.read_parquet(month), args.repeat)
        load_month = median_time(lambda: store.load("ETH/USDT", "1m", start=m0, end=m1), args.repeat)
        bare_all = median_time(lambda: pd.concat([pd.read_parquet(p) for p in files]), args.repeat)
        load_all = median_time(lambda: store.load("ETH/USDT", "1m"), args.repeat)

        def bare_csv():
            df = pd.read_csv(csv)
            df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")

        def import_into_empty_store():
            with tempfile.TemporaryDirectory() as t2:
                CandleStore(Path(t2)).write(read_candles(csv, symbol="ETH/USDT", exchange="binance"))

        bare_read = median_time(bare_csv, args.repeat)
        read = median_time(lambda: read_candles(csv, symbol="ETH/USDT", exchange="binance"), args.repeat)
        full_import = median_time(import_into_empty_store, max(3, args.repeat // 3))

    print(f"data layer benchmark: {csv.name}, {len(candles):,} candles; medians of {args.repeat} runs")
    print(f"load one month ({n_month:,} candles) / bare read_parquet : {load_month / bare_month:5.2f}x "
          f"({load_month * 1e3:.1f} ms vs {bare_month * 1e3:.1f} ms)")
    print(f"load all {len(candles):,} candles ({len(files)} files) / bare reads  : {load_all / bare_all:5.2f}x "
          f"({load_all * 1e3:.1f} ms vs {bare_all * 1e3:.1f} ms)")
    print(f"read_candles (parse+validate) / bare read_csv   : {read / bare_read:5.2f}x "
          f"({read * 1e3:.1f} ms vs {bare_read * 1e3:.1f} ms)")
    print(f"import CSV into store / bare read_csv           : {full_import / bare_read:5.2f}x "
          f"({full_import * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
