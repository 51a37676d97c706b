"""Resumable HTTP(S) downloads checked by size and sha256 (datasets are several GB).

Bytes go to ``NAME.part`` beside the destination; a later call asks the server for the rest
(HTTP ``Range``) and appends, or starts again when the server ignores the range. The file is
renamed to its final name only when complete and, where a sha256 is known, matching it.
Every failure is one :class:`DownloadError` line that says what to do (offline included).
"""
from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .errors import BenchError
from .hashing import sha256_file

CHUNK = 1 << 20
USER_AGENT = "vidtok-bench (dataset download)"


class DownloadError(BenchError):
    """A download that could not be completed or verified."""


Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


def download(url: str, dest: str | Path, *, sha256: str | None = None, size: int | None = None,
             timeout: float = 30.0, progress: Progress | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``); returns ``dest``.

    An existing ``dest`` is kept when it matches ``size``/``sha256`` (when known).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and _matches(dest, size, sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        have = _fetch(url, part, have, timeout, progress)
    got = part.stat().st_size
    if size is not None and got != size:
        raise DownloadError(f"{url}: got {got} bytes, expected {size}; rerun to resume")
    if sha256 is not None:
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(f"{url}: sha256 {digest} differs from the expected {sha256}; "
                                "the download was removed, rerun to fetch it again")
    os.replace(part, dest)
    return dest


def _matches(path: Path, size: int | None, sha256: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(path) == sha256


_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _fetch(url: str, part: Path, have: int, timeout: float, progress: Progress | None) -> int:
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return have
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url} ({reason}); offline? download it by hand into {part.parent} "
                            f"as {part.name[: -len('.part')]}") from None
    with resp:
        m = _RANGE.match(resp.headers.get("Content-Range") or "")
        if have and resp.status == 206 and m and int(m.group(1)) == have:
            mode = "ab"
        else:  # no resume offered: start again
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        try:
            with open(part, mode) as f:
                while block := resp.read(CHUNK):
                    f.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            raise DownloadError(f"{url}: download interrupted after {done} bytes ({exc}); rerun to resume") from None
    if total is not None and done < total:
        raise DownloadError(f"{url}: download interrupted after {done} of {total} bytes; rerun to resume")
    return done
