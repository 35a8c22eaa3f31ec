#!/usr/bin/env bash
# Runs every test of the solution and prints one summary line:
#   tests: N passed, M failed, K skipped
# Installs the test prerequisites first when it can (scripts/setup-deps.sh); a test whose
# external tool is missing is reported as skipped with the reason, never silently passed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"
export QE2E_WORKDIR=${QE2E_WORKDIR:-$ROOT/.cache/qe2e}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p .cache
scripts/setup-deps.sh || echo "test.sh: prerequisites incomplete; dependent tests will be skipped" >&2
RESULTS=$ROOT/artifacts/test-results
rm -rf "$RESULTS"
mkdir -p artifacts
if ! dotnet build VirtioGpuHost.sln -c Release --nologo -v q > artifacts/build.log 2>&1; then
  grep -E "error|Error" artifacts/build.log | head -n 40 >&2
  echo "tests: 0 passed, 1 failed, 0 skipped (the build failed)"
  exit 1
fi
# The launcher's build output is what QEMU starts in the guest tests.
./virtio-gpu-host --print-capabilities >/dev/null || { echo "tests: 0 passed, 1 failed, 0 skipped (launcher failed)"; exit 1; }
dotnet test VirtioGpuHost.sln -c Release --no-build --nologo \
  --logger "trx" --logger "console;verbosity=normal" --results-directory "$RESULTS" \
  --blame-hang-timeout 15m ${TEST_FILTER:+--filter "$TEST_FILTER"} > "$ROOT/artifacts/test-output.log" 2>&1
rc=$?
passed=0; failed=0; skipped=0; files=0
for f in "$RESULTS"/*.trx; do
  [ -f "$f" ] || continue
  files=$((files + 1))
  c=$(grep -o '<Counters [^>]*>' "$f" | head -n1)
  get() { echo "$c" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get notExecuted)))
done
grep -E '^\s+(Failed|Skipped) ' "$ROOT/artifacts/test-output.log" | head -n 50 >&2
if [ "$files" = 0 ] || { [ "$rc" != 0 ] && [ "$failed" = 0 ]; }; then
  tail -n 40 "$ROOT/artifacts/test-output.log" >&2
  failed=$((failed + 1))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
