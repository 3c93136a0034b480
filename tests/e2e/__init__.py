"""End to end: whole grids run as a user runs them, bad input over every subcommand,
reliability under kills, the Ray executor."""
