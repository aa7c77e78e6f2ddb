// The sampler against hand-computed distributions.
#include <QtTest>

#include <cmath>
#include <cstdint>

#include "engine/runtime/sampler.h"

using namespace mwb;

namespace {

std::vector<float> log_probabilities(std::initializer_list<double> probabilities) {
    std::vector<float> logits;
    for (double p : probabilities) logits.push_back(float(std::log(p)));
    return logits;
}

// Draws `n` tokens and returns how often each came up.
std::vector<int> histogram(const SamplingParams& params, const std::vector<float>& logits, int n) {
    Sampler sampler(params);
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < n; ++i) ++counts[size_t(sampler.sample(logits, {}))];
    return counts;
}

}  // namespace

class SamplerTest : public QObject {
    Q_OBJECT

private slots:
    void greedy_takes_the_argmax() {
        SamplingParams params;
        params.temperature = 0;
        Sampler sampler(params);
        QCOMPARE(sampler.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.9f}, {}), 1);
    }

    void same_seed_same_tokens_other_seed_other_tokens() {
        SamplingParams params;
        params.seed = 42;
        const auto logits = log_probabilities({0.25, 0.25, 0.25, 0.25});
        auto draw = [&](uint64_t seed) {
            params.seed = seed;
            Sampler sampler(params);
            std::vector<int32_t> tokens;
            for (int i = 0; i < 64; ++i) tokens.push_back(sampler.sample(logits, {}));
            return tokens;
        };
        QCOMPARE(draw(42), draw(42));
        QVERIFY(draw(42) != draw(43));
    }

    void temperature_one_follows_the_distribution() {
        SamplingParams params;
        params.seed = 7;
        const auto counts = histogram(params, log_probabilities({0.7, 0.2, 0.1}), 20000);
        // Binomial standard deviation for p=0.7, n=20000 is ~65; allow 5 of them.
        QVERIFY(std::abs(counts[0] - 14000) < 325);
        QVERIFY(std::abs(counts[1] - 4000) < 285);
    }

    void top_k_keeps_the_k_best() {
        SamplingParams params;
        params.top_k = 2;
        params.seed = 3;
        const auto counts = histogram(params, log_probabilities({0.1, 0.5, 0.4}), 2000);
        QCOMPARE(counts[0], 0);
        QVERIFY(counts[1] > 0 && counts[2] > 0);
    }

    void top_p_keeps_the_smallest_set_reaching_p() {
        SamplingParams params;
        params.top_p = 0.6;  // 0.5 alone is short of 0.6; 0.5 + 0.3 reaches it
        params.seed = 5;
        const auto counts = histogram(params, log_probabilities({0.5, 0.3, 0.2}), 4000);
        QCOMPARE(counts[2], 0);
        // Renormalised: 0.5/0.8 = 0.625.
        QVERIFY(std::abs(counts[0] - 2500) < 160);
    }

    void min_p_drops_tokens_below_a_fraction_of_the_best() {
        SamplingParams params;
        params.min_p = 0.5;  // threshold 0.25 of the best 0.5: keeps 0.5 and 0.3, drops 0.2
        params.seed = 9;
        const auto counts = histogram(params, log_probabilities({0.5, 0.3, 0.2}), 2000);
        QCOMPARE(counts[2], 0);
        QVERIFY(counts[1] > 0);
    }

    void repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        SamplingParams params;
        params.temperature = 0;
        params.repetition_penalty = 2.0;
        Sampler sampler(params);
        // Token 0 was seen: 2.0 / 2 = 1.0 < 1.9, so token 1 wins.
        QCOMPARE(sampler.sample(std::vector<float>{2.0f, 1.9f}, std::vector<int32_t>{0}), 1);
        // Token 1 was seen: -1.0 · 2 = -2.0 < -1.5, so token 0 wins.
        QCOMPARE(sampler.sample(std::vector<float>{-1.5f, -1.0f}, std::vector<int32_t>{1, 1}), 0);
    }
};

QTEST_APPLESS_MAIN(SamplerTest)
#include "test_sampler.moc"
