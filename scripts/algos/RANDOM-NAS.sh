#!/usr/bin/env bash
# RSPS (random search with parameter sharing) on the NAS-Bench-201 space, as AutoDL-Projects' RANDOM-NAS.sh runs it:
#   bash scripts/algos/RANDOM-NAS.sh <dataset: cifar10|cifar100|imagefolder> <seed: -1 = random> [flags]
# Environment (DATA, OUT, EPOCHS, DEVICE, BENCHMARK_FILE): see scripts/algos/oneshot.sh.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 <dataset> <seed> [flags]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/oneshot.sh" rsps nas-bench-201 "$@"
