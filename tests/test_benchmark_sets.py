"""Benchmark clique tables: parsers, checksums, mirror/download, audio matching, coverage, CLI.

Real metadata is read in place from ../shared/benchmarks (never copied into the repo); tests that
need it are skipped when it is absent. Small made-up fixtures live in tests/fixtures/.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from paperlib.cli import main
from paperlib.data import benchmarks as bm

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).parents[1].parent / "shared" / "benchmarks"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"benchmark metadata mirror {SHARED} not present")


def _discogs_full() -> Path | None:
    for name in (
        "Discogs-VI-YT-20240701-light.json.test",
        "DiscogsVI-YT-20240701-light.json.test",
        "discogs-vi-test-cliques.json",
    ):
        if (SHARED / "discogs-vi" / name).is_file():
            return SHARED / "discogs-vi" / name
    return None


def _sine(path: Path, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format=fmt)
    return path


def _covers80_sample() -> pd.DataFrame:
    return bm.parse_covers80(FIXTURES / "covers80_list1_sample.list", FIXTURES / "covers80_list2_sample.list")


def _shs_sample() -> pd.DataFrame:
    return bm.parse_shs100k(FIXTURES / "shs100k_split_sample", FIXTURES / "shs100k_list_sample")


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- checksums
def test_git_blob_sha1_matches_git_hash_object():
    assert bm.git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert bm.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@needs_shared
def test_registry_checksums_match_shared_copies():
    for key, source in bm.REGISTRY.items():
        path = SHARED / key
        if path.is_file():
            bm.verify_bytes(path.read_bytes(), source, key)  # raises on mismatch
    assert (
        bm.git_blob_sha1((SHARED / "shs100k/SHS100K-TEST").read_bytes()) == "93271e046c397d1283a9d1dbf143d361284510cc"
    )


def test_verify_reports_name_expected_and_actual():
    source = bm.Source(("file:///x",), sha256=hashlib.sha256(b"good").hexdigest())
    with pytest.raises(
        bm.BenchmarkError,
        match=r"checksum mismatch for f\.txt: expected sha256 [0-9a-f]{64}, got " + hashlib.sha256(b"bad").hexdigest(),
    ):
        bm.verify_bytes(b"bad", source, "f.txt")


@needs_shared
def test_tampered_mirror_copy_is_rejected(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "covers80/derived").mkdir(parents=True)
    for name in ("list1.list", "list2.list"):
        shutil.copyfile(SHARED / "covers80/derived" / name, mirror / "covers80/derived" / name)
    tampered = mirror / "covers80/derived/list2.list"
    tampered.write_bytes(tampered.read_bytes().replace(b"Abracadabra", b"Abracadabro", 1))
    actual = hashlib.sha256(tampered.read_bytes()).hexdigest()
    with pytest.raises(bm.BenchmarkError) as info:
        bm.load_benchmark("covers80", mirror=mirror)
    message = str(info.value)
    assert str(tampered) in message and bm.REGISTRY["covers80/derived/list2.list"].sha256 in message
    assert actual in message and "\n" not in message


# --------------------------------------------------------------------------- covers80
def test_parse_covers80_fixture():
    table = _covers80_sample()
    assert list(table.columns) == bm.COLUMNS
    assert len(table) == 6 and table["clique"].nunique() == 3
    first = table.iloc[0].to_dict()
    assert first == {
        "id": "ada_lake+Night_Ferries+04-Blue_Harbour",
        "clique": "Blue_Harbour",
        "title": "Blue Harbour",
        "artist": "ada lake",
        "source_id": "",
        "expected_file": "covers32k/Blue_Harbour/ada_lake+Night_Ferries+04-Blue_Harbour.mp3",
        "path": "",
    }
    last = table.iloc[5]
    assert (last["artist"], last["title"], last["clique"]) == ("the quarry", "Ring Of Stones (Demo)", "Ring_Of_Stones")
    assert bm.table_notes(table) == []


@needs_shared
def test_covers80_from_mirror():
    table = bm.load_benchmark("covers80", mirror=SHARED)
    assert len(table) == 160 and table["clique"].nunique() == 80 and table["id"].is_unique
    assert (table.groupby("clique").size() == 2).all()
    assert table.iloc[0]["id"] == "annie_lennox+Medusa+03-A_Whiter_Shade_Of_Pale"
    assert table.iloc[80]["id"] == "procol_harum+Greatest_Hits+2-A_Whiter_Shade_Of_Pale"
    collection = (SHARED / "covers80/covers80collection.txt").read_text().splitlines()
    assert table["expected_file"].tolist() == collection


@needs_shared
def test_covers80_download_path_derives_verified_lists(tmp_path, monkeypatch):
    """Without a mirror the collection is downloaded (a file:// URL here), checked, cut into the lists."""
    key = "covers80/covers80collection.txt"
    monkeypatch.delenv(bm.MIRROR_ENV, raising=False)
    url = (SHARED / key).as_uri()
    monkeypatch.setitem(bm.REGISTRY, key, bm.Source((url,), sha256=bm.REGISTRY[key].sha256))
    cache = tmp_path / "cache"
    table = bm.load_benchmark("covers80", cache=cache)
    assert table.equals(bm.load_benchmark("covers80", mirror=SHARED))
    for name in ("list1.list", "list2.list"):
        assert (cache / "covers80/derived" / name).read_bytes() == (SHARED / "covers80/derived" / name).read_bytes()
    assert sorted(p.name for p in cache.rglob("*")) == [
        "covers80",
        "covers80collection.txt",
        "derived",
        "list1.list",
        "list2.list",
    ]  # no temp files left


def test_download_with_wrong_checksum_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(bm.MIRROR_ENV, raising=False)
    remote = tmp_path / "remote.json"
    remote.write_bytes(b"{}")
    monkeypatch.setitem(bm.REGISTRY, bm.DISCOGS_VI_TEST, bm.Source((remote.as_uri(),), git_blob="0" * 40))
    with pytest.raises(
        bm.BenchmarkError, match="checksum mismatch .*expected git blob sha1 0{40}, got " + bm.git_blob_sha1(b"{}")
    ):
        bm.load_benchmark("discogs_vi_test", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.test"))


def test_unreachable_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(bm.MIRROR_ENV, raising=False)
    monkeypatch.setitem(
        bm.REGISTRY, bm.DISCOGS_VI_TEST, bm.Source(((tmp_path / "absent.json").as_uri(),), git_blob="0" * 40)
    )
    with pytest.raises(bm.BenchmarkError, match="cannot download .*--mirror DIR"):
        bm.load_benchmark("discogs_vi_test", cache=tmp_path / "cache")


# --------------------------------------------------------------------------- shs100k
def test_parse_shs100k_list_and_joined_csv_agree():
    from_list = _shs_sample()
    from_csv = bm.parse_shs100k(FIXTURES / "shs100k_split_sample", FIXTURES / "shs100k_joined_sample.csv")
    assert from_list.equals(from_csv)
    assert from_list["id"].tolist() == ["700_0", "700_1", "700_2", "701_0", "701_3"]  # split order
    assert from_list["source_id"].tolist() == [
        "aB1cD2eF3gH",
        "Ij4Kl5Mn6Op",
        "Qr7St8Uv9Wx",
        "Gh3Ij4Kl5Mn",
        "Qr7St8Uv9Wx",
    ]
    assert from_list.iloc[1][["artist", "expected_file"]].tolist() == ['The "Quiet" Men', "Ij4Kl5Mn6Op.*"]
    assert from_list.iloc[3]["title"] == "North Wind; Slow"


@needs_shared
def test_shs100k_test_from_mirror():
    table = bm.load_benchmark("shs100k_test", mirror=SHARED)
    assert len(table) == 10_547 and table["clique"].nunique() == 1_692
    assert table["id"].is_unique and table["source_id"].nunique() == 10_536
    assert table.iloc[0][["id", "clique", "source_id"]].tolist() == ["8110_0", "8110", "pesIGuV9DDk"]
    paths = (SHARED / "shs100k/shs100k-test-paths.txt").read_text().split()
    assert set(table["source_id"]) == {Path(p).stem for p in paths}


@needs_shared
def test_shs100k_canonical_list_join(tmp_path, monkeypatch):
    """SHS100K-TEST + meta/list (format of the canonical `list`, built here from the joined CSV)."""
    joined = pd.read_csv(SHARED / "shs100k/shs100k2_test.csv", sep=";", dtype=str, keep_default_na=False)
    extra = pd.DataFrame(
        {"set_id": ["1"], "ver_id": ["0"], "yt_id": ["AAAAAAAAAAA"], "title": ["x"], "performer": ["y"]}
    )  # a non-test row, ignored
    rows = pd.concat([extra, joined.iloc[::-1]])
    text = "".join(
        f"{r.set_id}\t{r.ver_id}\t{r.title}\t{r.performer}\thttps://www.youtube.com/watch?v={r.yt_id}\tTrue\n"
        for r in rows.itertuples()
    )
    mirror = tmp_path / "mirror"
    (mirror / "shs100k").mkdir(parents=True)
    (mirror / "shs100k/list").write_text(text, encoding="utf-8")
    (mirror / "shs100k/SHS100K-TEST").symlink_to(SHARED / "shs100k/SHS100K-TEST")
    monkeypatch.setitem(
        bm.REGISTRY, "shs100k/list", bm.Source(("https://example.invalid",), git_blob=bm.git_blob_sha1(text.encode()))
    )
    from_list = bm.load_benchmark("shs100k_test", mirror=mirror)
    assert from_list.equals(bm.load_benchmark("shs100k_test", mirror=SHARED))


def test_shs100k_errors(tmp_path):
    split = FIXTURES / "shs100k_split_sample"
    short = tmp_path / "list"
    short.write_text("".join(FIXTURES.joinpath("shs100k_list_sample").read_text().splitlines(True)[:2]))
    with pytest.raises(bm.BenchmarkError, match=r"3 split versions are not in .*\(first: 700_2\)"):
        bm.parse_shs100k(split, short)
    five = tmp_path / "five"
    five.write_text("700\t0\tt\tp\thttps://www.youtube.com/watch?v=aB1cD2eF3gH\n")
    with pytest.raises(bm.BenchmarkError, match="has 5 columns, expected 6"):
        bm.parse_shs100k(split, five)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("set_id;ver_id;title\n700;0;x\n")
    with pytest.raises(bm.BenchmarkError, match=r"lacks columns \['performer', 'yt_id'\]"):
        bm.parse_shs100k(split, bad_csv)
    bad_url = tmp_path / "bad_url"
    bad_url.write_text(FIXTURES.joinpath("shs100k_list_sample").read_text().replace("v=Gh3Ij4Kl5Mn", "v=short"))
    with pytest.raises(bm.BenchmarkError, match=r"1 versions without a valid YouTube id \(first: 701_0 ''\)"):
        bm.parse_shs100k(split, bad_url)
    dup = tmp_path / "dup"
    dup.write_text(
        FIXTURES.joinpath("shs100k_list_sample").read_text() + "701\t0\tx\ty\thttps://youtu.be/Gh3Ij4Kl5Mn\tTrue\n"
    )
    with pytest.raises(bm.BenchmarkError, match="lists version 701_0 twice"):
        bm.parse_shs100k(split, dup)
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(bm.BenchmarkError, match="empty file"):
        bm.parse_shs100k(empty, FIXTURES / "shs100k_list_sample")
    with pytest.raises(bm.BenchmarkError, match="two integer columns"):
        bm.parse_shs100k(FIXTURES / "shs100k_list_sample", FIXTURES / "shs100k_list_sample")


# --------------------------------------------------------------------------- discogs-vi
def test_parse_discogs_vi_fixture():
    table = bm.parse_discogs_vi(FIXTURES / "discogs_vi_test_sample.json")
    assert len(table) == 7 and table["clique"].nunique() == 3
    assert table.iloc[3].to_dict() == {
        "id": "9a1c2e3f-0000-4000-8000-000000000004",
        "clique": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
        "title": "Harbour Song",
        "artist": "",
        "source_id": "kC0-mN_pQ12",
        "expected_file": "kC/kC0-mN_pQ12.*",
        "path": "",
    }


def test_discogs_vi_malformed(tmp_path):
    cases = {
        "truncated": ('{"c1": [{"version_id": "v1", "youtube_id": "Ab3dE_fG-h1"}', "not valid JSON"),
        "empty": ("", "not valid JSON"),
        "list": ("[]", "must hold an object"),
        "no_versions": ('{"c1": []}', "clique c1 must be a non-empty list"),
        "missing_key": ('{"c1": [{"version_id": "v1"}]}', "without version_id/youtube_id"),
        "bad_youtube": ('{"c1": [{"version_id": "v1", "youtube_id": "nope"}]}', "v1 has an invalid YouTube id 'nope'"),
        "duplicate": (
            '{"c1": [{"version_id": "v1", "youtube_id": "Ab3dE_fG-h1"}],'
            ' "c2": [{"version_id": "v1", "youtube_id": "Zz9yX8wV7u6"}]}',
            "1 duplicate ids \\(first: 'v1'\\)",
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        with pytest.raises(bm.BenchmarkError, match=message):
            bm.parse_discogs_vi(path)


def test_single_version_clique_is_kept_with_a_note(tmp_path):
    data = json.loads((FIXTURES / "discogs_vi_test_sample.json").read_text())
    data["solo"] = [{"version_id": "v-solo", "track_title": "Alone", "youtube_id": "Solo_123456"}]
    path = tmp_path / "solo.json"
    path.write_text(json.dumps(data, indent=4))
    table = bm.parse_discogs_vi(path)
    assert len(table) == 8 and table.iloc[-1]["id"] == "v-solo"
    assert bm.table_notes(table) == ["1 cliques have a single version (kept as distractors; first: solo)"]


@pytest.mark.skipif(_discogs_full() is None, reason="Discogs-VI-YT light .json.test not in the mirror (not shipped)")
def test_discogs_vi_test_full():
    table = bm.load_benchmark("discogs_vi_test", mirror=SHARED)
    assert len(table) == 116_197 and table["clique"].nunique() == 9_878 and table["id"].is_unique
    paths = (SHARED / "discogs-vi/discogs-vi-test-paths.txt").read_text().split()
    assert set(table["expected_file"].str[:-2]) == {p[: -len(".wav")] for p in paths}


# --------------------------------------------------------------------------- counts
@needs_shared
def test_wrong_counts_are_an_error(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "covers80/derived").mkdir(parents=True)
    for name in ("list1.list", "list2.list"):
        lines = (SHARED / "covers80/derived" / name).read_bytes().splitlines(True)[:79]
        (mirror / "covers80/derived" / name).write_bytes(b"".join(lines))
        key = f"covers80/derived/{name}"
        monkeypatch.setitem(
            bm.REGISTRY, key, bm.Source(bm.REGISTRY[key].urls, sha256=hashlib.sha256(b"".join(lines)).hexdigest())
        )
    with pytest.raises(bm.BenchmarkError, match="covers80: expected 160 versions in 80 cliques, got 158 in 79"):
        bm.load_benchmark("covers80", mirror=mirror)


@needs_shared
def test_mirror_from_environment(monkeypatch):
    monkeypatch.setenv(bm.MIRROR_ENV, str(SHARED))
    assert len(bm.load_benchmark("covers80")) == 160


# --------------------------------------------------------------------------- audio matching and coverage
def test_match_audio_covers80_layouts(tmp_path):
    table = _covers80_sample()
    audio = tmp_path / "audio"
    _sine(audio / "covers32k/Blue_Harbour/ada_lake+Night_Ferries+04-Blue_Harbour.wav")
    _sine(audio / "covers32k/Blue_Harbour/ada_lake+Night_Ferries+04-Blue_Harbour.flac", "FLAC")  # sorts first
    _sine(audio / "Cold_Rain/lucy_vane+Rainfall+07-Cold_Rain.flac", "FLAC")  # no covers32k prefix
    _sine(audio / "elsewhere/the_porters+Live_At_The_Hall_+11-Cold_Rain.wav")  # wrong clique folder
    (audio / "Ring_Of_Stones").mkdir()
    (audio / "Ring_Of_Stones/marta_quill+Stones+01-Ring_Of_Stones.txt").write_text("not audio")
    matched = bm.match_audio(table, audio)
    assert matched["path"].tolist() == [
        str(audio / "covers32k/Blue_Harbour/ada_lake+Night_Ferries+04-Blue_Harbour.flac"),
        "",
        "",
        "",
        str(audio / "Cold_Rain/lucy_vane+Rainfall+07-Cold_Rain.flac"),
        "",
    ]
    assert table["path"].eq("").all()  # input untouched
    with pytest.raises(bm.BenchmarkError, match="does not exist"):
        bm.match_audio(table, tmp_path / "absent")


def test_match_audio_youtube_ids_anywhere(tmp_path):
    table = _shs_sample()
    audio = tmp_path / "audio"
    _sine(audio / "aB/aB1cD2eF3gH.wav")
    _sine(audio / "deep/er/Qr7St8Uv9Wx.flac", "FLAC")
    _sine(audio / "Gh3Ij4Kl5Mn.WAV")
    (audio / "Ij4Kl5Mn6Op.json").write_text("{}")
    matched = bm.match_audio(table, audio)
    assert matched["path"].tolist() == [
        str(audio / "aB/aB1cD2eF3gH.wav"),
        "",
        str(audio / "deep/er/Qr7St8Uv9Wx.flac"),
        str(audio / "Gh3Ij4Kl5Mn.WAV"),
        str(audio / "deep/er/Qr7St8Uv9Wx.flac"),
    ]


def test_match_audio_prefers_decodable_formats(tmp_path):
    """.webm is never matched; .m4a (listed, reported as unsupported later) only without a readable file."""
    table = _shs_sample()  # source ids: aB1cD2eF3gH, Ij4Kl5Mn6Op, Qr7St8Uv9Wx (twice), Gh3Ij4Kl5Mn
    audio = tmp_path / "audio"
    for name in ("aB1cD2eF3gH.webm", "Ij4Kl5Mn6Op.m4a", "Ij4Kl5Mn6Op.webm", "Qr7St8Uv9Wx.m4a"):
        (audio / name).parent.mkdir(parents=True, exist_ok=True)
        (audio / name).write_bytes(b"\0" * 64)
    _sine(audio / "zz/Qr7St8Uv9Wx.wav")  # readable: wins over the .m4a despite its later path
    matched = bm.match_audio(table, audio)
    assert matched["path"].tolist() == [
        "",
        str(audio / "Ij4Kl5Mn6Op.m4a"),
        str(audio / "zz/Qr7St8Uv9Wx.wav"),
        "",
        str(audio / "zz/Qr7St8Uv9Wx.wav"),
    ]


def test_coverage_and_summary():
    table = _shs_sample()  # cliques 700: 0,1,2 ; 701: 0,3
    table["path"] = ["a.wav", "b.wav", "c.wav", "", "c.wav"]
    per_clique = bm.coverage(table)
    assert per_clique.loc["700"].tolist() == [3, 3, 0, 3] and per_clique.loc["701"].tolist() == [2, 1, 1, 0]
    assert list(per_clique.columns) == ["expected", "found", "missing", "queries_evaluable"]
    assert bm.coverage_summary(table, name="shs").splitlines() == [
        "shs: 5 versions in 2 cliques; audio found 4 (80.0%), missing 1",
        "shs: queries evaluable 3 / 5",
    ]
    table["path"] = ["a.wav", "", "", "d.wav", ""]
    assert bm.coverage_summary(table).splitlines()[-1] == "benchmark: queries evaluable 0 / 5"


# --------------------------------------------------------------------------- CLI
@needs_shared
def test_cli_prepare_covers80(tmp_path, capsys):
    audio = tmp_path / "audio"
    _sine(audio / "covers32k/Abracadabra/sugar_ray+14_59+11-Abracadabra.wav")
    _sine(audio / "covers32k/Abracadabra/steve_miller_band+Steve_Miller_Band_Live_+09-Abracadabra.wav")
    out = tmp_path / "covers80.csv"
    code = main(
        ["benchmarks", "prepare", "covers80", "--out", str(out), "--mirror", str(SHARED), "--audio-dir", str(audio)]
    )
    assert code == 0
    table = _read_csv(out)
    assert list(table.columns) == bm.COLUMNS and len(table) == 160
    assert (table["path"] != "").sum() == 2
    err = capsys.readouterr().err
    assert "covers80: 160 versions in 80 cliques; audio found 2 (1.2%), missing 158" in err
    assert "queries evaluable 2 / 160" in err
    first = out.read_bytes()
    main(["benchmarks", "prepare", "covers80", "--out", str(out), "--mirror", str(SHARED), "--audio-dir", str(audio)])
    assert out.read_bytes() == first  # deterministic


def test_cli_discogs_metadata_file(tmp_path, capsys):
    out = tmp_path / "d.csv"
    args = [
        "benchmarks",
        "prepare",
        "discogs_vi_test",
        "--out",
        str(out),
        "--metadata",
        str(FIXTURES / "discogs_vi_test_sample.json"),
    ]
    assert main(args) == 2 and not out.exists()  # the fixture is not the published file
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "checksum mismatch" in err and "898c5d629fdfbda6ad503eebf24009307b048bbd" in err
    assert main(args + ["--no-verify"]) == 0
    assert _read_csv(out)["id"].str[-1].tolist() == list("1234567")


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmarks", "prepare", "covers81", "--out", str(tmp_path / "x.csv")])
    assert exc.value.code == 2 and "invalid choice: 'covers81'" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"c1": [')
    out = tmp_path / "bad.csv"
    assert (
        main(["benchmarks", "prepare", "discogs_vi_test", "--out", str(out), "--metadata", str(bad), "--no-verify"])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and err.startswith("paperlib benchmarks: error: discogs_vi: ") and "not valid JSON" in err
    )
    assert not out.exists()
    assert main(["benchmarks", "prepare", "covers80", "--out", str(out), "--mirror", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found in mirror" in err
