"""Vocal detection, transcription and translation retrieval on voices mixed over a band (issue: multilingual lyrics
on real mixes).

Material (made here, deterministic): BANK holds 8 two-sentence verses written in parallel in English, French,
German and Italian (the same meaning sentence for sentence; none of them is in the demo corpus). Each verse is
spoken in each language by Kokoro (style `kokoro/jm_kumo`, and `kokoro/jf_nezumi` on every other verse) and, in
English, also by Piper, then laid over a General-MIDI band (paperlib.data.band; key, tempo, progression and
instruments drawn per clip from a seeded generator) after a 4 s intro with 3 s of band after it, at a vocal-to-band
SNR of −3, 0, +3 and +6 dB. Each band is also rendered alone, as long as its mixes (the instrumental control).

Measured per vocal detector (paperlib.lyrics.vocals: "silero" on the mix, "repet" = REPET-SIM separation then Silero),
with the chunking settings of params.yaml (`vocals.*`):
- vocal recall: share of mixes (each one 30 s window with a voice) whose detected chunks cover at least half of
  the voiced span;
- false-positive rate: share of band-only renders that give a chunk.
Measured with the teacher's Whisper (`models.whisper`, language detected per chunk, `asr.*` decoding):
- WER of each mix's whole window (the voice is in it whatever a detector does) against the verse, per language and
  SNR, and the share of windows whose detected language is the verse's;
- translation retrieval: each +3 dB (and 0 dB) transcript embedded by each multilingual sentence encoder queries
  all other transcripts; a hit when the most similar one is the same verse in another language (HR@1; chance:
  3 of 39 for the Kokoro clips).

    python benchmarks/multilingual_asr.py [--params params.yaml] [--out results/benchmarks/multilingual_asr]

Writes OUT.json (every number), OUT.md (the tables), OUT_mixes.csv (per mix: verse, language, voice, SNR, voiced span,
transcript, detected language, WER) and OUT_detection.csv (per detector and input: kept, covered share).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.data import band, voices
from paperlib.lyrics import asr, teacher, text_embedding, vocals
from paperlib.runtime import config, io

LANGUAGES = ("en", "fr", "de", "it")
SNRS_DB = (-3.0, 0.0, 3.0, 6.0)
INTRO_S, OUTRO_S = 4.0, 3.0
RETRIEVAL_SNRS_DB = (0.0, 3.0)
ENCODERS = ("multilingual-e5-small-q4", "use-multilingual-v3")

BANK = (
    {
        "en": "The city lights are fading as the last train leaves the station. "
        "I hold your letter in my hand and read it once again.",
        "fr": "Les lumières de la ville s'éteignent quand le dernier train quitte la gare. "
        "Je tiens ta lettre dans ma main et je la relis encore une fois.",
        "de": "Die Lichter der Stadt verblassen, als der letzte Zug den Bahnhof verlässt. "
        "Ich halte deinen Brief in meiner Hand und lese ihn noch einmal.",
        "it": "Le luci della città si spengono mentre l'ultimo treno lascia la stazione. "
        "Tengo la tua lettera in mano e la rileggo ancora una volta.",
    },
    {
        "en": "We ran barefoot on the beach until the sun went down. "
        "The waves were singing softly and the summer had no end.",
        "fr": "Nous courions pieds nus sur la plage jusqu'au coucher du soleil. "
        "Les vagues chantaient doucement et l'été n'avait pas de fin.",
        "de": "Wir liefen barfuß am Strand, bis die Sonne unterging. "
        "Die Wellen sangen leise und der Sommer hatte kein Ende.",
        "it": "Correvamo a piedi nudi sulla spiaggia fino al tramonto. "
        "Le onde cantavano piano e l'estate non aveva fine.",
    },
    {
        "en": "My mother sang this song to me when I was very small. "
        "Now I sing it to my daughter in the kitchen every night.",
        "fr": "Ma mère me chantait cette chanson quand j'étais tout petit. "
        "Maintenant je la chante à ma fille dans la cuisine chaque soir.",
        "de": "Meine Mutter sang mir dieses Lied, als ich noch ganz klein war. "
        "Jetzt singe ich es meiner Tochter jeden Abend in der Küche.",
        "it": "Mia madre mi cantava questa canzone quando ero piccolo. Ora la canto a mia figlia in cucina ogni sera.",
    },
    {
        "en": "The soldiers marched across the bridge in the cold winter rain. "
        "Nobody knew if they would ever come back home again.",
        "fr": "Les soldats ont traversé le pont sous la pluie froide de l'hiver. "
        "Personne ne savait s'ils reviendraient un jour à la maison.",
        "de": "Die Soldaten marschierten über die Brücke im kalten Winterregen. "
        "Niemand wusste, ob sie jemals wieder nach Hause kommen würden.",
        "it": "I soldati marciavano sul ponte sotto la fredda pioggia d'inverno. "
        "Nessuno sapeva se sarebbero mai tornati a casa.",
    },
    {
        "en": "Turn the music louder, we will dance until the morning. "
        "Tonight we are young and nothing in the world can stop us.",
        "fr": "Monte la musique, nous danserons jusqu'au matin. "
        "Ce soir nous sommes jeunes et rien au monde ne peut nous arrêter.",
        "de": "Mach die Musik lauter, wir tanzen bis zum Morgen. "
        "Heute Nacht sind wir jung und nichts auf der Welt kann uns aufhalten.",
        "it": "Alza la musica, balleremo fino al mattino. Stanotte siamo giovani e niente al mondo ci può fermare.",
    },
    {
        "en": "The old farmer looks at the sky and waits for the rain. "
        "His fields are dry and golden and the river has gone quiet.",
        "fr": "Le vieux fermier regarde le ciel et attend la pluie. "
        "Ses champs sont secs et dorés et la rivière s'est tue.",
        "de": "Der alte Bauer schaut zum Himmel und wartet auf den Regen. "
        "Seine Felder sind trocken und golden und der Fluss ist still geworden.",
        "it": "Il vecchio contadino guarda il cielo e aspetta la pioggia. "
        "I suoi campi sono secchi e dorati e il fiume è diventato silenzioso.",
    },
    {
        "en": "You never called me back, and I waited by the phone. "
        "I wrote your name a hundred times and threw the page away.",
        "fr": "Tu ne m'as jamais rappelé et j'ai attendu près du téléphone. "
        "J'ai écrit ton nom cent fois puis j'ai jeté la page.",
        "de": "Du hast mich nie zurückgerufen, und ich wartete am Telefon. "
        "Ich schrieb deinen Namen hundertmal und warf das Blatt dann weg.",
        "it": "Non mi hai mai richiamato e io ho aspettato vicino al telefono. "
        "Ho scritto il tuo nome cento volte e poi ho buttato via il foglio.",
    },
    {
        "en": "We climbed the highest mountain to see the world below. "
        "The eagles flew beside us and the snow was shining white.",
        "fr": "Nous avons gravi la plus haute montagne pour voir le monde en bas. "
        "Les aigles volaient à nos côtés et la neige brillait toute blanche.",
        "de": "Wir stiegen auf den höchsten Berg, um die Welt da unten zu sehen. "
        "Die Adler flogen neben uns und der Schnee glänzte weiß.",
        "it": "Abbiamo scalato la montagna più alta per vedere il mondo laggiù. "
        "Le aquile volavano accanto a noi e la neve brillava bianca.",
    },
)
PROGRESSIONS = (("I", "V", "vi", "IV"), ("vi", "IV", "I", "V"), ("I", "IV", "V", "IV"), ("ii", "V", "I", "vi"))
CHORD_INSTRUMENTS = ("piano", "guitar", "strings", "epiano", "organ", "nylon")
TONICS = ("C", "D", "E", "F", "G", "A", "Bb")


@dataclass(frozen=True)
class Clip:
    verse: int
    language: str
    voice: str
    text: str


def clips() -> list[Clip]:
    """Every verse in every language: Kokoro (two styles, alternating by verse) and, in English, Piper too."""
    out = []
    for verse, lines in enumerate(BANK):
        kokoro = "kokoro/jm_kumo" if verse % 2 == 0 else "kokoro/jf_nezumi"
        for language in LANGUAGES:
            out.append(Clip(verse, language, kokoro, lines[language]))
        out.append(Clip(verse, "en", f"piper/{voices.PIPER_VOICE}", lines["en"]))
    return out


def arrangement(index: int) -> band.Arrangement:
    """A band per clip, drawn from a generator seeded by the clip's index."""
    rng = np.random.default_rng([20261206, index])
    chords = tuple(rng.choice(CHORD_INSTRUMENTS, size=2, replace=False))
    return band.Arrangement(
        tonic=str(rng.choice(TONICS)),
        mode=str(rng.choice(("major", "minor"))),
        tempo_bpm=float(rng.choice((84, 96, 108, 120))),
        progression=PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))],
        instruments=(*chords, "bass", "drums"),
        seed=index,
    )


def render_material(all_clips: list[Clip]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(voices, bands): each clip's voice and its band, INTRO_S + voice + OUTRO_S long."""
    spoken, bands = [], []
    for index, clip in enumerate(tqdm(all_clips, desc="voices and bands", unit="clip")):
        voice = voices.speak(clip.text, clip.language, clip.voice)
        seconds = INTRO_S + len(voice) / SAMPLE_RATE + OUTRO_S
        spoken.append(voice)
        bands.append(band.render(band.score(arrangement(index), duration_s=seconds), duration_s=seconds))
    return spoken, bands


def kept_share(found: vocals.VocalChunks, span: tuple[float, float]) -> float:
    """Share of the voiced span [start, end) s covered by the detected chunks' real audio."""
    covered = sum(max(0.0, min(end, span[1]) - max(start, span[0])) for start, end in zip(found.starts_s, found.ends_s))
    return covered / (span[1] - span[0])


def detection(detectors: dict, mixes: pd.DataFrame, waves: dict, bands: list[np.ndarray], settings) -> pd.DataFrame:
    """Per detector and input: mean vocalness, status, covered share of the voiced span (mixes) or chunks (bands)."""
    rows = []
    for name, detector in detectors.items():
        for key, row in tqdm(list(mixes.iterrows()), desc=f"detect ({name})", unit="mix"):
            found = vocals.vocal_chunks(waves[key], detector, **settings.chunking())
            share = kept_share(found, (row.start_s, row.end_s)) if found.status == "ok" else 0.0
            rows.append({"detector": name, "input": "mix", "key": key, "kept": share >= 0.5, "covered": share})
        for index, wave in enumerate(tqdm(bands, desc=f"detect band-only ({name})", unit="band")):
            found = vocals.vocal_chunks(wave, detector, **settings.chunking())
            rows.append({"detector": name, "input": "band", "key": index, "kept": found.status == "ok", "covered": 0.0})
    return pd.DataFrame(rows)


def windows(waves: dict) -> np.ndarray:
    """Each mix as one 30 s chunk (zero-padded), in key order."""
    chunk = np.zeros((len(waves), 30 * SAMPLE_RATE), np.float32)
    for i, wave in enumerate(waves.values()):
        chunk[i, : min(len(wave), chunk.shape[1])] = wave[: chunk.shape[1]]
    return chunk


def retrieval(transcripts: pd.DataFrame, encoder) -> dict:
    """HR@1 of translation retrieval among the Kokoro clips' transcripts: a hit when the most similar other
    transcript is the same verse in another language."""
    vectors = encoder.embed(transcripts["text"].tolist())
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    best = similarity.argmax(axis=1)
    verse, language = transcripts["verse"].to_numpy(), transcripts["language"].to_numpy()
    hits = (verse[best] == verse) & (language[best] != language)
    same = (verse[:, None] == verse[None, :]) & ~np.eye(len(verse), dtype=bool)
    finite = np.isfinite(similarity)
    return {
        "queries": len(verse),
        "hr1": float(hits.mean()),
        "mean_cosine_translation": float(similarity[same].mean()),
        "mean_cosine_other_verse": float(similarity[~same & finite].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="results/benchmarks/multilingual_asr", help="OUT.json and OUT.md")
    args = parser.parse_args()
    cfg = config.load(args.params)
    started = time.perf_counter()
    all_clips = clips()
    spoken, bands = render_material(all_clips)
    mixes, waves = [], {}
    for index, (clip, voice, accompaniment) in enumerate(zip(all_clips, spoken, bands)):
        for snr in SNRS_DB:
            key = f"{index:02d}_{snr:+.0f}"
            waves[key] = band.mix(voice, accompaniment, snr, intro_s=INTRO_S)
            start, end = band.voiced_span(voice, INTRO_S)
            mixes.append({"key": key, "clip": index, "snr_db": snr, "start_s": start, "end_s": end})
            mixes[-1] |= {"verse": clip.verse, "language": clip.language, "voice": clip.voice, "text": clip.text}
    mixes = pd.DataFrame(mixes).set_index("key")
    detectors = {name: vocals.make_detector(name) for name in ("silero", "repet")}
    found = detection(detectors, mixes, waves, bands, cfg.vocals)

    transcriber = teacher.load_transcriber(cfg)
    heard = transcriber.run(windows(waves), progress=True)
    mixes["transcript"] = heard.texts
    mixes["detected"] = heard.languages
    mixes["wer"] = [asr.word_error_rate(r, h) for r, h in zip(mixes["text"], mixes["transcript"])]
    io.write_csv(mixes.reset_index().round({"wer": io.VALUE_DECIMALS}), f"{args.out}_mixes.csv")
    io.write_csv(found.round({"covered": io.VALUE_DECIMALS}), f"{args.out}_detection.csv")

    report = summarise(mixes, found, cfg)
    report["seconds"] = round(time.perf_counter() - started, 1)
    io.write_report(report, args.out, markdown(report))
    print(markdown(report))


def summarise(mixes: pd.DataFrame, found: pd.DataFrame, cfg) -> dict:
    """Every number of the report (plain lists and dicts)."""
    detection_rows = []
    for name, rows in found.groupby("detector", sort=False):
        sung = rows[rows.input == "mix"].set_index("key").join(mixes[["snr_db"]])
        recall = {f"recall {snr:+.0f} dB": at.kept.mean() for snr, at in sung.groupby("snr_db")}
        bands = rows[rows.input == "band"]
        detection_rows.append({"detector": name} | recall | {"false_positive_rate": bands.kept.mean()})
    default = found[(found.detector == cfg.vocals.detector) & (found.input == "mix")].set_index("key")["kept"]
    mixes = mixes.assign(wer_detected=np.where(default.reindex(mixes.index, fill_value=True), mixes.wer, 1.0))
    asr_rows = [
        {
            "language": language,
            "snr_db": snr,
            "clips": len(at),
            "median_wer": at.wer.median(),
            "mean_wer": at.wer.mean(),
            "language_detected": (at.detected == at.language).mean(),
            f"median_wer_after_{cfg.vocals.detector}": at.wer_detected.median(),
        }
        for (language, snr), at in mixes.groupby(["language", "snr_db"])
    ]
    kokoro = mixes[mixes.voice.str.startswith("kokoro/")]
    texts = {
        f"transcripts at {snr:+.0f} dB": kokoro[kokoro.snr_db == snr]
        .drop(columns="text")
        .rename(columns={"transcript": "text"})
        for snr in RETRIEVAL_SNRS_DB
    }
    texts["the verses as written"] = kokoro[kokoro.snr_db == SNRS_DB[0]]
    retrievals = []
    for name in ENCODERS:  # each encoder loaded once
        encoder = text_embedding.load_embedder(name, cfg.paths.models)
        retrievals += [{"encoder": name, "texts": label} | retrieval(at, encoder) for label, at in texts.items()]
    retrievals.sort(key=lambda row: list(texts).index(row["texts"]))  # stable: encoders in ENCODERS order
    return {
        "settings": {
            "vocals": config.to_dict(cfg.vocals),
            "whisper": cfg.models.whisper,
            "asr": config.to_dict(cfg.asr),
        },
        "material": {
            "clips": int(mixes["clip"].nunique()),
            "mixes": len(mixes),
            "bands": int((found.input == "band").sum() // found.detector.nunique()),
            "voices": sorted(mixes.voice.unique()),
            "snr_db": list(SNRS_DB),
        },
        "detection": detection_rows,
        "asr": asr_rows,
        "translation_retrieval": retrievals,
    }


def markdown(report: dict) -> str:
    detection_table = pd.DataFrame(report["detection"]).to_markdown(index=False)
    asr_table = pd.DataFrame(report["asr"]).to_markdown(index=False)
    retrieval_table = pd.DataFrame(report["translation_retrieval"]).to_markdown(index=False)
    material = report["material"]
    lines = [
        "# Vocal detection, transcription and translation retrieval on voices over a band",
        "",
        f"{material['clips']} clips (8 verses × en/fr/de/it by Kokoro, and en by Piper; voices "
        f"{', '.join(material['voices'])}) mixed at {material['snr_db']} dB over a General-MIDI band "
        f"({material['mixes']} mixes), and {material['bands']} band-only renders. Generated by "
        "`python benchmarks/multilingual_asr.py`.",
        "",
        "## Vocal detection (recall: share of mixes whose chunks cover ≥ half the voice; false positives: band-only "
        "renders that give a chunk)",
        "",
        detection_table,
        "",
        "## Whisper on each mix's window (language detected per chunk)",
        "",
        asr_table,
        "",
        "## Translation retrieval (HR@1: the most similar other clip is the same verse in another language)",
        "",
        retrieval_table,
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
