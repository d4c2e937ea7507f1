"""Checks of command-line options, run by `pointtal.cli.main` (each command's `check_args`) before any work.

Each check raises InputError naming the option as typed (`--top -3: must be >= 1`); the CLI prints it as one
line and exits 2. Ranges are checked before applicability, so a bad value is named as such wherever it is given.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

from pointtal.errors import InputError


def flag(name: str) -> str:
    """The option as typed for an argparse destination: 'batch_size' -> '--batch-size'."""
    return "--" + name.replace("_", "-")


def fail(name: str, value, why: str) -> None:
    raise InputError(f"{flag(name)} {value}: {why}")


def number(
    args: argparse.Namespace,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    why: str = "",
) -> None:
    """`args.<name>` (when given) is finite and within [low, high] (open ends where asked)."""
    value = getattr(args, name, None)
    if value is None:
        return
    ok = math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        fail(name, value, f"must be {_interval(low, high, low_open, high_open)}{f' ({why})' if why else ''}")


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def figure(args: argparse.Namespace, name: str) -> None:
    """`args.<name>` (when given) is a figure path whose suffix names a format matplotlib writes."""
    value = getattr(args, name, None)
    if value is None:
        return
    if Path(value).is_dir():
        fail(name, value, "is a directory; give a figure file (.png, .pdf or .svg)")
    from pointtal.viz import figure_format  # matplotlib: imported only when a figure is asked for

    try:
        figure_format(value)
    except ValueError as err:
        raise InputError(f"{flag(name)} {err}") from None


def device(args: argparse.Namespace, name: str = "device") -> None:
    """A device name pointtal can use (auto, cpu, cuda, cuda:N)."""
    from pointtal.config import DEVICE

    value = getattr(args, name, None)
    if value is not None and DEVICE.fullmatch(value) is None:
        fail(name, value, "is not a device name; use auto, cpu, cuda or cuda:N")


def given(args: argparse.Namespace, name: str) -> bool:
    """Whether an option was given: set, not None, not False, not an empty list or string."""
    value = getattr(args, name, None)
    return value is not None and value is not False and value != [] and value != ""


def only_with(args: argparse.Namespace, names: Iterable[str], applies: bool, why: str) -> None:
    """Options that cannot apply (`applies` is False) are an error naming the first one given, not ignored."""
    if applies:
        return
    for name in names:
        if given(args, name):
            value = getattr(args, name)
            shown = "" if value is True else f" {value}"
            raise InputError(f"{flag(name)}{shown}: {why}")


def not_a_file(args: argparse.Namespace, name: str, what: str, shown: str | None = None) -> None:
    """`args.<name>` names a directory to write into: an existing file there is refused (`shown`: how a
    positional argument is named in the usage line)."""
    value = getattr(args, name, None)
    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise InputError(f"{shown or flag(name)} {value}: is a file; give {what}")
