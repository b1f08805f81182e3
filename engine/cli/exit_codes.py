"""Exit statuses of the `clearing` command, one definition for every subcommand.

    0  ok
    1  runtime failure: something outside the input went wrong (the Kafka broker cannot be
       reached, a client error, a bug); the message says what
    2  usage: the command line itself is wrong (unknown option, missing argument, an --out
       that is an existing file, an unknown --profile); argparse's own convention
    3  rejected input: the files, scenario or values named on the command line were read and
       refused (off-grid decimals, an unknown symbol, a corrupt snapshot); the message names
       the file, row and column where there is one
    4  `clearing serve` only: the consumer group moved this instance's partitions away (a
       supervisor restarts it; the snapshot written on the way out resumes it)

With --json every status comes with one JSON document on stdout (docs/cli.md).
"""

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_ASSIGNMENT_CHANGED = 4

NAMES = {
    EXIT_OK: "ok",
    EXIT_RUNTIME: "runtime_error",
    EXIT_USAGE: "usage",
    EXIT_INPUT: "rejected_input",
    EXIT_ASSIGNMENT_CHANGED: "assignment_changed",
}
