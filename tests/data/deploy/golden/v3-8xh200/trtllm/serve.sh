#!/usr/bin/env bash
# TensorRT-LLM 1.3: deepseek-ai/DeepSeek-V3, DP attention 8, EP8. Written by MoE Workbench.
set -euo pipefail
cd "$(dirname "$0")"
trtllm-serve deepseek-ai/DeepSeek-V3 \
  --host 0.0.0.0 \
  --port 8000 \
  --trust_remote_code \
  --max_batch_size 64 \
  --max_num_tokens 8192 \
  --tp_size 8 \
  --ep_size 8 \
  --pp_size 1 \
  --config ./config.yml
