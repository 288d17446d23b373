#!/usr/bin/env bash
# ShrinkCNN on ImageNet, shared by shrinkcnn_a_imagenet.sh (ReLU) and shrinkcnn_b_imagenet.sh (Swish):
# VARIANT=a|b picks the row. Paper: A 73.9% / B 75.1% top-1, 3.6M params, 384M MACs.
# Recipe: 300 epochs (10 warm-up), TF-style RMSProp, lr 0.05 per 128 images, EMA 0.999,
# label smoothing 0.1, random erasing 0.5; the model is the ShrinkCNN cell in the paper's
# network (build_imagenet.py below prints 3.601M params / 383.7M MACs).
#
# Needs: ImageNet-1k in ImageFolder layout ($IMAGENET/train/<wnid>/*.JPEG, $IMAGENET/val/<wnid>/*),
#        NGPU CUDA GPUs (default: all visible; a global batch of 2048 = 8 x 256 fits 80 GB
#        GPUs easily), several days of GPU time. Extra flags go to the trainer, e.g. --resume
#        to continue an interrupted run, --batch_size 128 on smaller GPUs.
#   IMAGENET=/data/imagenet NGPU=8 bash scripts/shrinkcnn_a_imagenet.sh [--resume]   (or _b_)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGENET=${IMAGENET:?set IMAGENET=/path/to/imagenet (with train/ and val/ class folders)}
NGPU=${NGPU:-$(nvidia-smi -L | wc -l)}
VARIANT=${VARIANT:?set VARIANT=a or b (use shrinkcnn_a_imagenet.sh / shrinkcnn_b_imagenet.sh)}
case "$VARIANT" in
    a) ACT=relu; NAME="ShrinkCNN-A (ReLU)"; PAPER=73.9 ;;
    b) ACT=swish; NAME="ShrinkCNN-B (Swish)"; PAPER=75.1 ;;
    *) echo "error: VARIANT must be a or b" >&2; exit 2 ;;
esac
OUT=${OUT:-./runs/shrinkcnn-$VARIANT}
mkdir -p "$OUT"

python evaluation/cnn/build_imagenet.py --graph_path shrinkcnn-$VARIANT --scale 0.5 1 2 4 8 \
    --channel_scale 1.4 --replicate 1 3 4 6 4 --pool_size 1 2 2 2 2 --use_residual \
    --image_size 224 --activation "$ACT" --regularizer 4e-5 --out "$OUT/model_spec.json"

torchrun --standalone --nproc_per_node "$NGPU" evaluation/cnn/train_imagenet.py \
    --model_spec "$OUT/model_spec.json" --data "$IMAGENET" --output "$OUT" \
    --epochs 300 --warmup_epochs 10 --batch_size 256 --lr 0.05 --ema_decay 0.999 \
    --label_smoothing 0.1 --workers 10 "$@"

python evaluation/cnn/validate.py --checkpoint "$OUT/last.pt" --ema --data "$IMAGENET" \
    --out "$OUT/val_ema.json"
python - "$OUT" "$NAME" "$PAPER" <<'PY'
import json, sys
out, name, paper = sys.argv[1:4]
final = json.load(open(f"{out}/final_metrics.json"))
ema = json.load(open(f"{out}/val_ema.json"))
c = final["complexity"]
print("| model | top-1 (paper) | top-1 EMA (ours) | top-1 raw (ours) | params M | MACs M |")
print(f"| {name} | {paper} | {ema['top1']:.1f} | {final.get('top1', float('nan')):.1f} | "
      f"{c['params'] / 1e6:.2f} | {c['macs'] / 1e6:.0f} |")
PY
