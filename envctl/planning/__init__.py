"""Deciding before doing: dependency order, the plan of what `up` will do, references resolved
per consumer, the start gate. Pure: nothing here talks to an engine."""
