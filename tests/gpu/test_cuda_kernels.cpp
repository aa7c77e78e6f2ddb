// Single kernels against CPU references on random inputs: the router (vs route_token), dispatch, the fused
// routed + shared feed-forward (bf16, int8, int4), int8 / int4 quantisation, RoPE (vs RopeTable::apply), split-KV
// decode attention, sampling.
#include <QtTest>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>

#include "engine/io/dtype.h"
#include "engine/model/blocks/feed_forward.h"
#include "engine/model/blocks/rope.h"
#include "kernels/kernels.h"
#include "kernels/device_weights.h"
#include "tests/gpu/cuda_test_support.h"

using namespace mwb;
using namespace mwb::cuda;
using namespace mwb::testing;

namespace {

// The backend's own parameters of the router kernel, with the correction bias.
RouterParams params_of(const MoeConfig& m, const float* bias) {
    RouterParams p = router_params(m);
    p.bias = bias;
    return p;
}

MoeConfig moe(int64_t experts, int64_t k, int64_t groups, int64_t top_groups, ScoringFunction scoring, TopkMethod method,
              bool normalise, double scaling) {
    MoeConfig m;
    m.n_routed_experts = experts, m.experts_per_token = k, m.n_group = groups, m.topk_group = top_groups;
    m.scoring = scoring, m.topk_method = method, m.norm_topk_prob = normalise, m.routed_scaling_factor = scaling;
    return m;
}

}  // namespace

class CudaKernelsTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void router_matches_route_token_data() {
        QTest::addColumn<int>("variant");
        QTest::newRow("v3 sigmoid noaux_tc 64/6 groups 8/4") << 0;
        QTest::newRow("v3 full 256/8 groups 8/4") << 1;
        QTest::newRow("v2 softmax greedy 64/6") << 2;
        QTest::newRow("v2 group_limited_greedy 160/6 groups 8/3") << 3;
    }
    void router_matches_route_token() {
        QFETCH(int, variant);
        const MoeConfig configs[] = {
            moe(64, 6, 8, 4, ScoringFunction::Sigmoid, TopkMethod::NoAuxTc, true, 2.5),
            moe(256, 8, 8, 4, ScoringFunction::Sigmoid, TopkMethod::NoAuxTc, true, 2.5),
            moe(64, 6, 1, 1, ScoringFunction::Softmax, TopkMethod::Greedy, false, 1.0),
            moe(160, 6, 8, 3, ScoringFunction::Softmax, TopkMethod::GroupLimitedGreedy, false, 16.0),
        };
        const MoeConfig& m = configs[variant];
        const int64_t rows = 777, n = m.n_routed_experts, k = m.experts_per_token;
        const auto logits = random_floats(size_t(rows * n), 11u + uint32_t(variant), 2.0f);
        const auto bias = random_floats(size_t(n), 99u, 0.05f);
        const bool with_bias = m.topk_method == TopkMethod::NoAuxTc;
        DeviceArray<float> d_logits(logits), d_bias(bias), d_weights(size_t(rows * k));
        DeviceArray<int32_t> d_experts(size_t(rows * k));
        route_tokens(d_logits.get(), rows, params_of(m, with_bias ? d_bias.get() : nullptr), d_experts.get(), d_weights.get(), nullptr);
        const auto experts = d_experts.download();
        const auto weights = d_weights.download();
        int64_t compared = 0;
        for (int64_t r = 0; r < rows; ++r) {
            std::vector<int32_t> expected(static_cast<size_t>(k));
            std::vector<float> expected_weights(static_cast<size_t>(k)), selection(static_cast<size_t>(n));
            route_token(m, logits.data() + r * n, with_bias ? bias.data() : nullptr, expected.data(), expected_weights.data(),
                        selection.data());
            std::sort(selection.begin(), selection.end(), std::greater<>());
            if (selection[size_t(k - 1)] - selection[size_t(k)] < 1e-5f) continue;  // an exact tie may break either way
            ++compared;
            for (int64_t j = 0; j < k; ++j) {
                QCOMPARE(experts[size_t(r * k + j)], expected[size_t(j)]);
                QVERIFY(std::fabs(weights[size_t(r * k + j)] - expected_weights[size_t(j)]) <= 1e-5f * float(m.routed_scaling_factor));
            }
        }
        QVERIFY(compared > rows * 9 / 10);
    }

    void dispatch_and_fused_feed_forward_match_the_cpu_data() {
        QTest::addColumn<int>("format");
        QTest::addColumn<int>("tokens");
        QTest::addColumn<bool>("shared");
        QTest::newRow("bf16, 1 token, shared") << int(WeightFormat::BF16) << 1 << true;
        QTest::newRow("bf16, 11 tokens, shared") << int(WeightFormat::BF16) << 11 << true;
        QTest::newRow("bf16, 40 tokens, routed only") << int(WeightFormat::BF16) << 40 << false;
        QTest::newRow("int8, 11 tokens, shared") << int(WeightFormat::INT8) << 11 << true;
        QTest::newRow("int4, 3 tokens, shared") << int(WeightFormat::INT4) << 3 << true;
    }
    // Routed experts weighted per token plus an always-on MLP, against a float64 evaluation of the same weights.
    void dispatch_and_fused_feed_forward_match_the_cpu() {
        QFETCH(int, format);
        QFETCH(int, tokens);
        QFETCH(bool, shared);
        const int64_t experts = 8, k = 2, hidden = 256, inner = 40, shared_inner = 48;
        std::mt19937 random(5 + uint32_t(tokens));
        std::vector<int32_t> chosen;
        std::vector<float> routing;
        for (int64_t t = 0; t < tokens; ++t) {
            const int32_t a = int32_t(random() % experts);
            const int32_t b = int32_t((a + 1 + random() % (experts - 1)) % experts);
            chosen.push_back(std::min(a, b));
            chosen.push_back(std::max(a, b));
            routing.push_back(0.25f + float(random() % 100) / 100.0f);
            routing.push_back(0.25f + float(random() % 100) / 100.0f);
        }
        const auto x = from_bf16(to_bf16(random_floats(size_t(tokens * hidden), 1)));
        auto gate_up = from_bf16(to_bf16(random_floats(size_t(experts * 2 * inner * hidden), 2, 0.1f)));
        auto down = from_bf16(to_bf16(random_floats(size_t(experts * hidden * inner), 3, 0.1f)));
        auto shared_gate_up = from_bf16(to_bf16(random_floats(size_t(2 * shared_inner * hidden), 4, 0.1f)));
        auto shared_down = from_bf16(to_bf16(random_floats(size_t(hidden * shared_inner), 8, 0.1f)));

        DeviceArray<int32_t> d_chosen(chosen), offsets(size_t(experts + 1)), active(size_t(experts + 1));
        DeviceArray<int32_t> row_of(size_t(tokens * k)), token_of(size_t(tokens * k));
        dispatch_by_expert(d_chosen.get(), tokens, k, experts, offsets.get(), active.get(), row_of.get(), token_of.get(), nullptr);
        const MoeDispatch host = dispatch_by_expert(chosen, k, experts);
        QCOMPARE(offsets.download(), host.offsets);
        const auto device_active = active.download();
        QCOMPARE(device_active[size_t(experts)], int32_t(host.active_experts.size()));
        QCOMPARE(std::vector<int32_t>(device_active.begin(), device_active.begin() + int64_t(host.active_experts.size())), host.active_experts);
        const auto rows_of = row_of.download(), tokens_of = token_of.download();
        for (size_t a = 0; a < chosen.size(); ++a) QCOMPARE(tokens_of[size_t(rows_of[a])], int32_t(a / size_t(k)));

        // Weights on the device in the format under test; quantised ones are quantised there, and the reference then
        // uses their dequantised values (the round trip has its own test), so only the kernels' arithmetic is judged.
        std::vector<std::unique_ptr<DeviceArray<uint16_t>>> bf16_arrays;
        std::vector<std::unique_ptr<DeviceArray<int8_t>>> int8_arrays;
        std::vector<std::unique_ptr<DeviceArray<float>>> scale_arrays;
        auto upload = [&](std::vector<float>& values, int64_t count, int64_t rows, int64_t cols) {
            bf16_arrays.push_back(std::make_unique<DeviceArray<uint16_t>>(to_bf16(values)));
            DeviceMatrix m{bf16_arrays.back()->get(), nullptr, WeightFormat::BF16, rows, cols};
            if (WeightFormat(format) != WeightFormat::BF16) {
                int8_arrays.push_back(std::make_unique<DeviceArray<int8_t>>(values.size()));
                scale_arrays.push_back(std::make_unique<DeviceArray<float>>(size_t(count * rows * ((cols + 127) / 128))));
                quantize_weights(as_bf16(*bf16_arrays.back()), count * rows, cols, WeightFormat(format), int8_arrays.back()->get(),
                                 scale_arrays.back()->get(), nullptr, nullptr);
                m = DeviceMatrix{int8_arrays.back()->get(), scale_arrays.back()->get(), WeightFormat(format), rows, cols};
                DeviceArray<uint16_t> dequantised(values.size());
                DeviceMatrix all = m;
                all.rows = count * rows;
                dequantize_rows(all, 0, count * rows, as_bf16(dequantised), nullptr);
                values = from_bf16(dequantised.download());
            }
            return m;
        };
        DeviceArray<uint16_t> d_x(to_bf16(x)), d_out(size_t(tokens * hidden));
        DeviceArray<uint16_t> expert_act(size_t(tokens * k * inner)), shared_act(size_t(tokens * shared_inner));
        DeviceArray<float> d_routing(routing);
        FusedFeedForward f;
        f.tokens = tokens, f.input = as_bf16(d_x), f.input_stride = hidden;
        f.experts_gate_up = upload(gate_up, experts, 2 * inner, hidden);
        f.experts_down = upload(down, experts, hidden, inner);
        f.n_experts = experts, f.top_k = k, f.max_active = std::min<int64_t>(experts, tokens * k);
        f.offsets = offsets.get(), f.active = active.get(), f.token_of_row = token_of.get(), f.row_of_assignment = row_of.get();
        f.weights = d_routing.get(), f.expert_act = as_bf16(expert_act);
        if (shared) {
            f.mlp_gate_up = upload(shared_gate_up, 1, 2 * shared_inner, hidden);
            f.mlp_down = upload(shared_down, 1, hidden, shared_inner);
            f.mlp_act = as_bf16(shared_act);
        }
        f.out = as_bf16(d_out), f.out_stride = hidden;
        fused_feed_forward(f, nullptr);
        const auto got = from_bf16(d_out.download());

        auto swiglu_mlp = [&](const float* w_gate_up, const float* w_down, int64_t width, int64_t t, std::vector<double>& out) {
            std::vector<double> act(static_cast<size_t>(width));
            for (int64_t j = 0; j < width; ++j) {
                double g = 0, u = 0;
                for (int64_t c = 0; c < hidden; ++c) {
                    g += double(w_gate_up[j * hidden + c]) * x[size_t(t * hidden + c)];
                    u += double(w_gate_up[(width + j) * hidden + c]) * x[size_t(t * hidden + c)];
                }
                act[size_t(j)] = g / (1 + std::exp(-g)) * u;
            }
            for (int64_t r = 0; r < hidden; ++r) {
                double sum = 0;
                for (int64_t j = 0; j < width; ++j) sum += double(w_down[r * width + j]) * act[size_t(j)];
                out[size_t(r)] = sum;
            }
        };
        std::vector<float> expected;
        std::vector<double> part(static_cast<size_t>(hidden));
        for (int64_t t = 0; t < tokens; ++t) {
            std::vector<double> sum(static_cast<size_t>(hidden), 0.0);
            for (int64_t j = 0; j < k; ++j) {
                const int64_t e = chosen[size_t(t * k + j)];
                swiglu_mlp(gate_up.data() + e * 2 * inner * hidden, down.data() + e * hidden * inner, inner, t, part);
                for (int64_t r = 0; r < hidden; ++r) sum[size_t(r)] += routing[size_t(t * k + j)] * part[size_t(r)];
            }
            if (shared) {
                swiglu_mlp(shared_gate_up.data(), shared_down.data(), shared_inner, t, part);
                for (int64_t r = 0; r < hidden; ++r) sum[size_t(r)] += part[size_t(r)];
            }
            for (double v : sum) expected.push_back(float(v));
        }
        const double error = relative_error(got, expected);
        QVERIFY2(error < 1e-2, qPrintable(QString::number(error)));
    }

    void quantisation_round_trips_data() {
        QTest::addColumn<int>("format");
        QTest::newRow("int8") << int(WeightFormat::INT8);
        QTest::newRow("int4") << int(WeightFormat::INT4);
    }
    // Every value within half a step of its weight, and the reported error sums equal to the host's.
    void quantisation_round_trips() {
        QFETCH(int, format);
        const int64_t rows = 37, cols = 296, groups = 3;
        const auto w = from_bf16(to_bf16(random_floats(size_t(rows * cols), 3)));
        DeviceArray<uint16_t> d_w(to_bf16(w)), d_back(size_t(rows * cols));
        DeviceArray<int8_t> d_q(size_t(rows * cols));
        DeviceArray<float> d_scales(size_t(rows * groups)), d_sums(std::vector<float>{0.0f, 0.0f});
        quantize_weights(as_bf16(d_w), rows, cols, WeightFormat(format), d_q.get(), d_scales.get(), d_sums.get(), nullptr);
        dequantize_rows(DeviceMatrix{d_q.get(), d_scales.get(), WeightFormat(format), rows, cols}, 0, rows, as_bf16(d_back), nullptr);
        const auto back = from_bf16(d_back.download());
        const auto scales = d_scales.download(), sums = d_sums.download();
        const float levels = WeightFormat(format) == WeightFormat::INT8 ? 127.0f : 7.0f;
        double error = 0, norm = 0;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const float original = w[size_t(r * cols + c)], scale = scales[size_t(r * groups + c / 128)];
                float largest = 0;
                for (int64_t k = c / 128 * 128; k < std::min<int64_t>(cols, c / 128 * 128 + 128); ++k)
                    largest = std::max(largest, std::fabs(w[size_t(r * cols + k)]));
                QCOMPARE(scale, largest / levels);
                // Dequantised to bf16: half a step plus bf16 rounding of the result.
                QVERIFY(std::fabs(back[size_t(r * cols + c)] - original) <= 0.5f * scale + 0.01f * std::fabs(original));
                const double q = std::clamp<double>(std::nearbyint(double(original) / scale), -levels, levels);
                error += (original - q * scale) * (original - q * scale);
                norm += double(original) * original;
            }
        QVERIFY(std::fabs(sums[0] - error) <= 1e-3 * error);
        QVERIFY(std::fabs(sums[1] - norm) <= 1e-4 * norm);
    }

    void rope_matches_the_rope_table_data() {
        QTest::addColumn<bool>("interleaved");
        QTest::newRow("neox, llama3") << false;
        QTest::newRow("interleaved, yarn") << true;
    }
    void rope_matches_the_rope_table() {
        QFETCH(bool, interleaved);
        RopeConfig config;
        config.theta = interleaved ? 10000.0 : 500000.0;
        config.scaling = interleaved ? RopeScaling::Yarn : RopeScaling::Llama3;
        config.factor = interleaved ? 40.0 : 8.0;
        config.original_max_position_embeddings = interleaved ? 4096 : 8192;
        config.mscale = config.mscale_all_dim = 1.0;
        const int64_t dim = 64, heads = 3, rows = 5;
        const RopeTable table = make_rope_table(config, dim, interleaved ? RopeLayout::Interleaved : RopeLayout::NeoX, 163840);
        std::vector<float> data = from_bf16(to_bf16(random_floats(size_t(rows * heads * dim), 4)));
        const std::vector<int32_t> positions = {0, 1, 77, 4095, 150000};
        DeviceArray<uint16_t> d_data(to_bf16(data));
        DeviceArray<float> d_frequency(table.inverse_frequency);
        DeviceArray<int32_t> d_positions(positions);
        apply_rope(as_bf16(d_data), rows, heads * dim, heads, dim, d_positions.get(),
                   RopeParams{d_frequency.get(), dim, interleaved, table.attention_factor}, nullptr);
        const auto got = from_bf16(d_data.download());
        for (int64_t r = 0; r < rows; ++r) table.apply(data.data() + r * heads * dim, heads, dim, positions[size_t(r)]);
        for (size_t i = 0; i < got.size(); ++i) QVERIFY2(std::fabs(got[i] - data[i]) <= 2e-2f * (1.0f + std::fabs(data[i])), qPrintable(QString::number(i)));
    }

    void decode_attention_matches_naive_softmax_data() {
        QTest::addColumn<bool>("latent");
        QTest::addColumn<int>("heads");
        QTest::newRow("gqa 8 heads / 2 kv, dim 64") << false << 8;
        QTest::newRow("mla latent 576 → 512, 16 heads") << true << 16;
        QTest::newRow("mla latent 576 → 512, 32 heads (two head blocks)") << true << 32;
    }
    // Rows at positions 0 (one key, shorter than a tile), 150, 299 and 700 (three
    // subranges in one range when unsplit), each split 1, 4 and 16 ways, against a float64 softmax.
    void decode_attention_matches_naive_softmax() {
        QFETCH(bool, latent);
        QFETCH(int, heads);
        const int64_t kv_heads = latent ? 1 : 2, key_dim = latent ? 576 : 64, value_dim = latent ? 512 : 64;
        const int64_t row_width = latent ? 576 : 2 * kv_heads * 64, capacity = 720, slot_count = 4, rows = 4;
        const std::vector<int32_t> slot_of = {2, 0, 3, 1}, positions = {0, 150, 299, 700};
        // As the backend allocates it: one key tile of rows past the last slot.
        auto cache = from_bf16(to_bf16(random_floats(size_t((slot_count * capacity + kDecodeKeyTile) * row_width), 6)));
        // Rows past a sequence at least a tile long are never read: NaN there would show.
        for (int64_t r = 0; r < rows; ++r)
            if (positions[size_t(r)] + 1 >= kDecodeKeyTile)
                std::fill(cache.begin() + (slot_of[size_t(r)] * capacity + positions[size_t(r)] + 1) * row_width,
                          cache.begin() + (slot_of[size_t(r)] + 1) * capacity * row_width, std::nanf(""));
        const auto q = from_bf16(to_bf16(random_floats(size_t(rows * heads * key_dim), 7)));
        const float scale = 1.0f / std::sqrt(float(key_dim));
        const int64_t heads_per_block = decode_heads_per_block(heads / kv_heads), head_blocks = heads / heads_per_block;
        DeviceArray<uint16_t> d_cache(to_bf16(cache)), d_q(to_bf16(q)), d_out(size_t(rows * heads * value_dim));
        DeviceArray<int32_t> d_slots(slot_of), d_positions(positions);
        DeviceArray<float> partials(size_t(rows * head_blocks * 16 * kDecodeHeadRows * (value_dim + 2)));
        std::vector<float> expected;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t h = 0; h < heads; ++h) {
                const int64_t g = h / (heads / kv_heads), keys = positions[size_t(r)] + 1;
                const float* base = cache.data() + size_t(slot_of[size_t(r)]) * capacity * row_width;
                std::vector<double> p(static_cast<size_t>(keys));
                double peak = -1e30, total = 0;
                for (int64_t t = 0; t < keys; ++t) {
                    double dot = 0;
                    for (int64_t d = 0; d < key_dim; ++d)
                        dot += double(q[size_t((r * heads + h) * key_dim + d)]) * base[t * row_width + (latent ? 0 : g * 64) + d];
                    p[size_t(t)] = dot * scale;
                    peak = std::max(peak, p[size_t(t)]);
                }
                for (auto& v : p) total += v = std::exp(v - peak);
                for (int64_t d = 0; d < value_dim; ++d) {
                    double sum = 0;
                    for (int64_t t = 0; t < keys; ++t) sum += p[size_t(t)] / total * base[t * row_width + (latent ? 0 : kv_heads * 64 + g * 64) + d];
                    expected.push_back(float(sum));
                }
            }
        for (int64_t splits : {1, 4, 16}) {
            d_out.upload(std::vector<uint16_t>(size_t(rows * heads * value_dim), 0x7fc0));  // NaN: every output must be written
            DecodeAttention a;
            a.q = as_bf16(d_q), a.q_row_stride = heads * key_dim, a.q_head_stride = key_dim;
            a.cache = as_bf16(d_cache), a.capacity = capacity, a.cache_row_stride = row_width;
            a.key_offset = 0, a.value_offset = latent ? 0 : kv_heads * 64, a.kv_head_stride = latent ? 0 : 64;
            a.key_dim = key_dim, a.value_dim = value_dim, a.heads = heads, a.heads_per_kv = heads / kv_heads;
            a.heads_per_block = heads_per_block, a.scale = scale;
            a.cache_slots = d_slots.get(), a.positions = d_positions.get(), a.rows = rows, a.splits = splits;
            a.partials = partials.get(), a.out = as_bf16(d_out), a.out_row_stride = heads * value_dim, a.out_head_stride = value_dim;
            decode_attention(a, nullptr);
            const double error = relative_error(from_bf16(d_out.download()), expected);
            QVERIFY2(error < 1e-2, qPrintable(QString("splits %1: relative error %2").arg(splits).arg(error)));
        }
    }

    void sampling_is_greedy_deterministic_and_follows_the_distribution() {
        const int64_t vocab = 129280, rows = 4;
        const auto logits = random_floats(size_t(rows * vocab), 8, 3.0f);
        DeviceArray<float> d_logits(logits);
        DeviceArray<int32_t> out{size_t(rows)};
        auto run = [&](std::vector<DeviceSamplingParams> params) {
            DeviceArray<DeviceSamplingParams> d_params(params);
            sample_tokens(d_logits.get(), rows, vocab, d_params.get(), out.get(), nullptr);
            return out.download();
        };
        std::vector<int32_t> best;
        for (int64_t r = 0; r < rows; ++r) best.push_back(int32_t(argmax(logits.data() + r * vocab, size_t(vocab))));
        QCOMPARE(run(std::vector<DeviceSamplingParams>(size_t(rows))), best);
        DeviceSamplingParams top_k_one{1.0f, 1, 1.0f, 0.0f, 3, 9};
        QCOMPARE(run(std::vector<DeviceSamplingParams>(size_t(rows), top_k_one)), best);
        DeviceSamplingParams tiny_top_p{1.0f, 0, 1e-7f, 0.0f, 3, 9};
        QCOMPARE(run(std::vector<DeviceSamplingParams>(size_t(rows), tiny_top_p)), best);
        DeviceSamplingParams full_min_p{1.0f, 0, 1.0f, 1.0f, 3, 9};
        QCOMPARE(run(std::vector<DeviceSamplingParams>(size_t(rows), full_min_p)), best);
        DeviceSamplingParams free{0.8f, 50, 0.9f, 0.05f, 42, 7};
        const auto first = run(std::vector<DeviceSamplingParams>(size_t(rows), free));
        QCOMPARE(run(std::vector<DeviceSamplingParams>(size_t(rows), free)), first);

        // Eight tokens, many draws (one per counter): frequencies follow softmax(logits / T).
        const std::vector<float> small = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 0.2f, -3.0f};
        DeviceArray<float> d_small(small);
        const int64_t draws = 4096;
        std::vector<float> repeated;
        for (int64_t i = 0; i < draws; ++i) repeated.insert(repeated.end(), small.begin(), small.end());
        DeviceArray<float> d_repeated(repeated);
        std::vector<DeviceSamplingParams> params(static_cast<size_t>(draws));
        for (int64_t i = 0; i < draws; ++i) params[size_t(i)] = {1.0f, 0, 1.0f, 0.0f, 5, uint64_t(i)};
        DeviceArray<DeviceSamplingParams> d_params(params);
        DeviceArray<int32_t> picks(static_cast<size_t>(draws));
        sample_tokens(d_repeated.get(), draws, 8, d_params.get(), picks.get(), nullptr);
        std::vector<double> counts(8, 0.0);
        for (int32_t p : picks.download()) counts[size_t(p)] += 1.0 / double(draws);
        double total = 0;
        for (float v : small) total += std::exp(double(v));
        for (size_t i = 0; i < small.size(); ++i) QVERIFY(std::fabs(counts[i] - std::exp(double(small[i])) / total) < 0.03);
    }
};

QTEST_APPLESS_MAIN(CudaKernelsTest)
#include "test_cuda_kernels.moc"
