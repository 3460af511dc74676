"""Each reconstruction loss's value and gradient norm at the decoder output, on a fixed batch.

    python scripts/loss_gradients.py --conf conf/cpu/diveq.yml --weights_path runs/compare/cpu/diveq/seed0

Builds the conf's losses (DAC's mel, multi-scale STFT and waveform L1, and the compressed spectral
loss), runs the codec on the first excerpts of the dev set at its training level, and prints, per term,
its value, ``||d term / d output||``, the conf's weight and the weighted share of the gradient: weights
that balance the terms' gradients, rather than their values, are read off this table.
"""
import argparse
import sys
import warnings
from pathlib import Path

import torch
from audiotools import AudioSignal
from dac.nn import loss as dac_losses

from dac_diveq import errors
from dac_diveq.codec import codec_io
from dac_diveq.codec.losses import CompressedSpectralLoss, gradient_norms
from dac_diveq.training import config

warnings.filterwarnings("ignore")
LOSSES = {"mel/loss": dac_losses.MelSpectrogramLoss, "stft/loss": dac_losses.MultiScaleSTFTLoss,
          "waveform/loss": dac_losses.L1Loss, "spectral/loss": CompressedSpectralLoss}


def build(conf: dict, cls):
    """``cls`` with the conf's ``<ClassName>.<arg>`` keys (the training script's losses)."""
    prefix = cls.__name__ + "."
    return cls(**{k[len(prefix):]: v for k, v in conf.items() if k.startswith(prefix)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--conf", required=True, help="the training yml (its losses and lambdas)")
    parser.add_argument("--weights_path", required=True, help="a trained codec (weights or run folder)")
    parser.add_argument("--input", default="data/speech/dev", help="reference .wav files (default: the dev set)")
    parser.add_argument("--excerpts", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.5)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = parser.parse_args(argv)
    try:
        conf = config.load_yml(args.conf)
        model = codec_io.load_model(Path(args.weights_path)).eval()
    except errors.UserError as exc:
        return errors.report(exc, debug)
    print(model.source.describe(), file=sys.stderr)  # a run folder: best, else latest
    files = sorted(Path(args.input).glob("*.wav"))[:args.excerpts]
    if not files:
        print(f"error: no .wav files in {args.input}", file=sys.stderr)
        return 2
    n = int(args.seconds * model.sample_rate)
    batch = []
    for path in files:
        audio, sr = codec_io.read_audio(path)
        signal = AudioSignal(torch.from_numpy(audio[:1, :n])[None], sr).normalize(model.loudness_db)
        batch.append(signal.audio_data[0])
    reference = torch.stack(batch)
    with torch.no_grad():
        estimate = model(reference, model.sample_rate)["audio"][..., :reference.shape[-1]]
    terms = {name: build(conf, cls) for name, cls in LOSSES.items()}
    found = gradient_norms(terms, estimate, reference[..., :estimate.shape[-1]], model.sample_rate)
    lambdas = conf.get("lambdas") or {}
    weights = {k: float(lambdas.get(k, 0.0)) for k in terms}
    shares = {k: weights[k] * g for k, (_, g) in found.items()}
    total = sum(shares.values()) or 1.0
    print(f"{len(files)} excerpts of {args.seconds:g} s from {args.input}, codec {args.weights_path}, conf {args.conf}")
    print("| term | value | gradient norm at the output | weight | weighted share |")
    print("|---|---|---|---|---|")
    for k, (v, g) in found.items():
        print(f"| {k} | {v:.4f} | {g:.3e} | {weights[k]:g} | {shares[k] / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
