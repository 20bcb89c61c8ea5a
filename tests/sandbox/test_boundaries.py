"""The sandbox is a hospital: it reaches the platform only over HTTP, never through its code."""

from __future__ import annotations

import ast
import pathlib

import regional.sandbox

ALLOWED = ("regional.sandbox", "regional.messages", "regional.soap.mount", "regional.pii", "regional.errors")
PLATFORM = ("regional", "booking", "referral", "reconciliation")


def imported_modules(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


class SandboxBoundaryTests:
    def test_the_sandbox_imports_none_of_the_platforms_apps_or_services(self):
        root = pathlib.Path(regional.sandbox.__file__).parent
        offending = {}
        for path in root.rglob("*.py"):
            for module in imported_modules(path):
                platform = module.split(".")[0] in PLATFORM
                if platform and not module.startswith(ALLOWED):
                    offending.setdefault(str(path.relative_to(root)), []).append(module)
        assert offending == {}
