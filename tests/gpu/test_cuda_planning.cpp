// The CUDA backend's host-side planning, on the CPU: micro-batch order and splitting, MoE dispatch bookkeeping,
// decode-attention splits, workspace and memory sizes.
#include <QtTest>

#include <cstdint>
#include <numeric>
#include <random>

#include "engine/model/model_graph.h"
#include "engine/model/random_weights.h"
#include "kernels/cuda_planning.h"

using namespace mwb;
using namespace mwb::cuda;

class CudaPlanningTest : public QObject {
    Q_OBJECT

private slots:
    void decode_rows_come_first_and_outputs_keep_caller_order() {
        ForwardBatch batch;
        batch.tokens = {10, 11, 12, 20, 30, 31};
        batch.chunks = {{0, 0, 3}, {1, 7, 1}, {2, 4, 2}};
        auto plan = plan_batch(batch, 4, 64, 100, 1024);
        QVERIFY(plan.ok());
        QCOMPARE(plan->micro_batches.size(), size_t(1));
        QCOMPARE(plan->output_rows, int64_t(3));
        QVERIFY(!plan->decode_only);
        const MicroBatch& m = plan->micro_batches[0];
        QCOMPARE(m.decode_rows, int64_t(1));
        QCOMPARE(m.tokens, (std::vector<int32_t>{20, 10, 11, 12, 30, 31}));
        QCOMPARE(m.positions, (std::vector<int32_t>{7, 0, 1, 2, 4, 5}));
        QCOMPARE(m.cache_slots, (std::vector<int32_t>{1, 0, 0, 0, 2, 2}));
        QCOMPARE(m.batch_rows, (std::vector<int64_t>{3, 0, 1, 2, 4, 5}));  // where each row's token was in the caller's batch
        QCOMPARE(m.longest_decode_context, int64_t(8));
        QCOMPARE(m.prefill.size(), size_t(2));
        QCOMPARE(m.prefill[0].first_row, int64_t(1));
        QCOMPARE(m.prefill[1].first_row, int64_t(4));
        // Outputs: the last row of each chunk, placed where the caller expects chunk c.
        QCOMPARE(m.output_rows, (std::vector<int32_t>{0, 3, 5}));
        QCOMPARE(m.output_indices, (std::vector<int64_t>{1, 0, 2}));
    }

    void logits_for_all_tokens_map_every_row() {
        ForwardBatch batch{{1, 2, 3, 4}, {{0, 0, 3}, {1, 5, 1}}, true};
        auto plan = plan_batch(batch, 2, 16, 10, 1024);
        QVERIFY(plan.ok());
        QCOMPARE(plan->output_rows, int64_t(4));
        const MicroBatch& m = plan->micro_batches[0];
        // Rows: decode (chunk 1) first, then chunk 0's three tokens; outputs in caller order 0,1,2 | 3.
        QCOMPARE(m.output_rows, (std::vector<int32_t>{0, 1, 2, 3}));
        QCOMPARE(m.output_indices, (std::vector<int64_t>{3, 0, 1, 2}));
    }

    void long_prompts_split_in_order() {
        ForwardBatch batch;
        batch.tokens.assign(10, 5);
        batch.chunks = {{0, 2, 10}};
        auto plan = plan_batch(batch, 1, 64, 10, 4);
        QVERIFY(plan.ok());
        QCOMPARE(plan->micro_batches.size(), size_t(3));
        int64_t next = 2, rows = 0;
        for (const MicroBatch& m : plan->micro_batches) {
            QCOMPARE(m.prefill.size(), size_t(1));
            QCOMPARE(m.batch_rows.front(), rows);
            QCOMPARE(m.prefill[0].start_position, next);
            next += m.prefill[0].token_count;
            rows += m.rows();
            QVERIFY(m.rows() <= 4);
        }
        QCOMPARE(rows, int64_t(10));
        QCOMPARE(plan->micro_batches.back().output_indices, (std::vector<int64_t>{0}));
        QVERIFY(plan->micro_batches[0].output_rows.empty());
    }

    void many_decode_rows_split_at_the_decode_limit() {
        ForwardBatch batch;
        for (int64_t s = 0; s < 100; ++s) {
            batch.tokens.push_back(int32_t(s));
            batch.chunks.push_back({s, 3, 1});
        }
        auto plan = plan_batch(batch, 100, 8, 1000, 1024);
        QVERIFY(plan.ok());
        QVERIFY(plan->decode_only);
        QCOMPARE(plan->micro_batches.size(), size_t(2));
        QCOMPARE(plan->micro_batches[0].decode_rows, kMaxDecodeRows);
        QCOMPARE(plan->micro_batches[1].decode_rows, 100 - kMaxDecodeRows);
    }

    void bad_batches_are_errors() {
        QVERIFY(!plan_batch({{1}, {{3, 0, 1}}, false}, 2, 8, 10, 16).ok());        // slot out of range
        QVERIFY(!plan_batch({{1, 2}, {{0, 7, 2}}, false}, 1, 8, 10, 16).ok());     // past the capacity
        QVERIFY(!plan_batch({{1, 2}, {{0, 0, 1}}, false}, 1, 8, 10, 16).ok());     // tokens not covered
        QVERIFY(!plan_batch({{1, 99}, {{0, 0, 2}}, false}, 1, 8, 10, 16).ok());    // outside the vocabulary
        QVERIFY(!plan_batch({{1, 2}, {{0, 0, 1}, {0, 1, 1}}, false}, 1, 8, 10, 16).ok());  // one slot twice
    }

    void dispatch_groups_assignments_by_expert() {
        std::mt19937 random(7);
        const int64_t tokens = 37, k = 6, experts = 64;
        std::vector<int32_t> chosen;
        for (int64_t t = 0; t < tokens; ++t) {
            std::vector<int32_t> all(experts);
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), random);
            std::sort(all.begin(), all.begin() + k);
            chosen.insert(chosen.end(), all.begin(), all.begin() + k);
        }
        const MoeDispatch d = dispatch_by_expert(chosen, k, experts);
        QCOMPARE(d.offsets.front(), 0);
        QCOMPARE(d.offsets.back(), int32_t(tokens * k));
        for (size_t a = 0; a < chosen.size(); ++a) {
            const int32_t row = d.row_of_assignment[a];
            QVERIFY(row >= d.offsets[size_t(chosen[a])] && row < d.offsets[size_t(chosen[a] + 1)]);
            QCOMPARE(d.token_of_row[size_t(row)], int32_t(int64_t(a) / k));
        }
        for (int64_t e = 0; e < experts; ++e) {
            const bool active = d.offsets[size_t(e + 1)] > d.offsets[size_t(e)];
            QCOMPARE(std::count(d.active_experts.begin(), d.active_experts.end(), int32_t(e)) == 1, active);
            for (int32_t r = d.offsets[size_t(e)] + 1; r < d.offsets[size_t(e + 1)]; ++r)
                QVERIFY(d.token_of_row[size_t(r - 1)] < d.token_of_row[size_t(r)]);  // token order within an expert
        }
        QVERIFY(std::is_sorted(d.active_experts.begin(), d.active_experts.end()));
    }

    void decode_splits_fill_the_gpu_within_the_partial_buffer() {
        const int64_t sms = 132, blocks = decode_partial_blocks(sms);
        for (int64_t rows : {1, 4, 16, 64})
            for (int64_t head_blocks : {1, 2, 4})
                for (int64_t context : {1, 31, 600, 4224, 163840}) {
                    const int64_t splits = decode_attention_splits(rows, head_blocks, context, sms, blocks);
                    QVERIFY(splits >= 1);
                    QVERIFY((splits & (splits - 1)) == 0);
                    QVERIFY(splits == 1 || rows * head_blocks * splits <= blocks);
                    QVERIFY(splits == 1 || (context + splits - 1) / splits >= 64);
                }
        // One row, all 16 heads in one block, 4096 keys: 64 ranges of 64 keys (the grid wants up to 2 × 132).
        QCOMPARE(decode_attention_splits(1, 1, 4096, sms, blocks), int64_t(64));
        QCOMPARE(decode_attention_splits(1, 1, 20, sms, blocks), int64_t(1));
        QCOMPARE(decode_heads_per_block(16), int64_t(16));
        QCOMPARE(decode_heads_per_block(128), int64_t(16));
        QCOMPARE(decode_heads_per_block(6), int64_t(6));
        QCOMPARE(decode_heads_per_block(7), int64_t(7));
        QCOMPARE(decode_heads_per_block(11), int64_t(11));
        QCOMPARE(decode_heads_per_block(17), int64_t(1));
    }

    void prefill_query_tiles_respect_the_budget() {
        QCOMPARE(prefill_query_tile(16, 512, 512, size_t(64) << 20), int64_t(512));
        const int64_t tile = prefill_query_tile(16, 4224, 1024, size_t(64) << 20);
        QVERIFY(tile >= 1 && tile < 1024);
        QVERIFY(size_t(16 * tile * 4224 * 6) <= (size_t(64) << 20));
        QCOMPARE(prefill_query_tile(128, 1 << 20, 1024, 1024), int64_t(1));
    }

    void workspace_grows_with_rows_and_context() {
        const ModelConfig c = reference_shape_v3_16b(8);
        WorkspaceShape s;
        s.max_rows = 512;
        s.max_decode_rows = 64;
        s.capacity = 640;
        s.multiprocessors = 132;
        const WorkspaceLayout small = plan_workspace(c, s);
        s.max_rows = 1024;
        const WorkspaceLayout more_rows = plan_workspace(c, s);
        s.capacity = 4224;
        const WorkspaceLayout longer = plan_workspace(c, s);
        QVERIFY(small.total_bytes < more_rows.total_bytes);
        QVERIFY(more_rows.total_bytes < longer.total_bytes);
        for (const auto& b : longer.buffers) {
            QVERIFY2(b.offset % 256 == 0, b.name.c_str());
            QVERIFY(b.offset + b.bytes <= longer.total_bytes);
        }
        for (const char* name : {"inputs", "x", "h", "delta", "qkv_a", "q_cat", "expanded", "keys", "router_logits", "dispatched",
                                 "expert_out", "logits", "cublas", "decode_partials"})
            QVERIFY2(longer.offset_of(name) != SIZE_MAX, name);
        QCOMPARE(longer.offset_of("qkv"), SIZE_MAX);  // GQA only
        // The reference shape at 1024 rows and a 4224-token context stays well under a GiB.
        QVERIFY(longer.total_bytes < (size_t(1) << 30));
    }

    void memory_estimates_follow_the_formats() {
        QCOMPARE(device_linear_bytes(256, 512, WeightFormat::BF16), size_t(256 * 512 * 2));
        QCOMPARE(device_linear_bytes(256, 512, WeightFormat::INT8), size_t(256 * 512 + 256 * 4 * 4));
        QCOMPARE(device_linear_bytes(3, 130, WeightFormat::FP8), size_t(3 * 130 + 3 * 2 * 4));
        QCOMPARE(device_linear_bytes(256, 512, WeightFormat::INT4), size_t(256 * 512 / 2 + 256 * 4 * 4));

        const ModelConfig c = reference_shape_v3_16b(2);
        QCOMPARE(kv_cache_bytes(c, 1, 4096), size_t(2 * (512 + 64) * 4096 * 2));

        auto graph = load_model_graph(MWB_TEST_DATA "/models/dsv3-tiny");
        QVERIFY2(graph.ok(), graph.ok() ? "" : graph.error().message.c_str());
        const size_t bf16 = device_weight_bytes(*graph, WeightQuantisation::None), int8 = device_weight_bytes(*graph, WeightQuantisation::Int8);
        size_t stored = 0;
        for (const auto& [name, tensor] : graph->store->tensors()) stored += tensor.bytes;
        const size_t int4 = device_weight_bytes(*graph, WeightQuantisation::Int4);
        QVERIFY(int4 < int8 && int8 < bf16);
        QVERIFY(bf16 > stored / 2 && bf16 < stored * 2);  // bf16 checkpoint: about its own size, plus fp32 norms

        auto fp8 = load_model_graph(MWB_TEST_DATA "/models/dsv3-fp8-tiny");
        QVERIFY(fp8.ok());
        const auto& attention = std::get<MlaWeights>(fp8->layers[0].attention);
        QCOMPARE(attention.o_proj.weight.dtype, DType::F8_E4M3);
        QVERIFY(device_format(attention.o_proj, WeightQuantisation::Int8) == WeightFormat::FP8);  // FP8 stays FP8 under W8A16
        QVERIFY(device_format(attention.o_proj, WeightQuantisation::Int4) == WeightFormat::FP8);
        QVERIFY(device_format(std::get<MlaWeights>(graph->layers[0].attention).o_proj, WeightQuantisation::Int8) == WeightFormat::INT8);
        QVERIFY(device_format(std::get<MlaWeights>(graph->layers[0].attention).o_proj, WeightQuantisation::Int4) == WeightFormat::INT4);
        QCOMPARE(describe_bytes(size_t(3) << 30), std::string("3.00 GiB"));
    }
};

QTEST_APPLESS_MAIN(CudaPlanningTest)
#include "test_cuda_planning.moc"
