#include "ui/sampling_panel.h"

#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QSpinBox>

namespace mwb::ui {

namespace {
QDoubleSpinBox* number(double min, double max, double step, int decimals, const QString& tip) {
    auto* box = new QDoubleSpinBox;
    box->setRange(min, max);
    box->setSingleStep(step);
    box->setDecimals(decimals);
    box->setToolTip(tip);
    return box;
}
}  // namespace

SamplingPanel::SamplingPanel(QWidget* parent) : QWidget(parent) {
    temperature_ = number(0, 2, 0.05, 2, tr("0 picks the most likely token every time (greedy)"));
    top_p_ = number(0.01, 1, 0.01, 2, tr("Keep the smallest set of tokens whose probabilities add up to this; 1 is off"));
    min_p_ = number(0, 1, 0.01, 2, tr("Drop tokens less likely than this fraction of the most likely one; 0 is off"));
    repetition_penalty_ = number(0.5, 2, 0.05, 2, tr("Above 1 makes tokens already in the conversation less likely"));
    top_k_ = new QSpinBox;
    top_k_->setRange(0, 1000);
    top_k_->setSpecialValueText(tr("off"));
    top_k_->setToolTip(tr("Keep only the k most likely tokens; off keeps all"));
    max_new_tokens_ = new QSpinBox;
    max_new_tokens_->setRange(1, 131072);
    max_new_tokens_->setToolTip(tr("The longest reply, in tokens"));
    seed_ = new QSpinBox;
    seed_->setRange(0, std::numeric_limits<int>::max());
    seed_->setSpecialValueText(tr("random"));
    seed_->setToolTip(tr("The same seed and settings give the same reply; random picks a new seed each time"));

    auto* form = new QFormLayout(this);
    form->setContentsMargins(0, 0, 0, 0);
    form->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);  // numbers need no more than their width
    form->addRow(tr("Temperature"), temperature_);
    form->addRow(tr("Top-p"), top_p_);
    form->addRow(tr("Top-k"), top_k_);
    form->addRow(tr("Min-p"), min_p_);
    form->addRow(tr("Repetition penalty"), repetition_penalty_);
    form->addRow(tr("Max tokens"), max_new_tokens_);
    form->addRow(tr("Seed"), seed_);

    for (QDoubleSpinBox* box : {temperature_, top_p_, min_p_, repetition_penalty_})
        connect(box, &QDoubleSpinBox::valueChanged, this, &SamplingPanel::changed);
    for (QSpinBox* box : {top_k_, max_new_tokens_, seed_}) connect(box, &QSpinBox::valueChanged, this, &SamplingPanel::changed);
}

app::SamplingSettings SamplingPanel::settings() const {
    app::SamplingSettings s;
    s.temperature = temperature_->value();
    s.top_p = top_p_->value();
    s.top_k = top_k_->value();
    s.min_p = min_p_->value();
    s.repetition_penalty = repetition_penalty_->value();
    s.max_new_tokens = max_new_tokens_->value();
    s.seed = quint64(seed_->value());
    return s;
}

void SamplingPanel::set_settings(const app::SamplingSettings& s) {
    temperature_->setValue(s.temperature);
    top_p_->setValue(s.top_p);
    top_k_->setValue(s.top_k);
    min_p_->setValue(s.min_p);
    repetition_penalty_->setValue(s.repetition_penalty);
    max_new_tokens_->setValue(s.max_new_tokens);
    seed_->setValue(int(std::min<quint64>(s.seed, quint64(std::numeric_limits<int>::max()))));
}

}  // namespace mwb::ui
