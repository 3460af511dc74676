"""Train a VQ-VAE with every selected method x bits per code x seed on the same images and budget,
evaluate PSNR/SSIM/LPIPS and codebook statistics on the held-out images, and write the report.

    python recipes/image_compare.py --size quickstart                         # CPU: ste/rotation/diveq/sf_diveq x 4, 6, 8 bits
    python recipes/image_compare.py --size gpu --bits 4 5 6 7 8 9 10 11      # one H100, 128x128 images
    python recipes/image_compare.py --size gpu --lpips_weights vgg16.pth     # + LPIPS in the loss and the metrics

Re-running skips finished trainings and evaluations (it resumes interrupted ones) and refuses to
overwrite an existing report unless ``--force``.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import METHOD_CONF, ROOT, finished, run, write_commands

from dac_diveq.quantize.fsq import levels_for_bits

PY = sys.executable
# Same budget for every run of a size. quickstart: 32x32 crops, 8x8 codes (CPU, ~1 min per run);
# gpu: 128x128 crops with the Table 3 widths and 3 downsamplings (16x16 codes).
SIZES = {
    "quickstart": {"conf": "conf/image/quickstart", "bits": [4, 6, 8], "overrides": []},
    "gpu": {"conf": "conf/image", "bits": [4, 6, 8, 10],
            "overrides": ["--num_iters", "3000", "--valid_freq", "1000", "--sample_freq", "1000",
                          "--VQVAE.n_down", "3", "--train/build_image_dataset.image_size", "128",
                          "--val/build_image_dataset.image_size", "128",
                          "--VQVAE.replace_every", "100", "--VQVAE.replace_slowdown_at", "1000",
                          "--VQVAE.replace_stop_before_end", "500"]},
}


def num_iters(size: dict, conf: Path) -> int:
    """The training length of a run: the size's override, else the conf's ``num_iters``."""
    overrides = size["overrides"]
    if "--num_iters" in overrides:
        return int(overrides[overrides.index("--num_iters") + 1])
    for path in (conf, conf.parent / "vqvae_base.yml"):
        for line in (ROOT / path).read_text().splitlines():
            if line.startswith("num_iters:"):
                return int(line.split(":")[1])
    raise ValueError(f"{conf}: no num_iters")


def codebook_of(method: str, bits: int) -> list:
    """The overrides that give a run ``bits`` bits per code: a codebook of ``2 ** bits`` entries, or
    for FSQ a grid of exactly as many points (levels of 4 and 8, the latents' dimension one per level)."""
    if method == "fsq":
        levels = levels_for_bits(bits)
        return ["--VQVAE.fsq_levels", str(list(levels)), "--VQVAE.codebook_size", 2 ** bits,
                "--VQVAE.codebook_dim", len(levels)]
    return ["--VQVAE.codebook_size", 2 ** bits]


def with_lpips_loss(conf: Path, root: Path) -> Path:
    """A conf that includes ``conf`` and turns the LPIPS term of the loss on (weight 1, the paper's)."""
    path = root / f"{conf.stem}_lpips.yml"
    (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / path).write_text(f"$include:\n  - {conf}\nlambdas:\n  rec/mse: 1.0\n  perceptual/lpips: 1.0\n"
                             "  vq/aux: 1.0\n")
    return path


def add_seed_table(report: Path, root: Path, methods: list[str], bits: list[int], seeds: list[int]) -> None:
    """Append the per-seed means: the paired tests treat every evaluated crop as independent, but
    crops of one photograph are correlated, so the spread between seeds is the sober uncertainty."""
    rows = ["| method | bits | " + " | ".join(f"PSNR seed {s}" for s in seeds) + " | "
            + " | ".join(f"SSIM seed {s}" for s in seeds) + " |",
            "|---|---|" + "---|" * (2 * len(seeds))]
    for method in methods:
        for b in bits:
            cells = {"psnr": [], "ssim": []}
            for seed in seeds:
                summary = root / method / f"bits{b}" / f"seed{seed}" / "eval" / "summary.json"
                values = json.loads(summary.read_text())["by_setting"][str(b)] if summary.is_file() else {}
                for metric in cells:
                    value = values.get(metric)
                    cells[metric].append("n/a" if value is None else f"{value:.{2 if metric == 'psnr' else 3}f}")
            rows.append(f"| {method} | {b} | " + " | ".join(cells["psnr"] + cells["ssim"]) + " |")
    text = ("\n## Per-seed means\n\n"
            "The paired tests above count every evaluated crop as a pair; crops of the same photograph are "
            "correlated (the embedded data hold out 2 photographs), so their p-values overstate the "
            "evidence. The means per training seed below show the spread a reader should weigh a "
            "difference against.\n\n" + "\n".join(rows) + "\n")
    with open(report / "README.md", "a") as handle:
        handle.write(text)


def add_figures(report: Path, root: Path, methods: list[str], bits: int, seed: int) -> None:
    """Append each method's reconstructions and codebook-vs-latents projection (the paper's
    misalignment figure) at the highest bit rate to the report."""
    lines = [f"\n## Reconstructions and codebook vs latents ({bits} bits per code, seed {seed})\n",
             "Held-out crops (top) and their reconstructions (bottom); then the encoder latents of the "
             "held-out images and the codewords in the latents' first two principal components: codewords "
             "away from the latent cloud are the unused, misaligned ones.\n"]
    for method in methods:
        folder = root / method / f"bits{bits}" / f"seed{seed}" / "eval"
        for figure in ("reconstructions", "codebook_vs_latents"):
            source = folder / f"{figure}.png"
            if source.is_file():
                target = report / f"{figure}_{method}.png"
                shutil.copyfile(source, target)
                lines.append(f"![{method}: {figure.replace('_', ' ')}]({target.name})\n")
    with open(report / "README.md", "a") as handle:
        handle.write("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quickstart")
    parser.add_argument("--methods", nargs="+", default=["ste", "rotation", "diveq", "sf_diveq"])
    parser.add_argument("--bits", nargs="+", type=int, help="bits per code, log2 of the codebook size "
                                                              "(default: quickstart 4 6 8, gpu 4 6 8 10)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--num_iters", type=int, help="training steps of every run (default: the size's)")
    parser.add_argument("--lpips_weights", default="", help="torchvision VGG16 weights: LPIPS in loss and metrics")
    parser.add_argument("--root", type=Path, help="runs folder (default runs/image_compare/<size>)")
    parser.add_argument("--report", type=Path, help="report folder (default reports/image_compare_<size>)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report")
    args = parser.parse_args(argv)

    size = SIZES[args.size]
    root = args.root or Path("runs/image_compare") / args.size
    report = args.report or Path("reports") / f"image_compare_{args.size}"
    if (ROOT / report).exists() and not args.force:
        print(f"error: {report} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    unknown = [m for m in args.methods if m not in METHOD_CONF]
    if unknown:
        print(f"error: unknown methods {unknown}; choose from {sorted(METHOD_CONF)}", file=sys.stderr)
        return 2
    bits = args.bits or size["bits"]
    if any(not 1 <= b <= 16 for b in bits):
        print(f"error: --bits {bits}: each must lie in 1..16", file=sys.stderr)
        return 2
    if "fsq" in args.methods and min(bits) < 2:
        print(f"error: --bits {bits}: FSQ needs at least 2 bits per code (4 levels)", file=sys.stderr)
        return 2
    lpips = ["--lpips_weights", args.lpips_weights] if args.lpips_weights else []
    budget = ["--num_iters", str(args.num_iters)] if args.num_iters else []

    log: list[str] = []
    tic = time.time()
    eval_dirs = []
    for method in args.methods:
        conf = Path(size["conf"]) / f"vqvae_{METHOD_CONF[method]}.yml"
        steps = args.num_iters or num_iters(size, conf)
        if args.lpips_weights:
            conf = with_lpips_loss(conf, root)
        for b in bits:
            for seed in args.seeds:
                save_path = root / method / f"bits{b}" / f"seed{seed}"
                if finished(ROOT / save_path, steps):
                    print(f"skip training {save_path}: finished", flush=True)
                else:
                    run([PY, "scripts/train_image.py", "--args.load", conf, "--save_path", save_path,
                         "--seed", seed, *codebook_of(method, b), "--resume", "auto",
                         *size["overrides"], *budget, *lpips], log)
                eval_dir = save_path / "eval"
                if not (ROOT / eval_dir / "summary.json").exists():
                    run([PY, "scripts/evaluate_image.py", "--weights_path", save_path, "--output", eval_dir,
                         *lpips], log)
                eval_dirs.append(eval_dir)
    commands = write_commands(ROOT / root / "commands.txt",
                              f"# recipes/image_compare.py {' '.join(argv or sys.argv[1:])}", log)
    report_cmd = [PY, "scripts/report.py", "--runs", *eval_dirs, "--output", report, "--commands", commands,
                  "--title", f"Image VQ-VAE comparison ({args.size})", "--print-headline"]
    if args.force:
        report_cmd.append("--force")
    run(report_cmd, log)
    add_seed_table(ROOT / report, ROOT / root, args.methods, bits, args.seeds)
    add_figures(ROOT / report, ROOT / root, args.methods, max(bits), args.seeds[0])
    print(f"report: {report}/README.md ({time.time() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
