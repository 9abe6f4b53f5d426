# Shared set-up of the tests on the emulated cluster (scripts/emulate_cluster.sh), sourced after
# lib.sh: skips (exit 77) where network namespaces cannot be made, gives the test a cluster prefix
# of its own (its pid), removes clusters of earlier runs of it that were killed outright, and takes
# its cluster down on exit. Usage: source netns_lib.sh TAG   (TAG: a letter per test)
EMU=$(cd "$(dirname "$0")/../../scripts" && pwd)/emulate_cluster.sh

skip() {
    echo "$TEST_NAME: skipped: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
ip netns list >/dev/null 2>&1 || skip "no 'ip netns' (package iproute2)"
command -v tc >/dev/null || skip "no tc (package iproute2)"
unshare --net --uts true 2>/dev/null || skip "cannot create network/UTS namespaces here"

# A prefix of this test alone (its pid), so that it neither sees nor removes the cluster of a user
# or of another test running at the same time.
PREFIX=dptemu-$1$$
export DPTEMU_PREFIX=$PREFIX
# A run of this test killed outright (SIGKILL, e.g. a ctest timeout) cannot run its trap: remove
# clusters of earlier runs whose process is gone.
for stale in $(ip netns list | awk '{print $1}' |
    sed -nE "s/^dptemu-$1([0-9]+)-(m[0-9]+|net|head)\$/\\1/p" | sort -u); do
    if ! kill -0 "$stale" 2>/dev/null; then
        echo "note: removing the cluster of an earlier run (pid $stale, gone)"
        "$EMU" down --prefix "dptemu-$1$stale" >/dev/null 2>&1 || true
    fi
done
trap '"$EMU" down >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
