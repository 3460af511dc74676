"""DAC's released architectures ("layouts"): what ``conf/layout/*.yml`` set, by name.

The confs are what training reads; this table lets code name a checkpoint's layout (fine-tuning
checks, the benchmark's stock model, the GPU check) and lets a test keep the two in agreement.
"""
from __future__ import annotations

import math
from typing import Optional

#: Layout name -> ``DiVeQDAC`` / ``dac.model.DAC`` constructor arguments of DAC's released model.
LAYOUTS: dict[str, dict] = {
    "16khz": dict(sample_rate=16000, encoder_dim=64, encoder_rates=[2, 4, 5, 8], latent_dim=None, decoder_dim=1536,
                  decoder_rates=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, codebook_dim=8,
                  quantizer_dropout=0.5),
    "24khz": dict(sample_rate=24000, encoder_dim=64, encoder_rates=[2, 4, 5, 8], latent_dim=None, decoder_dim=1536,
                  decoder_rates=[8, 5, 4, 2], n_codebooks=32, codebook_size=1024, codebook_dim=8,
                  quantizer_dropout=0.5),
    "44khz": dict(sample_rate=44100, encoder_dim=64, encoder_rates=[2, 4, 8, 8], latent_dim=None, decoder_dim=1536,
                  decoder_rates=[8, 8, 4, 2], n_codebooks=9, codebook_size=1024, codebook_dim=8,
                  quantizer_dropout=0.5),
    "44khz_16kbps": dict(sample_rate=44100, encoder_dim=64, encoder_rates=[2, 4, 8, 8], latent_dim=128,
                         decoder_dim=1536, decoder_rates=[8, 8, 4, 2], n_codebooks=18, codebook_size=1024,
                         codebook_dim=8, quantizer_dropout=0.5),
}

#: The layout of ``conf/base.yml``: its GPU method files are ``conf/<method>.yml`` (no folder of their own).
BASE_LAYOUT = "16khz"


def conf_folder(layout: str) -> str:
    """The folder of ``layout``'s GPU method files: ``conf`` for :data:`BASE_LAYOUT`, else ``conf/<layout>``."""
    return "conf" if layout == BASE_LAYOUT else f"conf/{layout}"


#: The keys that tell layouts apart (widths may be scaled down, e.g. in tests and CPU confs).
IDENTITY = ("sample_rate", "encoder_rates", "decoder_rates", "n_codebooks", "codebook_size")


def hop_length(layout: dict) -> int:
    """Samples per code frame: the product of the encoder's strides."""
    return math.prod(layout["encoder_rates"])


def bitrate(layout: dict, n_codebooks: Optional[int] = None) -> float:
    """Bits per second with ``n_codebooks`` (all by default)."""
    n = layout["n_codebooks"] if n_codebooks is None else n_codebooks
    return layout["sample_rate"] / hop_length(layout) * n * math.log2(layout["codebook_size"])


def layout_of(architecture: dict) -> Optional[str]:
    """The name of the released layout whose :data:`IDENTITY` keys ``architecture`` has, or ``None``."""
    for name, layout in LAYOUTS.items():
        if all(_same(architecture.get(key), layout[key]) for key in IDENTITY):
            return name
    return None


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(b, list) and a is not None else a == b
