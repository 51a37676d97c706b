"""Did two runs evaluate the same frames? ``compare`` and ``gate`` ask here before any delta.

Runs record the sha256 of their frames manifest (``fingerprint.manifest``). Equal hashes: the
same source frames with the same content. Different hashes: the runs are refused, and when both
``frames_manifest.json`` files are beside the results, :func:`~vidtok_bench.manifest.diff_manifests`
names the videos. Results without a manifest hash (older runs, or datasets that record no source
frames) fall back to the data fingerprint, with a note saying so.
"""
from __future__ import annotations

import json
import warnings
from typing import Any

from ..config import LOCATION_KEYS, SPEED_KEYS
from ..errors import BenchError
from ..manifest import FRAME_KEYS, SCHEMA, diff_manifests, load_manifest
from ..results import MANIFEST_FILE, Result

#: differing videos named in a refusal before the rest is counted
SHOWN = 5
#: dataset config keys that say how a dataset finds its frames: no difference between runs whose frames
#: manifests are equal (a replay takes them from the manifest; size, crop and resize still change the pixels)
_FINDING_KEYS = ("name", "plugin", "clip_len", *FRAME_KEYS)


def frames_difference(a: Result, b: Result, labels: tuple[str, str] = ("A", "B")) -> str | None:
    """One line saying which videos' frames differ, or None when both manifest hashes are equal (or one is absent)."""
    ha, hb = a.fingerprint.manifest, b.fingerprint.manifest
    if ha is None or hb is None or ha == hb:
        return None
    head = f"{labels[0]} and {labels[1]} evaluated different frames (frames manifests {ha[:12]} vs {hb[:12]})"
    files = [r.run_dir / MANIFEST_FILE if r.run_dir else None for r in (a, b)]
    absent = [str(f or f"{r.path} ({MANIFEST_FILE})") for f, r in zip(files, (a, b)) if f is None or not f.is_file()]
    if absent:
        return f"{head}; the differing videos cannot be named: {', '.join(absent)} not found"
    try:
        with warnings.catch_warnings():  # an older manifest's warning is this line's business, said below
            warnings.simplefilter("ignore")
            ma, mb = load_manifest(files[0]), load_manifest(files[1])
        lines = diff_manifests(ma, mb, labels)
    except BenchError as exc:
        return f"{head}; the differing videos cannot be named: {exc}"
    old = [f"{lab} ({m.written_as})" for lab, m in zip(labels, (ma, mb)) if m.written_as != SCHEMA]
    if old and not lines:
        return (f"{head}: the same frame numbers per video, but {' and '.join(old)} recorded content checksums "
                f"of an older definition, which cannot be compared with {SCHEMA}'s; rerun it to compare")
    if not lines:
        why = (f"clips of {ma.clip_len or 'whole-video'} vs {mb.clip_len or 'whole-video'} frames"
               if ma.clip_len != mb.clip_len else "content checksums recorded by one run only")
        return f"{head}: the same frame numbers per video, but {why}"
    more = f"; … and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return f"{head}: {len(lines)} video(s) differ: {'; '.join(lines[:SHOWN])}{more}"


def manifest_note(a: Result, b: Result, labels: tuple[str, str] = ("A", "B")) -> str | None:
    """A note when either run has no manifest hash: the frames are then checked by the data fingerprint only."""
    without = [lab for lab, r in zip(labels, (a, b)) if r.fingerprint.manifest is None]
    if not without:
        return None
    return (f"{' and '.join(without)} recorded no frames manifest (older results, or a dataset without source "
            "frame numbers): same frames checked by the data fingerprint only")


def setup_differences(a: Result, b: Result, labels: tuple[str, str] = ("A", "B"),
                      same_frames: bool = False) -> tuple[list[str], list[str]]:
    """What two results record differently among the parts of their data fingerprints, as ``'key (A vs B)'``:
    (clip-level: dataset, preprocessing, protocol, scoring; metric-level: a metric one run lacks, its spec or
    protocol options). A refusal names these rather than two hashes; metric-level ones alone leave the clips
    the same (:func:`same_clips`).

    ``same_frames``: the runs' frames manifests are equal (e.g. a run and a replay of its manifest), so how
    each dataset found those frames is no difference: its name, the keys that choose frames (a replay takes them
    from the manifest) and the options only one of the two datasets takes."""
    shared = set(a.dataset.config) & set(b.dataset.config)

    def dataset(r: Result) -> dict[str, Any]:
        config = {k: v for k, v in r.dataset.config.items() if k not in LOCATION_KEYS + SPEED_KEYS}  # what
        if not same_frames:
            return {"name": r.dataset.name, "preprocess": r.dataset.preprocess, "config": config}
        return {"preprocess": r.dataset.preprocess,
                "config": {k: v for k, v in config.items() if k in shared and k not in _FINDING_KEYS}}

    def protocol(r: Result) -> dict[str, Any]:
        return r.protocol.model_dump()

    clips = (differences(dataset(a), dataset(b), "dataset")
             + differences({k: v for k, v in protocol(a).items() if k != "metric_options"},
                     {k: v for k, v in protocol(b).items() if k != "metric_options"}, "protocol")
             + differences(a.scoring.model_dump(), b.scoring.model_dump(), "scoring"))
    only = [f"metric '{m}' only in {lab}" for lab, r, o in ((labels[0], a, b), (labels[1], b, a))
            for m in r.metrics if m not in o.metrics]
    metrics = (only + [d for m in a.metrics if m in b.metrics
                       for d in differences(a.metrics[m].spec, b.metrics[m].spec, f"metrics.{m}.spec")]
               + differences(protocol(a).get("metric_options"), protocol(b).get("metric_options"), "protocol.metric_options"))
    return clips, metrics


def same_clips(a: Result, b: Result) -> bool:
    """Whether two runs scored the same clips the same way: equal data fingerprints, or equal frames manifests
    and nothing recorded differing but metrics (a run with one metric more scored the same clips)."""
    if a.fingerprint.data == b.fingerprint.data:
        return True
    ha, hb = a.fingerprint.manifest, b.fingerprint.manifest
    return ha is not None and ha == hb and not setup_differences(a, b, same_frames=True)[0]


def describe(differences: list[str], shown: int = 3) -> str:
    """The first few differences on one line, the rest counted."""
    more = f" and {len(differences) - shown} more" if len(differences) > shown else ""
    return ", ".join(differences[:shown]) + more


def differences(a: Any, b: Any, where: str) -> list[str]:
    """Dotted keys whose values differ between two recorded blocks, as ``'key (A vs B)'``."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [*a, *(k for k in b if k not in a)]  # as recorded: a block's name comes first
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    return [] if a == b else [f"{where} ({_short(a)} vs {_short(b)})"]


def _short(v: Any, width: int = 40) -> str:
    text = json.dumps(v, default=str, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"
