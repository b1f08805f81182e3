"""The asset-liability inputs of `clearing risk` and `clearing liquidate`, and their runs.

When the profile's model is asset_liability (engine.waterfall.profile: `[model] kind`), the
two commands read an asset table and balance sheets instead of instruments and positions:

  --assets F        the asset table, TOML or JSON (engine.margin.assets)
  --balances F      account_id, asset, amount: what each account holds
  --liabilities F   account_id, asset, amount: what each account owes (principal + interest)
  --prices F        asset, price: money per whole asset
  --calls F         optional: account_id, days (settlement days a margin call has stood)
  --interest F      optional: asset, rate (one period's interest, accrued before the sweep)

The files' columns are engine.io.asset_liability_inputs'; the tables written,
engine.reports.asset_liability_report's.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.book.errors import Rejected
from engine.book.fixed import FixedPointError, format_units, parse_decimal, to_units
from engine.book.reasons import RejectReason
from engine.cli.outcome import Outcome
from engine.margin.assets import AssetTable
from engine.margin.ratio import STATUS_NAMES
from engine.reports.asset_liability_report import (
    AssetLiabilityFiles,
    AssetLiabilityRun,
    liquidation_run,
    risk_run,
)
from engine.waterfall.profile import Profile

FILES = ("assets", "balances", "liabilities", "prices")
FUTURES_FILES = ("instruments", "accounts", "positions", "marks")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("asset-liability model (profile [model] kind)")
    group.add_argument("--assets", type=Path, help="asset table, TOML or JSON")
    group.add_argument("--balances", type=Path, help="account_id, asset, amount (held)")
    group.add_argument("--liabilities", type=Path, help="account_id, asset, amount (owed)")
    group.add_argument("--prices", type=Path, help="asset, price (money per whole asset)")
    group.add_argument("--calls", type=Path, help="optional: account_id, days in margin call")
    group.add_argument("--interest", type=Path, help="optional: asset, rate for one period")


def require_futures_files(args: argparse.Namespace) -> None:
    """The futures model's files are required when the profile is not asset-liability."""
    missing = [f"--{name}" for name in FUTURES_FILES if getattr(args, name, None) is None]
    if missing:
        raise Rejected(
            RejectReason.INVALID_ARGUMENTS,
            f"the following arguments are required: {', '.join(missing)}",
        )


def files_of(args: argparse.Namespace) -> AssetLiabilityFiles:
    missing = [f"--{name}" for name in FILES if getattr(args, name) is None]
    if missing:
        raise Rejected(
            RejectReason.INVALID_ARGUMENTS,
            f"an asset-liability profile needs {', '.join(missing)}",
        )
    return AssetLiabilityFiles(
        args.assets, args.balances, args.liabilities, args.prices, args.calls, args.interest
    )


def run_risk(args: argparse.Namespace, profile: Profile) -> Outcome:
    run = risk_run(files_of(args), profile, args.out)
    return Outcome(_print(run, profile))


def run_liquidate(args: argparse.Namespace, profile: Profile) -> Outcome:
    """`--insurance-fund` is in the money asset of the asset table."""
    files = files_of(args)
    money = AssetTable.load(files.assets).money_decimals
    text = args.insurance_fund
    fund_amount = to_units(
        parse_decimal(text, "--insurance-fund"), Decimal(1).scaleb(-money), "--insurance-fund"
    )
    if not fund_amount >= 0:
        raise FixedPointError(f"--insurance-fund: must not be negative, got {text}")
    run = liquidation_run(files, profile, args.out, fund_amount=fund_amount)
    return Outcome(_print(run, profile))


def _print(run: AssetLiabilityRun, profile: Profile) -> dict[str, Any]:
    """Prints the summary on stderr; returns it as the --json result (docs/cli.md)."""
    money = run.book.assets.money_decimals

    def units(value: int) -> str:
        return format_units(value, money)

    counts = {name: int((run.risk.status == code).sum()) for code, name in enumerate(STATUS_NAMES)}
    lines = [
        f"profile             {profile.name} (asset-liability)",
        f"accounts            {run.book.n_accounts:,}: "
        + ", ".join(f"{name} {count:,}" for name, count in counts.items() if count),
        f"total market value  {units(sum(run.risk.market_value.tolist()))}",
        f"total liabilities   {units(sum(run.risk.liability_value.tolist()))}",
    ]
    result = run.result
    if result is not None:
        for kind, count in result.summary().items():
            lines.append(f"{kind:<19} {count:,} actions")
        lines += [
            f"accounts liquidated {result.accounts_liquidated:,}",
            f"insurance fund      {units(result.fund_balance_before)} ->"
            f" {units(result.fund_balance_after)}, paid {units(result.insurance_paid)}, fees"
            f" {units(result.liquidation_fees)}, unallocated {units(result.unallocated_loss)}",
            "conservation        ok (every asset's held and owed ledgers)",
        ]
    lines.append(
        "time                load {:.2f} s, compute {:.3f} s, write {:.2f} s".format(*run.seconds)
    )
    lines += [f"wrote {path}" for path in run.paths]
    print("\n".join(lines), file=sys.stderr)
    summary: dict[str, Any] = {
        "model": "asset_liability",
        "accounts": run.book.n_accounts,
        "status": counts,
        "market_value": units(sum(run.risk.market_value.tolist())),
        "liabilities": units(sum(run.risk.liability_value.tolist())),
        "paths": [str(path) for path in run.paths],
    }
    if result is not None:
        summary["accounts_liquidated"] = result.accounts_liquidated
        summary["insurance_paid"] = units(result.insurance_paid)
        summary["unallocated_loss"] = units(result.unallocated_loss)
    return summary
