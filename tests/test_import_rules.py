"""The package's import directions, read from the source (no import is executed).

Rooms are the top-level modules and packages of `pointtal`. Dependencies point one way:
cli -> engine / studies -> methods -> data / localization / evaluation, with the small shared modules
(errors, atomic, outputs, config, viz) below the rooms that use them. A new import against these rules fails
here and names the file and line; an exception that exists today is listed with the issue that removes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pointtal"

# room -> the pointtal rooms it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "__main__": {"cli"},
    "__init__": set(),
    "errors": set(),
    "limits": {"errors"},  # the limits of sane input (sizes, fps, durations) and the refusal beyond them
    "applies": set(),  # config-key applicability rules, shared by config and the methods' Options
    "atomic": {"errors"},
    "outputs": {"atomic", "errors"},
    "evaluation": {"errors", "atomic"},
    "localization": {"errors"},
    "data": {"atomic", "errors", "limits", "evaluation"},
    "methods": {"applies", "data", "localization", "errors", "atomic"},
    "viz": {"data", "evaluation", "errors", "atomic"},
    "config": {
        "applies",
        "data",
        "errors",
        "limits",
        "evaluation",
        "methods",
    },  # methods: the METHODS table validates `method:`
    "video": {"atomic", "data", "errors", "limits", "evaluation", "outputs"},
    "engine": {
        "atomic",
        "config",
        "data",
        "errors",
        "limits",
        "evaluation",
        "localization",
        "methods",
        "outputs",
        "viz",
    },
    "studies": {
        "atomic",
        "config",
        "data",
        "engine",
        "errors",
        "limits",
        "evaluation",
        "localization",
        "methods",
        "outputs",
        "viz",
    },
    "cli": {
        "atomic",
        "config",
        "data",
        "engine",
        "errors",
        "limits",
        "evaluation",
        "localization",
        "methods",
        "outputs",
        "studies",
        "video",
        "viz",
    },
}
# imports that break the rules today, each to be removed by the named issue; a new one is not allowed
KNOWN: set[tuple[str, str]] = set()
NO_TORCH = {"evaluation", "localization"}  # numpy only
METHOD_NEUTRAL = {"engine"}  # knows no method by name: pointtal.methods and pointtal.methods.base only
# what a method module may import of pointtal.methods besides its own package: the neutral shared pieces
METHOD_SHARED = {"base", "layers", "seeds", "two_stream"}


def room_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = ["pointtal", *path.relative_to(PACKAGE).parts[:-1]]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module))
            if node.module is None or node.level:  # `from . import x`: x may be a module
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room, rel = room_of(path), str(path.relative_to(PACKAGE))
        for line, module in imports(path):
            top = module.split(".")
            if top[0] == "torch" and room in NO_TORCH:
                found.append(f"{rel}:{line}: {room} imports torch ({module}); it is numpy only")
            if top[0] != "pointtal" or len(top) < 2:
                continue
            target = top[1]
            if target != room and target not in ALLOWED[room] and (rel, module) not in KNOWN:
                found.append(f"{rel}:{line}: {room} imports pointtal.{target} ({room} -> {target} is not allowed)")
            if room in METHOD_NEUTRAL and target == "methods" and len(top) > 2 and top[2] != "base":
                found.append(f"{rel}:{line}: {room} imports a method by name ({module})")
            if room == target == "methods" and len(top) > 2 and not _method_may_import(path, top[2]):
                found.append(
                    f"{rel}:{line}: imports another method's internals ({module}); share it through "
                    f"a neutral module ({', '.join(sorted(METHOD_SHARED))})"
                )
    return list(dict.fromkeys(found))  # `from . import x` names a package and a module: one report a line


def _method_may_import(path: Path, name: str) -> bool:
    """methods/__init__.py (the METHODS table) imports every method; a method module imports its own package
    and the shared pieces only."""
    parts = path.relative_to(PACKAGE).parts
    own = parts[1].removesuffix(".py")
    return own == "__init__" or name == own or name in METHOD_SHARED


def test_the_package_keeps_its_import_directions():
    assert violations() == []


def test_every_room_has_a_rule():
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(ALLOWED), f"rooms without a rule: {sorted(rooms - set(ALLOWED))}"


def test_known_exceptions_still_exist():
    """An exception that was removed is taken off the list, so it cannot come back unnoticed."""
    present = {(str(p.relative_to(PACKAGE)), m) for p in PACKAGE.rglob("*.py") for _, m in imports(p)}
    assert KNOWN <= present, f"remove from KNOWN: {sorted(KNOWN - present)}"


@pytest.mark.parametrize(
    "source, room, message",
    [
        ("import torch\n", "evaluation", "evaluation imports torch"),
        ("from pointtal.engine import trainer\n", "methods", "methods -> engine is not allowed"),
        ("from pointtal.methods.sfnet import SFNet\n", "engine", "imports a method by name"),
        ("from pointtal.methods.sfnet import mining_pool\n", "methods", "imports another method's internals"),
        ("from ..studies import ablation\n", "engine", "engine -> studies is not allowed"),
    ],
)
def test_a_new_violation_is_reported_with_its_file_and_line(tmp_path, monkeypatch, source, room, message):
    """The checker itself: a file that breaks a rule, placed in a copy of the package, is named."""
    import shutil

    copy = tmp_path / "pointtal"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / room / "zz_new.py").write_text("\n" + source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    found = violations()
    assert len(found) == 1 and found[0].startswith(f"{room}/zz_new.py:2: ") and message in found[0], found
