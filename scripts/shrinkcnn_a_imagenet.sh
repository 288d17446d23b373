#!/usr/bin/env bash
# Reproduces the paper's ImageNet row for ShrinkCNN-A (ReLU): 73.9% top-1, 3.6M params, 384M MACs.
# Recipe and needs: see scripts/shrinkcnn_imagenet.sh (ImageNet in ImageFolder layout, GPUs, days).
#   IMAGENET=/data/imagenet NGPU=8 bash scripts/shrinkcnn_a_imagenet.sh [--resume]
VARIANT=a exec bash "$(dirname "$0")/shrinkcnn_imagenet.sh" "$@"
