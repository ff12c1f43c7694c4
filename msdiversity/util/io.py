"""Atomic file writing: nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _default_file_mode() -> int:
    """0666 & ~umask. The umask can only be read by setting it, so do that once, at import, rather
    than toggling the process-wide value around every write."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.is_file():  # mkstemp creates 0600; give what a plain open() would
            os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_dataset_atomic(ds, path: str | Path) -> Path:
    """Save an xarray Dataset as netCDF (h5netcdf engine) atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file, or of a directory (sorted relative paths + file digests); None if absent."""
    path = Path(path)
    if path.is_file():
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file() and not q.name.startswith(".")):
            h.update(str(p.relative_to(path)).encode())
            h.update((file_digest(p) or "").encode())
        return h.hexdigest()
    return None


def remove_stale_tmp(directory: str | Path) -> list[Path]:
    """Delete temporary files `atomic_path` left behind when a process was killed mid-write
    (`.<name>.<random>.tmp`, in `directory` and its sub-folders). Call only while holding the
    folder's `results_lock`, so no live writer's file is removed. Returns what was removed."""
    gone = []
    for p in Path(directory).rglob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


LOCK_FILE = ".lock"
_HELD: dict[str, list] = {}  # resolved folder -> [open lock file, depth]: re-entrant in one process


@contextlib.contextmanager
def results_lock(directory: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on a results folder for the duration of the block.

    The lock is an `flock` on `<directory>/.lock` (released by the kernel however the process ends,
    so a killed run never leaves a stale lock); the file names the holder (pid, host, start time) for
    the message another process gets. Re-entrant within one process (the pipeline holds it around the
    train stage, which takes it again). A folder this call created and that holds nothing but the
    lock afterwards (e.g. a configuration error stopped the run) is removed again.

    Raises:
        ResultsLocked: another process holds the lock.
    """
    import datetime
    import fcntl
    import socket

    from msdiversity.errors import ResultsLocked

    d = Path(directory).absolute()
    key = str(d.resolve()) if d.exists() else str(d)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield d
        finally:
            _HELD[key][1] -= 1
        return
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    key = str(d.resolve())
    f = open(d / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown process"
        f.close()
        raise ResultsLocked(f"{directory} is in use by another msdiversity process ({holder}); wait for it to "
                            "finish, or use another --name") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, "
            f"started {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n")
    f.flush()
    _HELD[key] = [f, 1]
    try:
        yield d
    finally:
        del _HELD[key]
        try:
            if created and {p.name for p in d.iterdir()} <= {LOCK_FILE}:
                (d / LOCK_FILE).unlink(missing_ok=True)
                d.rmdir()
        except OSError:
            pass
        f.close()  # releases the flock
