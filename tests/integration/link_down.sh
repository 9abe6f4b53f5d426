#!/usr/bin/env bash
# A cut link on the emulated cluster: 2 "machines" x 1 rank train on the CPU; once a checkpoint
# exists, machine 1's link is taken down mid-training. dptrain's watchdog on rank 0 must name
# rank 1 (h1) as the rank that did not arrive, its host not answering, and the job must end within run.comm_timeout_s +
# 15 s, non-zero, with the last checkpoint intact (loaded, CRC and all, by ckpt_diff).
# mpirun cannot deliver an abort to a daemon behind a cut link (it retransmits for minutes), so
# the watchdog waits and the job ends through Open MPI's keepalive noticing the lost daemon; the
# run is given keepalive settings as the job scripts set them (docs/faults.md: a cut link),
# scaled to this test's 3 s timeout: the launcher notices after about 10 s, after the watchdog
# has named the rank (about 7 s).
#   usage: link_down.sh DPTRAIN CKPT_DIFF   (needs root and network namespaces; else 77)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=netns_lib.sh
source "$(dirname "$0")/netns_lib.sh" l

TIMEOUT_S=3
BOUND_S=$((TIMEOUT_S + 15))
export DPT_TEST_STEP_SLEEP_US=1000 # epochs of about 2 s: the cut lands in a step's allreduce
out=$TMP/run err=$TMP/run.err
"$EMU" run -n 2 --slots 1 -- --mca oob_tcp_keepalive_time 4 --mca oob_tcp_keepalive_intvl 2 \
    --mca oob_tcp_keepalive_probes 3 -np 2 -x DPT_TEST_STEP_SLEEP_US \
    "$DPTRAIN" train "$CONFIG" --out "$out" --device cpu --set data.synthetic_train=100000 \
    --set train.epochs=1000 --set run.comm_timeout_s=$TIMEOUT_S >"$TMP/run.out" 2>"$err" &
launcher=$!
for _ in $(seq 1 900); do # a checkpoint first (up to 90 s), so there is one to keep intact
    [ -s "$out/checkpoint.bin" ] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$out/checkpoint.bin" ]; then
    kill "$launcher" 2>/dev/null || true
    wait "$launcher" || true
    fail "no checkpoint before the cut; stderr:"
    sed 's/^/    /' "$err" >&2
    finish
fi
sleep 0.5 # into the next epoch
ip netns exec "$PREFIX-m1" ip link set eth0 down
t0=$(date +%s)
if ! ends_within "$launcher" "$BOUND_S"; then
    fail "the job still runs ${BOUND_S} s after machine 1's link went down"
    pkill -KILL -f "mpirun.*$PREFIX" 2>/dev/null || true
fi
rc=0
wait "$launcher" || rc=$?
echo "job ended $(($(date +%s) - t0)) s after the cut with exit $rc; its messages:"
grep -E "watchdog|ORTE" "$err" | sed 's/^/    /' || true

[ "$rc" -ne 0 ] || fail "the job whose link was cut exited 0"
grep -q "\[rank 0 h0\] watchdog: gradient allreduce of step [0-9]* not done after" "$err" ||
    fail "rank 0 did not say what it waits for"
grep -q "watchdog: rank 1 (h1: its host does not answer) did not arrive" "$err" ||
    fail "the message does not name rank 1 (h1) as the one that did not arrive, host silent"
"$CKPT_DIFF" "$out/checkpoint.bin" "$out/checkpoint.bin" --bitwise >/dev/null ||
    fail "the last checkpoint does not load (ckpt_diff)"
finish
