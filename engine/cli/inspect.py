"""`clearing inspect SNAPSHOT`: what a service snapshot holds, after checking its checksum.

Prints the tick, the offsets consumed per partition, the dedup state, the insurance fund,
the house accounts, the marks and, when every instrument with positions has a mark, the
accounts by margin status at those marks (engine.service.snapshot_summary). A file that
fails its checksum is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.service.snapshot_summary import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("snapshot", type=Path, help="an Arrow snapshot written by clearing serve")


def run(args: argparse.Namespace) -> int:
    for line in summarize(args.snapshot):
        print(line)
    return 0
