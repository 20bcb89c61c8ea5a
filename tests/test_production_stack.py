"""The production stack under load with faults (issue: production proof), in the suite.

A short version of `bench.bench_load`: gunicorn, PostgreSQL, Redis, a Celery worker and the
standalone sandbox hospital as real processes; mixed load from a second process; the sandbox slowed,
failing, killed and restarted, the worker killed and restarted, Redis restarted. Afterwards nothing
may be in an impossible state, no notification lost, and both sides must agree.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.services import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
class ProductionStackTests:
    def test_mixed_load_with_faults_leaves_both_sides_consistent(self, tmp_path):
        require("postgres")
        require("redis")
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env["REGIONAL_VAR_DIR"] = str(tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_load", "12"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        import json

        assert done.returncode in (0, 1), done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["after_recovery"]["problems"] == [], report["after_recovery"]
        for endpoint, figures in report["mixed_load"].items():
            assert figures["requests"] > 0, endpoint
            # Never a 500 or a dropped connection; a lock may rarely meet the hospital's timeout on a
            # saturated 2-core machine (503, "hospital unavailable"), and is then cleanly refused.
            assert "500" not in figures["statuses"] and "0" not in figures["statuses"], (endpoint, figures["statuses"])
            unavailable = figures["statuses"].get("503", 0)
            # At most one in ten: more means the platform, not the machine's load, fails the locks.
            assert unavailable <= max(2, figures["requests"] // 10), (endpoint, figures["statuses"])
        for endpoint, figures in report["load_with_faults"].items():
            # During faults a lock may be refused with 503 (hospital unavailable), never a 500.
            assert "500" not in figures["statuses"], (endpoint, figures["statuses"])
        assert report["after_recovery"]["outbound_failures_in_message_log"] > 0  # the faults are visible
