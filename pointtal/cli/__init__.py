"""The command line: `pointtal COMMAND ...`. The only module that reads argv.

Each subcommand lives in `pointtal/cli/<name>.py` and defines `HELP` (one line), `EXAMPLE` (shown in
`--help`), `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

import yaml

from pointtal import __version__
from pointtal.errors import InputError

COMMANDS = {
    "demo": "pointtal.cli.demo",
    "synth": "pointtal.cli.synth",
    "annotate": "pointtal.cli.annotate",
    "train": "pointtal.cli.train",
    "predict": "pointtal.cli.predict",
    "evaluate": "pointtal.cli.evaluate",
    "visualize": "pointtal.cli.visualize",
    "ablate": "pointtal.cli.ablate",
    "extract": "pointtal.cli.extract",
    "detect": "pointtal.cli.detect",
}

USER_ERRORS = (InputError, FileNotFoundError, PermissionError, IsADirectoryError, yaml.YAMLError,
               json.JSONDecodeError, UnicodeDecodeError)


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="pointtal",
        description="Temporal action localization from point supervision (SF-Net, SODA).",
        epilog="Example: pointtal demo --out runs/demo",
    )
    parser.add_argument("--version", action="version", version=f"pointtal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # command not built yet
        modules[name] = module
        cmd = sub.add_parser(
            name, help=module.HELP, description=module.HELP, epilog=f"Example:\n  {module.EXAMPLE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="full tracebacks")
        module.add_arguments(cmd)
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
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
        return int(modules[args.command].run(args) or 0)
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            raise
        print(f"pointtal {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pointtal {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename}: file not found"
    text = str(err).strip().replace("\n", " ")
    return text or type(err).__name__
