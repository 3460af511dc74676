"""Helpers shared by the whole suite: the repository root, a subprocess runner for scripts and
entry points, and the tiny model settings the tests train and save.

Import them from here (``from tests.conftest import ROOT, run_python, TINY_DAC``): ``tests`` is a
package, so this module is ``tests.conftest`` for pytest and for the tests alike.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, Sequence

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: A real DAC layout (16 kHz, hop 320) small enough to train for a few steps on a CPU.
TINY_DAC = dict(encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4, 2],
                n_codebooks=3, codebook_size=64, codebook_dim=8, sample_rate=16000)
#: Quantizer maintenance within a few training steps: replacement every 2 steps, SF-DiVeQ
#: initialisation after 2 (for DiVeQDAC, VQVAE and VQGAN alike).
FAST_MAINTENANCE = dict(replace_every=2, replace_every_after=2, replace_stop_before_end=0, discard_threshold=0.5,
                        skip_iters=2, avg_iters=1, latents_per_code=2)


def tiny_codec_conf(method: str, train: Path, val: Path, **keys: Any) -> str:
    """An argbind yml for ``scripts/train.py``: ``conf/quickstart/<method>.yml`` with a tiny DiVeQDAC,
    small loss resolutions, 2 steps of 2 short excerpts, and the given data folders. It quantizes from
    the first step (the quickstart's 60-step warm-up would leave a 2-step run unquantized) unless
    ``keys`` set ``DiVeQDAC.skip_iters``.

    Args:
        method: which quickstart conf to include.
        train, val: folders of audio files.
        **keys: yml keys to set or override (``**{"DiVeQDAC.n_codebooks": 2}``).
    """
    settings = {
        "DiVeQDAC.encoder_dim": 8, "DiVeQDAC.decoder_dim": 32, "DiVeQDAC.n_codebooks": 3, "DiVeQDAC.codebook_size": 64,
        "MelSpectrogramLoss.n_mels": [20, 40], "MelSpectrogramLoss.window_lengths": [128, 512],
        "MelSpectrogramLoss.mel_fmin": [0, 0], "MelSpectrogramLoss.mel_fmax": [None, None],
        "MultiScaleSTFTLoss.window_lengths": [512, 128],
        "DiVeQDAC.skip_iters": 0,
        "batch_size": 2, "val_batch_size": 2, "num_iters": 2, "valid_freq": 1, "sample_freq": 0, "log_freq": 1,
        "train/AudioDataset.duration": 0.2, "val/AudioDataset.duration": 0.4, "val/AudioDataset.n_examples": 2,
        "prepare_embedded_data.root": "",
        "train/build_dataset.folders": {"speech": [str(train)]}, "val/build_dataset.folders": {"speech": [str(val)]},
    }
    settings.update(keys)
    return yaml.safe_dump({"$include": [f"conf/quickstart/{method}.yml"], **settings}, sort_keys=False)


#: Environment variables that point the package at user-provided weights (VGG16, Inception): a test
#: that must not find any unsets them (``run_python(..., unset=WEIGHT_VARIABLES)``).
WEIGHT_VARIABLES = ("DAC_DIVEQ_VGG16", "DAC_DIVEQ_INCEPTION")


def run_python(args: Sequence[object], env: Optional[dict] = None, timeout: float = 300,
               launcher: Optional[Sequence[str]] = None, unset: Sequence[str] = (),
               cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` (or ``LAUNCHER ARGS``, e.g. torchrun) from the repository root.

    The child imports this checkout's package (``PYTHONPATH``) and runs one intra-op thread (the
    test machines are small and shared); its output is captured as text.

    Args:
        args: the script or ``-m module`` and its arguments (converted with ``str``).
        env: extra environment variables.
        timeout: seconds before the child is killed (the test then fails).
        launcher: command replacing ``python`` (e.g. ``[torchrun, "--nproc_per_node", "2"]``).
        unset: environment variables to remove (e.g. user-provided weight locations).
        cwd: working directory.
    """
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment.update(env or {})
    for name in unset:
        environment.pop(name, None)
    command = list(launcher) if launcher else [sys.executable]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=environment,
                          timeout=timeout)


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as a module (scripts are not a package), to call its ``main`` in-process.

    The module is registered in ``sys.modules`` under ``scripts_<name>``: dataclasses a script defines look
    their module up there.
    """
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def python_tool(name: str) -> str:
    """Path of a console script installed beside this interpreter (``torchrun``, ``lint-imports``)."""
    return str(Path(sys.executable).parent / name)


# --- Fake corpora in their official layouts, and a loopback HTTP server (tests/data/test_corpora.py,
# tests/scripts/test_prepare_data.py) ---

#: Speakers of the fake copies: (split the catalog gives them, speaker ids).
FAKE_SPEAKERS = {
    "librispeech": {"train-clean-100": ["19", "26"], "dev-clean": ["84"]},
    "libritts": {"train-clean-100": ["19", "26"], "dev-clean": ["84"], "test-clean": ["1089"]},
    "vctk": {"all": ["p225", "p227", "p226", "p232", "p257"]},
    "daps": {"all": ["f1", "m1", "f9", "m10"]},
}


def _tone(seconds: float, rate: int, pitch: float = 150.0):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * sum(np.sin(2 * np.pi * k * pitch * t) / k for k in range(1, 4))).astype("float32")


def make_fake_corpus(name: str, root: Path, seconds: float = 0.25) -> Path:
    """A tiny copy of corpus ``name`` under ``root``, in its exact official layout and formats.

    LibriSpeech: FLAC at 16 kHz with ``.trans.txt`` per chapter and ``SPEAKERS.TXT``; its test-clean
    holds every utterance of the committed standard test list. LibriTTS: WAV at 24 kHz with
    ``.normalized.txt`` beside each. VCTK 0.92: FLAC at 48 kHz, mic1 and mic2, ``txt/``,
    ``speaker-info.txt``. DAPS: WAV at 44.1 kHz under ``daps/clean`` (and a macOS ``._`` file).

    Returns:
        ``root``.
    """
    import soundfile as sf

    from dac_diveq.data.corpora import read_test_list

    root = Path(root)
    if name == "librispeech":
        base = root / "LibriSpeech"
        chapters = {(spk, "100" + spk): 2 for subset in FAKE_SPEAKERS[name] for spk in FAKE_SPEAKERS[name][subset]}
        subset_of = {spk: subset for subset, spks in FAKE_SPEAKERS[name].items() for spk in spks}
        for uid in read_test_list():
            spk, chapter, _ = uid.split("-")
            chapters[(spk, chapter)] = max(chapters.get((spk, chapter), 0), int(uid.split("-")[2]) + 1)
            subset_of[spk] = "test-clean"
        lines = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
        for (spk, chapter), count in sorted(chapters.items()):
            folder = base / subset_of[spk] / spk / chapter
            folder.mkdir(parents=True, exist_ok=True)
            texts = []
            for k in range(count):
                uid = f"{spk}-{chapter}-{k:04d}"
                sf.write(folder / f"{uid}.flac", _tone(seconds, 16000, 100 + int(spk) % 200), 16000, subtype="PCM_16")
                texts.append(f"{uid} WORDS OF {spk} NUMBER {k}")
            (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(texts) + "\n")
        for spk in sorted(subset_of):
            lines.append(f"{spk:<5}| {'F' if int(spk) % 2 else 'M'} | {subset_of[spk]:<16} | 25.00 | Reader {spk}")
        (base / "SPEAKERS.TXT").write_text("\n".join(lines) + "\n")
    elif name == "libritts":
        for subset, speakers in FAKE_SPEAKERS[name].items():
            for spk in speakers:
                folder = root / "LibriTTS" / subset / spk / f"{spk}00"
                folder.mkdir(parents=True)
                for k in range(2):
                    stem = f"{spk}_{spk}00_{k:06d}_000000"
                    sf.write(folder / f"{stem}.wav", _tone(seconds, 24000), 24000, subtype="PCM_16")
                    (folder / f"{stem}.normalized.txt").write_text(f"Words of {spk}, number {k}.")
                    (folder / f"{stem}.original.txt").write_text(f"Words of {spk}, No. {k}.")
    elif name == "vctk":
        info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS"]
        for i, spk in enumerate(FAKE_SPEAKERS[name]["all"]):
            (root / "wav48_silence_trimmed" / spk).mkdir(parents=True)
            (root / "txt" / spk).mkdir(parents=True)
            for k in (1, 2):
                for mic in ("mic1", "mic2"):
                    sf.write(root / "wav48_silence_trimmed" / spk / f"{spk}_{k:03d}_{mic}.flac", _tone(seconds, 48000),
                             48000, subtype="PCM_16")
                (root / "txt" / spk / f"{spk}_{k:03d}.txt").write_text(f"Please call Stella {k}.\n")
            info.append(f"{spk}  23  {'F' if i % 2 else 'M'}    English    Southern  England")
        (root / "speaker-info.txt").write_text("\n".join(info) + "\n")
    elif name == "daps":
        folder = root / "daps" / "clean"
        folder.mkdir(parents=True)
        for spk in FAKE_SPEAKERS[name]["all"]:
            for script in (1, 2):
                sf.write(folder / f"{spk}_script{script}_clean.wav", _tone(seconds, 44100), 44100, subtype="PCM_16")
        (folder / "._f1_script1_clean.wav").write_bytes(b"\x00\x05\x16\x07 not audio")
    else:
        raise ValueError(name)
    return root


class RangeServer:
    """A loopback HTTP server (``127.0.0.1``, a thread) serving files with ``Range`` support.

    Attributes:
        files: URL path -> bytes served.
        requests: ``(method, path, Range header or None)`` of every request.
        cut_next_after: If set, the next GET sends full headers but only this many body bytes, then
            closes the connection (an interrupted download).
    """

    def __init__(self, files: dict):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.files, self.requests, self.cut_next_after = dict(files), [], None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self, body: bool):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if body:
                    payload = data[start:]
                    if server.cut_next_after is not None:
                        payload, server.cut_next_after = payload[: server.cut_next_after], None
                        self.wfile.write(payload)
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(payload)

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "RangeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def tar_gz(folder: Path) -> bytes:
    """``folder``'s contents as a ``.tar.gz`` archive (members relative to ``folder``)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted(Path(folder).iterdir()):
            tf.add(path, arcname=path.name)
    return buffer.getvalue()


@pytest.fixture
def fake_daps_server(tmp_path, monkeypatch):
    """A tiny DAPS archive (official layout) on a loopback :class:`RangeServer`, with the catalog's
    DAPS entry pointing at it and carrying its SHA-256 as the published checksum.

    Yields:
        ``(server, corpus, archive, data)`` as a namedtuple.
    """
    import dataclasses
    import hashlib
    from collections import namedtuple

    from dac_diveq.data.corpora import CORPORA, Archive

    data = tar_gz(make_fake_corpus("daps", tmp_path / "archive"))
    with RangeServer({"/daps.tar.gz": data}) as server:
        archive = Archive(f"{server.url}/daps.tar.gz", len(data), 0.001, hashlib.sha256(data).hexdigest())
        corpus = dataclasses.replace(CORPORA["daps"], subsets={"all": archive})
        monkeypatch.setitem(CORPORA, "daps", corpus)
        yield namedtuple("Served", "server corpus archive data")(server, corpus, archive, data)


def codec_run(root: Path, seeds_by_step: dict[int, int], best: Optional[int] = None) -> dict[int, Path]:
    """A codec run folder as training leaves it: one checkpoint per step (``checkpoint.save``, the
    trainer's own writer) of a :data:`TINY_DAC` ``DiVeQDAC`` seeded ``seeds_by_step[step]``; the
    last step is ``latest``, ``best`` (when given) another step's.

    Returns:
        ``{step: the weights file of that step's model, saved outside the run}`` (to compare with).
    """
    import torch

    from dac_diveq.codec.model import DiVeQDAC
    from dac_diveq.training import checkpoint

    files = {}
    for step, seed in sorted(seeds_by_step.items()):
        torch.manual_seed(seed)
        model = DiVeQDAC(**TINY_DAC)
        files[step] = root.parent / f"{root.name}_step{step}.pth"
        model.save(str(files[step]), package=False)
        checkpoint.save(root, ["latest", "best"] if step == best else ["latest"], {"diveqdac": (model, {})},
                        {"step": step})
    return files
