#!/usr/bin/env bash
# SGLang 0.5: deepseek-ai/DeepSeek-V3 on 8×NVIDIA H200, DP attention 8, EP8. Written by MoE Workbench.
set -euo pipefail
python3 -m sglang.launch_server \
  --model deepseek-ai/DeepSeek-V3 \
  --trust-remote-code \
  --host 0.0.0.0 \
  --port 30000 \
  --tp 8 \
  --dp 8 \
  --enable-dp-attention \
  --ep-size 8 \
  --context-length 32768 \
  --mem-fraction-static 0.90 \
  --max-running-requests 64 \
  --speculative-algorithm EAGLE \
  --speculative-num-steps 3 \
  --speculative-eagle-topk 1 \
  --speculative-num-draft-tokens 4 \
  --enable-metrics
