"""Compare the image-quickstart figures the README quotes with what ``make image-quickstart`` just printed.

    make check-readme          # runs make image-quickstart (pinned thread count), then this script
    python scripts/check_readme.py --headline runs/image/quickstart/report/headline.md

The README sentence ``printed PSNR a / SSIM b for DiVeQ against c / d for STE`` must match the
headline table of the report (PSNR to 2 decimals, SSIM to 3): seeded runs are bit-identical at a
fixed thread count, so any difference means the code changed the figure and the README must follow.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"printed PSNR ([\d.]+) / SSIM ([\d.]+) for DiVeQ against ([\d.]+) / ([\d.]+) for STE")


def quoted(readme: str) -> dict[str, tuple[str, str]]:
    """``{method: (PSNR, SSIM)}`` as the README quotes them."""
    found = QUOTE.search(" ".join(readme.split()))
    if not found:
        raise ValueError("README: no 'printed PSNR ... for DiVeQ against ... for STE' sentence")
    return {"diveq": found.group(1, 2), "ste": found.group(3, 4)}


def measured(headline: str) -> dict[str, tuple[str, str]]:
    """``{method: (PSNR, SSIM)}`` of a report headline's table, rounded as the README quotes them."""
    rows = {}
    for line in headline.splitlines():
        cells = [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in ("diveq", "ste"):
            psnr, ssim = (float(cell.split("±")[0].strip().strip("*")) for cell in cells[2:4])
            rows[cells[0]] = (f"{psnr:.2f}", f"{ssim:.3f}")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--headline", type=Path, default=ROOT / "runs/image/quickstart/report/headline.md")
    args = parser.parse_args(argv)
    try:
        expected, got = quoted(args.readme.read_text()), measured(args.headline.read_text())
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    differ = [f"{m}: README {expected[m][0]} / {expected[m][1]}, measured {got.get(m, ('?', '?'))[0]} / "
              f"{got.get(m, ('?', '?'))[1]}" for m in expected if got.get(m) != expected[m]]
    if differ:
        print("error: the README's image-quickstart figures do not reproduce: " + "; ".join(differ), file=sys.stderr)
        return 1
    print("README image-quickstart figures reproduce: " + ", ".join(f"{m} {p} / {s}" for m, (p, s) in got.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
