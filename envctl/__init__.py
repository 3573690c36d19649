"""envctl: bring up a multi-service integration environment on one Docker engine."""

__version__ = "0.1.0"
