"""End-to-end test of scripts/report.py on small, well-formed synthetic run folders."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import conftest

METRICS = ["pesq_wb", "pesq_nb", "stoi", "estoi", "visqol", "si_sdr", "mel_distance", "stft_distance"]
FILES = ["a.wav", "b.wav", "c.wav"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_script():
    """scripts/report.py as a module."""
    return conftest.load_script("report")


def write_run(root: Path, method: str, seed, settings, quality: float, rng) -> Path:
    """settings: (n_quantizers, bitrate_kbps) pairs. Returns the eval folder."""
    eval_dir = root / f"{method}_s{seed}" / "eval"
    eval_dir.mkdir(parents=True)
    by_bitrate = {}
    with open(eval_dir / "per_file.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "n_quantizers", "bitrate_kbps", *METRICS])
        for n_q, kbps in settings:
            rows = []
            for i, name in enumerate(FILES):
                level = quality + 0.1 * kbps + 0.2 * i + rng.normal(0, 0.02)
                values = [level, level + 0.1, level / 5, level / 6, level + 0.3, 4 * level,
                          2.0 - level / 3, 3.0 - level / 3]
                rows.append(values)
                cells = ["" if (name == "c.wav" and m == "visqol" and method == "diveq") else f"{v:.5f}"
                         for m, v in zip(METRICS, values)]  # one failed metric
                writer.writerow([name, n_q, kbps, *cells])
            by_bitrate[str(n_q)] = {"bitrate_kbps": kbps, **dict(zip(METRICS, np.mean(rows, 0).tolist()))}
    stages = [{"stage": s, "usage": 0.5 + 0.04 * s + quality / 10, "perplexity": 300.0 + 20 * s,
               "entropy_bits": 8.0, "distortion": 0.1, "distortion_per_bit": 0.01} for s in range(4)]
    summary = {"weights": str(root / f"{method}_s{seed}" / "latest" / "dac" / "weights.pth"), "method": method,
               "residual_mode": "detach", "lookup": "exact", "sample_rate": 16000, "n_codebooks": 12,
               "codebook_size": 1024, "frame_rate": 50.0, "seed": seed, "commit": "abc1234",
               "config_hash": "deadbeef", "device": "cpu", "torch": "2.x", "wall_time_s": 12.5,
               "files": FILES, "failed": [], "visqol_mapping": "speech", "by_bitrate": by_bitrate,
               "codebook": {"stages": [] if method == "opus" else stages, "mean_usage": 0.6,
                            "mean_perplexity": 330.0}}
    (eval_dir / "summary.json").write_text(json.dumps(summary))
    return eval_dir


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    codec = [(4, 2.0), (12, 6.0)]
    dirs = [write_run(tmp_path / "runs", m, s, codec, q, rng)
            for m, q in (("ste", 0.0), ("diveq", 0.5)) for s in (0, 1)]
    dirs.append(write_run(tmp_path / "runs", "opus", None, [(0, 6.0), (0, 12.0)], 0.3, rng))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(dirs[2].parent / "logs"))  # diveq seed 0
    for step in (100, 200, 300):
        writer.add_scalar("val/mel/loss", 2.0 - step / 1000, step)
        writer.add_scalar("val/pesq_wb", 1.5 + step / 1000, step)
        writer.add_scalar("train/mel/loss", 2.2 - step / 1000, step)
    writer.close()
    return dirs


@pytest.mark.timeout(120)
def test_report_end_to_end(runs, tmp_path, capsys):
    report = load_script()
    out = tmp_path / "report"
    commands = tmp_path / "commands.txt"
    commands.write_text("python scripts/train.py --method diveq --seed 0\npython scripts/evaluate.py ...\n")
    notes = tmp_path / "TRAINING.md"
    notes.write_text("# How the runs were trained\nBy hand, two side by side.\n")
    argv = ["--runs", *map(str, runs), "--output", str(out), "--title", "Synthetic", "--commands", str(commands),
            "--notes", str(notes)]
    assert report.main(argv) == 0
    text = (out / "README.md").read_text()

    assert text.startswith("# Synthetic")
    assert "## About these runs\n\n### How the runs were trained\nBy hand, two side by side." in text
    assert "### 4 quantizers (2.00 kbps)" in text and "### 12 quantizers (6.00 kbps)" in text
    assert "| diveq | 2 × 3 |" in text and "| ste | 2 × 3 |" in text
    assert "*opus @ 6.00 kbps (reference)*" in text  # nearest table: 12 quantizers
    assert "(n=4)" in text  # diveq's failed ViSQOL value on one file x 2 seeds
    assert "**" in text  # bold best

    # Per-seed means: each seed's file mean (read back from its CSV), then the mean over seeds.
    seed_means = []
    for eval_dir in runs[2:4]:  # diveq seeds 0 and 1
        with open(eval_dir / "per_file.csv") as handle:
            values = [float(r["pesq_wb"]) for r in csv.DictReader(handle) if r["n_quantizers"] == "12"]
        seed_means.append(np.mean(values))
    row = next(l for l in text.split("### 12 quantizers")[1].splitlines() if l.startswith("| diveq | PESQ-WB |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == [f"{m:.3f}" for m in seed_means]
    assert cells[4].startswith(f"{np.mean(seed_means):.3f} ± ") and cells[4].endswith("(n=2)")
    assert "honest unit" in text

    assert "## Paired comparisons against baselines" in text
    assert "### vs ste: primary comparisons, 12 quantizers" in text
    primary = [l for l in text.splitlines() if l.startswith("| diveq | PESQ-WB | 2 | seeds 0, 1")
               or l.startswith("| diveq | STOI | 2 | seeds 0, 1")]
    assert len(primary) == 2 and all(l.endswith("| better (p<0.05) |") for l in primary)
    # The paired t-test over seeds, by hand: each seed's mean over the files, the two differences,
    # t = mean / (sd / sqrt(2)) with one degree of freedom, p = 1 - 2 atan(|t|) / pi (Student t, df 1).
    def seed_mean(eval_dir, metric):
        with open(eval_dir / "per_file.csv") as handle:
            return np.mean([float(r[metric]) for r in csv.DictReader(handle) if r["n_quantizers"] == "12"])
    d = np.array([seed_mean(runs[2 + k], "pesq_wb") - seed_mean(runs[k], "pesq_wb") for k in (0, 1)])
    t = d.mean() / (d.std(ddof=1) / np.sqrt(2))
    p = 1 - 2 * np.arctan(abs(t)) / np.pi
    row = next(l for l in primary if "| PESQ-WB |" in l).strip("|").split("|")
    assert float(row[4]) == pytest.approx(d.mean(), abs=1e-4) and float(row[6]) == pytest.approx(p, rel=1e-2)
    # Nested bitrates and other metrics are descriptive: no verdict, no correction.
    secondary = [l for l in text.splitlines() if l.startswith("| diveq | PESQ-WB, 4 quantizers")]
    assert len(secondary) == 1 and "better" not in secondary[0]
    assert "**diveq vs ste**: PESQ-WB" in text and "over 2 seeds: better (p<0.05)" in text
    assert "Holm" in text
    assert "Baselines not among" not in text  # default: only those present (no rotation run)

    assert "val_mel_loss" in text and "seed 0): TensorBoard" in text
    assert "Runs without training curves (skipped)" in text and "ste (seed 1)" in text
    assert "## Provenance" in text and "deadbeef" in text and "python scripts/train.py --method diveq" in text
    # The reference codec's row names no weights (its summary recorded the codec's, as older ones did).
    opus_rows = [l for l in text.split("## Provenance")[1].splitlines() if l.startswith("| opus |")]
    assert opus_rows and all("n/a (reference codec)" in l and "weights.pth" not in l for l in opus_rows)
    assert "do not keep the phase of the input" in text  # SI-SDR is explained, not shown without a word
    assert "\npython scripts/report.py --runs" in text and sys.executable not in text  # portable provenance

    pngs = sorted(out.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"pesq_wb_vs_bitrate.png", "stoi_vs_bitrate.png", "visqol_vs_bitrate.png",
            "mel_distance_vs_bitrate.png", "codebook_usage.png", "codebook_perplexity.png",
            "curve_val_mel_loss.png", "curve_val_pesq_wb.png"} <= names
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000, png
        assert f"]({png.name})" in text

    # refuses to overwrite without --force, with a one-line message
    capsys.readouterr()
    assert report.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and "\n" not in err
    assert report.main([*argv, "--force"]) == 0


def test_glob_baseline_missing_and_no_runs(runs, tmp_path, capsys):
    report = load_script()
    out = tmp_path / "r2"
    pattern = str(tmp_path / "runs" / "*" / "eval")
    assert report.main(["--runs-glob", pattern, "--output", str(out), "--baselines", "rotation"]) == 0
    text = (out / "README.md").read_text()
    assert "Baselines not among the runs (skipped): rotation." in text
    assert report.main(["--runs-glob", str(tmp_path / "nothing*"), "--output", str(tmp_path / "r3")]) == 2
    assert "no eval folder" in capsys.readouterr().err


def test_headline_is_top_bitrate_table_and_verdicts(runs, tmp_path, capsys):
    report = load_script()
    out = tmp_path / "report"
    assert report.main(["--runs", *map(str, runs), "--output", str(out), "--print-headline"]) == 0
    printed = capsys.readouterr().out
    headline = (out / "headline.md").read_text()
    assert headline.strip() in printed
    assert "### 12 quantizers (6.00 kbps)" in headline and "### 4 quantizers" not in headline
    assert "| diveq | 2 × 3 |" in headline and "*opus @ 6.00 kbps (reference)*" in headline
    assert "**diveq vs ste**" in headline and "better" in headline
    # without the flag the headline is written but not printed
    assert report.main(["--runs", *map(str, runs), "--output", str(out), "--force"]) == 0
    assert "### 12 quantizers" not in capsys.readouterr().out and (out / "headline.md").is_file()


def test_runs_that_trained_differently_are_not_pooled(runs, tmp_path, capsys):
    """Seeds of one variant are pooled only when their recorded training configurations agree (the
    seed and the run's folder aside): a different loss weight is another experiment, shown as its
    own variant labelled by the option that differs."""
    for eval_dir, weight in zip(runs[:2], (15.0, 15.0)):
        summary = json.loads((eval_dir / "summary.json").read_text())
        summary["training_config"] = {"lambdas": {"mel/loss": weight}, "DiVeQDAC.loudness_db": -16.0}
        (eval_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "pooled"
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out)]) == 0
    assert "ste [" not in (out / "README.md").read_text()
    summary = json.loads((runs[1] / "summary.json").read_text())
    summary["training_config"]["lambdas"] = {"mel/loss": 1.0}
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "apart"
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert "ste [lambdas.mel/loss=15.0]" in text and "ste [lambdas.mel/loss=1.0]" in text
    # a loss weighted in one run and absent (weight 0) from the other is a difference too
    summary["training_config"]["lambdas"] = {"mel/loss": 15.0, "stft/loss": 2.5}
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "added_loss"
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert "ste [lambdas.stft/loss=-]" in text and "ste [lambdas.stft/loss=2.5]" in text


def test_an_option_only_a_later_trainer_records_is_named_not_refused(runs, tmp_path):
    """A later trainer records an option the earlier one did not have (here a loss it computes only
    when weighted): the runs trained the same, so they pool, and the report names the option."""
    for eval_dir, extra in zip(runs[:2], ({}, {"CompressedSpectralLoss.alpha": 0.3})):
        summary = json.loads((eval_dir / "summary.json").read_text())
        summary["training_config"] = {"lambdas": {"mel/loss": 15.0}, **extra}
        (eval_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "pooled"
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out)]) == 0
    text = (out / "README.md").read_text()
    assert "`CompressedSpectralLoss.alpha` only in some" in text and "The runs of ste" in text


def test_a_reference_codecs_summary_as_evaluate_writes_it_is_read(runs, tmp_path):
    """evaluate.py writes Opus's summary with ``codebook`` and ``training`` null (no codebook, no
    training run): the report reads it, as it reads a run's."""
    opus = runs[-1]
    summary = json.loads((opus / "summary.json").read_text())
    summary.update(codebook=None, training=None, step=None, training_config=None)
    (opus / "summary.json").write_text(json.dumps(summary))
    assert load_script().main(["--runs", *map(str, runs), "--output", str(tmp_path / "r")]) == 0


def test_a_forced_report_over_a_malformed_run_leaves_the_old_report_whole(runs, tmp_path, capsys):
    out = tmp_path / "r"
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    (runs[0] / "summary.json").write_text(json.dumps({"method": "ste", "codebook": 3}))
    capsys.readouterr()
    assert load_script().main(["--runs", *map(str, runs), "--output", str(out), "--force"]) == 2
    assert "malformed (codebook" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


PUBLISHED = conftest.ROOT / "dac_diveq" / "data" / "corpora" / "librispeech_test_clean_published.json"


def test_published_figures_are_reference_rows_at_the_nearest_bitrate_with_their_sources(runs, tmp_path, capsys):
    report = load_script()
    out = tmp_path / "report"
    assert report.main(["--runs", *map(str, runs), "--output", str(out), "--published", str(PUBLISHED),
                        "--print-headline"]) == 0
    text = (out / "README.md").read_text()
    six = text.split("### 12 quantizers (6.00 kbps)")[1].split("###")[0]
    two = text.split("### 4 quantizers (2.00 kbps)")[1].split("###")[0]
    # DAC and EnCodec at 6 kbps beside the 6-kbps table, the 1- and 1.5-kbps figures beside the 2-kbps one
    dac = next(line for line in six.splitlines() if line.startswith("| *DAC 16 kHz"))
    assert "@ 6.00 kbps (published [1])*" in dac and "*4.01*" in dac and "*0.95*" in dac and "| published |" in dac
    assert "| *EnCodec 24 kHz (released, 8 codebooks) @ 6.00 kbps (published [3])*" in six
    assert "(published [2])" in two and "(published [4])" in two and "(published [1])" not in two
    # a metric the paper did not report is n/a, never a made-up value; the rows are not ranked
    assert dac.count("n/a") == dac.count("|") - 2 - 3 - 1
    assert "**" not in dac
    sources = text.split("### Published figures of released codecs")[1]
    assert "1. DAC 16 kHz (released dac_16khz, 12 codebooks) at 6.00 kbps: Ye et al. 2025, Llasa, " \
           "arXiv:2502.04128, Table 1; LibriSpeech test-clean, 2,620 utterances." in sources
    assert "not a paired comparison" in sources
    headline = (out / "headline.md").read_text()
    assert "(published [1])" in headline and "Published figures: " in headline and "arXiv:2502.04128" in headline
    # the published rows are not in the paired tests
    assert "DAC 16 kHz" not in text.split("## Paired comparisons against baselines")[1].split("## Provenance")[0]


@pytest.mark.parametrize("content, message", [
    ("{", "cannot read published figures"),
    ('{"figures": []}', "non-empty 'figures'"),
    ('{"figures": [{"codec": "X", "kbps": 6, "values": {"pesq": 4.0}, "test_set": "t", "source": "s"}]}',
     "unknown metrics ['pesq']"),
    ('{"figures": [{"codec": "X", "kbps": 6, "values": {"stoi": "high"}, "test_set": "t", "source": "s"}]}',
     "finite numbers"),
    ('{"figures": [{"codec": "X", "kbps": 6, "values": {"stoi": 0.9}, "test_set": "t"}]}', "lacks source"),
])
def test_a_bad_published_file_is_a_one_line_error_and_writes_nothing(runs, tmp_path, capsys, content, message):
    report = load_script()
    bad = tmp_path / "published.json"
    bad.write_text(content)
    out = tmp_path / "report"
    assert report.main(["--runs", *map(str, runs), "--output", str(out), "--published", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "README.md").exists()
