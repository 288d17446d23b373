#!/usr/bin/env bash
# Train NAONet-A on ImageNet (the seed's script; renqianluo/NAO_pytorch
# NAO_V1/train_NAONet_A_imagenet.sh): NAO's ImageNet network for the 16-op cell, C=42 (the
# official script's --channels=42), 14 cells, auxiliary head, batch 128 and lr 0.1 per process;
# on N processes the global batch is 128*N and the lr 0.1*N, as the seed's README says
# (train_imagenet.py takes the batch per process and the lr per 128 images and scales it by
# the global batch). Recipe otherwise DARTS's mobile setting, which NAO_V1 train_imagenet.py
# shares: 250 epochs, SGD momentum 0.9, lr x0.97 per epoch, label smoothing 0.1, auxiliary
# weight 0.4, weight decay 3e-5, clip 5.
#   DATA=/path/to/imagenet bash scripts/train_NAONet_A_imagenet.sh [trainer flags]
# Environment: DATA (ImageFolder root with train/ and val/, required), NPROC (processes under
# torchrun, default 1), OUT (default ./exp/NAONet_A_imagenet), EPOCHS (250), C (42), LAYERS
# (14), DEVICE (auto), FIXED_ARC (default NAONet-A's). Extra flags go to
# evaluation/cnn/train_imagenet.py (e.g. --image_size 64 --workers 2 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA=/path/to/imagenet (with train/ and val/ class folders)}
FIXED_ARC=${FIXED_ARC:-"0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7 0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"}
OUT=${OUT:-./exp/NAONet_A_imagenet}
NPROC=${NPROC:-1}
RUN=(python)
[ "$NPROC" -gt 1 ] && RUN=(torchrun --standalone --nproc_per_node "$NPROC")
echo "NAONet-A (C=${C:-42}, ${LAYERS:-14} cells) on ImageNet, $NPROC process(es): global batch $((128 * NPROC)), lr $(python -c "print(0.1 * $NPROC)"), output $OUT"
exec "${RUN[@]}" evaluation/cnn/train_imagenet.py --fixed_arc "$FIXED_ARC" --data "$DATA" \
    --output "$OUT" --C "${C:-42}" --layers "${LAYERS:-14}" --batch_size 128 --lr 0.1 \
    --auxiliary_weight 0.4 --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
