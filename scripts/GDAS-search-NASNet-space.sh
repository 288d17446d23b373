#!/usr/bin/env bash
# GDAS on the DARTS/NASNet space, as the GDAS seed runs it:
#   bash scripts/GDAS-search-NASNet-space.sh <dataset> <track_running_stats: 0|1> <seed: -1 = random> [flags]
# (add --frc for GDAS-FRC). Environment (DATA, OUT, EPOCHS, DEVICE): see scripts/algos/oneshot.sh.
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: bash $0 <dataset> <track_running_stats 0|1> <seed> [flags]" >&2
    exit 2
fi
DATASET=$1; BN=$2; SEED=$3; shift 3
exec bash "$(dirname "$0")/algos/oneshot.sh" gdas darts "$DATASET" "$SEED" \
    --track_running_stats "$BN" "$@"
