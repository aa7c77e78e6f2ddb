#!/usr/bin/env bash
# vLLM 0.12: deepseek-ai/DeepSeek-V2-Lite-Chat on 1×NVIDIA GeForce RTX 4090, TP1. Written by MoE Workbench.
set -euo pipefail
vllm serve deepseek-ai/DeepSeek-V2-Lite-Chat \
  --trust-remote-code \
  --host 0.0.0.0 \
  --port 8000 \
  --tensor-parallel-size 1 \
  --max-model-len 8192 \
  --gpu-memory-utilization 0.90 \
  --max-num-seqs 1
