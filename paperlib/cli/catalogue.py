"""Command line, the catalogue's commands: `paperlib evaluate | index | search | calibrate | compare`.

Argument parsing only, as paperlib.cli (whose settings helpers and UserError they share); the work is in
paperlib.runtime.vectors, metrics, retrieval, search and calibration.
"""

from __future__ import annotations

import json
import math
import sys

from paperlib.cli import common


# --------------------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="version-identification metrics of an embeddings npz against a clique table",
        description="Every id listed in CLIQUES.csv (columns id,clique) queries all the others. "
        "Prints one JSON object: MAP, MAP10, MR1, HR1, HR10, HR100, P10, NAR, queries.",
    )
    p.add_argument("embeddings", help="npz: track id -> vector, or id -> (chunks, dim) array")
    p.add_argument("cliques", help="csv with columns id,clique")
    p.add_argument("--block-size", type=int, default=2048, help="rows per similarity tile (memory ~ its square)")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from paperlib.evaluation import metrics
    from paperlib.runtime import vectors

    try:
        ids, cliques = vectors.read_cliques(args.cliques)
        matrix = vectors.read_embeddings(args.embeddings, ids)
    except ValueError as exc:  # vectors.VectorError, or a corrupt npz member
        raise common.UserError(exc) from None
    summary, _ = metrics.evaluate(matrix, cliques, ids, block_size=args.block_size)
    print(json.dumps(summary, sort_keys=False))
    return 0


# --------------------------------------------------------------------------- index
def add_index(sub) -> None:
    p = sub.add_parser(
        "index",
        help="a searchable faiss index of your catalogue's embeddings (build, add, info)",
        description="An index file holds the faiss index, the track ids and, when the embeddings' manifest "
        "(EMBEDDINGS.manifest.csv, as `paperlib embed` writes it) names them, the audio paths. Written atomically.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    build = actions.add_parser(
        "build",
        help="index embeddings files (npz or shard folders of `paperlib embed`), streamed one file or shard at a time",
        description="Reads the embeddings twice: a training sample (--train tracks, those whose ids hash lowest), "
        "then every track. A two-tier factory (…,RFlat or …,Refine(SQfp16)) keeps only its first tier in memory and "
        "streams the re-ranking vectors into the index file: catalogues larger than memory.",
    )
    build.add_argument("embeddings", nargs="+", help="npz (id -> vector or (chunks, dim) array) or shard folders")
    build.add_argument("--out", required=True, help="index file to write")
    build.add_argument(
        "--train", type=int, help="tracks to train IVF/PQ/SQ/PCA on (default: paperlib.retrieval.index.TRAIN_ROWS)"
    )
    build.add_argument(
        "--factory", default="Flat", help="faiss index_factory string (default Flat: exact); e.g. IVF1024,PQ96x4fs"
    )
    build.add_argument(
        "--search-params", default="", help="faiss search parameters, e.g. nprobe=32 (default: nprobe=16 / efSearch=64)"
    )
    build.add_argument("--manifest", help="csv with id,path (default: each EMBEDDINGS' .manifest.csv, if any)")
    add = actions.add_parser("add", help="add tracks to an index without rebuilding it")
    add.add_argument("index", help="index file (rewritten)")
    add.add_argument("embeddings", help="npz of the new tracks")
    add.add_argument("--replace", action="store_true", help="re-added ids replace their old vectors (else an error)")
    add.add_argument("--manifest", help="csv with id,path (default: EMBEDDINGS with suffix .manifest.csv, if any)")
    info = actions.add_parser("info", help="print what an index holds (JSON)")
    info.add_argument("index", help="index file")
    p.set_defaults(run=_run_index)


def _run_index(args) -> int:
    from paperlib.retrieval.index import TRAIN_ROWS, CoverIndex, read_catalogue
    from paperlib.runtime.vectors import VectorError, iter_catalogue

    try:
        if args.action == "info":
            print(json.dumps(CoverIndex.load(args.index, mapped=True).info()))
            return 0
        if args.action == "build":
            if args.train is not None and args.train < 1:
                raise common.UserError(f"--train must be at least 1, got {args.train}")
            index = CoverIndex.build_file(
                args.out,
                lambda: iter_catalogue(args.embeddings, args.manifest),
                args.factory,
                args.search_params,
                args.train or TRAIN_ROWS,
            )
            print(f"{args.out}: {len(index)} tracks", file=sys.stderr)
            return 0
        ids, vectors, paths = read_catalogue(args.embeddings, args.manifest)
        index = CoverIndex.load(args.index, mapped=True)  # a two-tier index's re-ranking vectors stay on disk
        replaced = index.add(ids, vectors, paths, replace=args.replace)
        index.save(args.index)
    except VectorError as exc:  # RetrievalError is one
        raise common.UserError(str(exc)) from None
    print(f"{args.index}: {len(index)} tracks ({len(ids) - replaced} added, {replaced} replaced)", file=sys.stderr)
    return 0


def _read_vectors(path) -> tuple[list, object]:
    """(ids in file order, [n, d] unit vectors) of an embeddings npz; UserError with one line."""
    from paperlib.runtime.vectors import VectorError, read_vectors

    try:
        return read_vectors(path)
    except VectorError as exc:
        raise common.UserError(str(exc)) from None


# --------------------------------------------------------------------------- search
def add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="the covers of each query in an index: embeddings or audio (the LIVI path, no transcription)",
        description='Prints one JSON object per query on stdout: {"query": ID, "hits": [{"id", "score"}, ...]}, '
        "best first; score = cosine. A query whose id is in the index is not its own hit. Audio queries (--model) "
        'are embedded as `paperlib embed` does and carry a status: one without vocals is "instrumental", an '
        'unreadable file "error" (with its reason); neither has hits.',
    )
    p.add_argument("index", help="index file of `paperlib index build`")
    p.add_argument("audio", nargs="*", help="audio files or folders (with --model)")
    p.add_argument("--embeddings", help="npz of query vectors (id -> vector) instead of audio")
    p.add_argument("--ids", nargs="+", metavar="ID", help="only these queries of --embeddings")
    p.add_argument("--model", help="checkpoint folder: embeds the audio queries")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--min-score", type=float, help="leave out hits below this cosine")
    common.add_settings(p)
    p.set_defaults(run=_run_search)


def _run_search(args) -> int:
    from paperlib.retrieval import search
    from paperlib.retrieval.index import RetrievalError, check_vectors

    if bool(args.embeddings) == bool(args.audio):
        raise common.UserError("give either --embeddings Q.npz or audio files with --model")
    if args.audio and not args.model:
        raise common.UserError("audio queries need --model CHECKPOINT")
    if args.ids and not args.embeddings:
        raise common.UserError("--ids selects queries of --embeddings")
    if args.k < 1:
        raise common.UserError(f"-k must be at least 1, got {args.k}")
    if args.min_score is not None and not math.isfinite(args.min_score):
        raise common.UserError(f"--min-score must be a number, got {args.min_score}")
    index = _load_index(args.index)
    try:
        if args.embeddings:
            ids, vectors = search.select_queries(*_read_vectors(args.embeddings), args.ids, args.embeddings)
            check_vectors(vectors, ids, index.dim, "query")
            lines = search.results(ids, index.search_ids(vectors, args.k, ids, args.min_score))
        else:
            tracks = common.list_audio(args.audio)
            inference = common.load_inference(args, common.load_settings(args))
            lines = search.search_audio(index, inference, tracks, args.k, args.min_score)
    except RetrievalError as exc:
        raise common.UserError(str(exc)) from None
    for line in lines:
        print(json.dumps(line))
    return 0


def _load_index(path):
    from paperlib.retrieval.index import CoverIndex, RetrievalError

    try:
        index = CoverIndex.load(path, mapped=True)
    except RetrievalError as exc:
        raise common.UserError(str(exc)) from None
    if len(index) == 0:
        raise common.UserError(f"index {path} has no tracks")
    return index


# --------------------------------------------------------------------------- calibrate, compare
def add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="store a checkpoint's same-work threshold, calibrated on labelled embeddings (validation tracks)",
        description="Over every pair of the clique table's tracks found in EMBEDDINGS.npz, chooses the cosine that "
        "maximises F1 of 'same work' (ties: the higher) and writes it, with its precision and recall, into the "
        'checkpoint\'s config.json ("threshold"); prints it. Training does this on its validation split when the '
        "track table names works. Use tracks the head was not trained on, and not your test set.",
    )
    p.add_argument("embeddings", help="npz of the checkpoint's embeddings of labelled tracks")
    p.add_argument("cliques", help="csv with columns id,clique")
    p.add_argument("--model", required=True, help="checkpoint folder to store the threshold in")
    p.set_defaults(run=_run_calibrate)


def _run_calibrate(args) -> int:
    from paperlib.model import calibration
    from paperlib.runtime.vectors import read_labelled

    try:
        ids, vectors, cliques = read_labelled(args.embeddings, args.cliques)
        result = calibration.calibrate_threshold(vectors, cliques) | {"source": str(args.embeddings)}
        calibration.store_threshold(args.model, result)
    except (OSError, ValueError) as exc:
        raise common.UserError(str(exc)) from None
    print(json.dumps(result))
    return 0


def add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="are two recordings versions of one work? cosine and verdict at the checkpoint's threshold",
        description="Prints one JSON object: a, b, cosine, verdict (same work | different work), threshold and "
        "the precision and recall it was calibrated at. A and B are audio files, or ids of --embeddings.",
    )
    p.add_argument("a", help="audio file (or an id of --embeddings)")
    p.add_argument("b", help="audio file (or an id of --embeddings)")
    p.add_argument("--model", required=True, help="checkpoint folder (holds the calibrated threshold)")
    p.add_argument("--embeddings", help="npz of track vectors: A and B are ids in it")
    common.add_settings(p)
    p.set_defaults(run=_run_compare)


def _run_compare(args) -> int:
    from paperlib.model import calibration

    try:
        threshold = calibration.read_threshold(args.model)
    except (OSError, ValueError) as exc:
        raise common.UserError(str(exc)) from None
    a, b = _pair_vectors(args)
    cosine = float(a @ b)
    result = {"a": args.a, "b": args.b, "cosine": round(cosine, 6)}
    result["verdict"] = calibration.verdict(cosine, threshold["value"])
    result |= {"threshold": threshold["value"], "precision": threshold["precision"], "recall": threshold["recall"]}
    print(json.dumps(result))
    return 0


def _pair_vectors(args):
    """Unit vectors of A and B: ids of --embeddings, or audio embedded with --model (both must have vocals)."""
    if args.embeddings:
        ids, vectors = _read_vectors(args.embeddings)
        unknown = [i for i in (args.a, args.b) if i not in ids]
        if unknown:
            raise common.UserError(f"unknown id(s) {', '.join(map(repr, unknown))}: not in {args.embeddings}")
        return vectors[ids.index(args.a)], vectors[ids.index(args.b)]
    from pathlib import Path

    tracks = [(f"{n}:{Path(p).stem}", Path(p)) for n, p in enumerate((args.a, args.b))]
    manifest, vectors, _, _ = common.load_inference(args, common.load_settings(args)).embed(tracks)
    for row, given in zip(manifest.itertuples(), (args.a, args.b)):
        if row.status != "ok":
            raise common.UserError(f"{given}: {row.status} ({row.reason}): no vocal chunks to compare")
    return vectors[tracks[0][0]], vectors[tracks[1][0]]


ADDERS = [add_evaluate, add_index, add_search, add_calibrate, add_compare]
"""The parser builders of these commands, in help order."""
