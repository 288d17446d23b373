#!/usr/bin/env bash
# Search cost side by side: every search at its paper settings for a measured
# fraction, projected to the whole search, on the device at hand, in one run; hours per search
# (median and min-max of 3 repeats, warm-up apart) and the ratio to AutoShrink. QUICK=1:
# smaller fractions.
# Env: OUT (JSON table, default search_cost.json), CIFAR, PTB (data folders), DEVICE,
# THREADS (CPU threads per search; default torch's, 1 with QUICK=1: on a small shared CPU two
# threads per small op mostly wait for each other), METHODS (comma-separated subset), RAY=1 (or
# RAY_ADDRESS: each method's measurement one Ray task, written next to OUT).
# See bench/search_cost.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=(--out "${OUT:-search_cost.json}" --cifar "${CIFAR:-../shared/data/cifar10-subset}"
      --ptb "${PTB:-../shared/data/penn_proxy}" --device "${DEVICE:-auto}"
      --threads "${THREADS:-$([ "${QUICK:-0}" = "1" ] && echo 1 || echo 0)}")
if [ "${QUICK:-0}" = "1" ]; then ARGS+=(--quick); fi
if [ -n "${METHODS:-}" ]; then ARGS+=(--methods "$METHODS"); fi
if [ "${RAY:-0}" = "1" ]; then ARGS+=(--ray); fi
exec python bench/search_cost.py "${ARGS[@]}" "$@"
