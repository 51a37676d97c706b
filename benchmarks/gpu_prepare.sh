#!/usr/bin/env bash
# Stage what a bare, offline GPU host needs for benchmarks/gpu_check.sh into .gpu/ (git-ignored):
# wheels of the project's dependencies that such a host lacks (its Python, default 3.12, manylinux x86-64;
# versions taken from this venv), and a subset of ../shared (the videos and three VidTok fixtures) that the
# CUDA tests and the benchmark read. Everything must stay under the device tool's 64 MiB transfer limit,
# so the LPIPS/I3D weights are not staged (the benchmark times LPIPS with random-valued networks instead).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PYVER=${GPU_PYTHON_VERSION:-3.12}
G=.gpu
rm -rf "$G" && mkdir -p "$G/whl" "$G/shared/fixtures/vidtok"
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
pkgs=(av xxhash lpips hydra-core omegaconf diffusers pydantic pydantic_core annotated-types typing-inspection importlib_metadata typing_extensions)
reqs=(); for p in "${pkgs[@]}"; do reqs+=("$p==$(ver "$p")"); done
plat=(); for t in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do plat+=(--platform "$t"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp "${plat[@]}" -d "$G/whl" "${reqs[@]}"
# omegaconf's parser runtime is published as an sdist only: build its (pure-Python) wheel here
"$PY" -m pip wheel -q --no-deps -w "$G/whl" "antlr4-python3-runtime==$(ver antlr4-python3-runtime)"
S=../shared
cp "$S"/videos/* "$G/shared/" 2>/dev/null; mkdir -p "$G/shared/videos" && mv "$G"/shared/*.mp4 "$G"/shared/*.mkv "$G/shared/videos/"
cp "$S/fixtures/vidtok/cases.json" "$G/shared/fixtures/vidtok/"
for c in ${GPU_FIXTURES:-v10_kl_causal_488 v11_kl_causal_488 v10_fsq_causal_488_4096}; do
  cp "$S/fixtures/vidtok/$c.ckpt" "$S/fixtures/vidtok/$c.io.pt" "$G/shared/fixtures/vidtok/"
done
du -sh "$G" "$G"/*
