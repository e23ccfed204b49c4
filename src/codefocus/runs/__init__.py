"""Runs of units that studies and probes share: ``units`` (typed units and the resumable runner
that stores them as they finish) and ``programs`` (a task's model inputs, its one checked
generation, and the program a verdict tests)."""
