"""``python -m fleetmind`` runs the command-line interface."""

from fleetmind.cli import main

main()
