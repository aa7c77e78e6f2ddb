#!/usr/bin/env bash
# llama.cpp of 2026-08 (tools/server/README.md @00dc805): deepseek-ai/DeepSeek-V2-Lite-Chat as Q8_0 GGUF on 1×NVIDIA GeForce RTX 4090. Written by MoE Workbench.
# Make the GGUF file first (llama.cpp's tools):
#   python3 convert_hf_to_gguf.py deepseek-ai/DeepSeek-V2-Lite-Chat --outtype bf16 --outfile DeepSeek-V2-Lite-Chat-BF16.gguf
#   llama-quantize DeepSeek-V2-Lite-Chat-BF16.gguf DeepSeek-V2-Lite-Chat-Q8_0.gguf Q8_0
set -euo pipefail
llama-server \
  -m DeepSeek-V2-Lite-Chat-Q8_0.gguf \
  -c 8192 \
  -ngl all \
  -np 1 \
  -fa on \
  --host 0.0.0.0 \
  --port 8080 \
  --jinja \
  --metrics
