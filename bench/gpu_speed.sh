#!/usr/bin/env bash
# Every GPU measurement of the fused and CUDA-graph levers in one device call, at most 9 minutes (each part
# has its own time limit, 540 s in all, so one that hangs does not eat the others' time):
#   bash bench/gpu_speed.sh        # logs under ${OUT:-/tmp/gpu_speed}; summary in summary.txt
# 1. tests: CUDA graphs (graphed == eager) and the fused trainers on CUDA (float64, each member
#    equal to its separate training), 60 s;
# 2. bench/cnn_step.py: ms and kernels per CNN step, eager / graphed / fused k10 / graphed
#    fused k10 (8-node candidates, batch 128), 75 s;
# 3. bench/fused_conv.py: grouped conv vs batched matmul for the fused convolutions, 30 s;
# 4. bench/rnn_step.py: ms and kernels per RNN step, separate / fused k10 / graphed fused k10,
#    45 s;
# 5. the reference RNN search for real (N=6, k=10, penn_proxy), fused with CUDA graphs, 110 s
#    (target <= 60 s);
# 6. the reference CNN search for real (N=8, k=10, paper proxy, 5,000 / 1,000 images of the
#    CIFAR-10 subset), fused with CUDA graphs, 220 s (target <= 300 s).
# Data: DATA holds penn_proxy/ and cifar10-subset/ (default: shared/data in the checkout). The
# device machine gets the checkout only, so copy them into an ignored folder and carry it:
#   mkdir -p .gpu_data && cp -r ../shared/data/{penn_proxy,cifar10-subset} .gpu_data/
#   run(command="DATA=.gpu_data OUT=$OUT bash bench/gpu_speed.sh", carry=[".gpu_data"])
set -u
OUT=${OUT:-/tmp/gpu_speed}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
DATA=${DATA:-shared/data}
for d in penn_proxy cifar10-subset; do
    if [ ! -d "$DATA/$d" ]; then
        echo "bench/gpu_speed.sh: $DATA/$d not found: set DATA to a folder with penn_proxy/ and" \
             "cifar10-subset/ (see the header)" >&2
        exit 2
    fi
done
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

part tests 60 python -m pytest -q -rs tests/test_cuda_graph.py tests/test_fused_cuda.py
part cnn_step 75 python bench/cnn_step.py --device cuda --fused_members 10
part fused_conv 30 python bench/fused_conv.py --device cuda
part rnn_step 45 python bench/rnn_step.py --device cuda --fused_members 10 \
    --data "$DATA/penn_proxy"
part rnn_search 110 python searching/rnn/train.py --nodes 6 --epochs 10 --batch_size 128 \
    --emb_path none --data "$DATA/penn_proxy" --device cuda --fused --cuda_graphs --quiet \
    --no_plots \
    --save "$OUT/rnn_search"
part cnn_search 220 python searching/cnn/autoshrink_cnn.py --nodes 8 --max_steps 10 \
    --data "$DATA/cifar10-subset" --device cuda --fused --cuda_graphs --quiet --no_plots \
    --model_root "$OUT/cnn_search"
