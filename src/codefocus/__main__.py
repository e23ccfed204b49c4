"""``python -m codefocus``: the same as the ``codefocus`` command."""

from codefocus.cli import main

main()
