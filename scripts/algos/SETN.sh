#!/usr/bin/env bash
# SETN on the NAS-Bench-201 space, as AutoDL-Projects' SETN.sh runs it:
#   bash scripts/algos/SETN.sh <dataset: cifar10|cifar100|imagefolder> <seed: -1 = random> [flags]
# Environment (DATA, OUT, EPOCHS, DEVICE, BENCHMARK_FILE): see scripts/algos/oneshot.sh.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 <dataset> <seed> [flags]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/oneshot.sh" setn nas-bench-201 "$@"
