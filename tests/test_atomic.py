"""The one rule every written file follows: whole or not at all, no temporary file left behind."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from vidtok_bench.atomic import atomic_output
from vidtok_bench.results import write_json_atomic


def test_success_replaces_the_target_and_leaves_only_it(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the block ends
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["results.json"]


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_keeps_the_old_file_and_removes_the_partial_one(tmp_path, exc):
    target = tmp_path / "per_video.csv"
    target.write_text("old")
    with pytest.raises(type(exc)):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise exc
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["per_video.csv"]


def test_a_failure_before_anything_was_written_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_output(tmp_path / "m.json"):
            raise ValueError("not serialisable")
    assert os.listdir(tmp_path) == []


def test_written_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "results.json", {"a": 1})
        with atomic_output(tmp_path / "frames_manifest.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    for name in ("results.json", "frames_manifest.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name

