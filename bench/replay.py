"""Crash-day replay: the 2025-10-11 scenario at one-second ticks with the waterfall on.

    python -m bench.replay                      # 1.6M accounts, 10 instruments, 86,400 s
    python -m bench.replay --accounts 10000 --duration 600   # a short slice (CI smoke)

Each tick moves every mark along the day's path, runs the incremental breach check and,
when anything breaches or the fund holds positions, the full cascade (liquidation, unwind
with price impact, ADL, socialized loss) through the same core as the service and the
simulator. Prints the wall time, ticks per second and the day's totals; no thresholds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from engine.reports.stress_run import prepare
from engine.stress.scenario import load_scenario
from engine.stress.simulator import simulate

SECONDS_PER_DAY = 86_400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    parser.add_argument("--accounts", type=int, default=None, help="default: 1.6M")
    parser.add_argument("--duration", type=int, default=SECONDS_PER_DAY, help="seconds")
    parser.add_argument("--step", type=int, default=1, help="seconds per tick")
    args = parser.parse_args(argv)

    scenario = dataclasses.replace(
        load_scenario("2025-10-11"), step_s=args.step, duration_s=args.duration
    )
    sized, factory = prepare(scenario, args.accounts, None)
    started = time.perf_counter()
    book = factory()
    built = time.perf_counter()
    result = simulate(book, sized)
    done = time.perf_counter()
    ticks = len(result.steps)
    liquidated = sum(step.accounts_liquidated for step in result.steps)
    rounds = sum(step.rounds for step in result.steps)
    print(
        f"replay {sized.name}: {book.n_accounts:,} accounts, {len(book.instruments)} instruments,"
        f" {ticks:,} ticks of {args.step} s"
    )
    print(f"book built in {built - started:.1f} s (not counted)")
    print(
        f"replay {done - built:.1f} s wall, {ticks / (done - built):,.0f} ticks/s;"
        f" {rounds:,} cascade rounds; {liquidated:,} accounts liquidated"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
