"""The ``pyimg`` command line: one entry point, a subcommand per job.

Each subcommand lives in ``pyimg/cli/<name>.py`` with ``add_parser(subparsers)``, which
declares its options and sets ``run`` (a function of the parsed arguments returning an exit
status). Those modules only parse and dispatch: the work is done by the Python API they call,
imported inside ``run`` so that ``pyimg --help`` stays fast.

Bad input (a missing or unreadable file, a wrong option value) reaches the user as one line
naming the problem, from the ``OSError`` or ``ValueError`` the API raised, and exit status 2;
``PYIMG_TRACEBACK=1`` shows the whole traceback instead.
"""

import argparse
import importlib
import os
import sys

SUBCOMMANDS = ("upscale", "train", "bench")


def build_parser() -> argparse.ArgumentParser:
    from pyimg import __version__

    parser = argparse.ArgumentParser(
        prog="pyimg", description="Fast image-to-image deep learning for PyTorch.")
    parser.add_argument("--version", action="version", version=f"pyimg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"pyimg.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"pyimg {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:
        if os.environ.get("PYIMG_TRACEBACK") == "1":
            raise
        print(f"pyimg {args.command}: error: {error}", file=sys.stderr)
        return 2
