"""``python -m teardown_analyzer`` runs the CLI."""

from .cli import main

main()
