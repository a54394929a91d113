"""Command line: `paperlib <command> ...`.

Each command is a small function that parses its arguments and calls into the module of its
concern. A user error (bad input, missing file, unknown id) is raised as `UserError` and
printed as one line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys


class UserError(Exception):
    """An error in what the user gave us; printed as one line, exit status 2."""


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="version-identification metrics of an embeddings npz against a clique table",
        description="Every id listed in CLIQUES.csv (columns id,clique) queries all the others. "
        "Prints one JSON object: MAP, MAP10, MR1, HR1, HR10, HR100, P10, NAR, queries.",
    )
    p.add_argument("embeddings", help="npz: track id -> vector, or id -> (chunks, dim) array")
    p.add_argument("cliques", help="csv with columns id,clique")
    p.add_argument("--block-size", type=int, default=512, help="queries per similarity block")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from paperlib import metrics

    try:
        ids, cliques = metrics.read_cliques(args.cliques)
        matrix = metrics.read_embeddings(args.embeddings, ids)
    except ValueError as exc:
        raise UserError(exc) from None
    summary, _ = metrics.evaluate(matrix, cliques, ids, block_size=args.block_size)
    print(json.dumps(summary, sort_keys=False))
    return 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in ADDERS:
        add(sub)
    return parser


ADDERS = [_add_evaluate]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"paperlib {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
