#include "engine/train/optimizer.h"

#include <cmath>

namespace mwb::train {

Result<Schedule> parse_schedule(const std::string& name) {
    if (name == "constant") return Schedule::Constant;
    if (name == "linear") return Schedule::Linear;
    if (name == "cosine") return Schedule::Cosine;
    return make_error("unknown learning-rate schedule '" + name + "': use constant, linear or cosine");
}

double scheduled_learning_rate(Schedule schedule, double base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps) {
    if (step < warmup_steps) return base_lr * double(step) / double(std::max<int64_t>(1, warmup_steps));
    const double progress = double(step - warmup_steps) / double(std::max<int64_t>(1, total_steps - warmup_steps));
    switch (schedule) {
        case Schedule::Constant: return base_lr;
        case Schedule::Linear: return base_lr * std::max(0.0, 1.0 - progress);
        case Schedule::Cosine: return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
    }
    return base_lr;
}

double clip_gradient_norm(LoraGradients& gradients, double max_norm) {
    const double norm = std::sqrt(gradients.squared_norm());
    const double coefficient = max_norm / (norm + 1e-6);
    if (coefficient < 1.0) gradients.scale(float(coefficient));
    return norm;
}

AdamW::AdamW(const LoraAdapter& adapter, AdamWConfig config)
    : config_(config), m_(LoraGradients::zeros_like(adapter)), v_(LoraGradients::zeros_like(adapter)) {}

namespace {

void update(std::vector<float>& param, const std::vector<float>& grad, std::vector<float>& m, std::vector<float>& v, const AdamWConfig& c,
            double lr, int64_t step) {
    const float beta1 = float(c.beta1), beta2 = float(c.beta2);
    const float decay = float(1.0 - lr * c.weight_decay);
    const float step_size = float(lr / (1.0 - std::pow(c.beta1, double(step))));
    const float correction2 = float(std::sqrt(1.0 - std::pow(c.beta2, double(step))));
    for (size_t i = 0; i < param.size(); ++i) {
        param[i] *= decay;
        m[i] += (grad[i] - m[i]) * (1.0f - beta1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
        v[i] = v[i] * beta2 + (1.0f - beta2) * grad[i] * grad[i];
        const float denominator = std::sqrt(v[i]) / correction2 + float(c.eps);
        param[i] -= step_size * m[i] / denominator;
    }
}

}  // namespace

void AdamW::step(LoraAdapter& adapter, const LoraGradients& gradients, double lr) {
    ++steps_;
    auto& modules = adapter.modules();
    for (size_t i = 0; i < modules.size(); ++i) {
        update(modules[i].a, gradients.a[i], m_.a[i], v_.a[i], config_, lr, steps_);
        update(modules[i].b, gradients.b[i], m_.b[i], v_.b[i], config_, lr, steps_);
    }
}

}  // namespace mwb::train
