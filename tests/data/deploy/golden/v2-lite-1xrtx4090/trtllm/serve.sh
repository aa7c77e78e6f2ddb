#!/usr/bin/env bash
# TensorRT-LLM 1.3: deepseek-ai/DeepSeek-V2-Lite-Chat, TP1. Written by MoE Workbench.
set -euo pipefail
cd "$(dirname "$0")"
trtllm-serve deepseek-ai/DeepSeek-V2-Lite-Chat \
  --host 0.0.0.0 \
  --port 8000 \
  --trust_remote_code \
  --max_batch_size 1 \
  --max_num_tokens 8192 \
  --tp_size 1 \
  --pp_size 1 \
  --config ./config.yml
