"""Write a Markdown report (tables, paired statistics, figures, provenance) from evaluated runs.

    python scripts/report.py --runs runs/ste/eval runs/diveq/eval --output reports/speech16k \
        --commands reports/speech16k.commands.txt
    python scripts/report.py --runs-glob 'runs/*/eval' --output reports/all --force
    python scripts/report.py --runs-glob 'runs/image/*/eval' --output reports/image  # image runs

Speech and image runs (``summary.json`` "domain", else the CSV header) cannot be mixed in one report.
See :mod:`dac_diveq.report.document`.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from dac_diveq import errors
from dac_diveq.report.document import ReportOptions, write_report
from dac_diveq.report.markdown import portable_command


def parse_args(argv: Optional[Sequence[str]]) -> tuple[ReportOptions, bool]:
    """Command-line options.

    Args:
        argv: arguments (None: ``sys.argv[1:]``).

    Returns:
        The report's options, and whether to print the headline.
    """
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[], metavar="EVAL_DIR",
                        help="eval folders (<save_path>/eval with per_file.csv and summary.json)")
    parser.add_argument("--runs-glob", nargs="+", default=[], metavar="PATTERN",
                        help="glob patterns of eval folders (quote them; ** allowed)")
    parser.add_argument("--output", type=Path, required=True, help="report folder (README.md + PNGs)")
    parser.add_argument("--baselines", nargs="*", default=None,
                        help="baseline methods for the paired comparisons (default: ste and rotation, if present)")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--commands", type=Path, default=None,
                        help="text file with the exact commands that produced the runs (embedded verbatim)")
    parser.add_argument("--notes", type=Path, default=None,
                        help="Markdown file about the runs, embedded as the section 'About these runs'")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--force", action="store_true",
                        help="write into an existing folder (only the report's own README.md, headline.md and "
                             "figures are replaced; other files stay)")
    parser.add_argument("--published", type=Path, default=None,
                        help="JSON file of published figures of released codecs, shown as reference rows "
                             "(e.g. dac_diveq/data/corpora/librispeech_test_clean_published.json)")
    parser.add_argument("--print-headline", action="store_true",
                        help="also print the headline (top-bitrate table, verdict summary; always written "
                             "to headline.md) to stdout")
    args = parser.parse_args(argv)
    options = ReportOptions(output=args.output, runs=args.runs, runs_glob=args.runs_glob, baselines=args.baselines,
                            title=args.title, commands=args.commands, notes=args.notes, alpha=args.alpha, force=args.force,
                            published=args.published)
    return options, args.print_headline


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point.

    Args:
        argv: arguments (None: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on a usage error (existing report without --force, no runs, runs of
        different domains, bad --commands, a run's trainer.pth that would run code, a malformed
        run file), 1 when the report cannot be written (a full disk).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.pop_debug_flag(argv)
    options, print_headline = parse_args(argv)
    try:
        command = portable_command(shlex.join([sys.executable, "scripts/report.py", *argv]), Path.cwd())
        readme, headline = write_report(options, command)
    except errors.UserError as error:
        return errors.report(error, debug)
    except OSError as error:  # a full disk: what was being written is removed (atomic writes)
        where = f" ({error.filename})" if error.filename else ""
        failure = errors.UserError(f"cannot write the report to {options.output}: {error.strerror or error}{where}")
        return errors.report(failure, debug)
    if print_headline:
        print(headline)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
