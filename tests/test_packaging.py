"""tokenizers/ and datasets/ install as vidtok_bench.* (editable and regular), never top-level."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import importlib.util, json, sys
import vidtok_bench, vidtok_bench.tokenizers, vidtok_bench.datasets
from vidtok_bench.config import yaml_names
spec = importlib.util.find_spec("tokenizers")
print(json.dumps({
    "pkg": vidtok_bench.__file__,
    "tok": vidtok_bench.tokenizers.__file__,
    "ds": vidtok_bench.datasets.__file__,
    "top_tokenizers": None if spec is None else spec.origin,
    "configs": yaml_names("tokenizer"),
    "datasets": yaml_names("dataset"),
}))
"""


def _check(env: dict[str, str], cwd: Path) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_package_list_covers_every_package_folder():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {"vidtok_bench." + ".".join(p.parent.relative_to(ROOT / "vidtok_bench").parts) if p.parent != ROOT / "vidtok_bench" else "vidtok_bench" for p in (ROOT / "vidtok_bench").rglob("__init__.py")}
    on_disk = {n.rstrip(".") for n in on_disk}
    conf_groups = {f"vidtok_bench.conf.{p.name}" for p in (ROOT / "conf").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert on_disk | {"vidtok_bench.tokenizers", "vidtok_bench.datasets", "vidtok_bench.conf"} | conf_groups == listed
    assert cfg["package-dir"]["vidtok_bench.tokenizers"] == "tokenizers"


def test_editable_install_maps_plugin_folders(tmp_path):
    info = _check(dict(os.environ), tmp_path)
    assert Path(info["tok"]) == ROOT / "tokenizers" / "__init__.py"
    assert Path(info["ds"]) == ROOT / "datasets" / "__init__.py"
    assert info["top_tokenizers"] is None or not Path(info["top_tokenizers"]).is_relative_to(ROOT)
    assert "trilinear_488" in info["configs"] and "synthetic" in info["datasets"]


@pytest.mark.slow
def test_regular_install_maps_plugin_folders(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-compile", "-q", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert not (target / "tokenizers").exists() and not (target / "datasets").exists()
    assert (target / "vidtok_bench" / "tokenizers" / "trilinear.py").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    info = _check(env, tmp_path)
    assert Path(info["tok"]).is_relative_to(target) and Path(info["pkg"]).is_relative_to(target)
    assert "trilinear_488" in info["configs"] and "synthetic" in info["datasets"]
    assert info["top_tokenizers"] is None or not Path(info["top_tokenizers"]).is_relative_to(target)


@pytest.mark.parametrize("name", ["tokenizers", "datasets"])
def test_repo_root_on_sys_path_does_not_shadow_pypi_packages(tmp_path, name):
    """`python -m ...` from a checkout puts the repo root first on sys.path; the PyPI package must still win."""
    fake = tmp_path / "site" / name
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("MARK = 'pypi'\n")
    code = f"import {name}, vidtok_bench.{name} as ours; print({name}.MARK, ours.__name__)"
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["pypi", f"vidtok_bench.{name}"]
    # without the PyPI package: a clear ImportError, not our folder
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"the PyPI package {name} is installed here")
    out = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and f"is vidtok_bench.{name}, not the PyPI package" in out.stderr
