#!/usr/bin/env bash
# AutoShrink versus random search at equal budget (CNN and RNN), several seeds, one harness.
# Each best cell is retrained with one common short recipe; prints a table (mean ± std over
# seeds) and writes runs/compare-{cnn,rnn}/{table.md,compare.png}.
#
# The default scale finishes in about an hour on a 2-core CPU with the shared data
# (CIFAR-10 subset, penn_proxy); pass bigger settings through the variables for real studies.
#   CIFAR=../shared/data/cifar10-subset PTB=../shared/data/penn_proxy bash scripts/compare_search.sh
# Re-running continues an interrupted comparison (finished runs are reused).
set -euo pipefail
cd "$(dirname "$0")/.."
CIFAR=${CIFAR:-./data}
PTB=${PTB:-./data/penn_proxy}
SEEDS=${SEEDS:-"0 1 2"}
OUT=${OUT:-./runs}

echo "== CNN: 4-node cell (6 edges), k=3, 2 epochs on 1,000/200 images; retrain 3 epochs on 5,000/1,000"
python searching/compare.py cnn --seeds $SEEDS --out "$OUT/compare-cnn" --data "$CIFAR" \
    --retrain_epochs 3 -- --nodes 4 --max_steps 3 --epochs 2 --proxy_train 1000 --proxy_val 200 \
    --threads 2

echo "== RNN: 4-node cell (6 edges), k=3, 2 epochs on penn_proxy; retrain 4 epochs"
python searching/compare.py rnn --seeds $SEEDS --out "$OUT/compare-rnn" --data "$PTB" \
    --retrain_epochs 4 -- --nodes 4 --max_steps 3 --epochs 2 --emb_path none --threads 2
