"""``python -m vidgate``: the same as the ``vidgate`` command."""

from vidgate.cli import main

main()
