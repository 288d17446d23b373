#!/usr/bin/env bash
# NAS-Bench-201 as a tabular benchmark: every discrete method (rs, rea, reinforce,
# shrink) RUNS times, seeds 0..RUNS-1, on BUDGET distinct queries per search; prints mean ± std
# of the found cell's 200-epoch test accuracy per dataset next to the paper's Table 5 rows.
# With WS_RUNS > 0 it also runs the weight-sharing searches (rsps, darts-v1, darts-v2, gdas,
# setn, enas) as a resumable sweep, WS_RUNS seeds per method and dataset, and adds their rows.
#   RUNS=100 BUDGET=100 DATASETS="cifar10 cifar100 imagenet16" bash scripts/table_nasbench201.sh
#   WS_RUNS=3 WS_METHODS="darts-v1 gdas" WS_DATA=./data WS_JOBS=2 bash scripts/table_nasbench201.sh
# Environment: RUNS (100), BUDGET (100), DATASETS ("cifar10 cifar100 imagenet16"),
# BENCHMARK_FILE (default ./data/nasbench201/nb201.csv.gz, else ../shared/data/nasbench201/
# nb201.csv.gz next to the repository), OUT (JSON results, default runs/nasbench201_table.json;
# the plots are written next to it: .png, and with weight-sharing rows _ws.png and _cells.png).
# Weight sharing: WS_RUNS (searches per method and dataset; 0 = none, the default), WS_METHODS
# (default all six), WS_DATASETS (default: cifar10 and cifar100 where in DATASETS), WS_EPOCHS
# and WS_TRAIN_SIZE (default: each method's own, the paper's), WS_DATA (dataset folder, ./data),
# WS_DEVICE (auto), WS_FLAGS (more flags for every search CLI), WS_JOBS (searches at a time, 1),
# WS_THREADS (CPU threads per search; 0 = default), WS_ROOT (sweep folder, default <OUT
# stem>_ws), RAY=1 or RAY_ADDRESS (one Ray task per search), WS_FOLDERS (finished search folders,
# or folders of them, added as rows too). Run it again after an interruption: finished searches
# are kept, interrupted ones resume.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCHMARK_FILE:-}
if [ -z "$BENCH" ]; then
    BENCH=./data/nasbench201/nb201.csv.gz
    if [ ! -e "$BENCH" ] && [ -e ../shared/data/nasbench201/nb201.csv.gz ]; then
        BENCH=../shared/data/nasbench201/nb201.csv.gz
    fi
fi
OUT=${OUT:-runs/nasbench201_table.json}
if ! [[ "${WS_RUNS:-0}" =~ ^[0-9]+$ ]]; then
    echo "error: WS_RUNS is the number of searches per weight-sharing method (got '$WS_RUNS');" \
        "finished search folders go in WS_FOLDERS" >&2
    exit 2
fi
mkdir -p "$(dirname "$OUT")"
WS=(--ws_runs "${WS_RUNS:-0}" --ws_data "${WS_DATA:-./data}" --ws_device "${WS_DEVICE:-auto}"
    --ws_jobs "${WS_JOBS:-1}" --ws_threads "${WS_THREADS:-0}")
# shellcheck disable=SC2206  # the WS_* lists are space-separated
[ -n "${WS_METHODS:-}" ] && WS+=(--ws_methods $WS_METHODS)
# shellcheck disable=SC2206
[ -n "${WS_DATASETS:-}" ] && WS+=(--ws_datasets $WS_DATASETS)
[ -n "${WS_EPOCHS:-}" ] && WS+=(--ws_epochs "$WS_EPOCHS")
[ -n "${WS_TRAIN_SIZE:-}" ] && WS+=(--ws_train_size "$WS_TRAIN_SIZE")
[ -n "${WS_FLAGS:-}" ] && WS+=(--ws_flags "$WS_FLAGS")
[ -n "${WS_ROOT:-}" ] && WS+=(--ws_root "$WS_ROOT")
[ "${RAY:-0}" = 1 ] && WS+=(--ray)
# shellcheck disable=SC2206
[ -n "${WS_FOLDERS:-}" ] && WS+=(--ws_folders $WS_FOLDERS)
# shellcheck disable=SC2086  # DATASETS is a space-separated list
exec python searching/nasbench201/table.py --benchmark_file "$BENCH" --out "$OUT" \
    --runs "${RUNS:-100}" --budget "${BUDGET:-100}" \
    --datasets ${DATASETS:-cifar10 cifar100 imagenet16} "${WS[@]}"
