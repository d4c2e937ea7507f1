"""The command line: `pointtal COMMAND ...`. The only module that reads argv.

Each subcommand lives in `pointtal/cli/<name>.py` and defines `HELP` (one line), `EXAMPLE` (shown in
`--help`), `add_arguments(parser)`, `check_args(args)` (every option's range, suffix and applicability, run
before `run`: a bad option is refused before any work starts; helpers in `pointtal.cli.checks`) and
`run(args) -> int`. Only the chosen command's module is imported
(`pointtal evaluate` must not pay for torch); `pointtal --help` imports them all to list their `HELP`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from pointtal import __version__
from pointtal.errors import InputError
from pointtal.outputs import DISK_ERRNOS, describe_os_error

COMMANDS = {
    "demo": "pointtal.cli.demo",
    "synth": "pointtal.cli.synth",
    "annotate": "pointtal.cli.annotate",
    "train": "pointtal.cli.train",
    "predict": "pointtal.cli.predict",
    "evaluate": "pointtal.cli.evaluate",
    "visualize": "pointtal.cli.visualize",
    "ablate": "pointtal.cli.ablate",
    "sweep": "pointtal.cli.sweep",
    "label": "pointtal.cli.label",
    "extract": "pointtal.cli.extract",
    "detect": "pointtal.cli.detect",
}

USER_ERRORS = (
    InputError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)


def user_errors() -> tuple[type[BaseException], ...]:
    """USER_ERRORS, plus YAML's error when yaml was imported (a command that never imported it cannot
    have raised it; importing yaml only to name its error would cost every command)."""
    yaml = sys.modules.get("yaml")
    return USER_ERRORS + ((yaml.YAMLError,) if yaml is not None else ())


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the line, or None when there is none or a top-level --help comes first.

    Top-level options take no value, so the command is the first argument not starting with '-'.
    """
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """The parser with every command; with `only`, only that command's module is imported and given its
    arguments (the others stay valid choices, unparsed). Returns (parser, {name: module imported})."""
    parser = argparse.ArgumentParser(
        prog="pointtal",
        description="Temporal action localization from point supervision (SF-Net, SODA, LACP, HR-Pro; ActionFormer on their pseudo labels).",
        epilog="Example: pointtal demo --out runs/demo",
    )
    parser.add_argument("--version", action="version", version=f"pointtal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)  # a valid choice; never parsed in this run
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built yet
        modules[name] = module
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=f"Example:\n  {module.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="full tracebacks")
        module.add_arguments(cmd)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, modules = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    quiet_rank = int(os.environ.get("RANK", "0")) != 0  # under torchrun only rank 0 reports progress
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if quiet_rank else logging.INFO),
        format="%(levelname)s %(message)s" if args.verbose else "%(message)s",
        stream=sys.stderr,
    )
    try:
        module = modules[args.command]
        module.check_args(args)
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"pointtal {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if getattr(args, "debug", False):
            raise
        if isinstance(err, user_errors()):
            print(f"pointtal {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:  # a full or read-only disk: one line
            where = f"{err.filename}: " if err.filename else ""
            print(f"pointtal {args.command}: error: {where}{describe_os_error(err)}", file=sys.stderr)
            return 2
        raise


def _one_line(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename}: file not found"
    text = str(err).strip().replace("\n", " ")
    return text or type(err).__name__
