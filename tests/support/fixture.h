// The reference fixtures (tests/data/models, copied from ../shared/fixtures) as the engine tests use them:
// the model graph, its reference.safetensors, the prompts, and comparisons.
#pragma once

#include <QtTest>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/model_graph.h"

namespace mwb::testing {

inline const std::string kFixtureModels = MWB_TEST_DATA "/models/";

// "p{index}{suffix}", the fixture's tensor names.
inline std::string prompt_key(int index, const char* suffix) {
    std::string key = "p";
    key += std::to_string(index);
    key += suffix;
    return key;
}

struct Fixture {
    std::shared_ptr<const ModelGraph> graph;
    TensorStore reference;
    int prompts = 0;

    std::vector<int32_t> prompt(int index) const {
        auto ids = reference.read_int64(prompt_key(index, ".input_ids"));
        if (!ids) qFatal("%s", ids.error().message.c_str());
        return {ids->begin(), ids->end()};
    }
    std::vector<float> floats(const std::string& name) const {
        auto values = reference.read_float(name, {});
        if (!values) qFatal("%s", values.error().message.c_str());
        return *values;
    }
    std::vector<int64_t> integers(const std::string& name) const {
        auto values = reference.read_int64(name);
        if (!values) qFatal("%s", values.error().message.c_str());
        return *values;
    }
};

inline Fixture load_fixture(const std::string& name) {
    const std::string dir = kFixtureModels + name;
    auto graph = load_model_graph(dir);
    if (!graph) qFatal("%s", graph.error().message.c_str());
    auto reference = TensorStore::open_file(dir + "/reference.safetensors");
    if (!reference) qFatal("%s", reference.error().message.c_str());
    Fixture f{std::make_shared<const ModelGraph>(std::move(graph.value())), std::move(reference.value()), 0};
    while (f.reference.contains(prompt_key(f.prompts, ".input_ids"))) ++f.prompts;
    return f;
}

inline float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

// ‖value − reference‖ / ‖reference‖, infinite when a value is not finite.
inline double relative_error(const std::vector<float>& value, const std::vector<float>& reference) {
    double difference = 0, norm = 0;
    for (size_t i = 0; i < value.size(); ++i) {
        if (!std::isfinite(value[i])) return INFINITY;
        difference += (double(value[i]) - reference[i]) * (double(value[i]) - reference[i]);
        norm += double(reference[i]) * reference[i];
    }
    return std::sqrt(difference / (norm + 1e-30));
}

// One data row per fixture model, for data-driven QtTest functions.
inline void add_model_rows() {
    QTest::addColumn<QString>("model");
    for (const char* name : {"dsv3-tiny", "dsv2-tiny", "qwen2-tiny", "llama-tiny", "dsv3-fp8-tiny"}) QTest::newRow(name) << QString(name);
}

}  // namespace mwb::testing
