#!/usr/bin/env bash
# Reproduces the paper's ImageNet row for ShrinkCNN-B (Swish): 75.1% top-1, 3.6M params, 384M MACs.
# Recipe and needs: see scripts/shrinkcnn_imagenet.sh (ImageNet in ImageFolder layout, GPUs, days).
#   IMAGENET=/data/imagenet NGPU=8 bash scripts/shrinkcnn_b_imagenet.sh [--resume]
VARIANT=b exec bash "$(dirname "$0")/shrinkcnn_imagenet.sh" "$@"
