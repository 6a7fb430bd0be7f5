#!/usr/bin/env bash
# Cross-build the Windows x64 binaries with mingw-w64 (docs/windows.md "Building"):
#   build-win32/signbridge-pkcs11.dll   the PKCS#11 module
#   build-win32/signbridge_addon.node   the addon (named-pipe server, peer SIDs)
#   build-win32/signbridge-ksp.dll      the CNG key storage provider (signtool)
#   build-win32/signbridge-windows.exe  install-ksp / certsync helper of `signbridge windows`
# Usage: scripts/build-win32.sh [build dir]   (default: build-win32 in the repository)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/build-win32}"
for tool in x86_64-w64-mingw32-g++-posix x86_64-w64-mingw32-dlltool cmake; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-win32: $tool is missing; install it with: apt-get install -y g++-mingw-w64-x86-64 cmake" >&2
    exit 1
  fi
done
cmake -S "$root" -B "$out" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$out" >/dev/null
cmake --build "$out" --parallel 2 --target signbridge-pkcs11 signbridge_addon signbridge-ksp signbridge-windows
