#!/usr/bin/env bash
# One pass over a GPU machine: build pyimg with its CUDA kernels, run the CUDA tests, memcheck
# the kernels under compute-sanitizer, and benchmark every op.
#
#   bash scripts/gpu_check.sh      # logs, summary and benchmark results land in ${OUT:-gpu_check_out}
#
# Expects python3 with a CUDA build of torch, nvcc with CUDA_HOME set, and compute-sanitizer;
# no network. Every step runs even if an earlier one failed, so one run shows every problem;
# the script exits non-zero if any step failed and prints a table of the steps last.
#
# Settings (environment):
#   TORCH_CUDA_ARCH_LIST  architectures to build, default "9.0": the H100 alone, one device-code
#                         pass instead of setup.py's default two ("8.0;9.0+PTX")
#   SANITIZER_K           pytest -k for the memcheck step, default every op's forward
#                         comparisons with stock / the reference (every dtype, odd sizes, empty
#                         batch) and its gradient tests (the backward kernels)
#   BENCH_OPS             the ops to benchmark, default every one; BENCH_FLAGS default --quick
#   LIMIT_<STEP>_S        per-step time limits in seconds (below); they sum to 9 minutes, so
#                         the whole run stays within a 10-minute slot even when a step hangs.
#                         For full benchmark runs, give each op its own call:
#                         BENCH_OPS=conv BENCH_FLAGS= LIMIT_BENCHMARK_S=400 bash scripts/gpu_check.sh
#                         and issue 5's training grid over cuDNN settings, layouts and dtypes:
#                         BENCH_OPS=conv BENCH_FLAGS=--sweep LIMIT_BENCHMARK_S=400 ...
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
export PYIMG_CUDA=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export PYTHONUNBUFFERED=1
SANITIZER_K="${SANITIZER_K:-exact_permutation or gradients_match or matches_stock or every_epilogue or across_geometries}"
BENCH_OPS="${BENCH_OPS:-pixel_shuffle max_pool batch_norm conv}"
BENCH_FLAGS="${BENCH_FLAGS---quick}"

step_names=()
step_codes=()
step_seconds=()

# step NAME LIMIT_S COMMAND...: run COMMAND under a time limit (exit 124 when it runs out),
# its output shown and kept in $OUT/NAME.log, and record how it ended.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS rc=0
    echo "=== $name (limit ${limit}s): $*"
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
    step_names+=("$name")
    step_codes+=("$rc")
    step_seconds+=("$((SECONDS - start))")
}

step build "${LIMIT_BUILD_S:-150}" \
    bash -c '"${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version | tail -n 2
             python3 setup.py build_ext --inplace'
step info "${LIMIT_INFO_S:-30}" \
    python3 -c "import pyimg; print(pyimg.build_info, pyimg.backends())"
# A missing or stale extension must fail the tests, not fall back to the torch backend.
step cuda_tests "${LIMIT_CUDA_TESTS_S:-90}" \
    env PYIMG_REQUIRE_EXTENSION=1 python3 -m pytest tests -m cuda -q
# No caching allocator, so the sanitizer sees each tensor's own allocation and an access past
# its end is an error rather than a read of a neighbour's block.
step sanitizer "${LIMIT_SANITIZER_S:-90}" \
    env PYIMG_REQUIRE_EXTENSION=1 PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
    compute-sanitizer --tool memcheck --error-exitcode 1 \
    python3 -m pytest tests/ops -m cuda -q -x -k "$SANITIZER_K"
# Each writes <op>_<device>.md/.csv into $OUT after every case, so a run cut short by its
# limit still leaves the cases it finished.
for op in $BENCH_OPS; do
    # shellcheck disable=SC2086  # BENCH_FLAGS is a list of flags
    step "bench_$op" "${LIMIT_BENCHMARK_S:-45}" \
        python3 "benchmarks/bench_$op.py" --device cuda $BENCH_FLAGS --out "$OUT"
done

failed=0
summary="$OUT/summary.md"
printf '| step | result | seconds | log |\n|---|---|---|---|\n' >"$summary"
for i in "${!step_names[@]}"; do
    code=${step_codes[$i]}
    case $code in
        0) result=ok ;;
        124 | 137) result="timed out (exit $code)" ;;
        *) result="FAILED (exit $code)" ;;
    esac
    [[ $code == 0 ]] || failed=1
    echo "| ${step_names[$i]} | $result | ${step_seconds[$i]} | $OUT/${step_names[$i]}.log |" >>"$summary"
done
echo
cat "$summary"
exit "$failed"
