"""Display names and units of the report's metrics."""
from __future__ import annotations

#: metric -> (display name, unit or scale shown on axes).
METRIC_LABELS: dict[str, tuple[str, str]] = {
    "pesq_wb": ("PESQ-WB", "MOS-LQO, 1-4.64"),
    "pesq_wb_raw": ("PESQ-WB raw", "P.862 raw score, -0.5-4.5"),
    "pesq_nb": ("PESQ-NB", "MOS-LQO, 1-4.55"),
    "pesq_nb_raw": ("PESQ-NB raw", "P.862 raw score, -0.5-4.5"),
    "stoi": ("STOI", "0-1"),
    "estoi": ("ESTOI", "0-1"),
    "visqol": ("ViSQOL", "MOS-LQO, 1-5"),
    "si_sdr": ("SI-SDR", "dB"),
    "mel_distance": ("Mel distance", "L1 of log-mel, lower is better"),
    "stft_distance": ("STFT distance", "L1 of log-magnitude, lower is better"),
    "dnsmos_ovrl": ("DNSMOS OVRL", "MOS, 1-5"),
    "dnsmos_sig": ("DNSMOS SIG", "MOS, 1-5"),
    "dnsmos_bak": ("DNSMOS BAK", "MOS, 1-5"),
    "psnr": ("PSNR", "dB"),
    "ssim": ("SSIM", "0-1"),
    "lpips": ("LPIPS (VGG16)", "lower is better"),
    "fid": ("FID", "lower is better"),
}


def name(metric: str) -> str:
    """Display name of a metric (the column name when unknown).

    Args:
        metric: a metric column.

    Returns:
        e.g. "PESQ-WB".
    """
    return METRIC_LABELS.get(metric, (metric, ""))[0]


def axis_label(metric: str) -> str:
    """Axis label with the unit, e.g. "PESQ-WB (MOS-LQO, 1-4.64)".

    Args:
        metric: a metric column.

    Returns:
        The label.
    """
    label, unit = METRIC_LABELS.get(metric, (metric, ""))
    return f"{label} ({unit})" if unit else label
