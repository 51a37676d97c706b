"""Did two runs evaluate the same frames? ``compare`` and ``gate`` ask here before any delta.

Runs record the sha256 of their frames manifest (``fingerprint.manifest``). Equal hashes: the
same source frames with the same content. Different hashes: the runs are refused, and when both
``frames_manifest.json`` files are beside the results, :func:`~vidtok_bench.manifest.diff_manifests`
names the videos. Results without a manifest hash (older runs, or datasets that record no source
frames) fall back to the data fingerprint, with a note saying so.
"""
from __future__ import annotations

import warnings

from ..errors import BenchError
from ..manifest import SCHEMA, diff_manifests, load_manifest
from ..results import MANIFEST_FILE, Result

#: differing videos named in a refusal before the rest is counted
SHOWN = 5


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
        return f"{head}: the same frame numbers and content per video, but another clip length or source fps/size"
    more = f"; … and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return f"{head}: {len(lines)} video(s) differ: {'; '.join(lines[:SHOWN])}{more}"


def manifest_note(a: Result, b: Result, labels: tuple[str, str] = ("A", "B")) -> str | None:
    """A note when either run has no manifest hash: the frames are then checked by the data fingerprint only."""
    without = [lab for lab, r in zip(labels, (a, b)) if r.fingerprint.manifest is None]
    if not without:
        return None
    return (f"{' and '.join(without)} recorded no frames manifest (older results, or a dataset without source "
            "frame numbers): same frames checked by the data fingerprint only")
