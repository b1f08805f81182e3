"""The book and its exact arithmetic: fixed point, instruments, accounts index, ledger, the Book."""
