"""The headless CLI, `python -m eval ...`: one module per command group."""
