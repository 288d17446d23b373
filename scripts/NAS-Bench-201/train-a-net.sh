#!/usr/bin/env bash
# Train one NAS-Bench-201 cell from scratch on CIFAR-10, as GDAS's README does after a search:
#   bash scripts/NAS-Bench-201/train-a-net.sh '<arch string>' <C> <N> [train_cifar.py flags]
#   bash scripts/NAS-Bench-201/train-a-net.sh \
#       '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|' 16 5
# The cell in the benchmark's TinyNetwork (C channels, N cells per stage; the benchmark's own
# network is 16 5) with the benchmark's 200-epoch recipe (evaluation/cnn/train_cifar.py
# --recipe nas-bench-201: SGD 0.1 Nesterov momentum 0.9, cosine to 0, weight decay 5e-4,
# batch 256, crop + flip), trained on the training split and tested on the test split (the
# benchmark's CIFAR-10 "ori-test" accuracy; its own runs used seeds 777, 888 and 999).
# Prints the final test accuracy and the params (the benchmark's count: every parameter).
#
# Environment: DATA (folder holding cifar-10-batches-py, downloaded there if absent; default
# ./data), EPOCHS (default: the recipe's 200; EPOCHS=1 for a smoke run), SEED (default 777),
# OUT (default ./runs/nb201/cell-<checksum>-C<C>-N<N>-seed<SEED>), DEVICE (auto, cpu, cuda).
# Extra flags go to the trainer, e.g. --resume to continue an interrupted run.
set -euo pipefail
if [ "$#" -lt 3 ]; then
    echo "usage: bash $0 '<NAS-Bench-201 arch string>' <channels C> <cells per stage N> [flags]" >&2
    exit 2
fi
ARCH=$1; C=$2; N=$3; shift 3
cd "$(dirname "$0")/../.."
DATA=${DATA:-./data}
SEED=${SEED:-777}
TAG=$(printf '%s' "$ARCH" | cksum | cut -d' ' -f1)
OUT=${OUT:-./runs/nb201/cell-$TAG-C$C-N$N-seed$SEED}
echo "NAS-Bench-201 cell $ARCH, C=$C N=$N, seed $SEED, data $DATA, output $OUT"

python evaluation/cnn/train_cifar.py --arch "$ARCH" --recipe nas-bench-201 --C "$C" --N "$N" \
    --data "$DATA" --output "$OUT" --seed "$SEED" --device "${DEVICE:-auto}" \
    ${EPOCHS:+--epochs "$EPOCHS"} "$@"

python - "$OUT" "$ARCH" <<'PY'
import json, sys
out, arch = sys.argv[1:3]
final = json.load(open(f"{out}/final_metrics.json"))
print(f"{arch}: test accuracy {final['top1']:.2f}% after {final['epoch']} epochs, "
      f"params {final['complexity']['params'] / 1e6:.6f}M, "
      f"train {final['train_seconds']:.0f}s ({out}/final_metrics.json)")
PY
