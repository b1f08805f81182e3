"""Exit statuses of the `clearing` command, one definition for every subcommand.

`clearing serve` may also end with engine.service.app.EXIT_ASSIGNMENT_CHANGED (3), which the
service returns itself: the broker took this instance's partitions away.
"""

EXIT_OK = 0
EXIT_INPUT = 2  # an expected failure (bad input, missing file); argparse uses 2 for bad usage too
