#!/usr/bin/env bash
# DARTS-V2 on the NAS-Bench-201 space, as the GDAS seed runs it:
#   bash scripts/algos/DARTS-V2.sh <dataset: cifar10|cifar100|imagefolder> <seed: -1 = random> [flags]
# Environment (DATA, OUT, EPOCHS, DEVICE, BENCHMARK_FILE): see scripts/algos/oneshot.sh.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 <dataset> <seed> [flags]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/oneshot.sh" darts-v2 nas-bench-201 "$@"
