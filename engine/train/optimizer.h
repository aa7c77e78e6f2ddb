// Optimisation with PyTorch's and transformers' semantics: AdamW (decoupled weight decay, bias correction),
// clipping by the global gradient norm, and the learning-rate schedules (constant, linear, cosine, with warmup).
#pragma once

#include <cstdint>
#include <string>

#include "engine/train/lora_model.h"

namespace mwb::train {

struct AdamWConfig {
    double lr = 2e-4;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
};

enum class Schedule { Constant, Linear, Cosine };
Result<Schedule> parse_schedule(const std::string& name);

// transformers' get_{constant,linear,cosine}_schedule_with_warmup: the learning rate of optimizer step `step`
// (from 0) out of `total_steps`.
double scheduled_learning_rate(Schedule schedule, double base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps);

// torch.nn.utils.clip_grad_norm_: scales the gradients down to `max_norm` when their global norm is larger.
// Returns the norm before clipping.
double clip_gradient_norm(LoraGradients& gradients, double max_norm);

class AdamW {
public:
    AdamW(const LoraAdapter& adapter, AdamWConfig config);

    // One update of every adapter matrix with learning rate `lr`.
    void step(LoraAdapter& adapter, const LoraGradients& gradients, double lr);

    int64_t steps() const { return steps_; }
    // The moments, for checkpoints.
    LoraGradients& first_moment() { return m_; }
    LoraGradients& second_moment() { return v_; }
    const LoraGradients& first_moment() const { return m_; }
    const LoraGradients& second_moment() const { return v_; }
    void set_steps(int64_t steps) { steps_ = steps; }

private:
    AdamWConfig config_;
    LoraGradients m_, v_;
    int64_t steps_ = 0;
};

}  // namespace mwb::train
