"""The command line: ``trpo-claims`` (main.py) and its larger subcommands, one module each."""
