"""How far a DiVeQ or SF-DiVeQ residual quantizer's training pass is from decoding its stored codes, per residual mode.

    python scripts/residual_modes.py                                   # DAC 16 kHz RVQ, random weights
    python scripts/residual_modes.py --method sf_diveq                 # the same for SF-DiVeQ
    python scripts/residual_modes.py --weights_path runs/compare/cpu/diveq/seed0 --input data/speech/dev

For each ``residual_mode`` the method has (stagewise, stagewise_hard, joint; SF-DiVeQ has no
stagewise_hard) it prints the share of frames whose
training codes differ from the eval codes (what is stored and decoded), and the relative gap between
the training output averaged over noise draws and the decode of the eval codes. With a run, the
latents are the trained encoder's on the given clips and the quantizer is the run's; without one,
DAC's 16 kHz quantizer (12 x 1024 x 8 on 1024 channels) with random weights on N(0, 1) latents.
"""
import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import soundfile as sf
import torch

from dac_diveq import errors
from dac_diveq.codec import codec_io
from dac_diveq.codec.dac_layers import ResidualVectorQuantize
from dac_diveq.quantize.residual import residual_modes_of

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def latents_and_quantizer(weights_path, input_dir, method="diveq"):
    if weights_path is None:
        torch.manual_seed(0)  # skip_iters=0: quantize from the first pass, as a trained codec does
        return torch.randn(4, 1024, 200), ResidualVectorQuantize(1024, 12, 1024, 8, method=method, skip_iters=0)
    model = codec_io.load_model(Path(weights_path)).eval()
    latents = []
    for path in sorted(Path(input_dir).glob("*.wav")):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != model.sample_rate:
            raise codec_io.InputError(f"{path} is {rate} Hz; the model codes {model.sample_rate} Hz")
        x = torch.from_numpy(audio[:, :1].T).unsqueeze(0)
        with torch.no_grad():
            latents.append(model.encoder(model.preprocess(x, model.sample_rate)))
    if not latents:
        raise codec_io.InputError(f"no .wav files in {input_dir}")
    return latents, model.quantizer


def gaps(quantizer: ResidualVectorQuantize, latents, draws: int) -> tuple[float, float, float]:
    """(share of frames with a training code != eval code, stages per frame whose codes differ,
    ||E[z_q train] - decode|| / ||decode|| with E the mean over ``draws`` training passes)."""
    differing, stages, frames, gap, norm = 0, 0, 0, 0.0, 0.0
    for z in latents if isinstance(latents, list) else [latents]:
        with torch.no_grad():
            quantizer.eval()
            decoded, eval_codes = quantizer(z)[:2]
            quantizer.train()
            mean = 0
            for _ in range(draws):
                z_q, codes = quantizer(z)[:2]
                mean = mean + z_q / draws
                differing += int((codes != eval_codes).any(dim=1).sum())
                stages += int((codes != eval_codes).sum())
                frames += codes.shape[0] * codes.shape[2]
        gap += float((mean - decoded).square().sum())
        norm += float(decoded.square().sum())
    return differing / frames, stages / frames, (gap / norm) ** 0.5


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--weights_path", help="a DiVeQ run folder or weights.pth (default: random weights)")
    parser.add_argument("--input", default="data/speech/dev",
                        help="folder of .wav clips (with --weights_path; default: the dev set, as it informs a choice)")
    parser.add_argument("--method", choices=("diveq", "sf_diveq"), default="diveq",
                        help="the method of the random-weight quantizer (a run brings its own)")
    parser.add_argument("--draws", type=int, default=16, help="training passes per input (noise draws)")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = parser.parse_args(argv)
    try:
        latents, quantizer = latents_and_quantizer(args.weights_path, args.input, args.method)
    except errors.UserError as exc:
        return errors.report(exc, debug)
    if quantizer.method not in ("diveq", "sf_diveq"):
        print(f"error: the run's method is {quantizer.method}; the residual modes differ for diveq and sf_diveq only",
              file=sys.stderr)
        return 2
    modes = residual_modes_of(quantizer.method)
    state = quantizer.state_dict()
    print(f"| residual_mode | frames whose training codes != stored codes | stages differing per frame "
          f"(of {len(quantizer.quantizers)}) | gap of the training output (mean of {args.draws} passes) to the decode |")
    print("|---|---|---|---|")
    for mode in modes:
        quantizer.load_state_dict(state)
        quantizer.residual_mode = mode
        for stage in quantizer.quantizers:  # no replacement or initialisation while measuring
            maintenance = stage.codebook.maintenance
            maintenance.schedule = dataclasses.replace(maintenance.schedule, every=0)
        torch.manual_seed(0)
        differing, stages, gap = gaps(quantizer, latents, args.draws)
        print(f"| {mode} | {100 * differing:.2f} % | {stages:.2f} | {100 * gap:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
