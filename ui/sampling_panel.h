// Spin boxes for the sampling settings of a chat: temperature, top-p, top-k, min-p, repetition penalty,
// max tokens, seed (0 picks a new random seed for every reply).
#pragma once

#include <QWidget>

#include "app/services/chat_types.h"

class QDoubleSpinBox;
class QSpinBox;

namespace mwb::ui {

class SamplingPanel : public QWidget {
    Q_OBJECT
public:
    explicit SamplingPanel(QWidget* parent = nullptr);

    app::SamplingSettings settings() const;
    void set_settings(const app::SamplingSettings& settings);

signals:
    void changed();

private:
    QDoubleSpinBox* temperature_;
    QDoubleSpinBox* top_p_;
    QSpinBox* top_k_;
    QDoubleSpinBox* min_p_;
    QDoubleSpinBox* repetition_penalty_;
    QSpinBox* max_new_tokens_;
    QSpinBox* seed_;
};

}  // namespace mwb::ui
