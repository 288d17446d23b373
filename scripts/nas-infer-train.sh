#!/usr/bin/env bash
# Train a published (zoo) architecture from scratch, as GDAS's README does:
#   bash scripts/nas-infer-train.sh <dataset> <preset> <batch size> <seed> [trainer flags]
#   bash scripts/nas-infer-train.sh cifar10 GDAS_V1 96 -1
# dataset: cifar10 or cifar100 (evaluation/cnn/train_cifar.py), imagenet-1k or imagenet
# (evaluation/cnn/train_imagenet.py on an ImageFolder, NGPU processes under torchrun; the batch
# size is the global one, split over the processes). preset: a zoo CNN preset (gdas-v1,
# darts-v2, nasnet-a, ...; GDAS's spelling is accepted: GDAS_V1 = gdas-v1, DARTS_V2 =
# darts-v2), or any --arch the trainers take. seed: -1 draws a random one (printed).
# Recipe: the trainer's default for the preset's space; for DARTS-family cells DARTS's:
# CIFAR NetworkCIFAR (C=36, 20 cells, auxiliary head) 600 epochs SGD 0.025 cosine, weight decay
# 3e-4, cutout 16, drop-path 0.2, auxiliary weight 0.4; ImageNet NetworkImageNet (C=48, 14
# cells) 250 epochs SGD 0.1 x0.97 per epoch, label smoothing 0.1. (GDAS's own script trained
# with AutoDL's NAS-CIFAR.config instead: 5 warm-up + 295 cosine epochs, Nesterov, weight decay
# 5e-4; pass those flags to reproduce it.) Prints the final test accuracy and the params.
#
# Environment: DATA (CIFAR: folder holding cifar-10-batches-py / cifar-100-python, default
# ./data; ImageNet: the ImageFolder root), EPOCHS (default: the recipe's; EPOCHS=1 for a smoke
# run), OUT (default ./runs/nas-infer/<dataset>-<preset>-<batch>), DEVICE (auto), NGPU
# (ImageNet processes; default: the visible GPUs, at least 1). Extra flags go to the trainer,
# e.g. --C 16 --layers 8 for a small network, --resume to continue an interrupted run.
set -euo pipefail
if [ "$#" -lt 4 ]; then
    echo "usage: bash $0 <cifar10|cifar100|imagenet-1k> <preset> <batch size> <seed|-1> [flags]" >&2
    exit 2
fi
DATASET=$1; PRESET=$2; BATCH=$3; SEED=$4; shift 4
cd "$(dirname "$0")/.."
if [ -e "$PRESET" ]; then
    ARCH=$PRESET  # a file a search wrote
else
    ARCH=$(printf '%s' "$PRESET" | tr 'A-Z_' 'a-z-')  # GDAS_V1 -> gdas-v1
fi
if [ "$SEED" = "-1" ]; then
    SEED=$(( (RANDOM << 15) | RANDOM ))
    echo "seed: $SEED (drawn at random for seed -1)"
fi
OUT=${OUT:-./runs/nas-infer/$DATASET-$ARCH-$BATCH}
echo "$ARCH on $DATASET, batch $BATCH, seed $SEED, output $OUT"

case "$DATASET" in
    cifar10|cifar100)
        python evaluation/cnn/train_cifar.py --dataset "$DATASET" --arch "$ARCH" \
            --batch_size "$BATCH" --seed "$SEED" --data "${DATA:-./data}" --output "$OUT" \
            --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
        ;;
    imagenet|imagenet-1k)
        DATA=${DATA:?set DATA=/path/to/imagenet (with train/ and val/ class folders)}
        if [ -z "${NGPU:-}" ]; then
            NGPU=$( (nvidia-smi -L 2>/dev/null || true) | wc -l)
            [ "$NGPU" -ge 1 ] || NGPU=1
        fi
        if [ $((BATCH % NGPU)) -ne 0 ]; then
            echo "error: batch size $BATCH does not split over $NGPU processes" >&2
            exit 2
        fi
        RUN=(python)
        [ "$NGPU" -gt 1 ] && RUN=(torchrun --standalone --nproc_per_node "$NGPU")
        "${RUN[@]}" evaluation/cnn/train_imagenet.py --arch "$ARCH" \
            --batch_size $((BATCH / NGPU)) --seed "$SEED" --data "$DATA" --output "$OUT" \
            --device "${DEVICE:-auto}" ${EPOCHS:+--epochs "$EPOCHS"} "$@"
        ;;
    *)
        echo "error: unknown dataset $DATASET (cifar10, cifar100, imagenet-1k)" >&2
        exit 2
        ;;
esac

python - "$OUT" "$ARCH" "$DATASET" <<'PY'
import json, sys
out, arch, dataset = sys.argv[1:4]
final = json.load(open(f"{out}/final_metrics.json"))
split = "val" if dataset.startswith("imagenet") else "test"
print(f"{arch} on {dataset}: {split} accuracy {final['top1']:.2f}% after {final['epoch']} "
      f"epochs, params {final['complexity']['params'] / 1e6:.6f}M (auxiliary head not "
      f"counted), train {final['train_seconds']:.0f}s ({out}/final_metrics.json)")
PY
