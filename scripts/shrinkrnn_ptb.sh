#!/usr/bin/env bash
# Reproduces the paper's ShrinkRNN row on Penn Treebank: 58.5 valid / 56.5 test perplexity,
# 24M params (ours counts 23.0M: 10k words, emsize = nhid = 745, tied decoder, 12 edges).
# Recipe (evaluation/rnn/train.py defaults, DARTS' final RNN training): batch 64, SGD lr 20 ->
# ASGD by the non-monotone rule (nonmono 5), clip 0.25, random bptt ~35, dropouts 0.75 / 0.25 /
# 0.75 / 0.2 / 0.1, TAR 1e-3, weight decay 8e-7, 3000 epochs; test perplexity with batch 1.
#
# Needs: full PTB at data/penn ({train,valid,test}.txt = Mikolov's ptb.*.txt, see
#        data/README.md), one CUDA GPU, and days of GPU time (3000 epochs; DARTS reports about
#        3 GPU-days for a cell of this size). Extra flags go to the trainer, e.g. --resume to
#        continue an interrupted run, --epochs N for a shorter one, --graph_path
#        search-rnn/graph-best to train your own search's cell.
#   bash scripts/shrinkrnn_ptb.sh [--resume]          (DATA=... OUT=... to change folders)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-./data/penn}
OUT=${OUT:-./runs/shrinkrnn}
for split in train valid test; do
    if [ ! -f "$DATA/$split.txt" ]; then
        echo "error: $DATA/$split.txt not found: put the full PTB there (see data/README.md)" >&2
        exit 2
    fi
done
if ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "warning: no CUDA GPU here: 3000 epochs of a 23M-parameter LM take months on a CPU" >&2
fi

python evaluation/rnn/train.py --graph_path shrinkrnn --data "$DATA" --output "$OUT" "$@"
python evaluation/rnn/test.py --checkpoint "$OUT" --data "$DATA" --out "$OUT/test.json"
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
final = json.load(open(f"{out}/final_metrics.json"))
test = json.load(open(f"{out}/test.json"))
print("| model | valid ppl (paper) | valid ppl (ours) | test ppl (paper) | test ppl (ours) "
      "| params M (paper) | params M (ours) |")
print("|---|---|---|---|---|---|---|")
print(f"| ShrinkRNN | 58.5 | {test['valid']['ppl']:.1f} | 56.5 | {test['test']['ppl']:.1f} | 24 | "
      f"{final['params'] / 1e6:.1f} |")
print(f"(best epoch {final['best_epoch']} of {final['epochs']}, ASGD from epoch "
      f"{final['asgd_epoch'] or 'never'})")
PY
