"""A seeded slice of the service fuzz (bench.fuzz): hostile and valid records mixed, and
after every tick no crash, the conservation audit, and the state equal to a replay of the
records that were not dead-lettered."""

from __future__ import annotations

import pytest

from bench.fuzz import run


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_fuzzed_ticks_never_crash_and_replay_from_the_accepted(seed: int) -> None:
    report = run(10_000, seed)
    assert report.ok, "\n".join(report.lines())
    assert report.messages == 10_000 and report.crashes == []
    assert sum(report.dead_letters.values()) > 3_000  # the hostile half was refused
    assert report.outputs["liquidation"] + report.outputs["margin_call"] > 0  # risk ran


def test_a_small_mostly_hostile_fuzz() -> None:
    report = run(2_000, 7, hostile=0.8)
    assert report.ok, "\n".join(report.lines())
