"""Does LIVI carry meaning across languages beyond the lines it was trained on? (issue 36, step 4)

Material (made here, deterministic): BANK holds 10 sentences written in parallel in English, French, German and
Italian (the same meaning in each; none is in paperlib.data.line_banks or in benchmarks/multilingual_asr.py), spoken
by Kokoro styles no training track uses (VOICES: the corpus' held-out test style and one style the corpus never sings),
each clip either alone ("spoken": the voice between 1 s of silence) or over a General-MIDI band at +3 dB after a 2 s
intro ("mixed": paperlib.data.band, the arrangement drawn per clip from a seeded generator).

Per condition, every clip queries the others (paperlib.evaluation.conditions' cross-language rule: relevant = the same
sentence in another language, by either voice; the same sentence in the same language set aside), for
- LIVI: the pipeline's checkpoint (train.checkpoint or paths.checkpoint) on the audio alone, as `paperlib embed`;
- Whisper mean-pool: the frozen encoder states of the same chunks, averaged (no training);
- the teacher: Whisper transcripts (language detected) embedded by the teacher's sentence encoder (models.text),
  the ceiling a perfect student would reach.
Reported: HR@1 and MAP, their chance level (relevant / candidates, averaged over queries), and the mean cosine of
same-meaning pairs (translations) against different-meaning pairs (paperlib.evaluation.conditions.translation_cosines).

    python benchmarks/generalisation.py [--params params.yaml] [--out results/benchmarks/generalisation]

Writes OUT.json (every number), OUT.md (the table) and OUT_clips.csv (per clip: sentence, language, voice,
condition, transcript, detected language).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import SAMPLE_RATE
from paperlib.data import band, speech
from paperlib.data.corpus import _write_wav
from paperlib.evaluation import conditions, metrics
from paperlib.lyrics import teacher
from paperlib.model import inference
from paperlib.runtime import config, io

LANGUAGES = ("en", "fr", "de", "it")
VOICES = ("kokoro/jf_gongitsune", "kokoro/jf_alpha")
SNR_DB, INTRO_S, OUTRO_S, SILENCE_S = 3.0, 2.0, 1.5, 1.0
BANK = (
    {
        "en": "The baker opens his shop before the sun comes up.",
        "fr": "Le boulanger ouvre sa boutique avant le lever du soleil.",
        "de": "Der Bäcker öffnet seinen Laden, bevor die Sonne aufgeht.",
        "it": "Il fornaio apre il suo negozio prima che sorga il sole.",
    },
    {
        "en": "My brother lost his keys in the snow last winter.",
        "fr": "Mon frère a perdu ses clés dans la neige l'hiver dernier.",
        "de": "Mein Bruder hat letzten Winter seine Schlüssel im Schnee verloren.",
        "it": "Mio fratello ha perso le chiavi nella neve l'inverno scorso.",
    },
    {
        "en": "The children are laughing in the garden behind the school.",
        "fr": "Les enfants rient dans le jardin derrière l'école.",
        "de": "Die Kinder lachen im Garten hinter der Schule.",
        "it": "I bambini ridono nel giardino dietro la scuola.",
    },
    {
        "en": "I wrote your name on the window of the old car.",
        "fr": "J'ai écrit ton nom sur la vitre de la vieille voiture.",
        "de": "Ich habe deinen Namen auf das Fenster des alten Autos geschrieben.",
        "it": "Ho scritto il tuo nome sul finestrino della vecchia macchina.",
    },
    {
        "en": "The ship will leave the harbour when the storm is over.",
        "fr": "Le bateau quittera le port quand la tempête sera finie.",
        "de": "Das Schiff wird den Hafen verlassen, wenn der Sturm vorbei ist.",
        "it": "La nave lascerà il porto quando la tempesta sarà finita.",
    },
    {
        "en": "She paints the mountains in blue and silver every evening.",
        "fr": "Elle peint les montagnes en bleu et argent chaque soir.",
        "de": "Sie malt jeden Abend die Berge in Blau und Silber.",
        "it": "Lei dipinge le montagne di blu e d'argento ogni sera.",
    },
    {
        "en": "We drank coffee on the balcony and watched the rain.",
        "fr": "Nous avons bu du café sur le balcon en regardant la pluie.",
        "de": "Wir haben auf dem Balkon Kaffee getrunken und dem Regen zugesehen.",
        "it": "Abbiamo bevuto il caffè sul balcone guardando la pioggia.",
    },
    {
        "en": "The doctor says my grandfather must rest for a week.",
        "fr": "Le médecin dit que mon grand-père doit se reposer une semaine.",
        "de": "Der Arzt sagt, mein Großvater muss sich eine Woche ausruhen.",
        "it": "Il medico dice che mio nonno deve riposare per una settimana.",
    },
    {
        "en": "A little dog followed us all the way to the station.",
        "fr": "Un petit chien nous a suivis jusqu'à la gare.",
        "de": "Ein kleiner Hund ist uns bis zum Bahnhof gefolgt.",
        "it": "Un cagnolino ci ha seguiti fino alla stazione.",
    },
    {
        "en": "Tomorrow we will plant apple trees along the river.",
        "fr": "Demain nous planterons des pommiers le long de la rivière.",
        "de": "Morgen pflanzen wir Apfelbäume am Fluss entlang.",
        "it": "Domani pianteremo dei meli lungo il fiume.",
    },
)


def clips(workers: int) -> pd.DataFrame:
    """One row per clip (id, sentence, language, voice, condition, audio float32 at 16 kHz)."""
    plan = [
        (i, (s[language], language, voice)) for i, s in enumerate(BANK) for language in LANGUAGES for voice in VOICES
    ]
    sung = speech.sing([job for _, job in plan], workers=workers)
    silence = np.zeros(int(SILENCE_S * SAMPLE_RATE), np.float32)
    rows = []
    for n, (sentence, (text, language, voice)) in enumerate(plan):
        voice_audio = sung[text, language, voice]
        rng = np.random.default_rng([36, n])
        arrangement = band.Arrangement(
            tonic=str(rng.choice(("C", "D", "E", "F", "G", "A"))),
            mode=str(rng.choice(("major", "minor"))),
            tempo_bpm=float(rng.choice((90, 100, 110, 120))),
            progression=("I", "V", "vi", "IV") if rng.random() < 0.5 else ("vi", "IV", "I", "V"),
            instruments=("piano", "strings", "bass", "drums"),
            seed=n,
        )
        seconds = INTRO_S + len(voice_audio) / SAMPLE_RATE + OUTRO_S
        music = band.render(band.score(arrangement, duration_s=seconds), duration_s=seconds)
        for condition, audio in (
            ("spoken", np.concatenate([silence, voice_audio, silence])),
            ("mixed", band.mix(voice_audio, music, SNR_DB, intro_s=INTRO_S)),
        ):
            rows.append(
                {
                    "id": f"s{sentence:02d}-{language}-{voice.split('/')[1]}-{condition}",
                    "sentence": f"s{sentence:02d}",
                    "language": language,
                    "voice": voice,
                    "condition": condition,
                    "audio": audio.astype(np.float32),
                }
            )
    return pd.DataFrame(rows)


def audio_vectors(cfg: config.Config, table: pd.DataFrame, folder: Path) -> tuple[dict, dict, pd.DataFrame]:
    """(LIVI vectors, Whisper mean-pool vectors, manifest) of every clip, by id, from the pipeline's checkpoint."""
    paths = []
    for row in table.itertuples():
        _write_wav(folder / f"{row.id}.wav", row.audio)
        paths.append((row.id, folder / f"{row.id}.wav"))
    checkpoint = cfg.train.checkpoint or cfg.paths.checkpoint
    found = inference.load_inference(checkpoint, cfg).embed(paths)
    return found.vectors, found.pooled, found.manifest


def teacher_vectors(cfg: config.Config, table: pd.DataFrame) -> tuple[dict, list[str], list[str]]:
    """(teacher vectors by id, transcripts, detected languages) of every clip (one 30 s window each)."""
    transcriber, embedder = teacher.load_asr(cfg)
    windows = np.zeros((len(table), 30 * SAMPLE_RATE), np.float32)
    for i, audio in enumerate(table["audio"]):
        windows[i, : min(len(audio), windows.shape[1])] = audio[: windows.shape[1]]
    found = transcriber.run(windows)
    vectors = embedder.embed(found.texts)
    return dict(zip(table["id"], vectors)), found.texts, found.languages


def scores(system: str, vectors: dict, table: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """(HR1, MAP, chance, queries, cosines of same- and different-meaning pairs) of one system on one condition's
    clips; clips without a vector count as misses."""
    ids = [i for i in table["id"] if i in vectors]
    info = table.set_index("id").loc[ids].reset_index().rename(columns={"sentence": "work"})
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    blocks = [(np.arange(len(ids)), matrix @ matrix.T)]
    ranks, candidates = conditions.language_ranks(blocks, info["work"], info["language"])
    summary, per_query = metrics.summarise(ranks, info["work"].tolist(), ids, candidates)
    chance = float(np.mean([len(r) / c for r, c in zip(ranks, candidates) if len(r)]))
    cosines = conditions.translation_cosines(system, matrix, ids, info[["id", "work", "language"]])
    pairs = cosines.set_index("pairs")["mean"]
    row = {
        "system": system,
        "clips": len(table),
        "embedded": len(ids),
        "queries": summary["queries"],
        "HR1": io.rounded(summary["HR1"] * summary["queries"] / len(table)),
        "MAP": summary["MAP"],
        "chance_HR1": io.rounded(chance),
        "cos_same_meaning": pairs["translation"],
        "cos_different_meaning": pairs["other work"],
    }
    return row, per_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/benchmarks/generalisation")
    args = parser.parse_args()
    cfg = config.load(args.params)
    table = clips(args.workers)
    with tempfile.TemporaryDirectory() as folder:
        livi, pooled, manifest = audio_vectors(cfg, table, Path(folder))
    text_vectors, transcripts, detected = teacher_vectors(cfg, table)
    table = table.assign(transcript=transcripts, detected=detected)
    table["livi_status"] = table["id"].map(dict(zip(manifest["id"], manifest["status"])))
    rows = []
    for condition, group in table.groupby("condition", sort=False):
        for system, vectors in (
            ("LIVI (audio)", livi),
            ("Whisper mean-pool", pooled),
            ("teacher (transcript + text encoder)", text_vectors),
        ):
            rows.append({"condition": condition} | scores(system, vectors, group)[0])
    result = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    io.write_csv(table.drop(columns="audio"), f"{out}_clips.csv")
    report = {
        "sentences": len(BANK),
        "languages": list(LANGUAGES),
        "voices": list(VOICES),
        "snr_db": SNR_DB,
        "checkpoint": str(cfg.train.checkpoint or cfg.paths.checkpoint),
        "rows": result.to_dict(orient="records"),
    }
    io.write_report(report, out, result.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(result.to_string(index=False))


if __name__ == "__main__":
    main()
