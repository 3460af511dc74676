"""``make check-readme``'s comparison: the README's image-quickstart sentence against a report headline."""
from tests.conftest import ROOT, load_script

HEADLINE = """### 6 bits per code (0.3750 bpp)

| method | seeds × files | PSNR ↑ | SSIM ↑ | LPIPS (VGG16) ↓ |
|---|---|---|---|---|
| diveq | 1 × 128 | **{diveq} ± 0.180** | **0.420 ± 0.013** | n/a |
| ste | 1 × 128 | 18.407 ± 0.190 | 0.292 ± 0.011 | n/a |
"""


def test_the_readme_quotes_what_the_headline_says(tmp_path, capsys):
    check = load_script("check_readme")
    assert check.quoted((ROOT / "README.md").read_text()) == {"diveq": ("20.26", "0.420"), "ste": ("18.41", "0.292")}
    headline = tmp_path / "headline.md"
    headline.write_text(HEADLINE.format(diveq="20.256"))
    assert check.main(["--headline", str(headline)]) == 0
    headline.write_text(HEADLINE.format(diveq="20.531"))
    assert check.main(["--headline", str(headline)]) == 1
    assert "diveq: README 20.26 / 0.420, measured 20.53 / 0.420" in capsys.readouterr().err
    assert check.main(["--headline", str(tmp_path / "missing.md")]) == 2
