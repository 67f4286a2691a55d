"""Helpers the tests import by name (harnesses, rows, fault stacks): no fixtures here.
Fixtures live in the conftest.py files, which hold nothing else."""
