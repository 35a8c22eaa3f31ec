#!/usr/bin/env bash
# Installs what the tests need on Debian 12, idempotently:
#  - Debian packages: QEMU (the C back-end peer and the QEMU 10 runtime libraries),
#    busybox/gcc for the guest initramfs, edid-decode to validate our EDIDs;
#  - the qemu-guest-e2e work directory (kernel + QEMU 10 from bookworm-backports),
#    cached in $QE2E_WORKDIR (default .cache/qe2e);
#  - the qemu11-blob-shmem work directory (QEMU 11.1 from trixie-backports, blob-test
#    initramfs), cached in $QE11_WORKDIR (default .cache/qe11).
# Needs root (or password-less sudo) for apt; without it, it lists what is missing and
# the tests that need those tools skip with a message.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS="afl++ weston wayland-utils libwayland-dev wayland-protocols qemu-system-x86 qemu-system-gui seabios busybox-static python3 gcc libc6-dev edid-decode libegl1 libegl-mesa0 libgl1-mesa-dri glslang-tools mesa-vulkan-drivers libvulkan1 xvfb libglfw3 libgl1 libglx-mesa0 chromium"
missing=
for p in $PKGS; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      echo "setup-deps: missing Debian packages:$missing (run as root: apt-get install$missing)" >&2
      exit 1
    fi
  fi
  echo "setup-deps: installing$missing" >&2
  $SUDO apt-get -q update >/dev/null 2>&1
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
    { echo "setup-deps: apt-get install failed" >&2; exit 1; }
fi
mkdir -p "$ROOT/.cache"
rc=0
W=${QE2E_WORKDIR:-$ROOT/.cache/qe2e}
if ! "$ROOT/tests/e2e/qemu-guest-e2e/setup.sh" "$W" > "$ROOT/.cache/qe2e-setup.log" 2>&1; then
  echo "setup-deps: qemu-guest-e2e setup failed (see .cache/qe2e-setup.log); the QEMU guest tests will skip" >&2
  rc=1
fi
# The qemu11-blob-shmem work directory (QEMU 11.1 from trixie-backports run through its own
# trixie loader, the blob-test initramfs), cached in $QE11_WORKDIR (default .cache/qe11).
# It shares the .deb cache with qe2e (QE2E_CACHE) and reuses qe2e's extracted kernel (same
# package; fetch-kernel.sh's fast path accepts the copied kernel.env while its files exist,
# and extracts its own copy otherwise). Cold about 10-20 s with network, warm under 1 s.
W11=${QE11_WORKDIR:-$ROOT/.cache/qe11}
mkdir -p "$W11"
if [ ! -s "$W11/kernel.env" ] && [ -s "$W/kernel.env" ]; then cp "$W/kernel.env" "$W11/kernel.env"; fi
if ! QE2E_CACHE=${QE2E_CACHE:-$W/cache} "$ROOT/tests/e2e/qemu11-blob-shmem/setup.sh" "$W11" > "$ROOT/.cache/qe11-setup.log" 2>&1; then
  echo "setup-deps: qemu11-blob-shmem setup failed (see .cache/qe11-setup.log); the QEMU 11 blob tests will skip" >&2
  rc=1
fi
exit $rc
