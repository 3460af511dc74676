"""Each reconstruction loss's value and gradient norm at the decoder output, on a fixed batch.

    python scripts/loss_gradients.py --args.load conf/cpu/diveq.yml --weights_path runs/compare/cpu/diveq/seed0

Builds the conf's losses (DAC's mel, multi-scale STFT and waveform L1, and the compressed spectral
loss), runs the codec on the first excerpts of the dev set at its training level, and prints, per term,
its value, ``||d term / d output||``, the conf's weight and the weighted share of the gradient: weights
that balance the terms' gradients, rather than their values, are read off this table.
"""
import sys
import warnings
from pathlib import Path

import argbind
import numpy as np
import torch
from audiotools import AudioSignal
from dac.nn import loss as dac_losses

from dac_diveq.codec import codec_io
from dac_diveq.codec.losses import CompressedSpectralLoss, gradient_norms
from dac_diveq.training import config

warnings.filterwarnings("ignore")
MelSpectrogramLoss = argbind.bind(dac_losses.MelSpectrogramLoss)
MultiScaleSTFTLoss = argbind.bind(dac_losses.MultiScaleSTFTLoss)
L1Loss = argbind.bind(dac_losses.L1Loss)
CompressedSpectralLoss = argbind.bind(CompressedSpectralLoss)


@argbind.bind(without_prefix=True)
def measure(args, weights_path: str = "", input: str = "data/speech/dev", excerpts: int = 8, seconds: float = 0.5,
            lambdas: dict = None) -> int:
    if not weights_path:
        raise ValueError("--weights_path is required (a trained codec: the gradients depend on its output)")
    model = codec_io.load_model(Path(weights_path)).eval()
    files = sorted(Path(input).glob("*.wav"))[:excerpts]
    if not files:
        raise ValueError(f"no .wav files in {input}")
    n = int(seconds * model.sample_rate)
    batch = []
    for path in files:
        audio, sr = codec_io.read_audio(path)
        signal = AudioSignal(torch.from_numpy(audio[:1, :n])[None], sr).normalize(model.loudness_db)
        batch.append(signal.audio_data[0])
    reference = torch.stack(batch)
    with torch.no_grad():
        estimate = model(reference, model.sample_rate)["audio"][..., :reference.shape[-1]]
    terms = {"mel/loss": MelSpectrogramLoss(), "stft/loss": MultiScaleSTFTLoss(), "waveform/loss": L1Loss(),
             "spectral/loss": CompressedSpectralLoss()}
    found = gradient_norms(terms, estimate, reference[..., :estimate.shape[-1]], model.sample_rate)
    weights = {k: float((lambdas or {}).get(k, 0.0)) for k in terms}
    shares = {k: weights[k] * g for k, (_, g) in found.items()}
    total = sum(shares.values()) or 1.0
    print(f"{len(files)} excerpts of {seconds:g} s from {input}, codec {weights_path}")
    print("| term | value | gradient norm at the output | weight | weighted share |")
    print("|---|---|---|---|---|")
    for k, (v, g) in found.items():
        print(f"| {k} | {v:.4f} | {g:.3e} | {weights[k]:g} | {shares[k] / total:.1%} |")
    return 0


def main() -> int:
    try:
        args = config.parse_args()
        with argbind.scope(args):
            return measure(args)
    except (ValueError, codec_io.InputError, config.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
