"""Files written whole or not at all, by one rule for every file the harness writes.

A writer gets a temporary sibling of the target; on success it is flushed to disk and renamed over the
target (readers, concurrent runs and resumed runs never see a torn file); on any failure, a full disk or
an interrupt included, it is removed, so no ``.tmp`` file is left beside the results.
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield the temporary path to write ``path`` through; it replaces ``path`` when the block ends without error.

    The name is unique per process and thread, and the file is created by the writer with the usual umask
    permissions (not ``mkstemp``'s 0600), so results stay readable by the group that shares them."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        if fsync:  # the rename must not reach the disk before the data does (a crash would leave an empty file)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
