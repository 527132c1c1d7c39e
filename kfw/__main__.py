"""``python -m kfw``: the CLI without an installed entry point (a checkout on PYTHONPATH)."""

from kfw.cli import main

main()
