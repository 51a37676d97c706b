"""Keep the repository's tokenizers/ and datasets/ folders from shadowing the PyPI packages.

They are installed as ``vidtok_bench.tokenizers`` / ``vidtok_bench.datasets``. But when the
repository root is on ``sys.path`` (``python -m ...`` run from a checkout), ``import tokenizers``
would find the folder first and break libraries such as transformers. Each folder's
``__init__`` calls :func:`defer_to_real_package` when imported under the top-level name: the
real package is loaded in its place, or a clear ImportError is raised.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def defer_to_real_package(name: str, init_file: str) -> None:
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    search = [p for p in sys.path if os.path.abspath(p or os.curdir) != repo_root]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    if spec is None or spec.loader is None:
        del sys.modules[name]
        raise ImportError(f"No module named '{name}' (the folder {os.path.dirname(init_file)} is vidtok_bench.{name}, not the PyPI package)", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import statement returns this entry, not the folder's module
    spec.loader.exec_module(module)
