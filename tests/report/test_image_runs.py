"""scripts/report.py on synthetic image runs (columns ``bits, bpp, psnr, ssim, lpips``)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dac_diveq.report import plots
from dac_diveq.report.runs import IMAGE, SPEECH, detect_domain, load_run
from tests.scripts.test_report import PNG_SIGNATURE, load_script
from tests.scripts.test_report import write_run as write_speech_run

FILES = [f"img{i}.png" for i in range(6)]
PIXELS = 256  # one code per 16 x 16 pixels: bpp = bits / 256
PSNR_MARGIN = 1.0  # diveq - ste, dB, on every (seed, file)


def write_image_run(root: Path, method: str, seed: int, bits: int, margin: float, lpips: bool = True,
                    domain_key: bool = True) -> Path:
    """One evaluated image run at ``bits`` bits per code; ``margin`` is added to the PSNR.

    Returns:
        The eval folder.
    """
    eval_dir = root / f"{method}_b{bits}_s{seed}" / "eval"
    eval_dir.mkdir(parents=True)
    rng = np.random.default_rng(1000 * seed + bits)  # same noise for both methods: pairs differ by margin
    bpp = bits / PIXELS
    with open(eval_dir / "per_file.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "bits", "bpp", "psnr", "ssim", "lpips"])
        for i, name in enumerate(FILES):
            psnr = 18.0 + bits + 0.5 * i + rng.normal(0, 0.05) + margin
            ssim = 0.4 + 0.03 * bits + 0.01 * i + margin / 100
            lpips_value = f"{0.6 - 0.03 * bits - margin / 50:.5f}" if lpips else ""
            writer.writerow([name, bits, bpp, f"{psnr:.5f}", f"{ssim:.5f}", lpips_value])
    summary = {"method": method, "seed": seed, "bits": bits, "codebook_size": 2 ** bits, "n_quantizers": 1,
               "bpp": bpp, "weights": str(eval_dir.parent / "latest" / "model.pth"), "commit": "abc1234",
               "config_hash": "cafef00d", "device": "cpu", "torch": "2.x", "wall_time_s": 3.0, "files": FILES,
               "failed": [], "fid": 40.0 - 2 * bits - 5 * margin,
               "lpips_weights": "vgg16 sha256:0123abcd" if lpips else "none: no VGG16 weights found",
               "codebook": {"stages": [{"stage": 0, "usage": 0.5 + margin / 4, "perplexity": 2.0 ** (bits - 1),
                                        "entropy_bits": bits - 1.0, "distortion": 0.1, "distortion_per_bit": 0.01}],
                            "mean_usage": 0.5 + margin / 4, "mean_perplexity": 2.0 ** (bits - 1)},
               "by_setting": {str(bits): {"bpp": bpp}}}
    if domain_key:
        summary["domain"] = "image"
    (eval_dir / "summary.json").write_text(json.dumps(summary))
    return eval_dir


def write_image_runs(root: Path, lpips: bool = True) -> list[Path]:
    """ste and diveq (PSNR + PSNR_MARGIN), bits 4 and 8, seeds 0 and 1."""
    return [write_image_run(root, method, seed, bits, margin, lpips)
            for method, margin in (("ste", 0.0), ("diveq", PSNR_MARGIN)) for seed in (0, 1) for bits in (4, 8)]


def _rows(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.mark.timeout(300)  # renders a dozen figures: minutes on a loaded 2-core machine
def test_image_report_end_to_end(tmp_path, capsys):
    dirs = write_image_runs(tmp_path / "runs")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(dirs[4].parent / "logs"))  # diveq, seed 0, 4 bits
    for step in (10, 20, 30):  # tags of dac_diveq.training.loop (f"{split}/{key}")
        writer.add_scalar("val/psnr", 20 + step / 10, step)
        writer.add_scalar("val/rec/mse", 0.1 - step / 1000, step)
    writer.close()
    out = tmp_path / "report"
    assert load_script().main(["--runs", *map(str, dirs), "--output", str(out), "--print-headline"]) == 0
    text = (out / "README.md").read_text()

    assert text.startswith("# Image VQ-VAE quantizer evaluation")
    assert "## Results per bits-per-code setting" in text
    assert "### 4 bits per code (0.0156 bpp)" in text and "### 8 bits per code (0.0312 bpp)" in text
    assert "| method | seeds × files | PSNR ↑ | SSIM ↑ | LPIPS (VGG16) ↓ |" in text
    assert "| diveq | 2 × 6 |" in text and "| ste | 2 × 6 |" in text
    assert "kbps" not in text and "quantizers (" not in text

    assert "### vs ste: primary comparisons, 8 bits per code (0.0312 bpp)" in text
    psnr_rows = _rows(text, "| diveq | PSNR | 2 | seeds 0, 1 (each the mean of 6 files) |")
    assert len(psnr_rows) == 1 and psnr_rows[0].endswith("| better (p<0.05) |")
    assert float(psnr_rows[0].split("|")[5]) == pytest.approx(PSNR_MARGIN, abs=1e-3)
    # LPIPS is not a primary metric of the image domain: descriptive, no verdict.
    lpips_rows = _rows(text, "| diveq | LPIPS (VGG16), 8 bits per code")
    assert len(lpips_rows) == 1 and "better" not in lpips_rows[0]
    assert "**diveq vs ste**: PSNR 1.0000 over 2 seeds: better (p<0.05)" in text

    assert "## Dataset-level metrics" in text and "| method | setting | seeds | FID ↓ |" in text
    assert "| diveq | 8 bits per code (0.0312 bpp) | 2 | 19.000 ± 0.000 |" in text
    assert "LPIPS weights" in text and "vgg16 sha256:0123abcd" in text and "ViSQOL" not in text

    assert "diveq @ 4 bits per code (seed 0): TensorBoard" in text and "Codebook usage by bits per code" in text
    names = {p.name for p in out.glob("*.png")}
    assert {"psnr_vs_bpp.png", "ssim_vs_bpp.png", "lpips_vs_bpp.png", "codebook_usage.png",
            "codebook_perplexity.png", "curve_val_psnr.png", "curve_val_rec_mse.png"} <= names
    for name in names:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE and f"]({name})" in text

    headline = (out / "headline.md").read_text()
    assert "### 8 bits per code (0.0312 bpp)" in headline and "### 4 bits per code" not in headline
    assert "**diveq vs ste**" in headline and "better" in headline and headline.strip() in capsys.readouterr().out


def test_empty_lpips_column_shows_na(tmp_path):
    dirs = write_image_runs(tmp_path / "runs", lpips=False)
    out = tmp_path / "report"
    assert load_script().main(["--runs", *map(str, dirs), "--output", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert "LPIPS (VGG16) ↓ |" in text
    assert all(r.endswith("| n/a |") for r in _rows(text, "| diveq | 2 × 6 |") + _rows(text, "| ste | 2 × 6 |"))
    assert "- LPIPS (VGG16): no value in any run, shown as n/a" in text
    assert "none: no VGG16 weights found" in text
    assert not _rows(text, "| diveq | LPIPS (VGG16) |")  # no comparison without values
    assert "psnr_vs_bpp.png" in text and not (out / "lpips_vs_bpp.png").exists()


def test_mixed_speech_and_image_runs_is_a_usage_error(tmp_path, capsys):
    images = write_image_runs(tmp_path / "runs")[:2]
    speech = write_speech_run(tmp_path / "runs", "ste", 0, [(4, 2.0)], 0.0, np.random.default_rng(0))
    code = load_script().main(["--runs", *map(str, images), str(speech), "--output", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "mix domains" in err and "speech" in err and "image" in err and "\n" not in err


def test_domain_from_header_and_errors(tmp_path):
    run = load_run(write_image_run(tmp_path, "diveq", 0, 6, 0.0, domain_key=False))
    assert run.domain is IMAGE and run.settings() == [6] and run.bitrate(6) == pytest.approx(6 / PIXELS)
    assert detect_domain({}, ["file", "n_quantizers", "bitrate_kbps"]) is SPEECH
    with pytest.raises(ValueError, match="unknown domain"):
        detect_domain({"domain": "video"}, ["file", "bits", "bpp"])
    bad = write_image_run(tmp_path, "ste", 0, 6, 0.0)
    (bad / "per_file.csv").write_text("file,bits,psnr\nimg0.png,6,20\n")
    with pytest.raises(ValueError, match=r"missing columns \['bpp'\]"):
        load_run(bad)


def test_rate_axis_is_bits_per_pixel(tmp_path, monkeypatch):
    from dac_diveq.report.runs import group_runs

    seen = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure",
                        lambda fig, path: seen.append(fig.axes[0].get_xlabel()) or save(fig, path))
    groups = group_runs(load_run(d) for d in write_image_runs(tmp_path / "runs"))
    plots.metric_vs_bitrate(groups, "psnr", tmp_path / "psnr.png")
    plots.codebook_stages(groups, "usage", "usage", "usage", tmp_path / "usage.png")  # one stage
    assert seen[0].startswith("Bits per pixel (bpp") and (tmp_path / "usage.png").is_file()


def test_runs_are_labelled_by_their_variant_name_when_an_ablation_gives_one(tmp_path):
    """An ablation's kept summaries name their variant (recipes' keep_evaluation): the report's label is
    that name, and runs of one variant name that trained differently are still never pooled."""
    import json

    from dac_diveq.report.runs import group_runs

    dirs = write_image_runs(tmp_path / "runs")
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        summary["variant"] = f"{summary['method']}_variant"
        (d / "summary.json").write_text(json.dumps(summary))
    groups = group_runs(load_run(d) for d in dirs)
    assert sorted(g.label for g in groups) == ["diveq_variant", "ste_variant"]
    assert {g.method for g in groups} == {"ste", "diveq"} and all(len(g.runs) == 4 for g in groups)


def _with_training_config(eval_dir: Path, **options) -> Path:
    summary = json.loads((eval_dir / "summary.json").read_text())
    summary["training_config"] = {"batch_size": 32, **options}
    (eval_dir / "summary.json").write_text(json.dumps(summary))
    return eval_dir


def test_options_that_set_a_runs_bits_are_its_setting_not_a_variant(tmp_path):
    """An image run's codebook size (and FSQ's levels) differ between its bits by design: the runs of
    one method at 4 and 8 bits form one group, so the comparison with the baseline is drawn; two runs
    at the same bits that trained differently still never pool."""
    from dac_diveq.report.runs import check_poolable, group_runs

    dirs = [_with_training_config(d, **{"VQVAE.codebook_size": 2 ** json.loads(
                (d / "summary.json").read_text())["bits"], "VQVAE.fsq_levels": [bits_levels] * 2})
            for d in write_image_runs(tmp_path / "runs")
            for bits_levels in [json.loads((d / "summary.json").read_text())["bits"]]]
    groups = group_runs(load_run(d) for d in dirs)
    assert sorted(g.label for g in groups) == ["diveq", "ste"] and all(len(g.runs) == 4 for g in groups)

    out = tmp_path / "report"
    assert load_script().main(["--runs", *map(str, dirs), "--output", str(out)]) == 0
    assert "**diveq vs ste**: PSNR 1.0000 over 2 seeds: better (p<0.05)" in (out / "README.md").read_text()

    # A difference between runs at the same bits is a variant: labelled, never pooled.
    odd = _with_training_config(write_image_run(tmp_path / "odd", "diveq", 2, 8, PSNR_MARGIN),
                                **{"VQVAE.codebook_size": 256, "VQVAE.fsq_levels": [8, 8], "VQVAE.noise_var": 0.1})
    for d in dirs:
        summary = json.loads((d / "summary.json").read_text())
        summary["training_config"]["VQVAE.noise_var"] = 0.001
        (d / "summary.json").write_text(json.dumps(summary))
    labels = sorted(g.label for g in group_runs(load_run(d) for d in [*dirs, odd]))
    assert labels == ["diveq [VQVAE.noise_var=0.001]", "diveq [VQVAE.noise_var=0.1]", "ste"]
    group = next(g for g in group_runs(load_run(d) for d in dirs) if g.method == "diveq")
    group.runs.append(load_run(odd))
    with pytest.raises(ValueError, match="trained differently \\(VQVAE.noise_var\\)"):
        check_poolable(group)
