#!/usr/bin/env bash
# The AutoShrink RNN cell search of the paper: 6-node DAG, k = 10 candidates per
# step, each a 100-unit LM trained for up to 10 epochs on the PTB proxy (4,000 / 300 / 300 lines).
# Needs: data/penn_proxy (made here from the full PTB at data/penn when absent) and ideally
# one GPU (paper: 1.5 GPU-hours; with --workers 6 one H100 ran it in 167 s). Word vectors: with
# GLOVE=path/to/glove.6B.100d.txt (the paper's setting) it makes searching/rnn/w2v.pkl from them;
# without, it initialises the embedding at random (--emb_path none), which measured better than
# Word2Vec vectors trained offline on the 88k-token proxy (README, "RNN perplexity").
# Writes ./search-rnn/graph-best (+ .json, .png), candidates.jsonl, logs and plots; retrain it with
#   bash scripts/shrinkrnn_ptb.sh --graph_path search-rnn/graph-best   (OUT=runs/my-rnn)
# Extra flags are passed on (e.g. --resume, --seed 1, --save DIR, --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f data/penn_proxy/train.txt ]; then
    python searching/rnn/make_penn_proxy.py --ptb ./data/penn --out ./data/penn_proxy
fi
if [ -n "${GLOVE:-}" ]; then
    if [ ! -f searching/rnn/w2v.pkl ]; then
        python searching/rnn/preprocess.py --data ./data/penn_proxy --emsize 100 \
            --vectors "$GLOVE" --out ./searching/rnn/w2v.pkl
    fi
    EMB=./searching/rnn/w2v.pkl
else
    echo "GLOVE not set: random embedding initialisation (--emb_path none)" >&2
    EMB=none
fi
python searching/rnn/train.py --nodes 6 --data ./data/penn_proxy/ \
    --emb_path "$EMB" --emsize 100 --nhidlast 100 --lr 20 --clip 0.25 \
    --epochs 10 --batch_size 128 "$@"
