"""Corpus preparation (dac_diveq.data.corpora) on tiny copies in each corpus's official layout, and
the download path against a loopback HTTP server: resume, checksum, disk space. No internet."""
import dataclasses
import hashlib
import json
from collections import namedtuple
from pathlib import Path

import pytest
import soundfile as sf

from dac_diveq.data import loaders
from dac_diveq.data.corpora import CORPORA, HELD_OUT, CorpusError, prepare_corpus, read_test_list
from dac_diveq.data.corpora import Archive
from dac_diveq.data.corpora import download as dl
from tests.conftest import make_fake_corpus, tar_gz

#: corpus -> (rates to prepare, the speakers the committed lists put in val and test)
CASES = {
    "librispeech": ((16000,), {"84"}, None),
    "libritts": ((16000, 24000), {"84"}, {"1089"}),
    "vctk": ((16000, 44100), {"p226"}, {"p232", "p257"}),
    "daps": ((16000, 44100), {"f9"}, {"m10"}),
}


def _speakers(folder: Path) -> set:
    return {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()


def _prepare(name, tmp_path, **kw):
    source = make_fake_corpus(name, tmp_path / "src")
    out = tmp_path / "out"
    kw.setdefault("subsets", ["train-clean-100", "dev-clean", "test-clean"] if name != "vctk" and
                  name != "daps" else None)
    kw.setdefault("progress", False)
    return source, out, prepare_corpus(name, source=source, output=out, log=lambda line: None, **kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_corpus_is_prepared_from_its_official_layout(name, tmp_path):
    rates, val_speakers, test_speakers = CASES[name]
    subsets = ["train-clean-100", "dev-clean"] + (["test-clean"] if name == "libritts" else []) \
        if name.startswith("libri") else None
    source, out, folders = _prepare(name, tmp_path, sample_rates=rates, subsets=subsets)
    assert sorted(folders) == sorted(rates)
    for rate in rates:
        folder = out / name / str(rate)
        assert folder.is_dir() and not folder.with_name(f"{rate}.tmp").exists()
        splits = {s: _speakers(folder / s) for s in ("train", "val", "test")}
        assert splits["val"] == val_speakers
        if test_speakers:
            assert splits["test"] == test_speakers and (folder / "test" / HELD_OUT).is_file()
        assert splits["train"] and not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
        files = sorted(folder.rglob("*.flac"))
        assert files and all(sf.info(str(f)).samplerate == rate for f in files)
        assert abs(sf.info(str(files[0])).duration - 0.25) < 0.01  # resampled, not cut or padded
        rows = [json.loads(line) for line in (folder / "train" / "manifest.jsonl").read_text().splitlines()]
        assert {r["speaker"] for r in rows} == splits["train"]
        if name != "daps":  # DAPS has no transcripts
            assert all(r["text"] for r in rows)
    # VCTK: one microphone (mic1) per utterance; DAPS: the macOS "._" file is not audio.
    n_train = len(list((out / name / str(rates[0]) / "train").rglob("*.flac")))
    assert n_train == {"librispeech": 4, "libritts": 4, "vctk": 4, "daps": 4}[name]
    provenance = json.loads((out / name / "provenance.json").read_text())
    assert provenance["licence"] == CORPORA[name].licence and provenance["source"] == str(source)
    assert sorted(provenance["prepared"]) == sorted(map(str, rates))


def test_librispeech_test_clean_gives_the_committed_test_list(tmp_path):
    _, out, _ = _prepare("librispeech", tmp_path, subsets=["test-clean"])
    folder = out / "librispeech" / "16000" / "test_list"
    wanted = read_test_list()
    assert len(wanted) >= 300 and len({i.split("-")[0] for i in wanted}) >= 38
    assert sorted(p.stem for p in folder.glob("*.wav")) == sorted(wanted)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["split"] == "test" and manifest["count"] == len(wanted) and (folder / HELD_OUT).is_file()
    assert manifest["speakers_by_sex"]["female"] > 0 and manifest["speakers_by_sex"]["male"] > 0
    assert all(sf.info(str(p)).samplerate == 16000 for p in list(folder.glob("*.wav"))[:5])


def test_the_held_out_sets_are_refused_by_the_loaders(tmp_path):
    _, out, _ = _prepare("librispeech", tmp_path, subsets=["dev-clean", "test-clean"])
    base = out / "librispeech" / "16000"
    loaders.check_folders({"speech": [str(base / "val")]}, "val")  # a val folder is fine
    for held in ("test", "test_list"):
        with pytest.raises(loaders.DataError, match="held-out test set"):
            loaders.check_folders({"speech": [str(base / held)]}, "train")


def test_a_missing_prepared_corpus_names_the_command(tmp_path):
    with pytest.raises(loaders.DataError) as error:
        loaders.check_folders({"vctk": ["data/corpora/vctk/44100/train"]}, "train")
    message = str(error.value)
    assert "\n" not in message and "does not exist" in message
    assert "`python scripts/prepare_data.py --corpus vctk --download --sample_rate 44100`" in message
    assert "GB to download" in message and "estimates" in message


@pytest.mark.parametrize("case, message", [
    ("unknown", "unknown corpus 'timit'"),
    ("subset", "librispeech has no subset train-clean-900"),
    ("upsample", "librispeech is recorded at 16000 Hz"),
    ("both", "give either --source PATH"),
    ("layout", "LibriSpeech/train-clean-100 not found under"),
])
def test_bad_requests_are_one_line_errors_and_write_nothing(case, message, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    kw = {"name": "librispeech", "source": source, "output": tmp_path / "out", "progress": False,
          "log": lambda line: None}
    kw.update({"unknown": {"name": "timit"}, "subset": {"subsets": ["train-clean-900"]},
               "upsample": {"sample_rates": [44100]}, "both": {"download_": True}, "layout": {}}[case])
    with pytest.raises(CorpusError) as error:
        prepare_corpus(**kw)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_speakers_in_two_subsets_are_refused(tmp_path):
    source = make_fake_corpus("libritts", tmp_path / "src")
    moved = source / "LibriTTS" / "dev-clean" / "19"
    (source / "LibriTTS" / "dev-clean" / "84").rename(moved)  # reader 19 in train and in dev
    with pytest.raises(CorpusError, match="speakers 19 are in both train and val"):
        prepare_corpus("libritts", source=source, output=tmp_path / "out", subsets=["train-clean-100", "dev-clean"],
                       progress=False, log=lambda line: None)


def test_an_interrupted_preparation_leaves_no_finished_folder_and_resumes(tmp_path):
    source = make_fake_corpus("daps", tmp_path / "src")
    bad = source / "daps" / "clean" / "m1_script2_clean.wav"
    good = bad.read_bytes()
    bad.write_bytes(b"RIFF but not a wave file")
    with pytest.raises(CorpusError, match="cannot read .*m1_script2_clean.wav"):
        prepare_corpus("daps", source=source, output=tmp_path / "out", progress=False, log=lambda line: None)
    assert not (tmp_path / "out" / "daps" / "16000").exists()
    partial = sorted((tmp_path / "out" / "daps" / "16000.tmp").rglob("*.flac"))
    assert partial and not list((tmp_path / "out" / "daps" / "16000.tmp").rglob("*.partial"))
    bad.write_bytes(good)
    prepare_corpus("daps", source=source, output=tmp_path / "out", progress=False, log=lambda line: None)
    assert len(list((tmp_path / "out" / "daps" / "16000").rglob("*.flac"))) == 8
    assert not (tmp_path / "out" / "daps" / "16000.tmp").exists()


# --- the download path ---

def test_an_interrupted_download_resumes_where_it_stopped(fake_daps_server, tmp_path):
    dest = tmp_path / "cache" / "daps.tar.gz"
    fake_daps_server.server.cut_next_after = len(fake_daps_server.data) // 2
    with pytest.raises(CorpusError, match="interrupted after .*run the same command again to resume"):
        dl.download(fake_daps_server.archive.url, dest, fake_daps_server.archive.sha256, progress=False)
    part = dest.with_name("daps.tar.gz.part")
    assert part.stat().st_size == len(fake_daps_server.data) // 2 and not dest.exists()
    digest = dl.download(fake_daps_server.archive.url, dest, fake_daps_server.archive.sha256, progress=False)
    assert digest == fake_daps_server.archive.sha256 and dest.read_bytes() == fake_daps_server.data and not part.exists()
    gets = [r for r in fake_daps_server.server.requests if r[0] == "GET"]
    assert gets[-1][2] == f"bytes={len(fake_daps_server.data) // 2}-"  # only the rest was asked for


def test_a_checksum_mismatch_is_refused_and_the_file_deleted(fake_daps_server, tmp_path):
    dest = tmp_path / "cache" / "daps.tar.gz"
    with pytest.raises(CorpusError, match="checksum mismatch for daps.tar.gz") as error:
        dl.download(fake_daps_server.archive.url, dest, "0" * 64, progress=False)
    assert "\n" not in str(error.value)
    assert not dest.exists() and not dest.with_name("daps.tar.gz.part").exists()


def test_a_full_disk_is_reported_before_downloading(fake_daps_server, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(CorpusError) as error:
        prepare_corpus("daps", download_=True, output=tmp_path / "out", progress=False, log=lambda line: None)
    message = str(error.value)
    assert message.startswith("not enough disk space in ") and "1 KB free" in message and "\n" not in message
    assert not [r for r in fake_daps_server.server.requests if r[0] == "GET"]  # nothing fetched
    assert not (tmp_path / "out" / "daps").exists()


def test_an_extracted_copy_needs_the_disk_its_own_files_take(tmp_path, monkeypatch):
    """A copy of "train-clean-100" that holds a few files needs a few files' worth of disk, not the
    12 GB the subset's official hours would: the check reads the copy (and the host's free disk
    does not decide whether a small copy can be prepared)."""
    usage = namedtuple("usage", "total used free")
    source = make_fake_corpus("librispeech", tmp_path / "src")
    held = sum(p.stat().st_size for subset in ("train-clean-100", "dev-clean")
               for p in (source / "LibriSpeech" / subset).rglob("*.flac"))
    assert held < 10**6  # a few files
    for free, fits in ((2 * held, True), (held // 2, False)):
        monkeypatch.setattr(dl.shutil, "disk_usage", lambda path, free=free: usage(10**12, 10**12 - free, free))
        out = tmp_path / f"out{free}"
        if fits:
            prepare_corpus("librispeech", source=source, subsets=["train-clean-100", "dev-clean"], output=out,
                           progress=False, log=lambda line: None)
            assert (out / "librispeech" / "16000" / "train").is_dir()
        else:
            with pytest.raises(CorpusError, match="not enough disk space") as error:
                prepare_corpus("librispeech", source=source, subsets=["train-clean-100", "dev-clean"], output=out,
                               progress=False, log=lambda line: None)
            assert "\n" not in str(error.value) and not (out / "librispeech" / "16000").exists()


def test_a_download_is_verified_extracted_prepared_and_recorded(fake_daps_server, tmp_path):
    lines = []
    folders = prepare_corpus("daps", download_=True, output=tmp_path / "out", progress=False, log=lines.append)
    assert len(list(folders[16000].rglob("*.flac"))) == 8
    assert any("to download" in line and "needs" in line for line in lines)  # sizes said first
    provenance = json.loads((tmp_path / "out" / "daps" / "provenance.json").read_text())
    record = provenance["archives"]["all"]
    assert record["sha256"] == fake_daps_server.archive.sha256 and record["checksum_basis"] == "published (verified)"
    assert provenance["licence"].startswith("CC BY-NC 4.0")


def test_an_archive_without_a_published_checksum_gets_its_digest_recorded(fake_daps_server, tmp_path, monkeypatch):
    monkeypatch.setitem(CORPORA, "daps", dataclasses.replace(
        fake_daps_server.corpus, subsets={"all": dataclasses.replace(fake_daps_server.archive, sha256=None)}))
    prepare_corpus("daps", download_=True, output=tmp_path / "out", progress=False, log=lambda line: None)
    record = json.loads((tmp_path / "out" / "daps" / "provenance.json").read_text())["archives"]["all"]
    assert record["sha256"] == hashlib.sha256(fake_daps_server.data).hexdigest()
    assert record["checksum_basis"].startswith("recorded after download")


def test_asking_for_fewer_subsets_keeps_what_was_prepared(tmp_path):
    source = make_fake_corpus("librispeech", tmp_path / "src")
    kw = {"source": source, "output": tmp_path / "out", "progress": False, "log": lambda line: None}
    prepare_corpus("librispeech", subsets=["train-clean-100", "dev-clean"], **kw)
    base = tmp_path / "out" / "librispeech" / "16000"
    lines = []
    prepare_corpus("librispeech", subsets=["test-clean"], **{**kw, "log": lines.append})
    assert any("keeping the subsets prepared before" in line for line in lines)
    assert _speakers(base / "train") == {"19", "26"} and (base / "test_list").is_dir()
    assert json.loads((base / "manifest.json").read_text())["subsets"] == ["dev-clean", "test-clean",
                                                                          "train-clean-100"]
    lines.clear()
    prepare_corpus("librispeech", subsets=["dev-clean"], **{**kw, "log": lines.append})
    assert lines and lines[0].startswith("librispeech: already prepared")


def test_files_an_interrupted_run_of_other_subsets_left_do_not_reach_the_output(tmp_path):
    source = make_fake_corpus("libritts", tmp_path / "src")
    stale = tmp_path / "out" / "libritts" / "16000.tmp" / "train" / "999" / "999_99900_000000_000000.flac"
    stale.parent.mkdir(parents=True)
    sf.write(stale, [0.0] * 1600, 16000, subtype="PCM_16")
    prepare_corpus("libritts", source=source, output=tmp_path / "out", subsets=["train-clean-100", "dev-clean"],
                   progress=False, log=lambda line: None)
    assert _speakers(tmp_path / "out" / "libritts" / "16000" / "train") == {"19", "26"}


def test_parallel_workers_give_the_same_files_as_one(tmp_path):
    source = make_fake_corpus("vctk", tmp_path / "src")
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        prepare_corpus("vctk", source=source, output=out, workers=workers, progress=False, log=lambda line: None)
        outputs[workers] = {p.relative_to(out).as_posix(): sf.read(str(p))[0].tobytes()
                            for p in sorted((out / "vctk" / "16000").rglob("*.flac"))}
    assert outputs[1] and outputs[1] == outputs[2]


def test_official_archives_in_the_source_folder_are_verified_and_extracted(tmp_path, monkeypatch):
    data = tar_gz(make_fake_corpus("daps", tmp_path / "archive"))
    source = tmp_path / "datasets"
    source.mkdir()
    (source / "daps.tar.gz").write_bytes(data)
    archive = Archive("https://example.invalid/daps.tar.gz", len(data), 0.001, hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(CORPORA, "daps", dataclasses.replace(CORPORA["daps"], subsets={"all": archive}))
    folders = prepare_corpus("daps", source=source, output=tmp_path / "out", progress=False, log=lambda line: None)
    assert len(list(folders[16000].rglob("*.flac"))) == 8
    record = json.loads((tmp_path / "out" / "daps" / "provenance.json").read_text())["archives"]["all"]
    assert record["sha256"] == archive.sha256 and record["checksum_basis"] == "published (verified)"
    monkeypatch.setitem(CORPORA, "daps", dataclasses.replace(
        CORPORA["daps"], subsets={"all": dataclasses.replace(archive, sha256="f" * 64)}))
    with pytest.raises(CorpusError, match="checksum mismatch for .*daps.tar.gz"):
        prepare_corpus("daps", source=source, output=tmp_path / "out2", progress=False, log=lambda line: None)
    assert (source / "daps.tar.gz").read_bytes() == data  # the user's archive is left alone


def test_a_data_folder_that_is_a_fifo_or_a_file_is_named_as_such(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "notes.txt").write_text("x")
    for name, kind in (("pipe", "a named pipe"), ("notes.txt", "a regular file")):
        with pytest.raises(loaders.DataError, match=rf"is not a folder \({kind}\)$"):
            loaders.check_folders({"speech": [str(tmp_path / name)]}, "train")
