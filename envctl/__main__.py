"""`python -m envctl`: the command line, as the `envctl` script runs it."""
from envctl.shells.cli import run

run()
