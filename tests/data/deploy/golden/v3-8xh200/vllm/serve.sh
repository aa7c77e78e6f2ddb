#!/usr/bin/env bash
# vLLM 0.12: deepseek-ai/DeepSeek-V3 on 8×NVIDIA H200, DP attention 8, EP8. Written by MoE Workbench.
set -euo pipefail
vllm serve deepseek-ai/DeepSeek-V3 \
  --trust-remote-code \
  --host 0.0.0.0 \
  --port 8000 \
  --data-parallel-size 8 \
  --enable-expert-parallel \
  --max-model-len 32768 \
  --gpu-memory-utilization 0.90 \
  --max-num-seqs 8 \
  --speculative-config '{"method":"mtp","num_speculative_tokens":1}'
