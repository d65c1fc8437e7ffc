"""``python -m local_telemetry`` runs the command line."""

from local_telemetry.cli import main

main()
