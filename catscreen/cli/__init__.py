"""The command line: one thin Typer module per subcommand (parse, call, print)."""
