"""The profile's account model: futures by default, asset-liability with its levels."""

from __future__ import annotations

import pytest

from engine.book.fixed import RATE_SCALE
from engine.waterfall.profile import Profile, ProfileError


def test_every_futures_profile_stays_futures() -> None:
    for name in ("binance-like", "ccp", "hyperliquid-like"):
        profile = Profile.shipped(name)
        assert profile.model == "futures" and profile.asset_liability is None


def test_the_crypto_profile_takes_the_venue_levels() -> None:
    rules = Profile.shipped("crypto-spot-margin").asset_liability
    assert rules is not None
    assert (rules.call_level, rules.liquidation_level) == (130_000_000, 110_000_000)
    assert rules.call_deadline_days is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"model": {"kind": "fx"}}, "model.kind: expected one of"),
        ({"asset_liability": {"call_level": "1.3"}}, "only with [model] kind"),
        (
            {"model": {"kind": "asset_liability"}, "asset_liability": {"call_level": "1.0"}},
            "liquidation_level <= call_level",
        ),
        (
            {"model": {"kind": "asset_liability"}, "asset_liability": {"call_level": 1.3}},
            "asset_liability.call_level",
        ),
        (
            {
                "model": {"kind": "asset_liability"},
                "asset_liability": {"call_deadline_days": -1},
            },
            "call_deadline_days",
        ),
    ],
)
def test_bad_model_sections_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message.replace("[", r"\[")):
        Profile.from_dict(doc)


def test_defaults() -> None:
    rules = Profile.from_dict({"model": {"kind": "asset_liability"}}).asset_liability
    assert rules is not None
    assert rules.call_level == 13 * RATE_SCALE // 10
    assert rules.liquidation_level == 11 * RATE_SCALE // 10
