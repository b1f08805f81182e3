"""Instrument files: tiers, derived maintenance amounts, and every rejection naming its field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.book.instruments import InstrumentError, InstrumentTable

EXAMPLE = {
    "money_decimals": 8,
    "instruments": [
        {
            "symbol": "BTCUSDT",
            "tick_size": "0.1",
            "lot_size": "0.001",
            "multiplier": "1",
            "tiers": [
                {"max_notional": "50000", "mmr": "0.004", "max_leverage": 125},
                {"max_notional": "250000", "mmr": "0.005", "max_leverage": 100},
                {"max_notional": None, "mmr": "0.5", "max_leverage": 1},
            ],
        }
    ],
}


def test_worked_example_derives_continuous_maintenance_amounts() -> None:
    table = InstrumentTable.from_dict(EXAMPLE)
    # cum_1 = 50000 * (0.005 - 0.004) = 50; cum_2 = 50 + 250000 * (0.5 - 0.005) = 123800
    assert table.tier_maintenance_amount.tolist() == [0, 50 * 10**8, 123_800 * 10**8]
    # tick_value = 0.1 * 0.001 * 1 * 1e8
    assert table.tick_value.tolist() == [10_000]
    # MM is continuous at each bound: 50000 * 0.004 - 0 == 50000 * 0.005 - 50 == 200
    for k in (0, 1):
        bound = int(table.tier_max_notional[k])
        low = bound * int(table.tier_mmr[k]) // 10**8 - int(table.tier_maintenance_amount[k])
        high = bound * int(table.tier_mmr[k + 1]) // 10**8 - int(
            table.tier_maintenance_amount[k + 1]
        )
        assert low == high


def test_json_and_toml_twins_load_the_same(tmp_path: Path) -> None:
    (tmp_path / "i.json").write_text(json.dumps(EXAMPLE))
    (tmp_path / "i.toml").write_text(
        """money_decimals = 8
[[instruments]]
symbol = "BTCUSDT"
tick_size = "0.1"
lot_size = "0.001"
multiplier = "1"
tiers = [
  {max_notional = "50000", mmr = "0.004", max_leverage = 125},
  {max_notional = "250000", mmr = "0.005", max_leverage = 100},
  {mmr = "0.5", max_leverage = 1},
]
"""
    )
    from_json = InstrumentTable.load(tmp_path / "i.json")
    from_toml = InstrumentTable.load(tmp_path / "i.toml")
    assert from_json.instruments == from_toml.instruments


def test_zero_mmr_is_legal() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["instruments"][0]["tiers"] = [{"max_notional": None, "mmr": "0", "max_leverage": 10}]
    assert InstrumentTable.from_dict(doc).tier_mmr.tolist() == [0]


def _broken(path: list, value: object) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["money_decimals"], "8", "money_decimals"),
        (["instruments"], [], "instruments"),
        (["instruments", 0, "symbol"], KeyError, "instruments[0].symbol"),
        (["instruments", 0, "tick_size"], "abc", "tick_size"),
        (["instruments", 0, "tick_size"], "-0.1", "tick_size"),
        (["instruments", 0, "tick_size"], 0.1, "tick_size"),
        (["instruments", 0, "lot_size"], "NaN", "lot_size"),
        (["instruments", 0, "tick_size"], "0.000000001", "tick_size"),
        (["instruments", 0, "tiers"], [], "tiers"),
        (["instruments", 0, "tiers", 1, "max_notional"], "40000", "tiers[1].max_notional"),
        (["instruments", 0, "tiers", 0, "max_notional"], None, "tiers[0].max_notional"),
        (["instruments", 0, "tiers", 2, "max_notional"], "1e9", "tiers[2].max_notional"),
        (["instruments", 0, "tiers", 1, "mmr"], "0.003", "tiers[1].mmr"),
        (["instruments", 0, "tiers", 1, "mmr"], "1", "tiers[1].mmr"),
        (["instruments", 0, "tiers", 1, "mmr"], "0.0050000001", "tiers[1].mmr"),
        (["instruments", 0, "tiers", 1, "max_leverage"], 200, "tiers[1].max_leverage"),
        (["instruments", 0, "tiers", 1, "max_leverage"], "100", "tiers[1].max_leverage"),
        (["instruments", 0, "tiers", 1], KeyError, "tiers[1].max_notional"),
    ],
)
def test_malformed_files_name_the_field(path: list, value: object, field: str) -> None:
    doc = _broken(path, value)
    if path == ["instruments", 0, "tiers", 1] and value is KeyError:
        doc["instruments"][0]["tiers"].insert(1, {"mmr": "0.0045", "max_leverage": 110})
    with pytest.raises(InstrumentError) as err:
        InstrumentTable.from_dict(doc)
    assert field in str(err.value)


def test_duplicate_symbols_are_rejected() -> None:
    doc = copy.deepcopy(EXAMPLE)
    doc["instruments"].append(copy.deepcopy(doc["instruments"][0]))
    with pytest.raises(InstrumentError, match="duplicate"):
        InstrumentTable.from_dict(doc)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="cannot read"):
        InstrumentTable.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InstrumentError, match="not valid json"):
        InstrumentTable.load(tmp_path / "bad.json")
