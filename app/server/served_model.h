// What the server serves: a model folder opened on a backend with its tokenizer and chat template, the
// continuous-batching scheduler over it, and LoRA adapters served under names of their own (as vLLM's
// --lora-modules): a request for "name" runs the base model with that adapter.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/sampler.h"
#include "engine/runtime/scheduler.h"
#include "engine/tokenizer/tokenizer.h"

namespace mwb::serve {

struct ServedModelOptions {
    std::string model_dir;
    std::string name;                 // the id clients use; the folder's name when empty
    std::string tokenizer_dir;        // the model folder when empty
    std::string device = "cpu";       // cpu | cuda
    int threads = 0;                  // CPU threads; 0 = all cores
    SchedulerOptions scheduler;
    std::map<std::string, std::string> adapters;  // served name → PEFT adapter folder
};

class ServedModel {
public:
    static Result<std::unique_ptr<ServedModel>> open(const ServedModelOptions& options);
    ~ServedModel();

    const std::string& name() const { return name_; }
    std::vector<std::string> model_names() const;  // the base model, then its adapters
    // The adapter a model name asks for: null for the base model; false when the name is not served.
    bool resolve(const std::string& requested, const LowRankDeltas*& adapter) const;

    const tok::Tokenizer& tokenizer() const { return *tokenizer_; }
    const ModelConfig& config() const { return graph_->config; }
    const std::vector<int32_t>& stop_tokens() const { return stop_tokens_; }
    const SamplingParams& default_sampling() const { return default_sampling_; }
    std::string backend_name() const { return backend_->name(); }
    MemoryReport memory() const { return backend_->memory(); }
    Scheduler& scheduler() { return *scheduler_; }
    const Scheduler& scheduler() const { return *scheduler_; }

private:
    ServedModel() = default;
    std::string name_;
    std::shared_ptr<const ModelGraph> graph_;
    std::optional<tok::Tokenizer> tokenizer_;
    std::vector<int32_t> stop_tokens_;
    SamplingParams default_sampling_;
    std::map<std::string, LowRankDeltas> adapters_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<Scheduler> scheduler_;  // declared last: stopped before the backend it drives goes away
};

}  // namespace mwb::serve
