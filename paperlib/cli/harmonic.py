"""Command line, the harmonic systems: `paperlib embed-harmonic`.

Argument parsing only, as paperlib.cli (whose settings helpers and UserError it shares); the work is in
paperlib.harmonic.release (checkpoint loading, the embedding protocol) and paperlib.harmonic.systems (the engine job,
the output files).
"""

from __future__ import annotations

from pathlib import Path

from paperlib.cli import common


def add_embed_harmonic(sub) -> None:
    p = sub.add_parser(
        "embed-harmonic",
        help="embeddings of a CLEWS-release checkpoint (ByteCover2x, CLEWS, CQTNet, DVINet+) by the paper's protocol",
        description="Cuts each track to its first --max-seconds, embeds shingles of the model's length every --hop "
        "seconds, and writes DIR/embeddings.npz (file stem -> float32 track vector: the L2-normalised mean of the "
        "segment vectors, compared by cosine), DIR/segments.npz (stem -> [segments, zdim] float32, for CLEWS's "
        "bpwr distance: paperlib.harmonic.release.bpwr_distance) and DIR/manifest.csv (one row per input: ok | error "
        "with "
        "the reason). The checkpoint is unpickled (torch.load weights_only=False, as the release stores an OmegaConf "
        "object): name only files you trust. Device and batch size come from the settings (device, "
        "harmonic.batch_size); --engine ray runs on Ray Data (settings scale.*).",
    )
    p.add_argument("audio", nargs="+", help="audio files or folders (searched recursively)")
    p.add_argument("--checkpoint", required=True, help="a release checkpoint, e.g. dvi-clews/checkpoint_best.ckpt")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--hop", type=float, help="shingle hop in seconds (default: harmonic.hop_s, 5)")
    p.add_argument("--max-seconds", type=float, help="audio cut to its first seconds (default: harmonic.max_seconds)")
    common.add_engine(p)
    common.add_settings(p)
    p.set_defaults(run=_run_embed_harmonic)


def _run_embed_harmonic(args) -> int:
    from paperlib.harmonic.release import HarmonicError
    from paperlib.harmonic.systems import HarmonicJob, write_rows
    from paperlib.runtime import engine

    cfg = common.load_settings(
        args,
        **{
            "harmonic.hop_s": args.hop,
            "harmonic.max_seconds": args.max_seconds,
            "scale.engine": args.engine,
            "scale.address": args.address,
        },
    )
    tracks = common.list_audio(args.audio)
    job = HarmonicJob.of(args.checkpoint, cfg.harmonic)
    try:
        steps = engine.local_steps(job, cfg)
        rows = engine.run(job, tracks, cfg, steps)
    except (HarmonicError, engine.EngineError) as exc:
        raise common.UserError(str(exc)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = write_rows(rows, out / "embeddings.npz", out / "manifest.csv", out / "segments.npz")
    common.print_counts(manifest, out)
    return 0


ADDERS = [add_embed_harmonic]
