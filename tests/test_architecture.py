"""The import contracts of docs/architecture.md (setup.cfg [importlinter]) hold: import-linter checks them."""
from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_import_contracts_are_kept(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))  # the package of this checkout
    status = lint_imports(config_filename=str(ROOT / "setup.cfg"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert status == 0, out[-3000:]
    assert "0 broken" in out and "5 kept" in out
