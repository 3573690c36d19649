"""Seeing a run: the start-up timeline and its critical path, the HTML report, topology drawings."""
