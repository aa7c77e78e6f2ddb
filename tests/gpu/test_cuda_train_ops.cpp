// The LoRA trainer's fp32 kernels (kernels/train_ops.cu) against their CPU twins of engine/train, which finite
// differences check in tests/train: RMSNorm, SwiGLU and the cross-entropy (backward_ops), RoPE (RopeTable), the
// causal attention softmax (cpu::softmax per row) and its backward (inline in lora_model.cpp's attention: mirrored
// here), the router's backward, and the trainer's row moves (gathers, weighted scatters, lora_dropout). Random inputs of awkward sizes
// (widths not multiples of 32, more rows than one block, 70 tokens), plus hand-computed cases for the
// cross-entropy.
//
// Errors are the largest |device − CPU| over a tensor relative to its largest |CPU| value, so that entries that
// cancel (gradients near zero) are judged against the tensor's scale. Both sides compute in fp32:
// - kSameOrder 1e-6: the same per-element formula and the same summation order (or fp64 sums); what differs is
//   the device's libm (expf, sincosf within 2 ulp) and FMA contraction, a few ulp (1 ulp = 6e-8).
// - kReordered 1e-5: fp32 sums of up to 70 terms (a softmax row) in another order, ≤ 70 roundings at worst.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "engine/model/blocks/rope.h"
#include "engine/runtime/cpu/cpu_ops.h"
#include "engine/train/backward_ops.h"
#include "engine/train/lora_adapter.h"
#include "engine/train/lora_model.h"
#include "kernels/device_weights.h"
#include "kernels/train_kernels.h"
#include "tests/gpu/cuda_test_support.h"

using namespace mwb;
using namespace mwb::cuda;

namespace {

constexpr double kSameOrder = 1e-6;
constexpr double kReordered = 1e-5;

template <class T>
double max_error(const std::vector<T>& got, const std::vector<T>& want) {
    double difference = 0, magnitude = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(double(got[i]))) return INFINITY;
        difference = std::max(difference, std::fabs(double(got[i]) - double(want[i])));
        magnitude = std::max(magnitude, std::fabs(double(want[i])));
    }
    return difference / std::max(magnitude, 1e-30);
}

// Logs the measured error (the numbers the tolerances above are argued from) and checks it.
bool within(const char* what, double error, double tolerance) {
    qInfo("%-28s max error %.3g (tolerance %.0e)", what, error, tolerance);
    return error <= tolerance;
}

// lora_model.cpp's attention backward for one (head, query) row of P and dP: dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale.
void softmax_backward_row(const float* p_row, const float* d_p, int64_t i, float scale, float* d_s) {
    float row_sum = 0;
    for (int64_t j = 0; j <= i; ++j) row_sum += p_row[j] * d_p[j];
    for (int64_t j = 0; j <= i; ++j) d_s[j] = p_row[j] * (d_p[j] - row_sum) * scale;
}

}  // namespace

class CudaTrainOpsTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void rms_norm_matches_backward_ops_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("width");
        QTest::addColumn<int>("stride");
        QTest::newRow("37 rows of 1000") << 37 << 1000 << 1000;
        QTest::newRow("70 rows of 77, 93 apart (MLA's latent)") << 70 << 77 << 93;
    }
    void rms_norm_matches_backward_ops() {
        QFETCH(int, rows);
        QFETCH(int, width);
        QFETCH(int, stride);
        const float eps = 1e-6f;
        const auto x = random_floats(size_t(rows * stride), 1, 2.0f);
        auto weight = random_floats(size_t(width), 2, 0.2f);
        for (float& w : weight) w += 1.0f;
        const auto dy = random_floats(size_t(rows * width), 3);
        const auto dx_before = random_floats(size_t(rows * stride), 4);  // the backward adds into it

        std::vector<float> y(size_t(rows * width)), inv(static_cast<size_t>(rows)), dx = dx_before;
        for (int64_t r = 0; r < rows; ++r) {
            train::rms_norm_forward(x.data() + r * stride, weight.data(), 1, width, eps, y.data() + r * width, inv.data() + r);
            train::rms_norm_backward_add(x.data() + r * stride, inv.data() + r, weight.data(), dy.data() + r * width, 1, width,
                                         dx.data() + r * stride);
        }
        DeviceArray<float> d_x(x), d_weight(weight), d_y(y.size()), d_inv(inv.size()), d_dy(dy), d_dx(dx_before);
        rms_norm_forward(d_x.get(), stride, d_weight.get(), rows, width, eps, d_y.get(), d_inv.get(), nullptr);
        rms_norm_backward_add(d_x.get(), stride, d_inv.get(), d_weight.get(), d_dy.get(), rows, width, d_dx.get(), nullptr);
        // fp64 sums of squares and of g·x on both sides: only the order of fp64 additions differs.
        QVERIFY(within("rms_norm_forward y", max_error(d_y.download(), y), kSameOrder));
        QVERIFY(within("rms_norm_forward inv", max_error(d_inv.download(), inv), kSameOrder));
        // The whole of dx, so the gaps between strided rows are checked untouched too.
        QVERIFY(within("rms_norm_backward_add dx", max_error(d_dx.download(), dx), kSameOrder));
    }

    void swiglu_matches_backward_ops() {
        const int64_t count = 70 * 333;
        const auto gate = random_floats(static_cast<size_t>(count), 5, 3.0f), up = random_floats(static_cast<size_t>(count), 6), d_act = random_floats(static_cast<size_t>(count), 7);
        std::vector<float> act(static_cast<size_t>(count)), d_gate(static_cast<size_t>(count)), d_up(static_cast<size_t>(count));
        train::swiglu_forward(gate.data(), up.data(), count, act.data());
        train::swiglu_backward(gate.data(), up.data(), d_act.data(), count, d_gate.data(), d_up.data());
        DeviceArray<float> g(gate), u(up), a(static_cast<size_t>(count)), da(d_act), dg(static_cast<size_t>(count)), du(static_cast<size_t>(count));
        swiglu_forward(g.get(), u.get(), count, a.get(), nullptr);
        swiglu_backward(g.get(), u.get(), da.get(), count, dg.get(), du.get(), nullptr);
        QVERIFY(within("swiglu_forward act", max_error(a.download(), act), kSameOrder));
        QVERIFY(within("swiglu_backward d_gate", max_error(dg.download(), d_gate), kSameOrder));
        QVERIFY(within("swiglu_backward d_up", max_error(du.download(), d_up), kSameOrder));
    }

    void rope_matches_the_rope_table_data() {
        QTest::addColumn<int>("variant");
        QTest::newRow("neox, llama3, 5 heads of 64") << 0;
        QTest::newRow("interleaved, yarn, MLA query: rope 16 after nope 24") << 1;
        QTest::newRow("neox, partial rotary 32 of 72") << 2;
    }
    // Forward against RopeTable::apply and backward against apply_transposed, on whole rows: the values outside
    // the rotated part must come back untouched.
    void rope_matches_the_rope_table() {
        QFETCH(int, variant);
        struct Case {
            RopeLayout layout;
            RopeScaling scaling;
            int64_t heads, head_stride, offset, rotary_dim;
        };
        const Case cases[] = {{RopeLayout::NeoX, RopeScaling::Llama3, 5, 64, 0, 64},
                              {RopeLayout::Interleaved, RopeScaling::Yarn, 3, 40, 24, 16},
                              {RopeLayout::NeoX, RopeScaling::None, 2, 72, 0, 32}};
        const Case& c = cases[variant];
        RopeConfig config;
        config.theta = c.scaling == RopeScaling::Llama3 ? 500000.0 : 10000.0;
        config.scaling = c.scaling;
        config.factor = c.scaling == RopeScaling::Yarn ? 40.0 : 8.0;
        config.original_max_position_embeddings = c.scaling == RopeScaling::Yarn ? 4096 : 8192;
        config.mscale = 1.0, config.mscale_all_dim = 0.0;  // YaRN's attention factor 0.1·ln 40 + 1, not 1
        const RopeTable table = make_rope_table(config, c.rotary_dim, c.layout, 163840);
        const int64_t rows = 70, row_stride = c.heads * c.head_stride;
        std::vector<int32_t> positions(static_cast<size_t>(rows));
        for (int64_t t = 0; t < rows; ++t) positions[size_t(t)] = int32_t(3 * t + (t % 7) * 1000);

        auto forward = random_floats(size_t(rows * row_stride), 8), backward = random_floats(size_t(rows * row_stride), 9);
        DeviceArray<float> d_forward(forward), d_backward(backward), d_frequency(table.inverse_frequency);
        DeviceArray<int32_t> d_positions(positions);
        const RopeParams params{d_frequency.get(), c.rotary_dim, c.layout == RopeLayout::Interleaved, table.attention_factor};
        rope_forward(d_forward.get() + c.offset, rows, row_stride, c.heads, c.head_stride, d_positions.get(), params, nullptr);
        rope_backward(d_backward.get() + c.offset, rows, row_stride, c.heads, c.head_stride, d_positions.get(), params, nullptr);
        for (int64_t t = 0; t < rows; ++t) {
            table.apply(forward.data() + t * row_stride + c.offset, c.heads, c.head_stride, positions[size_t(t)]);
            table.apply_transposed(backward.data() + t * row_stride + c.offset, c.heads, c.head_stride, positions[size_t(t)]);
        }
        QVERIFY(within("rope_forward", max_error(d_forward.download(), forward), kSameOrder));
        QVERIFY(within("rope_backward", max_error(d_backward.download(), backward), kSameOrder));
    }

    void causal_softmax_matches_lora_model_data() {
        QTest::addColumn<bool>("in_place");
        QTest::newRow("separate outputs") << false;
        QTest::newRow("in place") << true;
    }
    // 3 heads of 70 tokens; NaN above the diagonal of the inputs shows any read there.
    void causal_softmax_matches_lora_model() {
        QFETCH(bool, in_place);
        const int64_t heads = 3, tokens = 70;
        const float scale = 1.0f / std::sqrt(40.0f);
        auto scores = random_floats(size_t(heads * tokens * tokens), 10, 3.0f), d_p = random_floats(size_t(heads * tokens * tokens), 11);
        std::vector<float> p(scores.size(), 0.0f), d_s(scores.size(), 0.0f);
        for (int64_t row = 0; row < heads * tokens; ++row) {
            const int64_t i = row % tokens;
            float* p_row = p.data() + row * tokens;
            std::copy_n(scores.data() + row * tokens, i + 1, p_row);
            cpu::softmax(p_row, i + 1);
            softmax_backward_row(p_row, d_p.data() + row * tokens, i, scale, d_s.data() + row * tokens);
            std::fill(scores.begin() + row * tokens + i + 1, scores.begin() + (row + 1) * tokens, NAN);
            std::fill(d_p.begin() + row * tokens + i + 1, d_p.begin() + (row + 1) * tokens, NAN);
        }
        DeviceArray<float> d_scores(scores), d_probabilities(p.size()), d_d_p(d_p), d_d_s(d_s.size());
        float* probabilities = in_place ? d_scores.get() : d_probabilities.get();
        causal_softmax_forward(d_scores.get(), heads, tokens, probabilities, nullptr);
        // The backward from the CPU's probabilities, so that it is checked on its own.
        DeviceArray<float> d_reference_p(p);
        float* scores_gradient = in_place ? d_d_p.get() : d_d_s.get();
        causal_softmax_backward(d_reference_p.get(), d_d_p.get(), heads, tokens, scale, scores_gradient, nullptr);
        QVERIFY(within("causal_softmax_forward", max_error((in_place ? d_scores : d_probabilities).download(), p), kReordered));
        QVERIFY(within("causal_softmax_backward", max_error((in_place ? d_d_p : d_d_s).download(), d_s), kReordered));
    }

    // Two rows of 3 tokens, vocab 3, gradient scale 0.5. Row 0: position 0 predicts label 1 from logits
    // [0, ln 2, ln 5] (softmax [1, 2, 5]/8: loss ln 4, gradient 0.5·[1/8, 2/8 − 1, 5/8]); position 1's label is
    // -100. Row 1: position 0's label is -100; position 1 predicts label 2 from [ln 3, 0, 0] (softmax [3, 1, 1]/5:
    // loss ln 5, gradient 0.5·[3/5, 1/5, 1/5 − 1]). Row 1's first label (0) must not be read for row 0's last position.
    void cross_entropy_by_hand() {
        const float ignored = 7.0f;  // logits whose gradient must come out 0
        const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(5.0f), ignored, -1.0f, 0.5f, 1.0f, 2.0f, 3.0f,
                                           ignored, 1.0f, 2.0f, std::log(3.0f), 0.0f, 0.0f, 3.0f, 2.0f, 1.0f};
        const std::vector<int64_t> labels = {train::kIgnoredLabel, 1, train::kIgnoredLabel, 0, train::kIgnoredLabel, 2};
        DeviceArray<float> d_logits(logits), gradient(logits.size());
        DeviceArray<int64_t> d_labels(labels);
        DeviceArray<double> position_losses(6), row_losses(2);
        causal_lm_loss(d_logits.get(), d_labels.get(), 2, 3, 3, 0.5f, gradient.get(), position_losses.get(), row_losses.get(), nullptr);
        const std::vector<float> expected_gradient = {0.0625f, -0.375f, 0.3125f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.3f, 0.1f, -0.4f, 0, 0, 0};
        const std::vector<double> expected_positions = {std::log(4.0), 0, 0, 0, std::log(5.0), 0};
        QVERIFY(within("cross-entropy by hand: d", max_error(gradient.download(), expected_gradient), kSameOrder));
        QVERIFY(within("cross-entropy by hand: loss", max_error(position_losses.download(), expected_positions), kSameOrder));
        const auto rows = row_losses.download();
        QVERIFY(std::fabs(rows[0] - std::log(4.0)) <= 1e-6 && std::fabs(rows[1] - std::log(5.0)) <= 1e-6);
    }

    void cross_entropy_label_outside_the_vocabulary_is_nan() {
        const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
        const std::vector<int64_t> labels = {0, 3};
        DeviceArray<float> d_logits(logits), gradient(logits.size());
        DeviceArray<int64_t> d_labels(labels);
        DeviceArray<double> position_losses(2), row_losses(1);
        causal_lm_loss(d_logits.get(), d_labels.get(), 1, 2, 3, 1.0f, gradient.get(), position_losses.get(), row_losses.get(), nullptr);
        QVERIFY(std::isnan(row_losses.download()[0]));
        for (float g : gradient.download()) QCOMPARE(g, 0.0f);
    }

    // Two rows of 70 tokens, vocab 1531, about a quarter of the labels ignored; then the same without gradients.
    void cross_entropy_matches_row_loss() {
        const int64_t rows = 2, tokens = 70, vocab = 1531;
        const auto logits = random_floats(size_t(rows * tokens * vocab), 12, 4.0f);
        std::mt19937 random(13);
        std::vector<int64_t> labels(size_t(rows * tokens));
        for (auto& label : labels) label = random() % 4 == 0 ? train::kIgnoredLabel : int64_t(random() % vocab);
        int64_t counted = 0;
        for (int64_t r = 0; r < rows; ++r) counted += train::counted_labels({labels.data() + r * tokens, size_t(tokens)});
        const float scale = 1.0f / float(counted);
        std::vector<float> d_logits(logits.size(), 0.0f);
        std::vector<double> losses(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r)
            losses[size_t(r)] = train::causal_lm_loss(logits.data() + r * tokens * vocab, labels.data() + r * tokens, tokens, vocab,
                                                      train::kIgnoredLabel, scale, d_logits.data() + r * tokens * vocab);

        DeviceArray<float> d_in(logits), gradient(logits.size());
        DeviceArray<int64_t> d_labels(labels);
        DeviceArray<double> position_losses(labels.size()), row_losses(static_cast<size_t>(rows));
        causal_lm_loss(d_in.get(), d_labels.get(), rows, tokens, vocab, scale, gradient.get(), position_losses.get(), row_losses.get(), nullptr);
        // The exponentials in fp32 here, in fp64 on the CPU: each probability within an ulp or two.
        QVERIFY(within("causal_lm_loss d_logits", max_error(gradient.download(), d_logits), kSameOrder));
        const auto with_gradient = row_losses.download();
        QVERIFY(within("causal_lm_loss row losses", max_error(with_gradient, losses), kSameOrder));
        causal_lm_loss(d_in.get(), d_labels.get(), rows, tokens, vocab, scale, nullptr, position_losses.get(), row_losses.get(), nullptr);
        QCOMPARE(row_losses.download(), with_gradient);
    }

    void router_backward_matches_backward_ops_data() {
        QTest::addColumn<bool>("sigmoid");
        QTest::addColumn<int>("experts");
        QTest::addColumn<int>("top_k");
        QTest::addColumn<bool>("normalise");
        QTest::addColumn<double>("scaling");
        QTest::newRow("sigmoid, normalised, 64 experts top 6, ×2.5") << true << 64 << 6 << true << 2.5;
        QTest::newRow("softmax, 64 experts top 6") << false << 64 << 6 << false << 1.0;
        QTest::newRow("softmax, normalised, 37 experts top 5, ×16") << false << 37 << 5 << true << 16.0;
        QTest::newRow("sigmoid, top 1 (nothing to normalise)") << true << 37 << 1 << true << 1.0;
    }
    // 77 tokens (ten blocks of eight), each with experts chosen at random and in no particular order.
    void router_backward_matches_backward_ops() {
        QFETCH(bool, sigmoid);
        QFETCH(int, experts);
        QFETCH(int, top_k);
        QFETCH(bool, normalise);
        QFETCH(double, scaling);
        MoeConfig config;
        config.n_routed_experts = experts, config.experts_per_token = top_k, config.norm_topk_prob = normalise;
        config.routed_scaling_factor = scaling;
        config.scoring = sigmoid ? ScoringFunction::Sigmoid : ScoringFunction::Softmax;
        const int64_t rows = 77, n = experts, k = top_k;
        auto scores = random_floats(size_t(rows * n), 14, 2.0f);
        std::vector<int32_t> chosen(size_t(rows * k));
        std::mt19937 random(15);
        for (int64_t t = 0; t < rows; ++t) {
            float* s = scores.data() + t * n;
            if (sigmoid) {
                for (int64_t e = 0; e < n; ++e) s[e] = 1.0f / (1.0f + std::exp(-s[e]));
            } else {
                cpu::softmax(s, n);
            }
            std::vector<int32_t> order(static_cast<size_t>(n));
            std::iota(order.begin(), order.end(), 0);
            std::shuffle(order.begin(), order.end(), random);
            std::copy_n(order.begin(), k, chosen.begin() + t * k);
        }
        const auto d_weights = random_floats(size_t(rows * k), 16);
        std::vector<float> d_logits(size_t(rows * n));
        for (int64_t t = 0; t < rows; ++t)
            train::router_backward(config, scores.data() + t * n, chosen.data() + t * k, d_weights.data() + t * k, d_logits.data() + t * n);

        const RouterParams params = router_params(config);  // as the trainer passes them
        DeviceArray<float> d_scores(scores), d_d_weights(d_weights), gradient(d_logits.size());
        DeviceArray<int32_t> d_chosen(chosen);
        router_backward(d_scores.get(), d_chosen.get(), d_d_weights.get(), rows, params, gradient.get(), nullptr);
        QVERIFY(within("router_backward d_logits", max_error(gradient.download(), d_logits), kSameOrder));
    }

    // The trainer's row moves on small hand-checkable rows.
    void row_moves_match_hand_computed_values() {
        const std::vector<float> rows = {1, 2, 3, 4, 5, 6};  // three rows of width 2
        DeviceArray<float> in(rows), gathered(4);
        DeviceArray<int32_t> pick(std::vector<int32_t>{2, 0});
        DeviceArray<float> scales(std::vector<float>{0.5f, -1.0f});
        gather_rows_fp32(in.get(), 2, pick.get(), scales.get(), 2, gathered.get(), nullptr);
        QCOMPARE(gathered.download(), (std::vector<float>{2.5f, 3, -1, -2}));

        DeviceArray<float> target(std::vector<float>(6, 1.0f));
        scatter_add_rows(gathered.get(), 2, pick.get(), nullptr, 2, target.get(), nullptr);
        QCOMPARE(target.download(), (std::vector<float>{0, -1, 1, 1, 3.5f, 4}));

        DeviceArray<float> dots(std::vector<float>(4, 0.0f));
        DeviceArray<int32_t> at(std::vector<int32_t>{3, 1});
        row_dots(in.get(), pick.get(), gathered.get(), 2, 2, dots.get(), at.get(), nullptr);
        QCOMPARE(dots.download(), (std::vector<float>{0, 1 * -1 + 2 * -2, 0, 5 * 2.5f + 6 * 3}));

        DeviceArray<float> heads(std::vector<float>{1, 2, 10, 20, 100, 200}), summed(2);  // three heads of two values
        sum_heads(heads.get(), 3, 2, summed.get(), nullptr);
        QCOMPARE(summed.download(), (std::vector<float>{111, 222}));

        DeviceArray<float> columns(std::vector<float>(4, 0.5f));
        copy_columns(in.get() + 1, 2, 2, 1, columns.get() + 1, 2, true, nullptr);  // column 1 of rows 0-1, added into column 1
        QCOMPARE(columns.download(), (std::vector<float>{0.5f, 2.5f, 0.5f, 4.5f}));

        DeviceArray<float> biased(std::vector<float>(4, 0.0f)), bias(std::vector<float>{1, -1});
        add_bias_rows(biased.get(), 2, 2, bias.get(), nullptr);
        QCOMPARE(biased.download(), (std::vector<float>{1, -1, 1, -1}));
    }

    // lora_dropout's mask is the CPU trainer's: the rate's share dropped, the rest scaled by 1 / (1 − rate), the
    // same for the same seed and module, another for another module; its backward passes exactly the kept ones.
    void lora_dropout_keeps_the_rate_and_is_reproducible() {
        const int64_t count = 20000;
        const double rate = 0.25;
        DeviceArray<float> ones(std::vector<float>(static_cast<size_t>(count), 1.0f)), first(static_cast<size_t>(count)), again(static_cast<size_t>(count)), other(static_cast<size_t>(count));
        lora_dropout(ones.get(), count, 99, 3, rate, first.get(), nullptr);
        lora_dropout(ones.get(), count, 99, 3, rate, again.get(), nullptr);
        lora_dropout(ones.get(), count, 99, 4, rate, other.get(), nullptr);
        const std::vector<float> mask = first.download();
        QCOMPARE(again.download(), mask);
        QVERIFY(other.download() != mask);
        int64_t kept = 0;
        for (float value : mask) {
            QVERIFY(value == 0.0f || std::fabs(value - float(1.0 / (1.0 - rate))) < 1e-6f);
            kept += value != 0.0f;
        }
        QVERIFY2(std::fabs(double(kept) / double(count) - (1.0 - rate)) < 0.02, qPrintable(QString::number(kept)));
        DeviceArray<float> dx(std::vector<float>(static_cast<size_t>(count), 0.0f));
        lora_dropout_backward_add(ones.get(), count, 99, 3, rate, dx.get(), nullptr);
        QCOMPARE(dx.download(), mask);
    }
};

QTEST_APPLESS_MAIN(CudaTrainOpsTest)
#include "test_cuda_train_ops.moc"
