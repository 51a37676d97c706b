#!/usr/bin/env bash
# The prepared GPU check: on a bare, offline GPU host (this repository copied there, .gpu/ from
# benchmarks/gpu_prepare.sh beside it), install what the host lacks, run the CUDA tests, the one-command GPU
# benchmark and a `vidtok-bench profile` sweep, each under its own time limit, logging everything under $OUT.
#   bash benchmarks/gpu_check.sh [tests] [bench] [profile] [compile] [SCRIPT.py ...]   (default: tests bench profile)
set -u
OUT=${OUT:-$PWD/gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
steps=${*:-tests bench profile}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.log"; }
if [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    >>"$OUT/steps.log" 2>&1 || { cat "$OUT/steps.log"; exit 1; }
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$OUT/steps.log" 2>&1 || {
  log "editable install failed (see steps.log): symlinked plugin folders + PYTHONPATH instead"
  for d in tokenizers datasets conf; do ln -sfn "../$d" "vidtok_bench/$d"; done
  export PYTHONPATH=$PWD:${PYTHONPATH:-}
}
[ -d .gpu/shared ] && [ ! -e ../shared ] && ln -s "$PWD/.gpu/shared" ../shared
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee -a "$OUT/steps.log"
python3 -c "import torch, av, vidtok_bench; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'av', av.__version__, torch.cuda.get_device_name())" \
  | tee -a "$OUT/steps.log" || exit 1
VB="python3 -m vidtok_bench.cli"
# each step's time limit interrupts it like Ctrl-C first (pytest then still prints the failures it has met and the
# benchmark writes what it measured; a run saves its progress), and kills it 30 s later if it has not stopped
limit() { timeout -s INT -k 30 "$@"; }
# LPIPS with random-valued networks of the real shapes (a bare host cannot fetch the pinned weights):
# the tests that need LPIPS compare two runs of the same network, and timing does not depend on the values.
bench_helper() {  # call one of benchmarks/bench_gpu.py's CPU-safe helpers: bench_helper "name(args)"
  python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks'); import bench_gpu; bench_gpu.$1"
}
bench_helper "timing_weights_cache(Path('/tmp/timing_cache'))"
for step in $steps; do case $step in
tests)
  log "CUDA tests"
  VIDTOK_BENCH_CACHE=/tmp/timing_cache limit ${T_TESTS:-180} python3 -m pytest -q -p no:cacheprovider -rsP \
    tests/test_cuda.py tests/test_bench_gpu_helpers.py tests/test_clip_placement.py \
    "tests/test_video_preprocess.py" "tests/test_cpu_perf_parity.py" "tests/test_runner_data.py" tests/test_yuv_lut.py \
    -k "cuda or CUDA or bench or preprocess_on or defaults_resolve or table or digest" 2>&1 | tee "$OUT/tests.log" | tail -25 ;;
bench)
  log "bench_gpu"
  VIDTOK_BENCH_OUT=$OUT limit ${T_BENCH:-420} python3 -m pytest benchmarks/bench_gpu.py --benchmark-only -s -p no:cacheprovider \
    ${BENCH_K:+-k "$BENCH_K"} 2>&1 | tee "$OUT/bench.log" | grep -v "^$" | tail -80 ;;
compile)
  log "bench_gpu compiled"
  VIDTOK_BENCH_COMPILE=1 VIDTOK_BENCH_PATHS=channels_last,compiled limit ${T_COMPILE:-300} python3 -m pytest \
    benchmarks/bench_gpu.py --benchmark-only -s -p no:cacheprovider -k "vidtok_17x256x256 and bf16" 2>&1 | tee "$OUT/compile.log" | grep -v "^$" | tail -30
  limit ${T_COMPILE_TEST:-200} python3 -m pytest -q -p no:cacheprovider tests/test_vidtok_fast.py -k compile 2>&1 | tee -a "$OUT/compile.log" | tail -5 ;;
profile)
  log "profile"
  bench_helper "random_vidtok_checkpoint(Path('/tmp/vidtok_random.safetensors'))"
  limit ${T_PROFILE:-120} $VB profile tokenizer=vidtok_kl_causal_488_4chn tokenizer.checkpoint=/tmp/vidtok_random.safetensors \
    "sizes=${P_SIZES:-[256,512,720,1080]}" "frames=${P_FRAMES:-[17,33,65]}" precision=bf16 repeats=2 -o "$OUT/profile" 2>&1 | tee "$OUT/profile.log" | tail -30 ;;
*.py)  # any other prepared script (e.g. a diagnosis staged under .gpu/), its output logged under its name
  log "$step"
  limit ${T_SCRIPT:-120} python3 "$step" 2>&1 | tee "$OUT/$(basename "$step" .py).log" | tail -40 ;;
esac; done
rm -f "$OUT"/profile/*.csv "$OUT"/profile/*.svg  # the tool brings back 8 files at most
log "done"
