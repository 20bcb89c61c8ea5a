"""Benchmarks: each reports a ratio against a baseline measured in the same run (never a timed test).

Run one with `.venv/bin/python -m bench.<name>`, all with `make bench`.
"""
