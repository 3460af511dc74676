"""``scripts/report.py --force`` replaces only the report's own files in ``--output``: a user's PNGs
and other files there stay; a figure of an earlier report that the new one does not draw goes."""
import pytest

from dac_diveq.report.document import report_files
from tests.conftest import load_script
from tests.scripts.test_report import runs  # noqa: F401  (the synthetic eval folders, a fixture)


@pytest.mark.timeout(180)
def test_force_keeps_a_users_files(runs, tmp_path, capsys):  # noqa: F811
    report = load_script("report")
    out = tmp_path / "figures"
    out.mkdir()
    users = {"photo.png": b"\x89PNG user's photo", "notes.txt": b"mine", "sub/plot.png": b"\x89PNG nested"}
    for name, data in users.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    argv = ["--runs", *map(str, runs), "--output", str(out)]
    assert report.main(argv) == 2  # not empty: refused without --force
    assert "--force" in capsys.readouterr().err
    stale = out / "curve_val_psnr.png"  # an earlier (image) report's figure, not drawn for speech runs
    stale.write_bytes(b"\x89PNG old figure")
    assert report.main([*argv, "--force"]) == 0
    for name, data in users.items():
        assert (out / name).read_bytes() == data, name
    assert not stale.exists() and (out / "README.md").is_file()
    written = {p.name for p in out.iterdir() if p.is_file()} - {name for name in users if "/" not in name}
    assert written and written <= report_files()  # every file a report writes is one --force may replace
