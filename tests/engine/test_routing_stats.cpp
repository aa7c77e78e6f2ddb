// The Inspector's routing data: equal to the reference router outputs, loads that add up, statistics checked by
// hand, CSV that round-trips.
#include <QtTest>

#include <cmath>
#include <cstdint>

#include "engine/model/model_graph.h"
#include "engine/observe/routing_stats.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/cpu/cpu_ops.h"
#include "tests/support/fixture.h"

using namespace mwb;

namespace {

RoutingRecord record(int64_t position, int64_t layer, std::vector<int32_t> experts) {
    std::vector<float> weights(experts.size(), 0.5f);
    return {0, position, layer, std::move(experts), std::move(weights), {}};
}

}  // namespace

class RoutingStatsTest : public QObject {
    Q_OBJECT

    std::optional<testing::Fixture> fixture_;
    std::shared_ptr<const ModelGraph> graph_;
    std::vector<int32_t> prompt_;
    RoutingTrace trace_{true};

private slots:
    void initTestCase() {
        fixture_.emplace(testing::load_fixture("dsv3-tiny"));
        graph_ = fixture_->graph;
        prompt_ = fixture_->prompt(0);
        auto backend = make_cpu_backend(graph_, 2);
        QVERIFY(backend->reserve_cache(1, int64_t(prompt_.size())).ok());
        QVERIFY(backend->forward({prompt_, {{0, 0, int64_t(prompt_.size())}}, false}, &trace_).ok());
    }

    void trace_equals_reference_router_outputs() {
        const int64_t k = graph_->config.moe->experts_per_token;
        QCOMPARE(trace_.records().size(), prompt_.size() * graph_->moe_layers().size());
        for (const auto& r : trace_.records()) {
            const std::string name = "p0.router." + std::to_string(r.layer);
            const auto indices = *fixture_->reference.read_int64(name + ".indices");
            const auto weights = *fixture_->reference.read_float(name + ".weights", {});
            for (int64_t i = 0; i < k; ++i) {
                QCOMPARE(int64_t(r.experts[size_t(i)]), indices[size_t(r.position * k + i)]);
                QVERIFY(std::fabs(r.weights[size_t(i)] - weights[size_t(r.position * k + i)]) <= 1e-5f);
            }
        }
    }

    void each_layer_load_sums_to_tokens_times_top_k() {
        const LoadMatrix load = load_matrix(trace_.records(), graph_->config.moe->n_routed_experts);
        QCOMPARE(load.layers, (std::vector<int64_t>{1, 2, 3}));
        QCOMPARE(load.tokens, int64_t(prompt_.size()));
        for (size_t row = 0; row < load.layers.size(); ++row) {
            int64_t total = 0;
            for (int64_t e = 0; e < load.experts; ++e) total += load.count(row, e);
            QCOMPARE(total, int64_t(prompt_.size()) * graph_->config.moe->experts_per_token);
        }
        const LoadMatrix first_ten = load_matrix(trace_.records(), load.experts, {0, 9});
        QCOMPARE(first_ten.tokens, int64_t(10));
    }

    void explained_scores_choose_the_reference_experts() {
        const auto& moe = std::get<MoeWeights>(graph_->layers[2].feed_forward);
        const std::vector<float> bias = cpu::decode_vector(moe.score_bias->weight);
        const auto logits = *fixture_->reference.read_float("p0.router.2.logits", {});
        const auto indices = *fixture_->reference.read_int64("p0.router.2.indices");
        const int64_t n = moe.config.n_routed_experts, k = moe.config.experts_per_token;
        for (size_t t = 0; t < prompt_.size(); ++t) {
            const std::vector<float> token_logits(logits.begin() + long(t * size_t(n)), logits.begin() + long((t + 1) * size_t(n)));
            const RouterScores scores = explain_routing(moe.config, token_logits, bias);
            QCOMPARE(scores.group_size, int64_t(4));  // 16 experts in n_group 4
            for (int64_t i = 0; i < k; ++i) QCOMPARE(int64_t(scores.chosen[size_t(i)]), indices[t * size_t(k) + size_t(i)]);
            // The sigmoid score of expert 0, and its bias-corrected selection score unless its group was masked.
            QVERIFY(std::fabs(scores.scores[0] - 1.0f / (1.0f + std::exp(-token_logits[0]))) < 1e-6f);
            QVERIFY(scores.selection_scores[0] == 0.0f || std::fabs(scores.selection_scores[0] - (scores.scores[0] + bias[0])) < 1e-6f);
        }
    }

    void imbalance_matches_hand_computation() {
        // Two experts, counts 3 and 1: mean 2, max/mean 1.5, std 1 → CV 0.5,
        // entropy -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2 = 0.811278.
        std::vector<RoutingRecord> records = {record(0, 1, {0}), record(1, 1, {0}), record(2, 1, {0}), record(3, 1, {1})};
        const LoadMatrix load = load_matrix(records, 2);
        const LoadImbalance result = imbalance(load, 0);
        QCOMPARE(result.max_over_mean, 1.5);
        QCOMPARE(result.coefficient_of_variation, 0.5);
        QVERIFY(std::fabs(result.normalised_entropy - 0.811278124459) < 1e-9);
    }

    void co_activation_and_flow_match_hand_counts() {
        // Layer 1: token 0 → {0,1}, token 1 → {0,2}. Layer 2: token 0 → {3}, token 1 → {3}.
        std::vector<RoutingRecord> records = {record(0, 1, {0, 1}), record(0, 2, {3}), record(1, 1, {0, 2}), record(1, 2, {3})};
        const auto p = co_activation(records, 1, 4);
        QCOMPARE(p[0 * 4 + 0], 1.0);
        QCOMPARE(p[0 * 4 + 1], 0.5);  // expert 0 twice, with 1 once
        QCOMPARE(p[1 * 4 + 0], 1.0);  // expert 1 once, always with 0
        QCOMPARE(p[2 * 4 + 1], 0.0);
        const auto flows = expert_flow(records, 1, 2, 10);
        QCOMPARE(flows.front().from_expert, int64_t(0));
        QCOMPARE(flows.front().to_expert, int64_t(3));
        QCOMPARE(flows.front().tokens, int64_t(2));
        QCOMPARE(flows.size(), size_t(3));
    }

    void trace_csv_round_trips() {
        const std::string csv = routing_trace_csv(trace_.records(), prompt_);
        QVERIFY(csv.rfind("token,position,layer,expert,weight\n", 0) == 0);
        auto parsed = parse_routing_trace_csv(csv);
        QVERIFY(parsed.ok());
        QCOMPARE(parsed->size(), trace_.records().size());
        for (size_t i = 0; i < parsed->size(); ++i) {
            QCOMPARE((*parsed)[i].position, trace_.records()[i].position);
            QCOMPARE((*parsed)[i].layer, trace_.records()[i].layer);
            QCOMPARE((*parsed)[i].experts, trace_.records()[i].experts);
            for (size_t j = 0; j < (*parsed)[i].weights.size(); ++j)
                QVERIFY(std::fabs((*parsed)[i].weights[j] - trace_.records()[i].weights[j]) <= 1e-6f);
        }
        QVERIFY(!parse_routing_trace_csv("token,position\n1,2\n").ok());
        QVERIFY(!parse_routing_trace_csv("token,position,layer,expert,weight\n1,2,x,4,0.5\n").ok());
    }

    void load_csv_has_one_row_per_layer() {
        const LoadMatrix load = load_matrix(trace_.records(), graph_->config.moe->n_routed_experts);
        const std::string csv = load_matrix_csv(load);
        QCOMPARE(std::count(csv.begin(), csv.end(), '\n'), long(1 + load.layers.size()));
        QVERIFY(csv.rfind("layer,expert_0,", 0) == 0);
    }
};

QTEST_APPLESS_MAIN(RoutingStatsTest)
#include "test_routing_stats.moc"
