// Single kernels against CPU references on random inputs: the router (vs route_token), dispatch, grouped expert
// GEMV (bf16 and int8), int8 quantisation, RoPE (vs RopeTable::apply), split-KV decode attention, sampling.
#include <QtTest>

#include <algorithm>
#include <numeric>
#include <random>

#include "engine/io/dtype.h"
#include "engine/model/blocks/feed_forward.h"
#include "engine/model/blocks/rope.h"
#include "kernels/kernels.h"
#include "tests/gpu/cuda_test_support.h"

using namespace mwb;
using namespace mwb::cuda;

namespace {

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 random(seed);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> values(n);
    for (auto& v : values) v = normal(random);
    return values;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = float_to_bf16(values[i]);
    return bits;
}

std::vector<float> from_bf16(const std::vector<uint16_t>& bits) {
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) values[i] = bf16_to_float(bits[i]);
    return values;
}

bf16* as_bf16(const DeviceArray<uint16_t>& array) { return reinterpret_cast<bf16*>(array.get()); }

RouterParams params_of(const MoeConfig& m, const float* bias) {
    RouterParams p;
    p.experts = m.n_routed_experts, p.top_k = m.experts_per_token, p.groups = m.n_group, p.top_groups = m.topk_group;
    p.sigmoid = m.scoring == ScoringFunction::Sigmoid;
    p.group_limited = m.topk_method != TopkMethod::Greedy && m.n_group > 1;
    p.group_by_top_two = m.topk_method == TopkMethod::NoAuxTc;
    p.normalise = m.norm_topk_prob, p.scaling = float(m.routed_scaling_factor), p.bias = bias;
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

    void dispatch_and_grouped_gemv_match_the_cpu_data() {
        QTest::addColumn<int>("format");
        QTest::newRow("bf16") << int(WeightFormat::BF16);
        QTest::newRow("int8") << int(WeightFormat::INT8);
    }
    void dispatch_and_grouped_gemv_match_the_cpu() {
        QFETCH(int, format);
        const int64_t experts = 8, k = 2, tokens = 11, rows = 40, cols = 256;
        std::mt19937 random(5);
        std::vector<int32_t> chosen;
        for (int64_t t = 0; t < tokens; ++t) {
            const int32_t a = int32_t(random() % experts);
            const int32_t b = int32_t((a + 1 + random() % (experts - 1)) % experts);
            chosen.push_back(std::min(a, b));
            chosen.push_back(std::max(a, b));
        }
        const auto x = from_bf16(to_bf16(random_floats(size_t(tokens * cols), 1)));
        const auto w = from_bf16(to_bf16(random_floats(size_t(experts * rows * cols), 2, 0.1f)));
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

        DeviceArray<uint16_t> d_x(to_bf16(x)), d_w(to_bf16(w)), d_out(size_t(tokens * k * rows));
        DeviceArray<int8_t> d_q(size_t(experts * rows * cols));
        DeviceArray<float> d_scales(size_t(experts * rows * 2));
        DeviceMatrix matrix{d_w.get(), nullptr, WeightFormat::BF16, rows, cols};
        if (WeightFormat(format) == WeightFormat::INT8) {
            quantize_int8(as_bf16(d_w), experts * rows, cols, d_q.get(), d_scales.get(), nullptr);
            matrix = DeviceMatrix{d_q.get(), d_scales.get(), WeightFormat::INT8, rows, cols};
        }
        grouped_expert_gemv(matrix, experts, as_bf16(d_x), cols, token_of.get(), offsets.get(), active.get(), experts, as_bf16(d_out),
                            rows, nullptr);
        const auto out = from_bf16(d_out.download());
        std::vector<float> got, expected;
        for (size_t a = 0; a < chosen.size(); ++a) {
            const int64_t t = int64_t(a) / k, e = chosen[a];
            for (int64_t r = 0; r < rows; ++r) {
                float dot = 0;
                for (int64_t c = 0; c < cols; ++c) dot += x[size_t(t * cols + c)] * w[size_t((e * rows + r) * cols + c)];
                expected.push_back(dot);
                got.push_back(out[size_t(rows_of[a] * rows + r)]);
            }
        }
        const double error = relative_error(got, expected);
        QVERIFY2(error < (WeightFormat(format) == WeightFormat::INT8 ? 1.5e-2 : 5e-3), qPrintable(QString::number(error)));
    }

    void int8_quantisation_round_trips() {
        const int64_t rows = 37, cols = 300;
        const auto w = from_bf16(to_bf16(random_floats(size_t(rows * cols), 3)));
        DeviceArray<uint16_t> d_w(to_bf16(w)), d_back(size_t(rows * cols));
        DeviceArray<int8_t> d_q(size_t(rows * cols));
        DeviceArray<float> d_scales(size_t(rows * 3));
        quantize_int8(as_bf16(d_w), rows, cols, d_q.get(), d_scales.get(), nullptr);
        dequantize_rows(DeviceMatrix{d_q.get(), d_scales.get(), WeightFormat::INT8, rows, cols}, 0, rows, as_bf16(d_back), nullptr);
        const auto back = from_bf16(d_back.download());
        const auto scales = d_scales.download();
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c) {
                const float scale = scales[size_t(r * 3 + c / 128)];
                QVERIFY(std::fabs(back[size_t(r * cols + c)] - w[size_t(r * cols + c)]) <= 0.5f * scale + 0.01f * std::fabs(w[size_t(r * cols + c)]));
            }
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
        QTest::newRow("gqa 8 heads / 2 kv, dim 64") << false;
        QTest::newRow("mla latent 576 → 512, 16 heads") << true;
    }
    void decode_attention_matches_naive_softmax() {
        QFETCH(bool, latent);
        const int64_t heads = latent ? 16 : 8, kv_heads = latent ? 1 : 2, key_dim = latent ? 576 : 64, value_dim = latent ? 512 : 64;
        const int64_t row_width = latent ? 576 : 2 * kv_heads * 64, capacity = 300, slot_count = 3;
        const std::vector<int32_t> slot_of = {2, 0, 1}, positions = {0, 150, 299};
        const auto cache = from_bf16(to_bf16(random_floats(size_t(slot_count * capacity * row_width), 6)));
        const auto q = from_bf16(to_bf16(random_floats(size_t(3 * heads * key_dim), 7)));
        const float scale = 1.0f / std::sqrt(float(key_dim));
        DeviceArray<uint16_t> d_cache(to_bf16(cache)), d_q(to_bf16(q)), d_out(size_t(3 * heads * value_dim));
        DeviceArray<int32_t> d_slots(slot_of), d_positions(positions);
        DeviceArray<float> partials(size_t(64 * 8 * (value_dim + 2)));
        for (int64_t splits : {1, 4}) {
            DecodeAttention a;
            a.q = as_bf16(d_q), a.q_row_stride = heads * key_dim, a.q_head_stride = key_dim;
            a.cache = as_bf16(d_cache), a.capacity = capacity, a.cache_row_stride = row_width;
            a.key_offset = 0, a.value_offset = latent ? 0 : kv_heads * 64, a.kv_head_stride = latent ? 0 : 64;
            a.key_dim = key_dim, a.value_dim = value_dim, a.heads = heads, a.heads_per_kv = heads / kv_heads;
            a.heads_per_block = decode_heads_per_block(heads / kv_heads), a.scale = scale;
            a.cache_slots = d_slots.get(), a.positions = d_positions.get(), a.rows = 3, a.splits = splits;
            a.partials = partials.get(), a.out = as_bf16(d_out), a.out_row_stride = heads * value_dim, a.out_head_stride = value_dim;
            decode_attention(a, nullptr);
            const auto got = from_bf16(d_out.download());
            std::vector<float> expected;
            for (int64_t r = 0; r < 3; ++r)
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
                        for (int64_t t = 0; t < keys; ++t)
                            sum += p[size_t(t)] / total * base[t * row_width + (latent ? 0 : kv_heads * 64 + g * 64) + d];
                        expected.push_back(float(sum));
                    }
                }
            const double error = relative_error(got, expected);
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
