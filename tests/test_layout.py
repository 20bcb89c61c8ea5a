"""Every import runs downhill (STYLE.md, "Which app may import which").

Each module of the project package, the apps and the sandbox is read with `ast`: its imports (also
those inside functions), relative imports resolved, and the modules named by string in
`importlib.import_module("…")`, `import_string("…")` and `include("…")` calls. The ground floor
(`regional`) may not even name an app in a string literal, e.g. a default of "booking.notify.…".
"""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
APPS = ("config", "regional", "booking", "referral", "reconciliation", "sandbox", "supervision")
# Which apps each may import (besides itself); config may import all of them.
MAY_IMPORT = {
    "config": set(APPS),
    "regional": set(),
    "booking": {"regional"},
    "referral": {"regional", "booking"},
    "reconciliation": {"regional", "booking"},
    "supervision": {"regional", "booking", "referral", "reconciliation"},
    "sandbox": {"regional"},
}
# The sandbox is a partner: of the platform it uses only the message layer and generic helpers.
SANDBOX_MAY_USE = ("regional.messages", "regional.soap.mount", "regional.pii", "regional.errors")
# Project wiring that mounts or seeds the sandbox (INSTALLED_APPS names it by string, not import).
SANDBOX_WIRING = ("config.urls", "config.management.commands.")
STRING_IMPORTERS = {"import_module", "import_string", "include", "__import__"}
APP_MODULE = re.compile(rf"^({'|'.join(a for a in APPS if a != 'regional')})(\.\w+)+$")


def modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")) if (ROOT / app).is_dir() else ():
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports_of(name: str, path: pathlib.Path):
    """(imported module, line, how) for every import and string import of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                how = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                yield f"{base}.{alias.name}", node.lineno, how
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in STRING_IMPORTERS and node.args and isinstance(node.args[0], ast.Constant):
                value = node.args[0].value
                if isinstance(value, str):
                    yield value, node.lineno, f'{called}("{value}")'


def uphill(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    mine, theirs = importer.split(".")[0], imported.split(".")[0]
    if theirs not in APPS or theirs == mine:
        return None
    if theirs == "sandbox":
        if mine == "config" and importer.startswith(SANDBOX_WIRING):
            return None
        return "no production module imports the sandbox"
    if mine == "config":
        return None
    if theirs == "supervision":
        return "nothing imports supervision"
    if mine == "sandbox":
        return None if imported.startswith(SANDBOX_MAY_USE) else "the sandbox uses only regional's message layer"
    if mine == "supervision" and theirs != "regional" and imported.split(".")[1:2] not in (["selectors"], ["models"]):
        return "supervision reads the apps through their selectors and models"
    if theirs not in MAY_IMPORT[mine]:
        return f"{mine} may not import {theirs}"
    return None


class LayoutTests:
    def test_every_import_runs_downhill(self):
        offending = []
        for name, path in modules():
            for imported, line, how in imports_of(name, path):
                reason = uphill(name, imported)
                if reason:
                    offending.append(f"{name}:{line}: {how} ({reason})")
        assert not offending, "imports that run uphill:\n" + "\n".join(offending)

    def test_the_ground_floor_names_no_app_even_in_a_string(self):
        offending = []
        for name, path in modules():
            if not name.startswith("regional"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and APP_MODULE.match(node.value):
                    offending.append(f"{name}:{node.lineno}: {node.value!r}")
        assert not offending, "the ground floor names an app:\n" + "\n".join(offending)

    def test_the_walk_sees_every_room_and_the_rules_refuse_uphill_imports(self):
        seen = {name.split(".")[0] for name, _ in modules()}
        assert {"config", "regional", "booking", "referral", "reconciliation", "sandbox"} <= seen
        assert uphill("regional.views", "booking.notify") and uphill("booking.tasks", "referral.services")
        assert uphill("reconciliation.adapters", "sandbox.payments") and not uphill("config.urls", "sandbox.payments")
        assert uphill("sandbox.demo", "regional.models") and not uphill("sandbox.soap", "regional.soap.mount")
