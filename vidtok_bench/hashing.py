"""File hashing shared by checkpoints, metric weights and model folders."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def video_seed(seed: int, video_id: str) -> int:
    """The seed of one video's random stream: the same in every process, whatever else it evaluated."""
    return int(fingerprint([seed, video_id])[:15], 16)


def flatten(d: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts as one level of dotted keys (``{'a': {'b': 1}}`` -> ``{'a.b': 1}``), to compare two records."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, object] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def fingerprint(obj: object) -> str:
    """Stable sha256 of a JSON-serialisable object (key order does not matter)."""
    import json

    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
