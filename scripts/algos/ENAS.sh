#!/usr/bin/env bash
# ENAS on the NAS-Bench-201 space, as AutoDL-Projects runs it (its ENAS.sh settings):
#   bash scripts/algos/ENAS.sh <dataset: cifar10|cifar100|imagefolder> <seed: -1 = random> [flags]
# Environment (DATA, OUT, EPOCHS, DEVICE, BENCHMARK_FILE): see scripts/algos/oneshot.sh.
# AutoDL's script also takes the BN flag: pass --track_running_stats 0 for its BN0.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 <dataset> <seed> [flags]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/oneshot.sh" enas nas-bench-201 "$@"
