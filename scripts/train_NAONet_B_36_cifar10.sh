#!/usr/bin/env bash
# Train NAONet-B-36 (the cell NAO-WS found) on CIFAR-10 from its fixed_arc, or any ENAS/NAO
# micro architecture a search wrote (the seed's script; renqianluo/NAO_pytorch
# NAO_V1/train_NAONet_B_36_cifar10.sh): C=36, 20 cells, auxiliary head (weight 0.4), cutout 16,
# batch 128; NAO_V1 train_cifar.py's recipe otherwise: 600 epochs, SGD 0.025 momentum 0.9 cosine
# to 0, weight decay 3e-4, drop-path 0.2 (keep 0.8), clip 5. A 5-op cell (ops 0..4) is built in
# DARTS's NetworkCIFAR (the enas-micro space's network: NAO_pytorch's parameter count, no
# dropout before the classifier); a 16-op cell in NAO's own network.
#   bash scripts/train_NAONet_B_36_cifar10.sh [trainer flags]
#   FIXED_ARC="$(head -1 exp/search_cifar10/arch_pool.final)" \
#       bash scripts/train_NAONet_B_36_cifar10.sh
# Environment: FIXED_ARC (default NAONet-B's 40 integers), DATA (default ./data), OUT (default
# ./exp/NAONet_B_36_cifar10), EPOCHS (600; EPOCHS=1 for a smoke run), C (36), LAYERS (20),
# DEVICE (auto). Extra flags go to evaluation/cnn/train_cifar.py.
set -euo pipefail
cd "$(dirname "$0")/.."
FIXED_ARC=${FIXED_ARC:-"0 1 0 2 0 1 2 2 1 3 0 2 4 0 1 3 2 1 0 3 1 1 1 0 2 1 2 4 1 0 2 3 3 1 2 2 0 2 0 2"}
OUT=${OUT:-./exp/NAONet_B_36_cifar10}
echo "fixed_arc $FIXED_ARC (C=${C:-36}, ${LAYERS:-20} cells) on CIFAR-10, output $OUT"
exec python evaluation/cnn/train_cifar.py --fixed_arc "$FIXED_ARC" --data "${DATA:-./data}" \
    --output "$OUT" --C "${C:-36}" --layers "${LAYERS:-20}" --batch_size 128 --lr 0.025 \
    --weight_decay 3e-4 --drop_path 0.2 --auxiliary_weight 0.4 --cutout 16 \
    --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
