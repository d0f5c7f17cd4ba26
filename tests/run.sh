#!/usr/bin/env bash
# The whole natx test suite, exactly as CI runs it (README "Test", .ci/run):
#   1. install dependencies (deploy/install-deps.sh), check formatting
#   2. ASan/UBSan build, unit tests
#   3. clang libFuzzer build, a bounded smoke run of every fuzz target
#   4. release build with -Werror, every test (unit + integration); its summary is the last line
# Integration tests that need root or namespaces skip (exit 77) where those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

bash deploy/install-deps.sh

echo "== style: clang-format (kernel-derived .clang-format)"
git ls-files -z '*.c' '*.h' 2>/dev/null | xargs -0 -r clang-format --dry-run --Werror

echo "== sanitizer build (ASan+UBSan): unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNATX_SANITIZE=ON -DNATX_WERROR=ON >/dev/null
cmake --build build-asan -j"$JOBS" >/dev/null
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan -L unit --output-on-failure -j"$JOBS"

echo "== fuzz build (clang libFuzzer): bounded smoke runs"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DNATX_FUZZ=ON -DNATX_WITH_BPF=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" >/dev/null
ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$JOBS" --no-tests=ignore

echo "== release build (-Werror): all tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNATX_WERROR=ON >/dev/null
cmake --build build -j"$JOBS" >/dev/null
ctest --test-dir build --output-on-failure
