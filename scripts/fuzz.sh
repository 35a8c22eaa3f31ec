#!/usr/bin/env bash
# Runs the fuzz targets of tests/VirtioGpuHost.Fuzz under AFL++ (docs/reliability.md).
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      (default: all, 60 seconds per target)
#
# Builds the fuzz project, instruments the product assemblies with SharpFuzz (the
# SharpFuzz.CommandLine dotnet tool, installed into the work directory when not on PATH),
# then runs afl-fuzz on each target for SECONDS, one target at a time, starting from
# corpus/TARGET plus regressions/TARGET. Prints one line per target:
#   fuzz TARGET: execs N, crashes C, hangs H, corpus P, seconds S
# and exits 1 if any target found a crash or a hang (copied to $FUZZ_WORK/findings/TARGET;
# replay one with: dotnet $FUZZ_WORK/bin/VirtioGpuHost.Fuzz.dll run TARGET FILE, then add
# it under tests/VirtioGpuHost.Fuzz/regressions/TARGET/ once fixed). Exit 3: afl-fuzz missing.
#
# Environment: FUZZ_WORK (default /tmp/vgh-fuzz), FUZZ_TIMEOUT_MS (afl-fuzz -t, default 5000),
# FUZZ_NICE (default 10), FUZZ_SKIP_BUILD=1 (reuse the last build in $FUZZ_WORK/art).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:-all}
SECONDS_PER_TARGET=${2:-60}
WORK=${FUZZ_WORK:-/tmp/vgh-fuzz}
TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-5000}
NICE=${FUZZ_NICE:-10}
PROJECT=$ROOT/tests/VirtioGpuHost.Fuzz
# The product assemblies whose branches feed AFL's coverage map (not the harness, not the BCL).
INSTRUMENT="VirtioGpuHost.Interop VirtioGpuHost.GuestMemory VirtioGpuHost.Virtio VirtioGpuHost.VhostUser VirtioGpuHost.Device VirtioGpuHost.Backend VirtioGpuHost.Compositor.Core VirtioGpuHost.Compositor.Wayland VirtioGpuHost.CrossDomain Tomlyn"

if ! command -v afl-fuzz >/dev/null; then
  echo "fuzz.sh: afl-fuzz not found (Debian package afl++: apt-get install afl++); the in-process mode still runs in tests/VirtioGpuHost.Fuzz.Tests" >&2
  exit 3
fi

mkdir -p "$WORK"
if [ "${FUZZ_SKIP_BUILD:-0}" = 1 ] && [ -d "$WORK/art/bin/VirtioGpuHost.Fuzz/release" ]; then
  echo "fuzz.sh: FUZZ_SKIP_BUILD=1: using the build in $WORK/art" >&2
else
echo "fuzz.sh: building the fuzz project" >&2
dotnet build "$PROJECT/VirtioGpuHost.Fuzz.csproj" -c Release --artifacts-path "$WORK/art" --nologo -v q >"$WORK/build.log" 2>&1 ||
  { cat "$WORK/build.log" >&2; echo "fuzz.sh: build failed" >&2; exit 1; }
fi

SHARPFUZZ=$(command -v sharpfuzz || true)
if [ -z "$SHARPFUZZ" ]; then
  SHARPFUZZ=$WORK/tools/sharpfuzz
  if [ ! -x "$SHARPFUZZ" ]; then
    dotnet tool install --tool-path "$WORK/tools" SharpFuzz.CommandLine --version 2.3.0 >"$WORK/tool.log" 2>&1 ||
      { cat "$WORK/tool.log" >&2; echo "fuzz.sh: cannot install the sharpfuzz tool" >&2; exit 1; }
  fi
fi

# A fresh copy of the build output, instrumented in place (the build folder stays clean).
BIN=$WORK/bin
rm -rf "$BIN"
cp -r "$WORK/art/bin/VirtioGpuHost.Fuzz/release" "$BIN"
for a in $INSTRUMENT; do
  "$SHARPFUZZ" "$BIN/$a.dll" >>"$WORK/instrument.log" 2>&1 || { cat "$WORK/instrument.log" >&2; echo "fuzz.sh: instrumenting $a failed" >&2; exit 1; }
done

if [ "$TARGET" = all ]; then
  TARGETS=$(dotnet "$BIN/VirtioGpuHost.Fuzz.dll" list | awk '{print $1}')
else
  TARGETS=$TARGET
fi

# afl-fuzz on a shared machine, against a managed target it did not compile.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_QUIET=1
export DOTNET_TieredCompilation=0 # coverage is stable from the first execution on

failed=0
for t in $TARGETS; do
  in=$WORK/in/$t out=$WORK/out/$t
  rm -rf "$in" "$out"
  mkdir -p "$in" "$WORK/out"
  cp "$PROJECT/corpus/$t/"* "$in/" 2>/dev/null
  [ -d "$PROJECT/regressions/$t" ] && find "$PROJECT/regressions/$t" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$in/" \;
  if [ -z "$(ls -A "$in")" ]; then echo "fuzz $t: no corpus (run: dotnet $BIN/VirtioGpuHost.Fuzz.dll write-seeds)"; failed=1; continue; fi
  # A second try when afl-fuzz itself failed before fuzzing (seen once: "Unable to communicate
  # with fork server" after 49 execs on a loaded machine); a run that found crashes or hangs is
  # never retried.
  for attempt in 1 2; do
    rm -rf "$out"
    start=$(date +%s)
    nice -n "$NICE" afl-fuzz -i "$in" -o "$out" -t "$TIMEOUT_MS" -m none -V "$SECONDS_PER_TARGET" \
      -- "$(command -v dotnet)" "$BIN/VirtioGpuHost.Fuzz.dll" afl "$t" >"$WORK/afl-$t.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    stats=$out/default/fuzzer_stats
    [ "$rc" = 0 ] && [ -f "$stats" ] && break
    if ls "$out/default/crashes/"id:* "$out/default/hangs/"id:* >/dev/null 2>&1; then break; fi
    [ "$attempt" = 1 ] && echo "fuzz $t: afl-fuzz failed (exit $rc) without findings; retrying once" >&2
  done
  if [ ! -f "$stats" ]; then
    tail -20 "$WORK/afl-$t.log" >&2
    echo "fuzz $t: afl-fuzz did not start (exit $rc; log $WORK/afl-$t.log)"
    failed=1
    continue
  fi
  afl_stat() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  crashes=$(afl_stat saved_crashes); crashes=${crashes:-$(afl_stat unique_crashes)}
  hangs=$(afl_stat saved_hangs); hangs=${hangs:-$(afl_stat unique_hangs)}
  echo "fuzz $t: execs $(afl_stat execs_done), crashes ${crashes:-?}, hangs ${hangs:-?}, corpus $(afl_stat corpus_count), seconds $took"
  if [ "$rc" != 0 ]; then
    grep -a -A2 'PROGRAM ABORT' "$WORK/afl-$t.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
    echo "fuzz $t: afl-fuzz stopped early (exit $rc; log $WORK/afl-$t.log)"
    failed=1
  fi
  if [ "${crashes:-1}" != 0 ] || [ "${hangs:-1}" != 0 ]; then
    failed=1
    mkdir -p "$WORK/findings/$t"
    find "$out/default/crashes" "$out/default/hangs" -maxdepth 1 -type f -name 'id:*' -exec cp {} "$WORK/findings/$t/" \; 2>/dev/null
    echo "fuzz $t: findings in $WORK/findings/$t (replay: dotnet $BIN/VirtioGpuHost.Fuzz.dll run $t FILE)"
  fi
done
exit $failed
