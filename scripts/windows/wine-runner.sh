#!/usr/bin/env bash
# Cargo runner for x86_64-pc-windows-gnu: runs a Windows binary under Wine in a
# private prefix (target/wineprefix), creating the prefix and installing the
# ProcessPrng shim DLL on first use. Used through .cargo/config.toml, so that
# `cargo test --target x86_64-pc-windows-gnu` and `cargo run --target ...` work.
#
# `wine-runner.sh --prepare` only prepares the prefix.
# Environment: MP_WINEPREFIX overrides the prefix location; WINEDEBUG is kept if set.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac

export WINEPREFIX="${MP_WINEPREFIX:-$target_dir/wineprefix}"
export WINEDEBUG="${WINEDEBUG:--all}"
# Never offer to install Mono or Gecko: console programs need neither.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"

for tool in wine x86_64-w64-mingw32-gcc flock; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "wine-runner: '$tool' not found; run scripts/windows/setup.sh first" >&2
        exit 127
    fi
done

shim_src="$here/bcryptprimitives.c"
shim_dll="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
stamp="$WINEPREFIX/.mp-ready"

if [ ! -f "$stamp" ] || [ "$shim_src" -nt "$stamp" ]; then
    mkdir -p "$(dirname "$WINEPREFIX")"
    # Several test binaries may start at once: one of them prepares the prefix.
    exec 9>"$WINEPREFIX.lock"
    flock 9
    if [ ! -f "$stamp" ] || [ "$shim_src" -nt "$stamp" ]; then
        if [ ! -d "$WINEPREFIX/drive_c/windows/system32" ]; then
            if ! wine wineboot --init >"$WINEPREFIX.log" 2>&1; then
                echo "wine-runner: creating the Wine prefix $WINEPREFIX failed:" >&2
                cat "$WINEPREFIX.log" >&2
                exit 1
            fi
        fi
        x86_64-w64-mingw32-gcc -O2 -shared -s -o "$shim_dll.tmp" "$shim_src" -ladvapi32
        mv -f "$shim_dll.tmp" "$shim_dll"
        touch "$stamp"
    fi
    flock -u 9
    exec 9>&-
fi

if [ "${1:-}" = --prepare ]; then
    exit 0
fi
exec wine "$@"
