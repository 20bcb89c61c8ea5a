"""Supervision reads the other apps; nothing imports it (STYLE.md: which app may import which)."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLATFORM = ("config", "regional", "booking", "referral", "reconciliation", "sandbox")


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


class BoundaryTests:
    def test_no_platform_module_imports_supervision(self):
        offenders = [
            str(path.relative_to(ROOT))
            for app in PLATFORM
            if app != "config"
            for path in (ROOT / app).rglob("*.py")
            if any(name == "supervision" or name.startswith("supervision.") for name in imported_modules(path))
        ]
        assert offenders == []

    def test_supervision_does_not_import_the_sandboxes_or_reconciliation(self):
        imports = {name for path in (ROOT / "supervision").rglob("*.py") for name in imported_modules(path)}
        assert not {name for name in imports if name.startswith(("sandbox", "reconciliation"))}
