#!/usr/bin/env bash
# NAS-Bench-201 as a tabular benchmark: every discrete method (rs, rea, reinforce,
# shrink) RUNS times, seeds 0..RUNS-1, on BUDGET distinct queries per search; prints mean ± std
# of the found cell's 200-epoch test accuracy per dataset next to the paper's Table 5 rows.
#   RUNS=100 BUDGET=100 DATASETS="cifar10 cifar100 imagenet16" bash scripts/table_nasbench201.sh
# Environment: RUNS (100), BUDGET (100), DATASETS ("cifar10 cifar100 imagenet16"),
# BENCHMARK_FILE (default ./data/nasbench201/nb201.csv.gz, else ../shared/data/nasbench201/
# nb201.csv.gz next to the repository), OUT (JSON results, default runs/nasbench201_table.json;
# the plot is written next to it as .png), WS_RUNS (folders of DARTS/GDAS/ENAS searches run with
# --benchmark_file, or folders of such folders: added as rows).
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
mkdir -p "$(dirname "$OUT")"
# shellcheck disable=SC2086  # DATASETS and WS_RUNS are space-separated lists
exec python searching/nasbench201/table.py --benchmark_file "$BENCH" --out "$OUT" \
    --runs "${RUNS:-100}" --budget "${BUDGET:-100}" \
    --datasets ${DATASETS:-cifar10 cifar100 imagenet16} ${WS_RUNS:+--ws_runs $WS_RUNS}
