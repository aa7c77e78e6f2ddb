// The peft training traces of tests/data/lora as the training suites read them (CPU and CUDA): the token rows
// and labels of data.safetensors, train.json, and one optimizer step's batch gradient on any trainable model.
#pragma once

#include <QtTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/text_file.h"
#include "engine/io/safetensors.h"
#include "engine/train/lora_model.h"
#include "tests/support/fixture.h"

namespace mwb::testing {

inline const std::string kTraces = MWB_TEST_DATA "/lora/";

struct Trace {
    std::vector<int64_t> data, labels;
    int64_t rows = 0, tokens = 0;
    nlohmann::json train;
    TensorStore file;

    std::vector<int32_t> ids(int64_t row) const { return {data.begin() + row * tokens, data.begin() + (row + 1) * tokens}; }
    std::span<const int64_t> row_labels(int64_t row) const { return {labels.data() + row * tokens, size_t(tokens)}; }
};

inline Trace load_trace(const std::string& name) {
    Trace trace;
    auto file = TensorStore::open_file(kTraces + name + "/data.safetensors");
    if (!file) qFatal("%s", file.error().message.c_str());
    trace.file = std::move(file.value());
    trace.data = *trace.file.read_int64("data");
    trace.labels = *trace.file.read_int64("labels");
    const TensorView view = *trace.file.get("data");
    trace.rows = view.shape[0];
    trace.tokens = view.shape[1];
    trace.train = nlohmann::json::parse(*read_text_file(kTraces + name + "/train.json"));
    return trace;
}

// One training step on `rows`: the batch's mean loss, and its gradient in `gradients`.
inline double batch_gradient(train::TrainableModel& model, const train::LoraAdapter& adapter, const Trace& trace, int64_t first_row,
                             int64_t rows, train::LoraGradients& gradients) {
    int64_t counted = 0;
    for (int64_t r = first_row; r < first_row + rows; ++r) counted += train::counted_labels(trace.row_labels(r));
    double loss = 0;
    gradients.zero();
    for (int64_t r = first_row; r < first_row + rows; ++r) {
        auto row = model.row_loss(adapter, trace.ids(r), trace.row_labels(r), 1.0f / float(counted), &gradients);
        if (!row) qFatal("%s", row.error().message.c_str());
        loss += *row;
    }
    return loss / double(counted);
}

}  // namespace mwb::testing
