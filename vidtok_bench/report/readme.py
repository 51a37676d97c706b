"""Regenerate the results block of a README between two HTML-comment markers.

Only the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` is replaced,
so hand-written prose around it survives; replacing with the same table is a no-op, so
running the command twice changes nothing (and CI can check the README is up to date).
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_output
from ..errors import BenchError

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def replace_block(text: str, block: str, source: str = "README", start: str = START, end: str = END) -> str:
    """``text`` with the block between the ``start`` and ``end`` markers replaced by ``block``.

    Raises BenchError when a marker is missing, duplicated or the end comes first.
    """
    n_start, n_end = text.count(start), text.count(end)
    if n_start != 1 or n_end != 1:
        problems = [f"{n} x '{m}'" for m, n in ((start, n_start), (end, n_end)) if n != 1]
        raise BenchError(f"{source}: expected exactly one '{start}' and one '{end}' marker, found {', '.join(problems)}")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise BenchError(f"{source}: '{end}' comes before '{start}'")
    body = block.strip("\n")
    return text[: i + len(start)] + "\n" + (body + "\n" if body else "") + text[j:]


def update_readme(path: str | Path, block: str, start: str = START, end: str = END) -> bool:
    """Replace the marked block in the file at ``path``; return whether the file changed."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BenchError(f"{p}: no such file to update") from None
    except IsADirectoryError:
        raise BenchError(f"{p}: is a directory, not a README file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"{p}: not UTF-8 text") from None
    crlf = "\r\n" in text
    new = replace_block(text.replace("\r\n", "\n") if crlf else text, block, str(p), start, end)
    if crlf:
        new = new.replace("\n", "\r\n")
    if new == text:
        return False
    with atomic_output(p) as tmp:
        tmp.write_bytes(new.encode("utf-8"))
    return True
