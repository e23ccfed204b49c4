"""``python -m codefocus.cli``."""

from codefocus.cli import main

main()
