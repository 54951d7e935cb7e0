"""The command-line interface: one Typer app; ``{name}-<tool>`` dispatches on argv[0]."""
