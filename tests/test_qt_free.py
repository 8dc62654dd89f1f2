"""The one rule of the house: outside mailer_gui/ui (and app.py) nothing imports Qt.

Checked two ways: statically (every import statement in the source) and by
importing every core module in a fresh interpreter and looking at sys.modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mailer_gui

PACKAGE = Path(mailer_gui.__file__).parent
QT_ROOTS = ("PySide6", "shiboken6", "PyQt5", "PyQt6")


def core_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "ui" not in path.relative_to(PACKAGE).parts[:1] and path.name != "app.py"
    ]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_has_modules_to_check() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in core_modules()}
    assert "smtp/protocol.py" in names and "cli.py" in names
    assert not any(n.startswith("ui/") for n in names)


def test_no_qt_import_statement_outside_ui() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(imported_roots(path) & set(QT_ROOTS))
        for path in core_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_core_loads_no_qt() -> None:
    modules = [
        "mailer_gui." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in core_modules()
        if p.name not in ("__main__.py",)
    ]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {QT_ROOTS!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == []


def test_the_check_would_catch_a_qt_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\nimport os\n")
    assert imported_roots(bad) & set(QT_ROOTS) == {"PySide6"}
