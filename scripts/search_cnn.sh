#!/usr/bin/env bash
# The AutoShrink CNN cell search of the paper: 8-node DAG, protocol v3
# (SepConv3x3 / Conv1x1), k = 10 candidates per step, CIFAR-10 proxy (5,000 / 1,000 images).
# Needs: CIFAR-10 under ./data (downloaded if absent) and ideally one GPU (paper: 1.5 GPU-hours).
# Writes ./autoshrink/graph-best (+ .json, .png), logs and plots; retrain the result with
#   python evaluation/cnn/train_cifar.py --graph_path autoshrink/graph-best
#   python evaluation/cnn/build_imagenet.py --graph_path autoshrink/graph-best ...
# Extra flags are passed on (e.g. --resume, --workers 4, --seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
python searching/cnn/autoshrink_cnn.py --model_root ./autoshrink --nodes 8 --depth 3 --width 1 \
    --scale 1 2 4 --pool 1 2 2 --replicate 1 1 1 --protocol v3 --max_steps 10 "$@"
