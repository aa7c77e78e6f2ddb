#!/usr/bin/env python3
"""peft + transformers on the shape of `mwb bench-train`, for a side-by-side comparison.

Where PyTorch, transformers and peft are installed (the GPU machine has them):
    python3 scripts/bench-train-peft.py --layers 8 --seq 1024 --batch 4 --rank 16 [--mwb build/app/mwb --device cuda]
prints one JSON object with peft's step time, tokens/s and peak memory and, with --mwb, the same measured by
`mwb bench-train` on the same shape. Random bf16 weights, LoRA on the MLA projections, AdamW, every token learnt.
"""
import argparse
import json
import subprocess
import time

MLA_TARGETS = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]


def peft_bench(args):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    # The reference shape of DESIGN.md (engine/model/random_weights.cpp: reference_shape_v3_16b).
    config = DeepseekV3Config(
        vocab_size=129280, hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
        num_hidden_layers=args.layers, num_attention_heads=16, num_key_value_heads=16,
        n_shared_experts=2, n_routed_experts=64, num_experts_per_tok=6, routed_scaling_factor=2.5,
        kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128,
        n_group=8, topk_group=4, first_k_dense_replace=1, norm_topk_prob=True,
        max_position_embeddings=163840, rope_theta=10000.0,
        rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                      "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        torch_dtype="bfloat16")
    device = args.device
    torch.manual_seed(args.seed)
    model = DeepseekV3ForCausalLM(config).to(device=device, dtype=torch.bfloat16)
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=args.targets.split(","), lora_dropout=0.0)
    model = get_peft_model(model, lora)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()  # fp32 LoRA weights and optimizer state, as mwb keeps them
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(args.steps + 1):  # the first step warms up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    median = sorted(seconds[1:])[len(seconds[1:]) // 2]
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return {"median_step_seconds": median, "tokens_per_s": args.batch * args.seq / median, "peak_memory_bytes": peak,
            "adapter_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default=",".join(MLA_TARGETS))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--mwb", help="the mwb binary, to run `mwb bench-train` on the same shape")
    args = parser.parse_args()
    report = {"shape": "v3-16b", "layers": args.layers, "seq": args.seq, "batch": args.batch, "rank": args.rank,
              "peft": peft_bench(args)}
    if args.mwb:
        command = [args.mwb, "bench-train", "--shape", "v3-16b", "--layers", str(args.layers), "--random-weights",
                   "--rank", str(args.rank), "--seq", str(args.seq), "--batch", str(args.batch), "--steps", str(args.steps),
                   "--targets", args.targets, "--device", args.device]
        report["mwb"] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
