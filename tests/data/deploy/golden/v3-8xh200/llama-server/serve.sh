#!/usr/bin/env bash
# llama.cpp of 2026-08 (tools/server/README.md @00dc805): deepseek-ai/DeepSeek-V3 as Q8_0 GGUF on 8×NVIDIA H200. Written by MoE Workbench.
# Make the GGUF file first (llama.cpp's tools):
#   python3 convert_hf_to_gguf.py deepseek-ai/DeepSeek-V3 --outtype bf16 --outfile DeepSeek-V3-BF16.gguf
#   llama-quantize DeepSeek-V3-BF16.gguf DeepSeek-V3-Q8_0.gguf Q8_0
set -euo pipefail
llama-server \
  -m DeepSeek-V3-Q8_0.gguf \
  -c 32768 \
  -ngl all \
  -sm layer \
  -ts 1,1,1,1,1,1,1,1 \
  -np 64 \
  -fa on \
  --host 0.0.0.0 \
  --port 8080 \
  --jinja \
  --metrics
