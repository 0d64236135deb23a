"""How fresh the live console is: from an event reaching the bus to the open page showing it.

Run: .venv/bin/python -m bench.console_freshness [--calls 3] [--speed 1]

Each call is the shared support call (real time by default) on the embedded stack, watched in
headless Chromium through the console (``local.console_session``). Every event the page renders
after it opened is timed from its ``published_at`` (stamped by the publisher as it calls
PutEvents) to the moment the page rendered it. The page polls its call's timeline every 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings

from local.console_session import browser_missing, watch_a_call


def main() -> int:
    """Watch the calls; print the freshness table."""
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(prog="python -m bench.console_freshness")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--speed", type=float, default=1.0)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        print(f"skipped: {missing}")
        return 0
    samples: list[float] = []
    for _ in range(args.calls):
        samples += watch_a_call(speed=args.speed).freshness_ms
    cut = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    print(f"{args.calls} call(s) at {args.speed}x real time, {len(samples)} events rendered live\n")
    print("| events | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    print(f"| {len(samples)} | {cut[49]:.0f} | {cut[94]:.0f} | {max(samples):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
