#!/usr/bin/env bash
# Shared body of the seed's one-shot search scripts (GDAS.sh, DARTS-V1.sh, DARTS-V2.sh, ENAS.sh,
# RANDOM-NAS.sh, SETN.sh, GDAS-search-NASNet-space.sh): runs METHOD's search CLI on SPACE with
# the dataset and seed given, where the user's environment says.
#   bash scripts/algos/oneshot.sh <gdas|darts-v1|darts-v2|rsps|setn|enas> <space> <dataset> <seed> [flags]
# Environment: DATA (dataset folder, default ./data), OUT (output folder, default
# ./runs/<method>-<space>-<dataset>-seed<seed>), EPOCHS (default: the official count; EPOCHS=1
# for a smoke run), DEVICE (auto, cpu, cuda), BENCHMARK_FILE (the NAS-Bench-201 table; default
# ./data/nasbench201/nb201.csv.gz when it exists: each epoch's cell is looked up).
# Extra flags go to the search CLI (e.g. --resume, --train_size 1000). Seed -1 = random, printed.
set -euo pipefail
if [ "$#" -lt 4 ]; then
    echo "usage: bash $0 <gdas|darts-v1|darts-v2|rsps|setn|enas> <space> <dataset> <seed> [flags]" >&2
    exit 2
fi
METHOD=$1; SPACE=$2; DATASET=$3; SEED=$4; shift 4
cd "$(dirname "$0")/../.."
case "$METHOD" in
    gdas) CLI=(searching/gdas/search.py) ;;
    darts-v1) CLI=(searching/darts/train_search.py) ;;
    darts-v2) CLI=(searching/darts/train_search.py --unrolled) ;;
    enas) CLI=(searching/enas/search_nb201.py) ;;
    rsps) CLI=(searching/rsps/search.py) ;;
    setn) CLI=(searching/setn/search.py) ;;
    *) echo "error: unknown method $METHOD (gdas, darts-v1, darts-v2, rsps, setn or enas)" >&2; exit 2 ;;
esac
DATA=${DATA:-./data}
OUT=${OUT:-./runs/$METHOD-$SPACE-$DATASET-seed$SEED}
BENCH=${BENCHMARK_FILE:-./data/nasbench201/nb201.csv.gz}
EXTRA=()
if [ "$SPACE" = "nas-bench-201" ] && [ -f "$BENCH" ]; then
    EXTRA+=(--benchmark_file "$BENCH")
fi
echo "$METHOD on $SPACE, $DATASET, seed $SEED, data $DATA, output $OUT"
exec python "${CLI[@]}" --space "$SPACE" --dataset "$DATASET" --seed "$SEED" --data "$DATA" \
    --save "$OUT" --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} \
    ${EXTRA[@]+"${EXTRA[@]}"} "$@"
