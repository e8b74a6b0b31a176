"""The safe writer with special targets (devices, FIFOs) and failing writes (a full disk)."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from nnmip.io import safe
from nnmip.io.safe import OutputError, atomic_write, write_bytes


def test_fifo_target_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=reader)
    t.start()
    write_bytes(fifo, b"hello\n")
    t.join(timeout=10)
    assert got == [b"hello\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_char_device_target_stays_a_device(tmp_path: Path) -> None:
    dev = tmp_path / "mynull"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here: {exc}")
    try:
        with open(dev, "wb") as f:
            f.write(b"")
    except OSError as exc:
        pytest.skip(f"device nodes cannot be opened here: {exc}")
    write_bytes(dev, b"x" * 1000)
    st = os.stat(dev)
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mynull"]


def _full_disk(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(safe.os, "fsync", _full_disk)
    with pytest.raises(OutputError) as e:
        write_bytes(target, b"new content", "--json")
    assert e.value.diagnostics[0].code == "E0614"
    assert "No space left" in str(e.value)
    assert "--json" in str(e.value)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_full_disk_while_buffered_data_is_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write itself fails and closing the temporary file fails again: still E0614 and no leftover."""
    target = tmp_path / "m.lp"
    target.write_bytes(b"old")

    class FullFile:
        def __init__(self, f: object) -> None:
            self._f = f
            self.name = f.name  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self) -> None:
            self._f.close()  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real = safe.tempfile.NamedTemporaryFile
    monkeypatch.setattr(safe.tempfile, "NamedTemporaryFile", lambda **kw: FullFile(real(**kw)))
    with pytest.raises(OutputError) as e, atomic_write(target) as f:
        f.write(b"new")
    assert e.value.diagnostics[0].code == "E0614"
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lp"]


def test_other_failure_removes_temporary(tmp_path: Path) -> None:
    target = tmp_path / "w.npz"
    def fail() -> None:
        with atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_vnncomp_refuses_unwritable_results_dir_before_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from nnmip.cli import main

    bench = tmp_path / "bench"
    bench.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro and real_access(p, mode))
    monkeypatch.chdir(tmp_path)
    assert main(["vnncomp", "bench", "--results-dir", "ro"]) == 2
    assert "error[E0612]: --results-dir: cannot write in" in capsys.readouterr().err
    assert main(["vnncomp", "bench", "--results-dir", "ro/new/deeper"]) == 2
    assert "error[E0612]: --results-dir: cannot create folders in" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", "ro"]
    assert list(ro.iterdir()) == []
