#!/usr/bin/env bash
# The randomized simulation over many seeds (tests/e2e/test_simulation.py); CI runs only a few.
#   scripts/soak.sh                 200 seeds, 60 simulated days each
#   scripts/soak.sh 50 30           50 seeds, 30 days
#   scripts/soak.sh 17,42 60        the given seeds; "17," for one (to replay a failure)
# Extra arguments go to pytest (e.g. -x to stop at the first failing seed).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-200}"
days="${2:-60}"
shift $(( $# < 2 ? $# : 2 ))
PAT_WATCHDOG_SIM_SEEDS="$seeds" PAT_WATCHDOG_SIM_DAYS="$days" \
    exec .venv/bin/python -m pytest -q -p no:cacheprovider --show-capture=no tests/e2e/test_simulation.py "$@"
