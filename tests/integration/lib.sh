# Shared set-up of the integration tests, sourced by each tests/integration/NAME.sh after
# `set -euo pipefail`; its arguments are the script's: DPTRAIN CKPT_DIFF.
# Provides DPTRAIN, CKPT_DIFF, CONFIGS, CONFIG (the small synthetic config), TMP (removed on
# exit), MPIRUN (as root, oversubscribed, no CMA so it works in containers), fail, and finish.

TEST_NAME=$(basename "$0" .sh)
DPTRAIN=$(realpath "$1")
CKPT_DIFF=$(realpath "$2")
CONFIGS=$(cd "$(dirname "$0")/../configs" && pwd)
CONFIG=$CONFIGS/synthetic_small.yaml
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dpt_$TEST_NAME.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none)

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Ends the test: non-zero when any check failed.
finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$TEST_NAME: $failures check(s) failed" >&2
        exit 1
    fi
    echo "$TEST_NAME: all checks passed"
}
