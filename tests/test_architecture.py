"""The import contracts of docs/architecture.md (setup.cfg [importlinter]) hold: import-linter checks them."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "lint-imports not found: install the test extra (pip install -e '.[test]')"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([lint, "setup.cfg"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 broken" in result.stdout and " kept" in result.stdout
