"""Benchmarks: each reports a ratio against a baseline measured in the same run (never a timed test).

Run one with `.venv/bin/python -m bench.<name>`, all with `make bench`.
"""

import os

# The benchmarks book through the sandbox hospital: switch the simulated partners on for them (and
# for the gunicorn, worker and sandbox processes they start, which inherit the environment).
os.environ.setdefault("SANDBOX_ENABLED", "1")
