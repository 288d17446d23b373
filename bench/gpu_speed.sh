#!/usr/bin/env bash
# Every GPU measurement of issue 17 (SPEC §23) in one device call, about 9 minutes on an
# H100/H200 (each part has its own time limit, so one that hangs does not eat the others'):
#   bash bench/gpu_speed.sh        # logs under ${OUT:-/tmp/gpu_speed}; summary in summary.txt
# 1. the CUDA tests (graphed == eager) and the fused equivalence tests (CPU float64), 90 s;
# 2. bench/cnn_step.py: ms and kernels per CNN step, eager / graphed / fused k10 / graphed
#    fused k10 (8-node candidates, batch 128), 90 s;
# 3. bench/rnn_step.py: ms and kernels per RNN step, separate vs fused k10, 60 s;
# 4. the reference RNN search for real (N=6, k=10, penn_proxy), fused, 150 s (target <= 60 s);
# 5. the reference CNN search for real (N=8, k=10, paper proxy, 5,000 / 1,000 images of the
#    CIFAR-10 subset), fused with CUDA graphs, 300 s (target <= 300 s).
# Data: DATA (default: shared/data in the checkout, else ../shared/data).
set -u
OUT=${OUT:-/tmp/gpu_speed}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
DATA=${DATA:-$( [ -d shared/data ] && echo shared/data || echo ../shared/data )}
SUMMARY="$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$SUMMARY"
python -c "import torch; print('torch', torch.__version__)" | tee -a "$SUMMARY"

part() {  # part NAME LIMIT_S COMMAND...: run it under a time limit, log it, time it
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "== $name: rc=$rc, $((SECONDS - start)) s wall (limit $limit s)" | tee -a "$SUMMARY"
    tail -n 12 "$OUT/$name.txt" | tee -a "$SUMMARY"
}

part tests 90 python -m pytest -q -rs tests/test_cuda_graph.py tests/test_fused.py \
    tests/test_fused_rnn.py
part cnn_step 90 python bench/cnn_step.py --device cuda --fused_members 10
part rnn_step 60 python bench/rnn_step.py --device cuda --fused_members 10 \
    --data "$DATA/penn_proxy"
part rnn_search 150 python searching/rnn/train.py --nodes 6 --epochs 10 --batch_size 128 \
    --emb_path none --data "$DATA/penn_proxy" --device cuda --fused --quiet --no_plots \
    --save "$OUT/rnn_search"
part cnn_search 300 python searching/cnn/autoshrink_cnn.py --nodes 8 --max_steps 10 \
    --data "$DATA/cifar10-subset" --device cuda --fused --cuda_graphs --quiet --no_plots \
    --model_root "$OUT/cnn_search"
