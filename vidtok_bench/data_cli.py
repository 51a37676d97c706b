"""``vidtok-bench data list|verify|fetch``: check or download the named evaluation sets.

Named sets are downloaded by hand from their publishers; results on them compare only when
the set is complete and unchanged. ``verify`` checks a folder against the published facts in
:mod:`vidtok_bench.catalog`; ``fetch`` downloads where a URL is known (resumable, hash-checked
where a hash is known), unpacks ``.zip`` (``.7z`` with py7zr when installed) and verifies.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import catalog



def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="verify or download the named evaluation sets (uvg, davis2017_val)",
                              description=__doc__.split("\n\n")[1].replace("\n", " "))
    sub = p.add_subparsers(dest="data_action", metavar="ACTION")
    ls = sub.add_parser("list", help="the sets that can be verified / downloaded")
    ls.set_defaults(func=_list)
    names = "a set `vidtok-bench data list` shows"  # the catalog loads only when a command runs: --help stays fast
    v = sub.add_parser("verify", help="check a downloaded set: files, sizes/frames, sha256 where known")
    v.add_argument("name", metavar="NAME", help=f"one of: {names}")
    v.add_argument("--root", required=True, help="the folder holding the set")
    v.add_argument("--no-sha256", action="store_true", help="skip hashing (where a sha256 is known at all)")
    v.set_defaults(func=_verify)
    f = sub.add_parser("fetch", help="download (resumable), unpack and verify a set where its URL is known")
    f.add_argument("name", metavar="NAME", help=f"one of: {names}")
    f.add_argument("--root", required=True, help="the folder to download into")
    f.set_defaults(func=_fetch)
    p.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from . import catalog

    for e in catalog.CATALOG.values():
        print(f"{e.name:15s} {len(e.videos):3d} videos  {'download' if e.downloads else 'by hand '}  {e.title}")
    return 0


def _report(e: "catalog.CatalogEntry", root: Path, check_sha256: bool = True) -> bool:
    from . import catalog

    rep = catalog.verify(e, root, check_sha256)
    print("\n".join(rep.lines))
    return rep.ok


def _verify(args: argparse.Namespace) -> int:
    from . import catalog

    e = catalog.entry(args.name)
    ok = _report(e, Path(args.root), not args.no_sha256)
    if not ok:
        print(f"to get it: {e.how_to_get}", file=sys.stderr)
    return 0 if ok else 1


def _progress(name: str):
    last = [-1]

    def show(done: int, total: int | None) -> None:
        pct = int(100 * done / total) if total else None
        if pct is not None and pct != last[0] and pct % 5 == 0:
            last[0] = pct
            print(f"\r{name}: {pct}% of {total / 1e6:.0f} MB", end="", file=sys.stderr, flush=True)

    return show


def _unpack(archive: Path, root: Path) -> str | None:
    """Unpack into root; returns what the user must do by hand, if anything. A damaged zip (a cut download
    of a set without a published size or sha256 looks complete until here) is removed: a rerun fetches it again."""
    from .download import DownloadError

    if archive.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    pp = PurePosixPath(m)
                    if pp.is_absolute() or ".." in pp.parts:
                        raise DownloadError(f"{archive}: member {m!r} would land outside {root}; not unpacked")
                z.extractall(root)
        except (zipfile.BadZipFile, EOFError) as exc:
            archive.unlink(missing_ok=True)
            raise DownloadError(f"{archive}: not a complete zip archive ({exc}); it was removed, rerun fetch to "
                                "download it again") from None
        return None
    if archive.suffix.lower() == ".7z":
        try:
            import py7zr  # optional: not a dependency of vidtok-bench
        except ImportError:
            return f"unpack {archive} by hand: `7z x {archive} -o{root}` (or `pip install py7zr` and rerun fetch)"
        with py7zr.SevenZipFile(archive) as z:
            z.extractall(root)
        return None
    return None


def _fetch(args: argparse.Namespace) -> int:
    from . import catalog
    from .download import DownloadError, download

    e = catalog.entry(args.name)
    root = Path(args.root)
    if not e.downloads:
        raise DownloadError(f"{e.name}: no download URL is known; {e.how_to_get}")
    # an existing root is verified first: complete sets are not downloaded again, a file there is refused
    if root.exists() and catalog.verify(e, root, check_sha256=False).ok:
        print(f"{e.name}: already complete under {root}")
        return 0 if _report(e, root) else 1
    todo = []
    for d in e.downloads:
        path = download(d.url, root / d.filename, sha256=d.sha256, size=d.size_bytes, progress=_progress(d.filename))
        print(f"\r{path}: downloaded" + ("" if d.sha256 else " (no published sha256 to check)"), file=sys.stderr)
        manual = _unpack(path, root)
        if manual:
            todo.append(manual)
    for t in todo:
        print(t, file=sys.stderr)
    ok = _report(e, root)
    if ok and e.run_hint:
        print("run: " + e.run_hint.format(root=root))
    return 0 if ok else 1
