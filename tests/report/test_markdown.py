"""Markdown helpers of the report that the end-to-end test (tests/scripts/test_report.py) does not pin down."""
from pathlib import Path

from dac_diveq.report.markdown import portable_command


def test_commands_are_kept_without_this_machines_paths(tmp_path):
    root = tmp_path / "repo"
    line = f"OMP_NUM_THREADS=1 {root}/.venv/bin/python3.11 scripts/train.py --save_path {root}/runs/a --data /data/x"
    assert portable_command(line, root) == "OMP_NUM_THREADS=1 python scripts/train.py --save_path runs/a --data /data/x"
    assert portable_command("/usr/bin/python -c pass", Path("/elsewhere")) == "python -c pass"
    # Only a leading interpreter is renamed; a path that merely ends in "python" inside the line stays.
    assert portable_command("sh run.sh /opt/python x", root) == "sh run.sh /opt/python x"
