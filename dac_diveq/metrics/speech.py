"""Intrusive speech-quality metrics on numpy/torch waveforms (reference vs. degraded)."""
from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF


def _mono(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1) if x.ndim == 1 or x.shape[0] == 1 else x.mean(0).reshape(-1)


def align(reference, degraded) -> tuple[np.ndarray, np.ndarray]:
    """Crop both signals to the shorter length (DAC's output can be a few samples short)."""
    ref, deg = _mono(reference), _mono(degraded)
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


def resample(x: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    if sample_rate == target:
        return x
    return AF.resample(torch.from_numpy(x).float(), sample_rate, target).double().numpy()


#: The ITU-T mappings from the raw P.862 score to MOS-LQO, ``0.999 + 4 / (1 + exp(-a raw + b))``:
#: P.862.1 for narrow-band (``nb``), P.862.2 for wide-band (``wb``), as the ``pesq`` package applies them.
MOS_LQO_MAPPING = {"nb": (1.4945, 4.6607), "wb": (1.3669, 3.8224)}


def mos_lqo(raw: float, mode: str) -> float:
    """The MOS-LQO of a raw P.862 score (``mode``: ``"nb"`` or ``"wb"``)."""
    a, b = MOS_LQO_MAPPING[mode]
    return 0.999 + 4.0 / (1.0 + float(np.exp(-a * raw + b)))


def raw_pesq(mos: float, mode: str) -> float:
    """The raw P.862 score behind a MOS-LQO (the inverse of :func:`mos_lqo`).

    The mappings flatten towards their floor (1.04 at raw -0.5), so codecs near it differ far more
    in the raw score: report both.
    """
    a, b = MOS_LQO_MAPPING[mode]
    if not 0.999 < mos < 4.999:
        raise ValueError(f"MOS-LQO {mos} is outside the mapping's range (0.999, 4.999)")
    return float((b - np.log(4.0 / (mos - 0.999) - 1.0)) / a)


def pesq_wb(reference, degraded, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) at 16 kHz, MOS-LQO in [1.04, 4.64]."""
    from pesq import pesq

    ref, deg = align(reference, degraded)
    return float(pesq(16000, resample(ref, sample_rate, 16000), resample(deg, sample_rate, 16000), "wb"))


def pesq_nb(reference, degraded, sample_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862) at 8 kHz."""
    from pesq import pesq

    ref, deg = align(reference, degraded)
    return float(pesq(8000, resample(ref, sample_rate, 8000), resample(deg, sample_rate, 8000), "nb"))


def stoi(reference, degraded, sample_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011), or ESTOI with ``extended=True``, in [0, 1]."""
    from pystoi import stoi as _stoi

    ref, deg = align(reference, degraded)
    return float(_stoi(ref, deg, sample_rate, extended=extended))


def si_sdr(reference, degraded) -> float:
    """Scale-invariant signal-to-distortion ratio in dB."""
    ref, deg = align(reference, degraded)
    ref = ref - ref.mean()
    deg = deg - deg.mean()
    scale = np.dot(deg, ref) / max(np.dot(ref, ref), 1e-12)
    target = scale * ref
    noise = deg - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-12) / max(np.dot(noise, noise), 1e-12)))


# ----------------------------------------------------------------------------- ViSQOL (speech mode)

_VISQOL: dict = {}


def visqol_mapping() -> str:
    """``"lattice"`` when the deep-lattice speech mapper (C++ ViSQOL's default; needs
    ``visqol-python[lattice]``) can run here, ``"polynomial"`` without it (reads 1-2 MOS points
    higher), ``"unavailable"`` when visqol-python is not installed."""
    try:
        from visqol.quality_mapper import has_lattice_runtime
    except ImportError:
        return "unavailable"

    return "lattice" if has_lattice_runtime() else "polynomial"


def _visqol_api():
    mapping = visqol_mapping()
    if mapping not in _VISQOL:
        from visqol import VisqolApi

        api = VisqolApi()
        api.create(mode="speech", use_lattice_model=mapping == "lattice")
        _VISQOL[mapping] = api
    return _VISQOL[mapping]


def visqol(reference, degraded, sample_rate: int) -> float:
    """ViSQOL v3 speech-mode MOS-LQO (``visqol-python``), computed at 16 kHz; see
    :func:`visqol_mapping` for the quality mapping in use."""
    ref, deg = align(reference, degraded)
    ref, deg = resample(ref, sample_rate, 16000), resample(deg, sample_rate, 16000)
    return float(_visqol_api().measure_from_arrays(ref, deg, 16000).moslqo)


# ----------------------------------------------------------------------------- DNSMOS (non-intrusive)


def dnsmos(audio, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 (``speechmos``) of one signal at 16 kHz: ``{"ovrl", "sig", "bak", "p808"}``."""
    from speechmos import dnsmos as _dnsmos

    x = np.clip(resample(_mono(audio), sample_rate, 16000), -1.0, 1.0).astype(np.float32)
    out = _dnsmos.run(x, 16000)
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]),
            "bak": float(out["bak_mos"]), "p808": float(out["p808_mos"])}


# ----------------------------------------------------------------------------- DAC's spectral distances

# DAC's 16 kHz configuration (conf/base.yml of descript-audio-codec, 16 kHz variant).
MEL_CONF = dict(n_mels=[5, 10, 20, 40, 80, 160, 320], window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
                pow=1.0, clamp_eps=1e-5, mag_weight=0.0)
STFT_CONF = dict(window_lengths=[2048, 512])
_LOSSES: dict = {}


def _loss(name: str):
    if name not in _LOSSES:
        from dac.nn.loss import MelSpectrogramLoss, MultiScaleSTFTLoss

        _LOSSES[name] = MelSpectrogramLoss(**MEL_CONF) if name == "mel" else MultiScaleSTFTLoss(**STFT_CONF)
    return _LOSSES[name]


def _distance(name: str, reference, degraded, sample_rate: int) -> float:
    from audiotools import AudioSignal

    ref, deg = align(reference, degraded)
    x = AudioSignal(torch.from_numpy(deg).float()[None, None], sample_rate)
    y = AudioSignal(torch.from_numpy(ref).float()[None, None], sample_rate)
    with torch.no_grad():
        return float(_loss(name)(x, y))


def mel_distance(reference, degraded, sample_rate: int) -> float:
    """DAC's multi-scale mel loss (``dac.nn.loss.MelSpectrogramLoss``, 16 kHz conf) at ``sample_rate``."""
    return _distance("mel", reference, degraded, sample_rate)


def stft_distance(reference, degraded, sample_rate: int) -> float:
    """DAC's multi-scale STFT loss (``MultiScaleSTFTLoss``, windows 2048/512) at ``sample_rate``."""
    return _distance("stft", reference, degraded, sample_rate)


# ----------------------------------------------------------------------------- all at once

INTRUSIVE = ("pesq_wb", "pesq_wb_raw", "pesq_nb", "pesq_nb_raw", "stoi", "estoi", "visqol", "si_sdr", "mel_distance", "stft_distance")
DNSMOS_COLUMNS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")


def score(reference, degraded, sample_rate: int, with_dnsmos: bool = False) -> tuple[dict, dict]:
    """Every metric of one (reference, degraded) pair: ``(values, errors)``. A metric that raises
    gives NaN in ``values`` and its one-line reason in ``errors``."""
    funcs = {
        "pesq_wb": lambda: pesq_wb(reference, degraded, sample_rate),
        "pesq_nb": lambda: pesq_nb(reference, degraded, sample_rate),
        "stoi": lambda: stoi(reference, degraded, sample_rate),
        "estoi": lambda: stoi(reference, degraded, sample_rate, extended=True),
        "visqol": lambda: visqol(reference, degraded, sample_rate),
        "si_sdr": lambda: si_sdr(reference, degraded),
        "mel_distance": lambda: mel_distance(reference, degraded, sample_rate),
        "stft_distance": lambda: stft_distance(reference, degraded, sample_rate),
    }
    values, errors = {}, {}
    for name, fn in funcs.items():
        try:
            values[name] = fn()
        except Exception as exc:
            values[name], errors[name] = float("nan"), " ".join(str(exc).split()) or type(exc).__name__
        if name in ("pesq_wb", "pesq_nb"):  # the raw score behind the MOS-LQO, from the same run
            mos = values[name]
            values[f"{name}_raw"] = raw_pesq(mos, name[-2:]) if np.isfinite(mos) else float("nan")
    if with_dnsmos:
        try:
            d = dnsmos(degraded, sample_rate)
            values.update(dnsmos_ovrl=d["ovrl"], dnsmos_sig=d["sig"], dnsmos_bak=d["bak"])
        except Exception as exc:
            values.update({k: float("nan") for k in DNSMOS_COLUMNS})
            errors["dnsmos"] = " ".join(str(exc).split()) or type(exc).__name__
    return values, errors
