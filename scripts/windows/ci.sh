#!/usr/bin/env bash
# The Windows and macOS legs of CI, run by .ci/run after the Linux run:
#   Windows (x86_64-pc-windows-gnu): clippy of every target, then, under Wine
#   through the cargo runner in .cargo/config.toml, the test targets and the
#   examples that the Windows backend supports (listed below, each exclusion
#   with its reason);
#   macOS (x86_64 and aarch64): `cargo check` of every target (no SDK needed).
# Every step runs even if an earlier one failed; the exit status says whether all passed.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

windows=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export WINEPREFIX="${MP_WINEPREFIX:-$target_dir/wineprefix}"

# --- What runs under Wine -------------------------------------------------------
#
# Everything works on Windows: spawn, Process, Pool, handles inside messages,
# mp::pipe, shared memory, locks and the other synchronization primitives, queues
# and managers. What cannot run under Wine is left out, each named here with the
# reason, and the log lists them all. A test target or example in neither list
# fails this script, so a new one is never dropped silently.

# Test targets run under Wine, as "package:kind:name" (kind lib, bin or test).
windows_tests=(
    mp:lib:mp
    mp-runtime:lib:mp_runtime
    mp-macros:lib:mp_macros
    mp-bench:bin:mp-bench
    mp-bench:test:quick
    mp:test:api_contract
    mp:test:arity
    mp:test:examples
    mp:test:fd_leaks
    mp:test:frame_limit
    mp:test:handshake
    mp:test:manager
    mp:test:manager_remote
    mp:test:pipe
    mp:test:pool
    mp:test:process
    mp:test:queue
    mp:test:shm
    mp:test:smoke
    mp:test:sync
    mp:test:ui # its one test is ignored under Wine, with the reason (tests/ui.rs)
    mp:test:windows_registry
)
# Test targets not run under Wine, and why.
declare -A windows_excluded_tests=(
    [mp:test:mpi]="needs feature mpi and mpirun: pools over MPI ranks are built and tested with Open MPI on Linux (docs/cluster.md); MS-MPI on Windows is not supported"
)
# Tests inside those targets that exercise what Windows lacks, skipped by their
# full names, and why. (The test of each excluded example in tests/examples.rs,
# named after the example, is skipped too.)
declare -A windows_skipped_tests=(
)
# Doctests (mp's and mp-runtime's) all run under Wine.
# Examples run under Wine.
windows_examples=(
    cpu_speedup
    global_state
    lock_print
    manager_client
    manager_dict
    manager_pool
    manager_server
    pipe_demo
    pool_apply_async
    pool_map
    process_basics
    process_subclass
    queue_producer_consumer
    queue_workers
    quickstart
    shared_array
    shared_array_add
    shared_counter
    sync_demo
    worker_output
)
# Examples not run under Wine, and why.
declare -A windows_excluded_examples=(
    [cluster_map]="needs feature mpi and mpirun (docs/cluster.md); MS-MPI on Windows is not supported"
)

start=$SECONDS
step() { printf '\n=== %s (%ss)\n' "$*" "$((SECONDS - start))"; }
failed=()
check() {
    local what="$1"
    shift
    if ! "$@"; then
        failed+=("$what")
    fi
}

# The Wine server lingers a few seconds after the last program; stop it however we leave.
stop_wine() { if command -v wineserver >/dev/null 2>&1; then wineserver -k 2>/dev/null || true; fi; }
trap stop_wine EXIT

step "windows: install wine, mingw-w64 and the rustup target"
scripts/windows/setup.sh

step "windows: prepare the Wine prefix and the ProcessPrng shim"
scripts/windows/wine-runner.sh --prepare

step "windows: every test target and example is either run under Wine or excluded with a reason"
in_list() {
    local item="$1" x
    shift
    for x in "$@"; do [ "$x" = "$item" ] && return 0; done
    return 1
}
unlisted=()
while read -r target; do
    if ! in_list "$target" "${windows_tests[@]}" && [ -z "${windows_excluded_tests[$target]+x}" ]; then
        unlisted+=("test target $target")
    fi
done < <(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    for target in package["targets"]:
        kind = target["kind"][0]
        if target.get("test") and kind in ("lib", "proc-macro", "bin", "test"):
            kind = "lib" if kind == "proc-macro" else kind
            print("%s:%s:%s" % (package["name"], kind, target["name"]))
')
shopt -s nullglob
all_examples=()
for example in examples/*.rs examples/*/main.rs; do
    name=$(basename "$example" .rs)
    [ "$name" = main ] && name=$(basename "$(dirname "$example")")
    all_examples+=("$name")
    if ! in_list "$name" "${windows_examples[@]}" && [ -z "${windows_excluded_examples[$name]+x}" ]; then
        unlisted+=("example $name")
    fi
done
echo "run under Wine: test targets ${windows_tests[*]}"
echo "  examples ${windows_examples[*]}"
echo "not run under Wine:"
for target in "${!windows_excluded_tests[@]}"; do
    printf '  test target %s: %s\n' "$target" "${windows_excluded_tests[$target]}"
done | sort
for name in "${!windows_skipped_tests[@]}"; do
    printf '  test %s: %s\n' "$name" "${windows_skipped_tests[$name]}"
done | sort
for name in "${!windows_excluded_examples[@]}"; do
    printf '  example %s: %s\n' "$name" "${windows_excluded_examples[$name]}"
done | sort
if [ "${#unlisted[@]}" -gt 0 ]; then
    printf 'neither run under Wine nor excluded with a reason in %s: %s\n' "$0" "${unlisted[@]}"
    failed+=("windows lists")
fi

step "windows: clippy"
check "windows clippy" cargo clippy --workspace --all-targets --target "$windows" -- -D warnings

# `tests/examples.rs` runs the example binaries; a Windows test binary under Wine
# cannot start Cargo to build them, so they are built here first.
step "windows: build the examples"
example_args=()
for name in "${windows_examples[@]}"; do example_args+=(--example "$name"); done
check "windows examples build" cargo build --target "$windows" "${example_args[@]}"

# Passed/failed/ignored totals of a cargo test log.
tally() {
    awk '/^test result:/ { p += $4; f += $6; i += $8 }
         END { printf "%d passed, %d failed, %d ignored\n", p, f, i }' "$@"
}
# Cargo's target options apply to every selected package: `--lib` runs the unit
# tests of each selected package that has a library (all of them but mp-bench),
# `--test NAME` and `--bin NAME` that target wherever it is.
packages=()
test_args=()
for target in "${windows_tests[@]}"; do
    IFS=: read -r package kind name <<<"$target"
    in_list "$package" "${packages[@]}" || packages+=("$package")
    case "$kind" in
        lib) in_list --lib "${test_args[@]}" || test_args+=(--lib) ;;
        bin) test_args+=(--bin "$name") ;;
        test) test_args+=(--test "$name") ;;
    esac
done
for package in "${packages[@]}"; do test_args+=(-p "$package"); done
# Exact names: `--skip` alone would match substrings.
skip_args=(--exact)
for name in "${!windows_skipped_tests[@]}" "${!windows_excluded_examples[@]}"; do
    skip_args+=(--skip "$name")
done

log="$target_dir/windows-tests.log"
doc_log="$target_dir/windows-doctests.log"
step "windows: tests under Wine"
check "windows tests" bash -o pipefail -c \
    'log=$1; shift; cargo test --no-fail-fast --target "$0" "$@" 2>&1 | tee "$log"' \
    "$windows" "$log" "${test_args[@]}" -- "${skip_args[@]}"
echo "windows tests: $(tally "$log")"
echo "ignored under Wine (the reason says why):"
grep -hE '^test .* \.\.\. ignored' "$log" || echo "  (none)"
if grep -qhE '^test .* \.\.\. FAILED' "$log"; then
    echo "failed under Wine:"
    grep -hE '^test .* \.\.\. FAILED' "$log"
fi

step "windows: doctests under Wine"
check "windows doctests" bash -o pipefail -c \
    'cargo test --no-fail-fast --target "$0" -p mp -p mp-runtime --doc 2>&1 | tee "$1"' \
    "$windows" "$doc_log"
echo "windows doctests: $(tally "$doc_log")"

step "windows: examples under Wine"
for name in "${windows_examples[@]}"; do
    echo "--- example $name"
    check "windows example $name" cargo run --quiet --target "$windows" --example "$name"
done

for target in x86_64-apple-darwin aarch64-apple-darwin; do
    step "macOS: check $target"
    rustup target add "$target"
    check "check $target" cargo check --workspace --all-targets --target "$target"
done

step "windows and macOS legs done"
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
