#!/usr/bin/env bash
# One pass over a GPU machine, in one call of under 9 minutes on an H100/H200: build pyimg's
# CUDA kernels for sm_90 only, run the CUDA tests, memcheck every kernel (forward and backward)
# under compute-sanitizer, and run `pyimg bench ops --quick` and `pyimg bench models --quick`.
# Every log and result lands in one folder, ready to commit, with summary.md last.
#
#   bash scripts/gpu_check.sh              # results in ${OUT:-benchmarks/results/gpu-check-<UTC date>}
#   bash scripts/gpu_check.sh --dry-run    # print each phase's command and its time limit
#                                          # when every phase before ran to its own
#   bash scripts/gpu_check.sh --cpu        # the phases' CPU equivalents, on a machine without
#                                          # a GPU: the sanitizer's test selection run plainly,
#                                          # the benchmarks on the CPU
#
# Expects python3 with a CUDA build of torch, nvcc with CUDA_HOME set, and compute-sanitizer;
# no network. Every phase runs even if an earlier one failed, so one run shows every problem;
# the script exits non-zero if any phase failed and prints a table of the phases last.
#
# Settings (environment):
#   TORCH_CUDA_ARCH_LIST  architectures to build, default "9.0" (H100/H200 alone: one
#                         device-code pass instead of setup.py's default two)
#   SKIP_BUILD=1          use the extension already built in place
#   SANITIZER_K           pytest -k for the memcheck phase, default: every op's forward
#                         comparisons with stock / the reference (every dtype, odd sizes,
#                         empty batch) and its gradient tests, on both GPU backends
#   BENCH_OPS_FLAGS, BENCH_MODELS_FLAGS   flags for the two benchmarks, default --quick
#   LIMIT_<PHASE>_S       per-phase limits in seconds (below); a phase stops at its own limit
#                         or at TOTAL_LIMIT_S (default 530) from the start, whichever is first,
#                         so one call stays under 9 minutes even when a phase hangs; the
#                         models' benchmark gets what the phases before leave. The
#                         benchmarks start no new case in their last 25 seconds, so a
#                         cut-short run still writes the cases it finished.
set -euo pipefail

dry_run=0
device=cuda
for arg in "$@"; do
    case $arg in
        --dry-run) dry_run=1 ;;
        --cpu) device=cpu ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-benchmarks/results/gpu-check-$(date -u +%Y%m%d-%H%M)}"
TOTAL_LIMIT_S="${TOTAL_LIMIT_S:-530}"
export PYIMG_CUDA=1
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export PYTHONUNBUFFERED=1
SANITIZER_K="${SANITIZER_K:-exact_permutation or gradients_match or matches_stock or every_epilogue or across_geometries or winner_its_gradient}"
BENCH_OPS_FLAGS="${BENCH_OPS_FLAGS---quick}"
BENCH_MODELS_FLAGS="${BENCH_MODELS_FLAGS---quick}"
PYTEST=("$PYTHON" -m pytest -q -p no:cacheprovider)
# On the CPU the sanitizer's selection runs plainly, on the cpu backend.
sanitizer_marks=(-m cuda)
[[ $device == cuda ]] || sanitizer_marks=(-m "not cuda")
sanitizer_k=$SANITIZER_K
[[ $device == cuda ]] || sanitizer_k="($SANITIZER_K) and cpu-cpu"

phase_names=()
phase_codes=()
phase_seconds=()

# within LIMIT_S: LIMIT_S, or what is left of TOTAL_LIMIT_S if that is less.
within() {
    local left=$((TOTAL_LIMIT_S - SECONDS - 5))
    echo $(($1 < left ? $1 : left))
}

# phase NAME LIMIT_S COMMAND...: run COMMAND under its time limit, cut to what is left of
# TOTAL_LIMIT_S (exit 124 when it runs out), its output shown and kept in $OUT/NAME.log.
phase() {
    local name=$1
    local limit
    limit=$(within "$2")
    shift 2
    if ((dry_run)); then
        printf '%-13s limit %4ss:' "$name" "$limit"
        printf ' %q' "$@"
        echo
        SECONDS=$((SECONDS + limit))  # the worst case: every phase runs to its limit
        return
    fi
    local start=$SECONDS rc=0
    echo "=== $name (limit ${limit}s): $*"
    if ((limit < 1)); then
        echo "no time left" | tee "$OUT/$name.log"
        rc=124
    else
        timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
    fi
    echo "=== $name: exit $rc after $((SECONDS - start))s"
    phase_names+=("$name")
    phase_codes+=("$rc")
    phase_seconds+=("$((SECONDS - start))")
}

# The benchmarks stop starting cases 25 s before their phase's limit.
bench_budget() { echo $(($1 > 50 ? $1 - 25 : $1 / 2)); }

((dry_run)) || mkdir -p "$OUT"
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    echo "build: skipped (SKIP_BUILD=1)"
else
    # Without a GPU the same build still compiles and links the CUDA kernels for sm_90.
    default_limit=150
    [[ $device == cuda ]] || default_limit=400
    phase build "${LIMIT_BUILD_S:-$default_limit}" \
        bash -c '"${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version | tail -n 2
                 '"$PYTHON"' setup.py build_ext --inplace'
fi
phase info "${LIMIT_INFO_S:-20}" \
    "$PYTHON" -c "import torch, pyimg; print(pyimg.build_info, pyimg.backends()); print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
# A missing or stale extension must fail the tests, not fall back to the torch backend.
phase cuda_tests "${LIMIT_CUDA_TESTS_S:-90}" \
    env PYIMG_REQUIRE_EXTENSION=1 "${PYTEST[@]}" tests -m cuda
if [[ $device == cuda ]]; then
    # No caching allocator, so the sanitizer sees each tensor's own allocation and an access
    # past its end is an error rather than a read of a neighbour's block.
    phase sanitizer "${LIMIT_SANITIZER_S:-110}" \
        env PYIMG_REQUIRE_EXTENSION=1 PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
        compute-sanitizer --tool memcheck --error-exitcode 1 \
        "${PYTEST[@]}" tests/ops -x "${sanitizer_marks[@]}" -k "$sanitizer_k"
else
    phase sanitizer "${LIMIT_SANITIZER_S:-110}" env PYIMG_REQUIRE_EXTENSION=1 \
        "${PYTEST[@]}" tests/ops -x "${sanitizer_marks[@]}" -k "$sanitizer_k"
fi
limit=$(within "${LIMIT_BENCH_OPS_S:-100}")
# shellcheck disable=SC2086  # the flags are a list
phase bench_ops "$limit" "$PYTHON" -m pyimg bench ops --device "$device" $BENCH_OPS_FLAGS \
    --budget-s "$(bench_budget "$limit")" --out "$OUT"
# The models take what is left: all of it when the phases before finish early.
limit=$(within "${LIMIT_BENCH_MODELS_S:-300}")
# shellcheck disable=SC2086
phase bench_models "$limit" "$PYTHON" -m pyimg bench models --device "$device" \
    $BENCH_MODELS_FLAGS --budget-s "$(bench_budget "$limit")" --out "$OUT"
((dry_run)) && exit 0

failed=0
summary="$OUT/summary.md"
{
    echo "# gpu_check $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "device: $(tail -n 1 "$OUT/info.log" 2>/dev/null || echo unknown); commit $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    echo
    echo '| phase | result | seconds | log |'
    echo '|---|---|---|---|'
} >"$summary"
for i in "${!phase_names[@]}"; do
    code=${phase_codes[$i]}
    case $code in
        0) result=ok ;;
        124 | 137) result="timed out (exit $code)" ;;
        *) result="FAILED (exit $code)" ;;
    esac
    [[ $code == 0 ]] || failed=1
    echo "| ${phase_names[$i]} | $result | ${phase_seconds[$i]} | ${phase_names[$i]}.log |" >>"$summary"
done
echo "| total | | $SECONDS | |" >>"$summary"
echo
cat "$summary"
exit "$failed"
