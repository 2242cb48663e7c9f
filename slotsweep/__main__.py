"""`python -m slotsweep` runs the command line."""

from slotsweep.cli import main

main()
