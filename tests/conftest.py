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
    small loss resolutions, 2 steps of 2 short excerpts, and the given data folders.

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
