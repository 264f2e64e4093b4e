#!/usr/bin/env bash
# Installs what building and testing the Windows target on Linux needs:
# Wine (both Debian packages: `wine64` alone has no `wine` command), the MinGW-w64
# cross compiler (linker, and compiler of the ProcessPrng shim), and the rustup
# target. Debian/Ubuntu; runs apt only for what is missing. Idempotent.
set -euo pipefail

missing=()
command -v wine >/dev/null 2>&1 || missing+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        wine wine64 gcc-mingw-w64-x86-64
fi
rustup target add x86_64-pc-windows-gnu
