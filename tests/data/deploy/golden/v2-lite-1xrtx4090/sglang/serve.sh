#!/usr/bin/env bash
# SGLang 0.5: deepseek-ai/DeepSeek-V2-Lite-Chat on 1×NVIDIA GeForce RTX 4090, TP1. Written by MoE Workbench.
set -euo pipefail
python3 -m sglang.launch_server \
  --model deepseek-ai/DeepSeek-V2-Lite-Chat \
  --trust-remote-code \
  --host 0.0.0.0 \
  --port 30000 \
  --tp 1 \
  --context-length 8192 \
  --mem-fraction-static 0.90 \
  --max-running-requests 1 \
  --enable-metrics
