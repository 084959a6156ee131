"""One way to talk to the user (physical.log): progress on stdout, warnings about the user's input
on stderr, from the stages as from the commands."""
import numpy as np

from physical.capture.folder import copy_folder
from physical.rundir import RunDir, write_image


def test_a_skipped_file_is_a_warning_on_stderr_and_the_photos_are_copied(tmp_path, capsys):
    folder = tmp_path / "photos"
    write_image(folder / "a.png", np.full((8, 8, 3), 128, np.uint8))
    (folder / "sheets.pdf").write_bytes(b"%PDF-1.4\n")
    run = RunDir(tmp_path / "run")
    summary = copy_folder(run, folder)
    out, err = capsys.readouterr()
    assert summary["photos"] == 1 and (run.photos_dir / "a.png").is_file()
    assert f"capture: skipping {folder / 'sheets.pdf'}: a PDF, not a photo" in err
    assert "skipping" not in out
