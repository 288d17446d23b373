#!/usr/bin/env bash
# Train NAONet-A-128 on CIFAR-10 with 4 processes (the seed's script; renqianluo/NAO_pytorch
# NAO_V1/train_NAONet_A_128_cifar10_4cards.sh, which used DataParallel on 4 GPUs): torchrun,
# DDP (NCCL on GPUs, gloo on CPU), the global batch of 128 split over the processes; NAO's
# network at C=128, 20 cells, no auxiliary head, cutout 16, weight decay 5e-4, dropout keep 0.6,
# drop-path keep 0.7 (--drop_path 0.3); otherwise as train_NAONet_A_36_cifar10.sh (600 epochs,
# SGD 0.025 cosine, clip 5).
#   bash scripts/train_NAONet_A_128_cifar10_4cards.sh [trainer flags]
# Environment: NPROC (processes, default 4; 1 runs without torchrun), DATA (default ./data),
# OUT (default ./exp/NAONet_A_128_cifar10), EPOCHS (600), C (128), LAYERS (20), DEVICE (auto:
# each process its own GPU, else the CPU), FIXED_ARC (default NAONet-A's). Extra flags go to
# evaluation/cnn/train_cifar.py.
set -euo pipefail
cd "$(dirname "$0")/.."
FIXED_ARC=${FIXED_ARC:-"0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7 0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"}
OUT=${OUT:-./exp/NAONet_A_128_cifar10}
NPROC=${NPROC:-4}
RUN=(python)
[ "$NPROC" -gt 1 ] && RUN=(torchrun --standalone --nproc_per_node "$NPROC")
echo "NAONet-A (C=${C:-128}, ${LAYERS:-20} cells) on CIFAR-10, $NPROC process(es), output $OUT"
exec "${RUN[@]}" evaluation/cnn/train_cifar.py --fixed_arc "$FIXED_ARC" \
    --data "${DATA:-./data}" --output "$OUT" --C "${C:-128}" --layers "${LAYERS:-20}" \
    --batch_size 128 --lr 0.025 --weight_decay 5e-4 --keep_prob 0.6 --drop_path 0.3 \
    --auxiliary_weight 0 --cutout 16 --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
