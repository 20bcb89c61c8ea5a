"""Run every benchmark module in bench/ in turn, each in its own process."""

import pathlib
import subprocess
import sys

here = pathlib.Path(__file__).parent
failed = 0
for path in sorted(here.glob("bench_*.py")):
    print(f"== {path.stem}", flush=True)
    failed |= subprocess.call([sys.executable, "-m", f"bench.{path.stem}"])
sys.exit(failed)
