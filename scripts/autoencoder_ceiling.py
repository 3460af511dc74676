"""STOI and PESQ-WB of a codec's continuous bottleneck (no codebook lookup) next to its quantized output.

    python scripts/autoencoder_ceiling.py --weights_path runs/ae --input data/speech/test_real

Train the run with quantization held off for the whole budget (``--DiVeQDAC.skip_iters`` beyond
``--num_iters``) and this gives what the encoder/decoder alone reach at that budget: the ceiling a
quantizer can only lower. For a run that quantized, the unquantized column is not a ceiling (its
decoder never saw unquantized latents). See docs/cpu_training.md.

Each file is fed at the level the codec trained at (its weights' ``loudness_db``, as ``encode`` and
the evaluation do; ``--loudness_db`` overrides) and both outputs are returned to the file's own
loudness before scoring; both are whole-file forward passes (the evaluation compresses in 5-s windows).
"""
import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from dac_diveq import errors
from dac_diveq.codec import codec_io
from dac_diveq.metrics import speech

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--weights_path", required=True, help="weights.pth or a run folder (its latest)")
    parser.add_argument("--input", default="data/speech/dev", help="folder of reference .wav files (default: "
                                                                    "the dev set; the test set is for reports)")
    parser.add_argument("--loudness_db", default="model",
                        help="level the input is normalised to: model (the training level; default), LUFS or raw")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    args = parser.parse_args(argv)
    from audiotools import AudioSignal

    from dac_diveq.codec.model import parse_level
    try:
        requested = parse_level(args.loudness_db)
    except errors.ConfigError as exc:
        return errors.report(errors.ConfigError(f"--loudness_db: {exc}"), debug)
    files = sorted(Path(args.input).glob("*.wav"))
    if not files:
        print(f"error: no .wav files in {args.input}", file=sys.stderr)
        return 2
    try:
        model = codec_io.load_model(Path(args.weights_path))
    except errors.UserError as exc:
        return errors.report(exc, debug)
    print(model.source.describe(), file=sys.stderr)  # a run folder: best, else latest
    model.eval()
    level = model.level(requested)
    rows = []
    print("file\tSTOI unquantized\tSTOI quantized\tPESQ-WB unquantized\tPESQ-WB quantized")
    for path in files:
        try:  # the checked reader: no FIFO, header bounds before any sample is read
            audio, sr = codec_io.read_audio(path)
        except codec_io.InputError as exc:
            return errors.report(codec_io.InputError(f"{path}: {exc}"), debug)
        audio = audio.T  # samples x channels, as below
        if sr != model.sample_rate:
            print(f"error: {path.name} is {sr} Hz, the model {model.sample_rate} Hz", file=sys.stderr)
            return 2
        signal = AudioSignal(torch.from_numpy(audio[:, 0])[None, None], sr)
        loudness = signal.loudness()
        x = (signal.clone().normalize(level) if level is not None else signal).audio_data
        with torch.no_grad():
            outputs = [model.reconstruct_unquantized(x, sr), model(x, sr)["audio"]]
        ref = audio[:, 0]
        decoded = [AudioSignal(y, sr).normalize(loudness).audio_data[0, 0, : len(ref)].numpy() for y in outputs]
        n = min(len(ref), *map(len, decoded))
        stoi = [speech.stoi(ref[:n], y[:n], sr) for y in decoded]
        pesq = [speech.pesq_wb(ref[:n], y[:n], sr) for y in decoded]
        rows.append(stoi + pesq)
        print(f"{path.name}\t" + "\t".join(f"{v:.3f}" for v in stoi + pesq))
    print("mean\t" + "\t".join(f"{v:.3f}" for v in np.mean(rows, axis=0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
