#include "engine/train/trainer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "engine/core/text_file.h"
#include "engine/io/safetensors.h"

namespace mwb::train {

std::string checkpoint_directory(const std::string& output_directory, int64_t step) {
    return output_directory + "/checkpoint-" + std::to_string(step);
}

int64_t checkpoint_step(const std::string& directory) {
    const std::string name = std::filesystem::path(directory).filename().string();
    const std::string prefix = "checkpoint-";
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return -1;
    int64_t step = 0;
    for (char c : name.substr(prefix.size())) {
        if (c < '0' || c > '9' || step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (c - '0');
    }
    return step;
}

int64_t planned_steps(const TrainOptions& options, int64_t rows) {
    if (options.steps > 0) return options.steps;
    const int64_t per_step = std::max<int64_t>(1, options.batch * options.gradient_accumulation);
    return std::max<int64_t>(1, int64_t(std::ceil(options.epochs * double(rows) / double(per_step))));
}

Trainer::Trainer(TrainableModel& model, LoraAdapter& adapter, TrainOptions options, Dataset train, Dataset validation)
    : model_(model), adapter_(adapter), options_(std::move(options)), train_(std::move(train)), validation_(std::move(validation)),
      optimizer_(adapter, options_.optimizer), gradients_(LoraGradients::zeros_like(adapter)),
      total_steps_(planned_steps(options_, int64_t(train_.rows.size()))) {}

const TokenRow& Trainer::row_at(int64_t index) {
    const int64_t rows = int64_t(train_.rows.size());
    const int64_t epoch = index / rows;
    if (epoch != cached_epoch_) {
        order_.resize(size_t(rows));
        std::iota(order_.begin(), order_.end(), size_t(0));
        // Each epoch's order follows from the seed and the epoch alone, so a resumed run sees the same rows.
        if (options_.shuffle) std::shuffle(order_.begin(), order_.end(), std::mt19937_64(options_.seed * 1000003 + uint64_t(epoch)));
        cached_epoch_ = epoch;
    }
    return train_.rows[order_[size_t(index % rows)]];
}

Result<double> Trainer::evaluate(const std::vector<TokenRow>& rows) {
    double loss = 0;
    int64_t counted = 0;
    for (const TokenRow& row : rows) {
        auto sum = model_.row_loss(adapter_, row.ids, row.labels, 0, nullptr);
        if (!sum) return sum.error();
        loss += *sum;
        counted += counted_labels(row.labels);
    }
    return counted ? loss / double(counted) : 0.0;
}

Status Trainer::run(const std::function<bool(const StepReport&)>& on_step, const std::atomic<bool>* cancel) {
    if (train_.rows.empty()) return make_error("there are no training rows");
    const int64_t per_step = options_.batch * options_.gradient_accumulation;
    while (optimizer_.steps() < total_steps_) {
        if (cancel && cancel->load()) break;
        const auto started = std::chrono::steady_clock::now();
        const int64_t first = optimizer_.steps() * per_step;
        // transformers' loss over a step with accumulation: summed over every row, divided by all counted labels.
        int64_t counted = 0, tokens = 0;
        for (int64_t i = 0; i < per_step; ++i) {
            const TokenRow& row = row_at(first + i);
            counted += counted_labels(row.labels);
            tokens += int64_t(row.ids.size());
        }
        gradients_.zero();
        double loss = 0;
        for (int64_t i = 0; i < per_step; ++i) {
            const TokenRow& row = row_at(first + i);
            // A dropout seed per row of the run (never 0), the same when the run resumes.
            model_.set_dropout_seed((options_.seed + 1) * 0x9e3779b97f4a7c15ull + uint64_t(first + i) * 2 + 1);
            auto sum = model_.row_loss(adapter_, row.ids, row.labels, counted ? 1.0f / float(counted) : 0.0f, &gradients_);
            if (!sum) return sum.error();
            loss += *sum;
        }
        model_.set_dropout_seed(0);
        StepReport report;
        report.step = optimizer_.steps() + 1;
        report.total_steps = total_steps_;
        report.loss = counted ? loss / double(counted) : 0.0;
        report.grad_norm = options_.max_grad_norm > 0 ? clip_gradient_norm(gradients_, options_.max_grad_norm) : std::sqrt(gradients_.squared_norm());
        report.learning_rate = scheduled_learning_rate(options_.schedule, options_.optimizer.lr, optimizer_.steps(), options_.warmup_steps, total_steps_);
        report.tokens = tokens;
        optimizer_.step(adapter_, gradients_, report.learning_rate);
        report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        const bool checkpoint = options_.checkpoint_every > 0 && report.step % options_.checkpoint_every == 0 && report.step < total_steps_;
        if ((checkpoint || report.step == total_steps_) && !validation_.rows.empty()) {
            auto validation = evaluate(validation_.rows);
            if (!validation) return validation.error();
            report.validation_loss = *validation;
        }
        if (checkpoint && !options_.output_directory.empty()) {
            report.checkpoint = checkpoint_directory(options_.output_directory, report.step);
            MWB_TRY(save_checkpoint(report.checkpoint));
        }
        if (on_step && !on_step(report)) break;
    }
    if (!options_.output_directory.empty()) MWB_TRY(adapter_.save(options_.output_directory, options_.base_model));
    return Status::success();
}

namespace {

std::vector<TensorToWrite> moment_tensors(const char* prefix, const LoraAdapter& adapter, const LoraGradients& moment) {
    std::vector<TensorToWrite> tensors;
    for (size_t i = 0; i < adapter.modules().size(); ++i) {
        const LoraModule& m = adapter.modules()[i];
        tensors.push_back(tensor_f32(std::string(prefix) + "." + m.name + ".lora_A", {adapter.config().rank, m.in_features}, moment.a[i]));
        tensors.push_back(tensor_f32(std::string(prefix) + "." + m.name + ".lora_B", {m.out_features, adapter.config().rank}, moment.b[i]));
    }
    return tensors;
}

Status read_moment(const TensorStore& file, const char* prefix, const LoraAdapter& adapter, LoraGradients& moment) {
    for (size_t i = 0; i < adapter.modules().size(); ++i) {
        const LoraModule& m = adapter.modules()[i];
        auto a = file.read_float(std::string(prefix) + "." + m.name + ".lora_A", {adapter.config().rank, m.in_features});
        if (!a) return a.error();
        auto b = file.read_float(std::string(prefix) + "." + m.name + ".lora_B", {m.out_features, adapter.config().rank});
        if (!b) return b.error();
        moment.a[i] = std::move(a.value());
        moment.b[i] = std::move(b.value());
    }
    return Status::success();
}

}  // namespace

Status Trainer::save_checkpoint(const std::string& directory) const {
    MWB_TRY(adapter_.save(directory, options_.base_model));
    std::vector<TensorToWrite> tensors = moment_tensors("exp_avg", adapter_, optimizer_.first_moment());
    for (auto& t : moment_tensors("exp_avg_sq", adapter_, optimizer_.second_moment())) tensors.push_back(std::move(t));
    MWB_TRY(write_safetensors(directory + "/optimizer.safetensors", tensors));
    const nlohmann::json state = {{"step", optimizer_.steps()}, {"total_steps", total_steps_}, {"rows", train_.rows.size()},
                                  {"seed", options_.seed},       {"shuffle", options_.shuffle},   {"batch", options_.batch},
                                  {"gradient_accumulation", options_.gradient_accumulation}};
    std::ofstream file(directory + "/trainer_state.json", std::ios::trunc);
    file << state.dump(2) << "\n";
    if (!file) return make_error("cannot write " + directory + "/trainer_state.json");
    return Status::success();
}

Status Trainer::resume(const std::string& checkpoint) {
    auto text = read_text_file(checkpoint + "/trainer_state.json");
    if (!text) return text.error();
    nlohmann::json state;
    try {
        state = nlohmann::json::parse(*text);
        const auto same = [&](const char* key, auto value) { return state.at(key).get<decltype(value)>() == value; };
        if (!same("rows", train_.rows.size()) || !same("seed", options_.seed) || !same("shuffle", options_.shuffle) ||
            !same("batch", options_.batch) || !same("gradient_accumulation", options_.gradient_accumulation))
            return make_error(checkpoint + " was written with other data, seed, shuffling or batch size: resume with the same ones");
    } catch (const nlohmann::json::exception& error) {
        return make_error(checkpoint + "/trainer_state.json is not a trainer state: " + error.what());
    }
    auto adapter = LoraAdapter::load(checkpoint, model_.graph());
    if (!adapter) return adapter.error();
    if (adapter->modules().size() != adapter_.modules().size()) return make_error(checkpoint + " holds an adapter for other modules");
    adapter_ = std::move(adapter.value());
    auto file = TensorStore::open_file(checkpoint + "/optimizer.safetensors");
    if (!file) return file.error();
    MWB_TRY(read_moment(*file, "exp_avg", adapter_, optimizer_.first_moment()));
    MWB_TRY(read_moment(*file, "exp_avg_sq", adapter_, optimizer_.second_moment()));
    optimizer_.set_steps(state["step"].get<int64_t>());
    return Status::success();
}

}  // namespace mwb::train
