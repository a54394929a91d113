"""Command line: `paperlib <command> ...`.

Each command is a small function that parses its arguments and calls into the module of its
concern. An error in what the user gave (bad input, missing file, unknown id, a setting out of range) is a
paperlib.runtime.errors.PaperlibError (cli.common.UserError for what only the command line checks), printed as one
line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from paperlib.cli import catalogue, harmonic, pipeline
from paperlib.runtime.errors import PaperlibError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in [*pipeline.ADDERS, *harmonic.ADDERS, *catalogue.ADDERS]:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # idle OpenMP threads sleep instead of spinning (before torch starts): on a busy CPU spinning made small
    # torch ops in Whisper decoding up to 100x slower; the pipeline's stage commands set the same
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except PaperlibError as exc:
        print(f"paperlib {args.command}: error: {exc}", file=sys.stderr)
        return 2
