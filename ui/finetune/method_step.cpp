// The Method step of the Fine-tune wizard: presets, every training setting, and the memory plan.
#include <QCheckBox>
#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QTimer>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "engine/train/memory_plan.h"
#include "ui/finetune/finetune_steps.h"

namespace mwb::ui {

namespace {

constexpr double kGiB = double(int64_t(1) << 30);

// MemAvailable of /proc/meminfo: what can be used without swapping; 0 when unknown.
qint64 available_memory() {
    QFile file("/proc/meminfo");
    if (!file.open(QIODevice::ReadOnly)) return 0;
    for (const QByteArray& line : file.readAll().split('\n'))
        if (line.startsWith("MemAvailable:")) return line.simplified().split(' ').value(1).toLongLong() * 1024;
    return 0;
}

struct Preset {
    const char* name;
    int rank;
    double alpha, lr, epochs;
    int batch, accumulation, warmup;
    bool dense, shared, experts;
};
// Quick look: a first adapter in minutes; Balanced; Thorough: LLaMA-Factory's defaults (lr 5e-5, 3 epochs, batch 2
// × 8, cosine) on every linear layer.
const Preset kPresets[] = {
    {"Quick look", 8, 16, 1e-3, 1, 4, 1, 0, false, false, false},
    {"Balanced", 8, 16, 2e-4, 2, 2, 4, 10, true, true, false},
    {"Thorough", 16, 32, 5e-5, 3, 2, 8, 20, true, true, true},
};

QDoubleSpinBox* decimal(double min, double max, double step, int decimals) {
    auto* box = new QDoubleSpinBox;
    box->setRange(min, max);
    box->setSingleStep(step);
    box->setDecimals(decimals);
    return box;
}

QSpinBox* integer(int min, int max) {
    auto* box = new QSpinBox;
    box->setRange(min, max);
    return box;
}

}  // namespace

MethodStep::MethodStep(AppContext& context, FineTuneState& state) : context_(context), state_(state) {
    setTitle(tr("Method"));
    setSubTitle(tr("Start from a preset; every setting can be changed. The memory plan follows each change."));
    preset_ = new QComboBox;
    preset_->setObjectName("preset");
    for (const Preset& p : kPresets) preset_->addItem(tr(p.name));
    attention_ = new QCheckBox(tr("Attention projections"));
    dense_ = new QCheckBox(tr("Dense MLP"));
    shared_ = new QCheckBox(tr("Shared experts"));
    experts_ = new QCheckBox(tr("Routed experts"));
    attention_->setChecked(true);
    rank_ = integer(1, 1024);
    alpha_ = decimal(0.1, 4096, 1, 1);
    dropout_ = decimal(0, 0.9, 0.05, 2);
    rslora_ = new QCheckBox(tr("rsLoRA (scale by alpha / √rank)"));
    lr_ = decimal(1e-6, 1, 1e-5, 6);
    epochs_ = decimal(0.1, 100, 0.5, 1);
    steps_ = integer(0, 10000000);
    steps_->setObjectName("steps");
    steps_->setSpecialValueText(tr("from epochs"));
    batch_ = integer(1, 4096);
    accumulation_ = integer(1, 4096);
    scheduler_ = new QComboBox;
    scheduler_->addItems({"cosine", "linear", "constant"});
    warmup_ = integer(0, 1000000);
    clip_ = decimal(0, 100, 0.1, 2);
    clip_->setSpecialValueText(tr("off"));
    clip_->setValue(1.0);
    seed_ = integer(0, 1 << 30);
    seed_->setValue(42);
    checkpoint_every_ = integer(0, 1000000);
    checkpoint_every_->setObjectName("checkpointEvery");
    checkpoint_every_->setValue(100);
    checkpoint_every_->setSpecialValueText(tr("only at the end"));
    checkpointing_ = new QCheckBox(tr("Gradient checkpointing (less memory, about a third more time)"));
    device_ = new QComboBox;
    device_->addItem(app::device_name(app::Device::Cpu));
    memory_allowed_ = decimal(0.01, 4096, 1, 2);
    memory_allowed_->setObjectName("memoryAllowed");
    memory_allowed_->setSuffix(tr(" GiB"));
    memory_allowed_->setValue(std::max(1.0, double(available_memory()) / kGiB));
    memory_allowed_->setToolTip(tr("How much memory training may use: what is free now, unless you leave room for other programs"));
    plan_ = new QLabel;
    plan_->setObjectName("memoryPlan");
    plan_->setWordWrap(true);
    plan_->setTextFormat(Qt::PlainText);

    auto* targets = new QGroupBox(tr("Train adapters on"));
    auto* target_layout = new QHBoxLayout(targets);
    for (QCheckBox* box : {attention_, dense_, shared_, experts_}) target_layout->addWidget(box);
    auto* lora = new QFormLayout;
    lora->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    lora->addRow(tr("Rank"), rank_);
    lora->addRow(tr("Alpha"), alpha_);
    lora->addRow(tr("Dropout"), dropout_);
    lora->addRow(QString(), rslora_);
    lora->addRow(tr("Seed"), seed_);
    lora->addRow(tr("Device"), device_);
    auto* optimisation = new QFormLayout;
    optimisation->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    optimisation->addRow(tr("Learning rate"), lr_);
    optimisation->addRow(tr("Epochs"), epochs_);
    optimisation->addRow(tr("Steps"), steps_);
    optimisation->addRow(tr("Batch"), batch_);
    optimisation->addRow(tr("Accumulation"), accumulation_);
    optimisation->addRow(tr("Schedule"), scheduler_);
    optimisation->addRow(tr("Warmup steps"), warmup_);
    optimisation->addRow(tr("Clip gradients at"), clip_);
    optimisation->addRow(tr("Checkpoint every"), checkpoint_every_);
    auto* columns = new QHBoxLayout;
    columns->addLayout(lora);
    columns->addLayout(optimisation);
    columns->addStretch();
    auto* memory = new QFormLayout;
    memory->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    memory->addRow(tr("Memory allowed"), memory_allowed_);
    auto* layout = new QVBoxLayout(this);
    auto* preset_row = new QHBoxLayout;
    preset_row->addWidget(new QLabel(tr("Preset")));
    preset_row->addWidget(preset_);
    preset_row->addStretch();
    layout->addLayout(preset_row);
    layout->addWidget(targets);
    layout->addLayout(columns);
    layout->addWidget(checkpointing_);
    layout->addLayout(memory);
    layout->addWidget(plan_);
    layout->addStretch();

    debounce_ = new QTimer(this);
    debounce_->setSingleShot(true);
    debounce_->setInterval(200);
    connect(debounce_, &QTimer::timeout, this, &MethodStep::estimate);
    connect(preset_, &QComboBox::currentIndexChanged, this, &MethodStep::apply_preset);
    for (QCheckBox* box : {attention_, dense_, shared_, experts_, rslora_, checkpointing_})
        connect(box, &QCheckBox::toggled, debounce_, qOverload<>(&QTimer::start));
    for (QSpinBox* box : {rank_, batch_}) connect(box, &QSpinBox::valueChanged, debounce_, qOverload<>(&QTimer::start));
    connect(memory_allowed_, &QDoubleSpinBox::valueChanged, debounce_, qOverload<>(&QTimer::start));
    connect(&watcher_, &QFutureWatcher<std::pair<QString, bool>>::finished, this, [this] {
        plan_->setText(watcher_.result().first);
        fits_ = watcher_.result().second;
        emit completeChanged();
        emit planShown();
    });
    apply_preset(0);
}

void MethodStep::apply_preset(int index) {
    const Preset& p = kPresets[std::clamp(index, 0, int(std::size(kPresets)) - 1)];
    rank_->setValue(p.rank);
    alpha_->setValue(p.alpha);
    lr_->setValue(p.lr);
    epochs_->setValue(p.epochs);
    steps_->setValue(0);
    batch_->setValue(p.batch);
    accumulation_->setValue(p.accumulation);
    warmup_->setValue(p.warmup);
    scheduler_->setCurrentText("cosine");
    attention_->setChecked(true);
    dense_->setChecked(p.dense);
    shared_->setChecked(p.shared);
    experts_->setChecked(p.experts);
    debounce_->start();
}

void MethodStep::set_memory_allowed(qint64 bytes) { memory_allowed_->setValue(double(bytes) / kGiB); }

void MethodStep::initializePage() { estimate(); }

app::TrainingJob MethodStep::job() const {
    app::TrainingJob job;
    job.model_directory = state_.model_directory;
    job.tokenizer_directory = context_.settings.tokenizer_folder(state_.model_directory);
    job.data_path = state_.data_path;
    job.data = state_.data;
    job.validation_split = state_.validation_split;
    std::vector<std::string>& targets = job.lora.target_modules;
    if (attention_->isChecked()) targets = {"q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "k_proj", "v_proj", "o_proj"};
    for (const char* projection : {"gate_proj", "up_proj", "down_proj"}) {
        if (dense_->isChecked()) targets.push_back(std::string("mlp.") + projection);
        if (shared_->isChecked()) targets.push_back(std::string("shared_experts.") + projection);
        if (experts_->isChecked() && state_.card)
            for (qint64 e = 0; e < state_.card->routed_experts; ++e) targets.push_back("experts." + std::to_string(e) + "." + projection);
    }
    job.lora.rank = rank_->value();
    job.lora.alpha = alpha_->value();
    job.lora.dropout = dropout_->value();
    job.lora.rslora = rslora_->isChecked();
    train::TrainOptions& o = job.options;
    o.optimizer.lr = lr_->value();
    o.epochs = epochs_->value();
    o.steps = steps_->value();
    o.batch = batch_->value();
    o.gradient_accumulation = accumulation_->value();
    o.schedule = *train::parse_schedule(scheduler_->currentText().toStdString());
    o.warmup_steps = warmup_->value();
    o.max_grad_norm = clip_->value();
    o.seed = uint64_t(seed_->value());
    o.checkpoint_every = checkpoint_every_->value();
    o.base_model = state_.model_directory.toStdString();
    job.gradient_checkpointing = checkpointing_->isChecked();
    job.cuda = context_.settings.default_device() == app::Device::Cuda;  // the device chosen in Settings, as for chat
    return job;
}

void MethodStep::estimate() {
    fits_ = false;
    emit completeChanged();
    if (!state_.card) return;
    const app::TrainingJob planned = job();
    const double allowed = memory_allowed_->value() * kGiB;
    plan_->setText(tr("Planning the memory…"));
    watcher_.setFuture(QtConcurrent::run([planned, allowed]() -> std::pair<QString, bool> {
        auto graph = load_model_graph(planned.model_directory.toStdString());
        if (!graph) return {tr("⚠ %1").arg(QString::fromStdString(graph.error().message)), false};
        auto adapter = train::LoraAdapter::create(*graph, planned.lora, 0);
        if (!adapter) return {tr("⚠ %1").arg(QString::fromStdString(adapter.error().message)), false};
        const train::TrainingMemoryPlan plan = train::plan_training_memory(
            *graph, *adapter, planned.data.cutoff, planned.cuda ? train::TrainingDevice::Cuda : train::TrainingDevice::Cpu);
        const int64_t needed = plan.total(planned.gradient_checkpointing);
        const bool fits = double(needed) <= allowed;
        QString text = QString::fromStdString(train::describe(plan));
        if (!fits) {
            text += tr("⚠ This plan needs %1 GiB but %2 GiB are allowed. To make it fit: %3lower the cutoff (now %4 tokens), train fewer "
                       "module families, or lower the rank.")
                        .arg(double(needed) / kGiB, 0, 'f', 2)
                        .arg(allowed / kGiB, 0, 'f', 2)
                        .arg(planned.gradient_checkpointing ? QString() : tr("turn on gradient checkpointing (%1 GiB), ")
                                                                              .arg(double(plan.total(true)) / kGiB, 0, 'f', 2))
                        .arg(planned.data.cutoff);
        } else {
            text += tr("✓ Fits in the %1 GiB allowed.").arg(allowed / kGiB, 0, 'f', 1);
        }
        return {text, fits};
    }));
}

bool MethodStep::isComplete() const { return fits_ && !watcher_.isRunning(); }

bool MethodStep::validatePage() {
    state_.job = job();
    const QString name = QFileInfo(state_.model_directory).fileName() + "-" + QDateTime::currentDateTime().toString("yyyyMMdd-HHmmss");
    state_.job.options.output_directory = QDir(context_.settings.data_directory()).filePath("finetune/" + name).toStdString();
    return true;
}

}  // namespace mwb::ui
