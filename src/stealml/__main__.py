"""``python -m stealml`` runs the command line."""

from stealml.cli import main

main()
