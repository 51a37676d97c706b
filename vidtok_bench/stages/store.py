"""The run store: the output directory of one run — per-clip records appended as each video
finishes (so an interrupted run resumes), set-metric state, and the final files.

A directory is locked while a run writes it; a finished result is never destroyed: rerunning
the same configuration says it is complete, and a different configuration needs ``overwrite=true``.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..errors import BenchError, ConfigError
from ..results import (MANIFEST_FILE, PER_CLIP_FILE, PER_VIDEO_FILE, RESULTS_FILE, RUN_META_FILE, STATE_DIR, Fingerprint, Result,
                       RunMeta, VideoRecord, load_result, per_video_rows, read_records, record_line,
                       write_json_atomic, write_per_video, write_result)

LOCK_FILE = ".lock"


class RunStore:
    def __init__(self, out_dir: Path, option: str = "output_dir="):
        """``option``: how the command that chose ``out_dir`` spells it in errors (``run``: ``output_dir=``,
        ``merge``: ``-o ``)."""
        self.dir = Path(out_dir)
        self.option = option
        self.clip_log = self.dir / PER_CLIP_FILE
        self.meta_file = self.dir / RUN_META_FILE
        self.state_dir = self.dir / STATE_DIR
        self._lock: Any = None
        #: the code environments of the processes that worked on the opened run (see :meth:`open`)
        self.codes: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- lifecycle
    def lock(self) -> None:
        """Take the directory for this run; a second run writing it at the same time is refused."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fh = open(self.dir / LOCK_FILE, "a+")
        except OSError as exc:
            raise ConfigError(f"{self.option}{self.dir}: cannot write there ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"{self.option}{self.dir} is being written by another run; wait for it or choose "
                                  f"another {self.option.strip(' =')}") from None
            raise
        self._lock = fh

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def finished(self, fingerprint: dict[str, str], shard: str | None = None) -> Result | None:
        """The finished result of the same configuration (and shard ``"I/N"``) already in this directory, if any."""
        if not (self.dir / RESULTS_FILE).exists():
            return None
        try:
            done = load_result(self.dir)
        except BenchError:
            return None
        same = done.fingerprint.data == fingerprint["data"] and self.holds(fingerprint, shard)
        return done if same and done.run.status == "complete" else None

    def holds(self, fingerprint: dict[str, str], shard: str | None = None) -> bool:
        """Whether this directory's run (finished or not) has this fingerprint and shard."""
        return self._meta_fingerprint() == fingerprint and self._meta().get("shard") == shard

    def _meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def other_run(self, fingerprint: dict[str, str], shard: str | None = None,
                  settings: dict[str, Any] | None = None) -> str | None:
        """What this directory holds when it holds work of another run (None when empty or the same run):
        'a finished run with a different configuration (what differs from ``settings``, the inputs of
        ``fingerprint``)', or why its configuration cannot be known."""
        if not self._has_work() or self.holds(fingerprint, shard):
            return None
        what = "a finished run" if (self.dir / RESULTS_FILE).exists() else "an unfinished run"
        problem = self._meta_problem()
        if problem:
            return f"{what} whose configuration is unknown: {problem}"
        differ = self._differences(settings)
        return f"{what} with a different configuration{f' ({differ})' if differ else ''}"

    def refuse_replacing(self, fingerprint: dict[str, str], resume: bool, shard: str | None = None,
                         settings: dict[str, Any] | None = None) -> None:
        """ConfigError, naming what it holds, when starting this run here would replace work: another run's, or this
        run's with resume=false (overwrite=true replaces it)."""
        if other := self.other_run(fingerprint, shard, settings):
            raise ConfigError(f"output_dir={self.dir} holds {other}; choose another output_dir, or pass overwrite=true "
                              "to replace it")
        if not resume and self._has_work():
            raise ConfigError(f"output_dir={self.dir} holds work of this configuration and resume=false; "
                              "pass overwrite=true to start it again from scratch")

    def _differences(self, settings: dict[str, Any] | None) -> str:
        """``"dataset.size: 128 there, 64 now; ..."``: what differs from the run kept here, where that can be told."""
        before = self._meta().get("settings")
        if not isinstance(before, dict) or settings is None:
            return ""
        # a group's name first (tokenizer.name), the settings before what follows from them (metric specs, videos)
        found = sorted(differences(before, json.loads(json.dumps(settings, default=str))),  # as run_meta.json holds it
                       key=lambda d: (not d[0].endswith(".name"), d[0].startswith(("data.metrics", "data.videos"))))
        shown = [f"{k.removeprefix('data.')}: {_short(a, b)} there, {_short(b, a)} now" for k, a, b in found[:3]]
        return "; ".join(shown) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")

    def _has_work(self) -> bool:
        return (self.dir / RESULTS_FILE).exists() or bool(self.clip_log.exists() and self.clip_log.stat().st_size)

    def _meta_problem(self) -> str | None:
        """Why this directory's fingerprint cannot be read (None when it can): the refusal must not call a
        damaged or deleted run_meta.json 'a different configuration'."""
        if not self.meta_file.exists():
            return f"{self.meta_file} is missing"
        if self._meta_fingerprint() is None:
            return f"{self.meta_file} is unreadable (not the JSON a run writes)"
        return None

    def _meta_fingerprint(self) -> dict[str, str] | None:
        """The fingerprint of the run in progress: data + config (fingerprint.manifest is known only at the end)."""
        fp = self._meta().get("fingerprint")
        return {k: v for k, v in fp.items() if v is not None} if isinstance(fp, dict) else None

    def open(self, fingerprint: dict[str, str], resume: bool, overwrite: bool, shard: str | None = None,
             code: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> dict[str, VideoRecord]:
        """Start (or resume) a run, or shard ``"I/N"`` of one; returns the videos an earlier run of the same
        fingerprint and shard finished. ``code`` (this process's code environment) joins the run's list of them
        (:attr:`codes`) when it differs from the last process's; ``settings`` (what ``fingerprint`` hashes) is kept
        to name what differs when another configuration is refused here.

        Work of another configuration is never replaced silently: without ``overwrite`` it is refused."""
        same = self.holds(fingerprint, shard)
        if not overwrite:
            self.refuse_replacing(fingerprint, resume, shard, settings)
        finished: dict[str, VideoRecord] = {}
        if same and resume and not overwrite:
            finished = {r.video: r for r in read_records(self.clip_log) if r.status == "ok"}
        else:
            for f in (RESULTS_FILE, PER_VIDEO_FILE, MANIFEST_FILE):
                (self.dir / f).unlink(missing_ok=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if not finished:
            self.clip_log.write_text("")
            earlier: list[dict[str, Any]] = []
        else:
            self._end_torn_line()
            earlier = [c for c in self._meta().get("code") or [] if isinstance(c, dict)]
        self.codes = earlier + ([code] if code is not None and (not earlier or earlier[-1] != code) else [])
        meta = RunMeta(fingerprint=Fingerprint(**fingerprint), started=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                       shard=shard, code=self.codes, settings=settings)
        write_json_atomic(self.meta_file, meta.model_dump())
        return finished

    def _end_torn_line(self) -> None:
        """An interrupted write can leave the log without its final newline: end that line, so the next record
        appended on resume starts a line of its own (read_records skips the torn one)."""
        with self.clip_log.open("rb+") as log:
            log.seek(0, 2)
            if log.tell():
                log.seek(-1, 2)
                if log.read(1) != b"\n":
                    log.write(b"\n")

    def append(self, record: VideoRecord) -> None:
        with self.clip_log.open("a") as log:
            log.write(record_line(record))
            log.flush()
            os.fsync(log.fileno())

    def write(self, result: Result, records: Sequence[VideoRecord], per_video_metrics: dict[str, Any]) -> Path:
        write_per_video(per_video_rows(records, per_video_metrics), list(per_video_metrics), self.dir)
        return write_result(result, self.dir)


_ABSENT = object()


def differences(a: Any, b: Any, key: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in ``a``, value in ``b``) wherever two nested dicts differ; a key only one has is one entry."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [(key, a, b)]
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(a.keys() | b.keys(), key=str):
        sub = f"{key}.{k}" if key else str(k)
        out += differences(a[k], b[k], sub) if k in a and k in b else [(sub, a.get(k, _ABSENT), b.get(k, _ABSENT))]
    return out


def _short(value: Any, other: Any) -> str:
    """A setting's value in an error line, beside the ``other`` side's: lists by their length where either is long."""
    if value is _ABSENT:
        return "absent"
    if isinstance(value, dict):
        return "present"
    if isinstance(value, list) and isinstance(other, list) and max(len(value), len(other)) > 3:
        return f"{len(value)} items"
    return repr(value)
