"""The `clearing` command: one module per subcommand, each thin (parse, call the core, print)."""
