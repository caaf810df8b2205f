"""Subcommands of the `wbg` CLI, one module per feature."""
