// The training loop: batches of token rows in a seeded order, gradient accumulation, clipping, AdamW with a
// schedule, a report per step, checkpoints (adapter, optimizer moments, position) that resume exactly, and
// a validation loss on held-out rows.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "engine/train/dataset.h"
#include "engine/train/optimizer.h"

namespace mwb::train {

struct TrainOptions {
    AdamWConfig optimizer;
    Schedule schedule = Schedule::Constant;
    int64_t warmup_steps = 0;
    int64_t batch = 4;               // rows per micro-batch
    int64_t gradient_accumulation = 1;
    int64_t steps = 0;               // optimizer steps; 0: from epochs
    double epochs = 1;
    bool shuffle = true;             // a new order every epoch, from the seed
    uint64_t seed = 0;
    double max_grad_norm = 0;        // 0: no clipping
    int64_t checkpoint_every = 0;    // 0: only at the end
    std::string output_directory;    // checkpoints go to <dir>/checkpoint-<step>, the adapter to <dir>
    std::string base_model;          // written into adapter_config.json
};

struct StepReport {
    int64_t step = 0;  // from 1
    int64_t total_steps = 0;
    double loss = 0;
    double learning_rate = 0;
    double grad_norm = 0;
    int64_t tokens = 0;  // tokens of the step's rows
    double seconds = 0;  // of the step
    std::optional<double> validation_loss;
    std::string checkpoint;  // the checkpoint written after this step, if one was
};

// Where a run writing to `output_directory` keeps its checkpoint of `step`: <dir>/checkpoint-<step>.
std::string checkpoint_directory(const std::string& output_directory, int64_t step);
// The step of a checkpoint directory's name, or -1 when it is not one.
int64_t checkpoint_step(const std::string& directory);

// The optimizer steps a run of `rows` rows takes.
int64_t planned_steps(const TrainOptions& options, int64_t rows);

class Trainer {
public:
    Trainer(TrainableModel& model, LoraAdapter& adapter, TrainOptions options, Dataset train, Dataset validation = {});

    // Continues from a checkpoint directory written by this trainer (same data and options).
    Status resume(const std::string& checkpoint);
    // Trains until the planned steps are done, `on_step` returns false, or `cancel` is set; writes checkpoints
    // and, at the end, the adapter to the output directory.
    Status run(const std::function<bool(const StepReport&)>& on_step, const std::atomic<bool>* cancel = nullptr);
    Status save_checkpoint(const std::string& directory) const;

    int64_t step() const { return optimizer_.steps(); }
    int64_t total_steps() const { return total_steps_; }
    // The mean loss over rows (no gradient).
    Result<double> evaluate(const std::vector<TokenRow>& rows);

private:
    // The row used at overall position `index` of the epoch-by-epoch order.
    const TokenRow& row_at(int64_t index);

    TrainableModel& model_;
    LoraAdapter& adapter_;
    TrainOptions options_;
    Dataset train_, validation_;
    AdamW optimizer_;
    LoraGradients gradients_;
    int64_t total_steps_ = 0;
    int64_t cached_epoch_ = -1;
    std::vector<size_t> order_;
};

}  // namespace mwb::train
