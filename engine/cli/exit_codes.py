"""Exit statuses of the `clearing` command, one definition for every subcommand."""

EXIT_OK = 0
EXIT_INPUT = 2  # an expected failure (bad input, missing file); argparse uses 2 for bad usage too
EXIT_ASSIGNMENT_CHANGED = 3  # `serve`: the broker took this instance's partitions away
