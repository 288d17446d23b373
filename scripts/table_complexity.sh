#!/usr/bin/env bash
# Reproduces the #Parameters / #Multiply-Accumulates columns of the paper's tables:
#   ShrinkCNN-A/B: 3.6M params (BN excluded), 384M MACs at 224x224; ShrinkRNN: 24M params.
# Needs: nothing but the installed package (CPU, a few seconds; no dataset, no GPU).
# Accuracy/perplexity columns need training: scripts/shrinkcnn_{a,b}_imagenet.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python evaluation/complexity_table.py
