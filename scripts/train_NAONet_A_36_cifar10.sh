#!/usr/bin/env bash
# Train NAONet-A-36 on CIFAR-10 from its fixed_arc (the seed's script; renqianluo/NAO_pytorch
# NAO_V1/train_NAONet_A_36_cifar10.sh): NAO's own network for its 16-op cell (nao space),
# C=36, 6 cells per stage (20 cells), no auxiliary head, cutout 16, and NAO_V1 train_cifar.py's
# recipe: 600 epochs, batch 128, SGD 0.025 momentum 0.9 cosine to 0, weight decay 3e-4 on every
# parameter, dropout keep 0.6 before the classifier, drop-path keep 0.8 (--drop_path 0.2, ramped
# linearly over the epochs as DARTS; NAO also scales it by depth), gradient clip 5.
#   bash scripts/train_NAONet_A_36_cifar10.sh [trainer flags]
# Environment: DATA (folder holding cifar-10-batches-py, default ./data), OUT (default
# ./exp/NAONet_A_36_cifar10), EPOCHS (default 600; EPOCHS=1 for a smoke run), C (36) and LAYERS
# (20 = 3N + 2) for a smaller network, DEVICE (auto, cpu, cuda), FIXED_ARC (default NAONet-A's
# 40 integers; an architecture with ops 5..15). Extra flags go to evaluation/cnn/train_cifar.py
# (e.g. --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
FIXED_ARC=${FIXED_ARC:-"0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7 0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"}
OUT=${OUT:-./exp/NAONet_A_36_cifar10}
echo "NAONet-A (C=${C:-36}, ${LAYERS:-20} cells) on CIFAR-10, output $OUT"
exec python evaluation/cnn/train_cifar.py --fixed_arc "$FIXED_ARC" --data "${DATA:-./data}" \
    --output "$OUT" --C "${C:-36}" --layers "${LAYERS:-20}" --batch_size 128 --lr 0.025 \
    --weight_decay 3e-4 --keep_prob 0.6 --drop_path 0.2 --auxiliary_weight 0 --cutout 16 \
    --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
