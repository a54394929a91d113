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


# --------------------------------------------------------------------------- benchmarks
def _add_benchmarks(sub) -> None:
    p = sub.add_parser("benchmarks", help="clique tables of Covers80, SHS100K-test, Discogs-VI-test")
    actions = p.add_subparsers(dest="action", required=True)
    prep = actions.add_parser(
        "prepare",
        help="build a benchmark's clique table (csv) from verified public metadata",
        description="Writes a csv with columns id,clique,title,artist,source_id,expected_file,path; "
        "prints audio coverage on stderr. Metadata is downloaded at a fixed version (checksummed) "
        "into --cache, or read from --mirror DIR (layout of shared/benchmarks; env PAPERLIB_BENCHMARK_MIRROR).",
    )
    prep.add_argument("name", choices=["covers80", "shs100k_test", "discogs_vi_test"])
    prep.add_argument("--out", required=True, help="output csv")
    prep.add_argument("--mirror", help="local copy of the metadata, same layout as shared/benchmarks")
    prep.add_argument("--audio-dir", help="folder searched (recursively) for the benchmark's audio")
    prep.add_argument("--cache", help="download cache (default ~/.cache/paperlib/benchmarks)")
    prep.add_argument("--metadata", help="local metadata file used as is (discogs_vi_test: the light "
                      ".json.test; shs100k_test: meta/list or shs100k2_test.csv)")
    prep.add_argument("--no-verify", action="store_true",
                      help="skip checksums and published counts (format checks still apply)")
    prep.set_defaults(run=_run_benchmarks)


def _run_benchmarks(args) -> int:
    from paperlib import benchmarks

    try:
        table = benchmarks.prepare(args.name, args.out, audio_dir=args.audio_dir, mirror=args.mirror,
                                   cache=args.cache, metadata=args.metadata, verify=not args.no_verify)
    except benchmarks.BenchmarkError as exc:
        raise UserError(str(exc)) from None
    print(benchmarks.coverage_summary(table, name=args.name), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- profile
def _add_profile(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="switch params.yaml between the demo and paper profiles",
        description="Merges profiles/NAME.yaml into params.yaml (comments kept). "
        "`paperlib profile paper && dvc repro` runs the paper's setup; `paperlib profile demo` goes back.",
    )
    p.add_argument("name", help="a profile in profiles/ (demo, paper) or a yaml file")
    p.add_argument("--params", default="params.yaml", help="parameters file to rewrite (default params.yaml)")
    p.set_defaults(run=_run_profile)


def apply_profile(params_path, profile_path) -> list[str]:
    """Overlay the profile's values onto params.yaml in place; returns the changed keys (dotted)."""
    from pathlib import Path

    from ruamel.yaml import YAML

    from paperlib.io import atomic_path

    yaml = YAML()  # round-trip: keeps comments and key order
    yaml.preserve_quotes = True
    params = yaml.load(Path(params_path).read_text())
    overlay = yaml.load(Path(profile_path).read_text())
    changed: list[str] = []

    def merge(target, source, prefix=""):
        for key, value in source.items():
            if key not in target:
                raise UserError(f"{profile_path}: {prefix}{key} is not a parameter of {params_path}")
            if hasattr(value, "items"):
                merge(target[key], value, f"{prefix}{key}.")
            elif target[key] != value:
                target[key] = value
                changed.append(f"{prefix}{key}")

    merge(params, overlay)
    with atomic_path(params_path) as tmp, open(tmp, "w") as fh:
        yaml.dump(params, fh)
    return changed


def _run_profile(args) -> int:
    from pathlib import Path

    profile = Path(args.name)
    if not profile.is_file():
        profile = Path("profiles") / f"{args.name}.yaml"
    if not profile.is_file():
        known = sorted(p.stem for p in Path("profiles").glob("*.yaml"))
        raise UserError(f"unknown profile {args.name!r} (known: {', '.join(known) or 'none'})")
    changed = apply_profile(args.params, profile)
    print(f"{args.params}: profile {profile.stem}; changed: {', '.join(changed) or 'nothing'}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in ADDERS:
        add(sub)
    return parser


ADDERS = [_add_profile, _add_evaluate, _add_benchmarks]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"paperlib {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
