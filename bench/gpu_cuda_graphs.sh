#!/usr/bin/env bash
# The GPU checks of --cuda_graphs (issue 17) in one call, about 4-5 minutes on an H100/H200:
#   bash bench/gpu_cuda_graphs.sh            # writes logs under ${OUT:-/tmp/gpu_cuda_graphs}
# 1. tests/test_cuda_graph.py, whose CUDA tests (graphed == eager) skip without a GPU;
# 2. bench/cnn_step.py: ms and kernels per step, eager and graphed (8-node candidate, batch 128);
# 3. bench/candidate.py: seconds per CNN candidate (and candidates per hour), eager then
#    graphed, each in a fresh process (each pays CUDA start-up and cuDNN autotuning once).
# Each step has its own time limit, so one that hangs does not eat the others' time.
set -u
OUT=${OUT:-/tmp/gpu_cuda_graphs}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/device.txt"
timeout 120 python -m pytest -q -rs tests/test_cuda_graph.py 2>&1 | tee "$OUT/tests.txt"
timeout 120 python bench/cnn_step.py --device cuda 2>&1 | tee "$OUT/cnn_step.txt"
timeout 150 python bench/candidate.py --device cuda 2>&1 | tee "$OUT/candidate_eager.txt"
timeout 150 python bench/candidate.py --device cuda --cuda_graphs 2>&1 \
    | tee "$OUT/candidate_graphed.txt"
