"""``-q``: no progress, no table and no warnings (the library's logged warnings included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_cases import SMALL, SMALL_DATA
from conftest import ROOT

#: runs ``nnmip`` with a library warning logged during the training
SCRIPT = """\
import logging, sys
import nnmip.drivers.task as task
from nnmip.cli import main

train = task.run_train_task
def noisy(*a, **k):
    logging.getLogger("nnmip.drivers.train").warning("a warning of the library")
    return train(*a, **k)
task.run_train_task = noisy
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("quiet", "shown"), [(True, False), (False, True)])
def test_quiet_hides_the_library_warnings(tmp_path: Path, quiet: bool, shown: bool) -> None:
    (tmp_path / "d.csv").write_text(SMALL_DATA)
    (tmp_path / "small.nnmip").write_text(SMALL)
    (tmp_path / "run.py").write_text(SCRIPT)
    argv = [sys.executable, "run.py", "solve", "small.nnmip", *(["-q"] if quiet else [])]
    p = subprocess.run(argv, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert ("a warning of the library" in p.stderr) is shown
