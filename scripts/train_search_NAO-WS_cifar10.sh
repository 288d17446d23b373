#!/usr/bin/env bash
# NAO-WS search on CIFAR-10 (the seed's script): searching/nao/train_search.py with the TF
# NAO-WS defaults (ENAS micro supernet, 150 epochs, pool of 1,000, 4 pool updates of 500 new
# architectures + 50 random, the encoder-predictor-decoder trained 1,000 epochs each time).
# The final pool is in $OUT/arch_pool (NAO's format: 40 integers a line, best first; error
# rates in arch_pool.perf) and the top 5 in $OUT/arch_pool.final; train one with
#   FIXED_ARC="$(head -1 $OUT/arch_pool.final)" bash scripts/train_NAONet_B_36_cifar10.sh
#   bash scripts/train_search_NAO-WS_cifar10.sh [search flags]
# Environment: DATA (folder holding cifar-10-batches-py, default ./data), OUT (default
# ./exp/search_cifar10), EPOCHS (default 150), SEED (default 0; -1 = random, printed), DEVICE
# (auto). Extra flags go to the search (e.g. --resume, --train_size 1000 --seed_arch 50
# --new_arch 20 --controller_epochs 50 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./exp/search_cifar10}
echo "NAO-WS search on CIFAR-10, data ${DATA:-./data}, output $OUT"
exec python searching/nao/train_search.py --dataset cifar10 --data "${DATA:-./data}" \
    --save "$OUT" --seed "${SEED:-0}" --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
