#!/bin/bash
# Boot one guest on QEMU 11.1 (TCG) with vhost-user-test-device-pci posing as virtio-gpu,
# against a vhost-user back-end, run blobtest inside, and collect the evidence.
#
# usage: run.sh WORKDIR OUTDIR
#   WORKDIR  prepared by setup.sh (kernel.env, qemu11.env, initramfs-blob.cpio.gz)
#   OUTDIR   created/emptied: result.txt, serial.log, serial-e2e.txt, backend.log,
#            qemu.log, qemu-cmdline.txt, proxy.log (PROXY=1), scanout*.ppm (default back-end)
# Exit status: 0 pass | 1 blobtest failed or a host/guest CRC differs | 2 usage/setup |
#   3 back-end failed (no socket, or died early) | 4 QEMU exited before the guest
#   finished | 5 timeout (no 'E2E: DONE')
#
# Environment (all optional):
#   BACKEND_CMD  shell command line of the back-end (run with bash -c; GPU_SOCK and OUT
#                are in its environment). It must listen on $GPU_SOCK. Default:
#                python3 vu_gpu_shmem.py -s "$GPU_SOCK" --dump-dir "$OUT" $BACKEND_ARGS
#   BACKEND_ARGS extra arguments for the default back-end (e.g. --shmem-size 0x10000000)
#   BLOB_ARGS    blobtest arguments (default "-u -n 8 -k"; "-x -k" for a back-end without
#                the TEST protocol; see blobtest.c), or GUEST_PROG's arguments
#   GUEST_PROG   the guest program: blobtest (default) or xdomain-wayland (cross-domain
#                Wayland, xdomain-wayland.c; its arguments in BLOB_ARGS, e.g. "-s -w 5")
#   GUEST_PASS   the serial line (grep pattern) that means the guest passed (default
#                'BLOBTEST PASS'; 'XDOMAIN PASS' for xdomain-wayland)
#   DEVICE_OPTS  extra vhost-user-test-device-pci properties (e.g. vq_size=256)
#   CONFIG_SIZE  config space size (default 24), NUM_VQS (default 2)
#   PROXY=1      log every vhost-user message with the recipe's vhost-user-proxy.py too
#   TIMEOUT      seconds to wait for 'E2E: DONE' (default 60);  MEM  guest MiB (default 512)
#   HOST_CRC     require | optional | skip: how the guest's scanout CRCs are compared with
#                the back-end's 'RESULT scanout_blob' log lines. Default: require with the
#                default back-end (it always logs them; a missing line fails), optional with
#                BACKEND_CMD (a missing line is reported, not failed). skip: the caller checks
#                the pixels itself (VirtioGpuHost's C# test, through the compositor).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RECIPE=${RECIPE:-$HERE/../qemu-guest-e2e}
die() { echo "run: $2" >&2; [ -n "${OUT:-}" ] && [ -d "$OUT" ] && printf 'status=FAIL\nexit_code=%s\nreason=%s\n' "$1" "$2" >> "$OUT/result.txt"; exit "$1"; }
[ $# -eq 2 ] || die 2 "usage: run.sh WORKDIR OUTDIR"
W=$(cd "$1" 2>/dev/null && pwd) || die 2 "no WORKDIR $1"
for f in kernel.env qemu11.env initramfs-blob.cpio.gz; do [ -r "$W/$f" ] || die 2 "$W/$f missing: run setup.sh $W"; done
mkdir -p "$2" || die 2 "cannot create $2"
OUT=$(cd "$2" && pwd)
rm -f "$OUT"/*.log "$OUT"/result.txt "$OUT"/serial-e2e.txt "$OUT"/qemu-cmdline.txt "$OUT"/scanout*.ppm
. "$W/kernel.env"; . "$W/qemu11.env"
MEM=${MEM:-512}; TIMEOUT=${TIMEOUT:-60}; PROXY=${PROXY:-0}; BACKEND_WAIT=${BACKEND_WAIT:-30}
BLOB_ARGS=${BLOB_ARGS:--u -n 8 -k}; GUEST_PROG=${GUEST_PROG:-blobtest}; CONFIG_SIZE=${CONFIG_SIZE:-24}; NUM_VQS=${NUM_VQS:-2}
res() { echo "$*" >> "$OUT/result.txt"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b - a}'; }
SD=$(mktemp -d "${TMPDIR:-/tmp}/q11.XXXXXX") || die 2 "mktemp failed"
BPID= QPID= PPID_=
cleanup() {
  [ -n "$BPID" ] && kill -- -"$BPID" 2>/dev/null
  [ -n "$PPID_" ] && kill "$PPID_" 2>/dev/null
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null
  rm -rf "$SD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
QV=$("$QEMU11" --version 2>/dev/null | head -n1) || die 2 "cannot run $QEMU11"
res "qemu=$QV"; res "kernel=$KPKG"; res "blob_args=$BLOB_ARGS"
T0=$(now)

# 1. back-end (socket server), in its own process group
export GPU_SOCK=$SD/gpu.sock OUT
CMD=${BACKEND_CMD:-python3 "$HERE/vu_gpu_shmem.py" -s "\$GPU_SOCK" --dump-dir "\$OUT" ${BACKEND_ARGS:-}}
res "backend=$CMD"
setsid bash -c "$CMD" > "$OUT/backend.log" 2>&1 < /dev/null &
BPID=$!
for _ in $(seq $((BACKEND_WAIT * 20))); do
  [ -S "$GPU_SOCK" ] && break
  kill -0 "$BPID" 2>/dev/null || die 3 "back-end exited before creating its socket (backend.log)"
  sleep 0.05
done
[ -S "$GPU_SOCK" ] || die 3 "back-end did not create its socket within ${BACKEND_WAIT}s"
res "backend_ready_s=$(since "$T0")"
SOCK=$GPU_SOCK
if [ "$PROXY" = 1 ]; then
  python3 "$RECIPE/vhost-user-proxy.py" --once --listen "$SD/proxy.sock" --connect "$GPU_SOCK" --log "$OUT/proxy.log" &
  PPID_=$!
  for _ in $(seq 100); do [ -S "$SD/proxy.sock" ] && break; sleep 0.05; done
  SOCK=$SD/proxy.sock
fi

# 2. QEMU 11 under TCG; the generic vhost-user device poses as virtio-gpu (id 16)
DEV="vhost-user-test-device-pci,id=vgpu,chardev=vgpu,virtio-id=16,num_vqs=$NUM_VQS,config_size=$CONFIG_SIZE"
[ -n "${DEVICE_OPTS:-}" ] && DEV="$DEV,$DEVICE_OPTS"
QCMD=("$QEMU11" -accel tcg -m "$MEM"
  -object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" -machine "q35,memory-backend=mem"
  -nodefaults -no-reboot -display none
  -chardev "socket,id=vgpu,path=$SOCK" -device "$DEV"
  -serial "file:$OUT/serial.log"
  -kernel "${VMLINUX:-$VMLINUZ}" -initrd "$W/initramfs-blob.cpio.gz"
  -append "console=ttyS0 blob.prog=$GUEST_PROG blob.args=$(echo "$BLOB_ARGS" | tr ' ' ',')")
printf '%q ' "${QCMD[@]}" > "$OUT/qemu-cmdline.txt"; echo >> "$OUT/qemu-cmdline.txt"
TQ=$(now)
"${QCMD[@]}" > "$OUT/qemu.log" 2>&1 &
QPID=$!

# 3. wait for the guest
code=5
for _ in $(seq $((TIMEOUT * 10))); do
  grep -q 'E2E: DONE' "$OUT/serial.log" 2>/dev/null && { code=0; break; }
  kill -0 "$QPID" 2>/dev/null || { sleep 0.2; grep -q 'E2E: DONE' "$OUT/serial.log" 2>/dev/null && code=0 || code=4; break; }
  kill -0 "$BPID" 2>/dev/null || { code=3; break; }
  sleep 0.1
done
res "seconds_to_done=$(since "$TQ")"
for _ in $(seq 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done   # guest powers off
if kill -0 "$QPID" 2>/dev/null; then kill "$QPID"; res "qemu_killed=1"; fi
wait "$QPID" 2>/dev/null; res "qemu_exit=$?"; QPID=
for _ in $(seq 20); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
res "total_wall_s=$(since "$T0")"
grep -a 'E2E:' "$OUT/serial.log" | tr -d '\r' > "$OUT/serial-e2e.txt" 2>/dev/null

# 4. verdict
E=$OUT/serial-e2e.txt; B=$OUT/backend.log
res "guest_features=$(grep -m1 -o 'features: .virgl.*host_visible' "$E" | sed 's/features: //') $(grep -m1 -o 'features: .context_init' "$E" | sed 's/features: //')"
res "guest_params=$(grep -m1 'VIRTGPU params' "$E" | sed 's/.*params //')"
res "host_visible_window=$(grep -m1 -o 'Host memory window: .*' "$E" | sed 's/Host memory window: //')"
res "blobtest=$(grep -m1 -o 'BLOBTEST [A-Z]* fails=[0-9]*' "$E")"
[ "$GUEST_PROG" = blobtest ] || res "guest=$GUEST_PROG $(grep -a -m1 -o 'XDOMAIN \(PASS\|FAIL\).*' "$E")"
grep -q "${GUEST_PASS:-BLOBTEST PASS}" "$E" || { [ $code = 0 ] && code=1; }
# the default back-end logs RESULT lines; compare the scanout CRCs on both sides
HOST_CRC=${HOST_CRC:-$([ -z "${BACKEND_CMD:-}" ] && echo require || echo optional)}
res "host_crc=$HOST_CRC"
while read -r kind rid crc; do
  hcrc=$(grep "RESULT scanout_blob .*res=$rid " "$B" 2>/dev/null | tail -n1 | sed 's/.*crc32=//')
  if [ "$HOST_CRC" = skip ]; then res "scanout_${kind}=guest $crc, not compared here (HOST_CRC=skip: the caller checks the pixels)"
  elif [ -z "$hcrc" ] && [ "$HOST_CRC" = require ]; then res "scanout_${kind}=guest $crc, back-end did not log a CRC (required)"; [ $code = 0 ] && code=1
  elif [ -z "$hcrc" ]; then res "scanout_${kind}=guest $crc, back-end did not log a CRC"
  elif [ "$hcrc" = "$crc" ]; then res "scanout_${kind}=match $crc"
  else res "scanout_${kind}=MISMATCH guest $crc host $hcrc"; [ $code = 0 ] && code=1; fi
done < <(sed -n 's/.*RESULT scanout_blob kind=\([a-z0-9]*\) res=\([0-9]*\) .*guest_crc32=\([0-9a-f]*\).*/\1 \2 \3/p' "$E")
grep -q 'RESULT protocol_features_acked' "$B" 2>/dev/null && res "$(grep -m1 -o 'protocol_features_acked=.*' "$B")"
res "shmem_map_ms=$(sed -n 's/.*RESULT shmem_map .* ms=\([0-9.]*\).*/\1/p' "$B" 2>/dev/null | tr '\n' ' ')"
case $code in
  0) res "status=PASS" ;;
  1) res "status=FAIL"; res "reason=blobtest failed or a CRC differs (serial-e2e.txt, backend.log)" ;;
  3) res "status=FAIL"; res "reason=back-end exited before the guest finished (backend.log)" ;;
  4) res "status=FAIL"; res "reason=QEMU exited before the guest finished (qemu.log)" ;;
  5) res "status=FAIL"; res "reason=no 'E2E: DONE' within ${TIMEOUT}s (serial.log)" ;;
esac
res "exit_code=$code"
echo "$( [ $code = 0 ] && echo PASS || echo FAIL) exit=$code done_in=$(sed -n 's/^seconds_to_done=//p' "$OUT/result.txt")s total=$(sed -n 's/^total_wall_s=//p' "$OUT/result.txt")s $(grep -m1 '^blobtest=' "$OUT/result.txt")"
exit "$code"
