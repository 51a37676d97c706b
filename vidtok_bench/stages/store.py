"""The run store: the output directory of one run — per-clip records appended as each video
finishes (so an interrupted run resumes), set-metric state, and the final files."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..results import (PER_CLIP_FILE, RUN_META_FILE, STATE_DIR, Fingerprint, Result, RunMeta, VideoRecord,
                       per_video_rows, read_records, record_line, write_json_atomic, write_per_video, write_result)


class RunStore:
    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.clip_log = self.dir / PER_CLIP_FILE
        self.meta_file = self.dir / RUN_META_FILE
        self.state_dir = self.dir / STATE_DIR

    def open(self, fingerprint: dict[str, str], resume: bool, shard: str | None = None) -> dict[str, VideoRecord]:
        """Start (or resume) a run (or shard ``"I/N"`` of one); returns the videos an earlier run of the same
        fingerprint and shard finished."""
        self.dir.mkdir(parents=True, exist_ok=True)
        finished: dict[str, VideoRecord] = {}
        if resume and self.clip_log.exists() and self.meta_file.exists():
            prev = json.loads(self.meta_file.read_text())
            if prev.get("fingerprint") != fingerprint or prev.get("shard") != shard:
                raise ConfigError(f"{self.dir} holds an unfinished run with a different configuration; "
                                  "choose another output_dir or pass resume=false")
            finished = {r.video: r for r in read_records(self.clip_log) if r.status == "ok"}
        if not finished:
            self.clip_log.write_text("")
        meta = RunMeta(fingerprint=Fingerprint(**fingerprint), started=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                       shard=shard)
        write_json_atomic(self.meta_file, meta.model_dump())
        return finished

    def append(self, record: VideoRecord) -> None:
        with self.clip_log.open("a") as log:
            log.write(record_line(record))
            log.flush()

    def write(self, result: Result, records: Sequence[VideoRecord], per_video_metrics: dict[str, Any]) -> Path:
        write_per_video(per_video_rows(records, per_video_metrics), list(per_video_metrics), self.dir)
        return write_result(result, self.dir)
