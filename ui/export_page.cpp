#include "ui/export_page.h"

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "app/services/run_database.h"
#include "ui/browse_field.h"
#include "ui/memory_bar.h"

namespace mwb::ui {

namespace {

QSpinBox* spin(int low, int high, int value, int step = 1) {
    auto* s = new QSpinBox;
    s->setRange(low, high);
    s->setValue(value);
    s->setSingleStep(step);
    s->setGroupSeparatorShown(true);
    return s;
}

}  // namespace

ExportPage::ExportPage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context), debounce_(new QTimer(this)) {
    model_dir_ = new QLineEdit;
    model_dir_->setObjectName("exportModel");
    model_dir_->setPlaceholderText(tr("The model loaded in Chat"));
    model_dir_->setToolTip(tr("A model folder; config.json is enough, so you can plan for models you cannot run here"));
    model_id_ = new QLineEdit;
    model_id_->setPlaceholderText(tr("Hugging Face id or path on the servers, e.g. deepseek-ai/DeepSeek-V3"));
    adapter_dir_ = new QLineEdit;
    adapter_dir_->setPlaceholderText(tr("none"));
    gpu_ = new QComboBox;
    gpu_->setObjectName("exportGpu");
    for (const auto& g : deploy::gpu_catalog())
        gpu_->addItem(QStringLiteral("%1 — %2 GB, %3 TB/s").arg(QString::fromStdString(g.name)).arg(g.memory_gib).arg(g.bandwidth_tbps),
                      QString::fromStdString(g.id));
    gpu_->setCurrentIndex(gpu_->findData("h100"));
    gpus_per_node_ = spin(1, 16, 8);
    nodes_ = spin(1, 64, 1);
    context_length_ = spin(512, 1 << 20, 32768, 1024);
    concurrency_ = spin(1, 100000, 64);
    format_ = new QComboBox;
    format_->addItem(tr("as the checkpoint ships"), int(deploy::WeightFormat::Checkpoint));
    format_->addItem(tr("BF16"), int(deploy::WeightFormat::Bf16));
    format_->addItem(tr("INT8 (weight-only)"), int(deploy::WeightFormat::Int8));
    format_->addItem(tr("INT4 (weight-only)"), int(deploy::WeightFormat::Int4));

    auto* cluster = new QHBoxLayout;
    cluster->addWidget(gpu_, 1);
    cluster->addWidget(new QLabel(tr("GPUs per node")));
    cluster->addWidget(gpus_per_node_);
    cluster->addWidget(new QLabel(tr("nodes")));
    cluster->addWidget(nodes_);
    auto* load = new QHBoxLayout;
    load->addWidget(context_length_);
    load->addWidget(new QLabel(tr("tokens × concurrency")));
    load->addWidget(concurrency_);
    load->addWidget(new QLabel(tr("weights")));
    load->addWidget(format_);
    load->addStretch(1);
    auto* form = new QFormLayout;
    form->addRow(tr("Model folder"), browse_field(model_dir_, Browse::Folder, tr("Model folder (config.json)")));
    form->addRow(tr("Model id"), model_id_);
    form->addRow(tr("LoRA adapter"), browse_field(adapter_dir_, Browse::Folder, tr("PEFT adapter folder")));
    form->addRow(tr("Cluster"), cluster);
    form->addRow(tr("Context"), load);
    auto* input_box = new QGroupBox(tr("Model and cluster"));
    input_box->setLayout(form);

    verdict_ = new QLabel;
    verdict_->setObjectName("exportVerdict");
    verdict_->setWordWrap(true);
    verdict_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    suggestion_ = new QLabel;
    suggestion_->setWordWrap(true);
    memory_ = new MemoryBar;
    plan_table_ = new QTableWidget(0, 2);
    plan_table_->setObjectName("exportPlan");
    plan_table_->horizontalHeader()->setVisible(false);
    plan_table_->verticalHeader()->setVisible(false);
    plan_table_->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    plan_table_->horizontalHeader()->setStretchLastSection(true);
    plan_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    plan_table_->setWordWrap(true);
    auto* plan_box = new QGroupBox(tr("Plan"));
    auto* plan_layout = new QVBoxLayout(plan_box);
    plan_layout->addWidget(verdict_);
    plan_layout->addWidget(suggestion_);
    plan_layout->addWidget(memory_);
    plan_layout->addWidget(plan_table_, 1);

    targets_ = new QTabWidget;
    targets_->setObjectName("exportTargets");
    const QFont mono = QFontDatabase::systemFont(QFontDatabase::FixedFont);
    for (const auto& exporter : exporters::exporters()) {
        auto* page = new QWidget;
        TargetView view{new QComboBox, new QPlainTextEdit, new QLabel};
        view.text->setReadOnly(true);
        view.text->setFont(mono);
        view.text->setLineWrapMode(QPlainTextEdit::NoWrap);
        view.how_to_run->setWordWrap(true);
        auto* copy = new QPushButton(tr("Copy"));
        auto* top = new QHBoxLayout;
        top->addWidget(view.files, 1);
        top->addWidget(copy);
        auto* layout = new QVBoxLayout(page);
        layout->addLayout(top);
        layout->addWidget(view.text, 1);
        layout->addWidget(view.how_to_run);
        const int index = int(target_views_.size());
        connect(view.files, &QComboBox::currentIndexChanged, this, [this, index](int file) { show_file(index, file); });
        connect(copy, &QPushButton::clicked, this, [this, index] {
            QApplication::clipboard()->setText(target_views_[size_t(index)].text->toPlainText());
            emit statusMessage(tr("Copied the file"));
        });
        targets_->addTab(page, QString::fromStdString(exporter->title()));
        target_views_.push_back(view);
    }
    save_ = new QPushButton(tr("Save all…"));
    save_->setToolTip(tr("Write every target's files, a README and the plan into a folder"));
    auto* right = new QWidget;
    auto* right_layout = new QVBoxLayout(right);
    right_layout->setContentsMargins(0, 0, 0, 0);
    right_layout->addWidget(targets_, 1);
    right_layout->addWidget(save_, 0, Qt::AlignRight);
    auto* splitter = new QSplitter;
    splitter->addWidget(plan_box);
    splitter->addWidget(right);
    splitter->setStretchFactor(0, 2);
    splitter->setStretchFactor(1, 3);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(input_box);
    layout->addWidget(splitter, 1);

    debounce_->setSingleShot(true);
    debounce_->setInterval(150);
    connect(debounce_, &QTimer::timeout, this, [this] {
        if (watcher_.isRunning()) {
            replan_ = true;
            return;
        }
        const app::ExportRequest r = request();
        if (r.model_directory.isEmpty()) {
            verdict_->setText(tr("Load a model in Chat or choose a model folder: config.json is enough."));
            return;
        }
        watcher_.setFuture(QtConcurrent::run([r] { return std::make_shared<app::ExportPreview>(app::preview_export(r)); }));
    });
    connect(&watcher_, &QFutureWatcher<std::shared_ptr<app::ExportPreview>>::finished, this, [this] {
        show_preview(watcher_.result());
        if (std::exchange(replan_, false)) debounce_->start();
    });
    for (QLineEdit* edit : {model_dir_, model_id_, adapter_dir_}) connect(edit, &QLineEdit::textChanged, this, &ExportPage::schedule_plan);
    for (QComboBox* box : {gpu_, format_}) connect(box, &QComboBox::currentIndexChanged, this, &ExportPage::schedule_plan);
    for (QSpinBox* box : {gpus_per_node_, nodes_, context_length_, concurrency_}) connect(box, &QSpinBox::valueChanged, this, &ExportPage::schedule_plan);
    connect(save_, &QPushButton::clicked, this, &ExportPage::choose_folder_and_save);
    save_->setEnabled(false);
    verdict_->setText(tr("Load a model in Chat or choose a model folder: config.json is enough."));
}

void ExportPage::set_loaded_model(const QString& path) {
    loaded_model_ = path;
    model_dir_->setPlaceholderText(tr("The model loaded in Chat: %1").arg(QFileInfo(path).fileName()));
    if (model_dir_->text().isEmpty()) schedule_plan();
}

void ExportPage::schedule_plan() { debounce_->start(); }

app::ExportRequest ExportPage::request() const {
    app::ExportRequest r;
    r.model_directory = model_dir_->text().trimmed().isEmpty() ? loaded_model_ : model_dir_->text().trimmed();
    r.model_id = model_id_->text().trimmed();
    r.adapter_directory = adapter_dir_->text().trimmed();
    r.gpu = gpu_->currentData().toString();
    r.gpus_per_node = gpus_per_node_->value();
    r.nodes = nodes_->value();
    r.context = context_length_->value();
    r.concurrency = concurrency_->value();
    r.format = deploy::WeightFormat(format_->currentData().toInt());
    return r;
}

void ExportPage::set_request(const app::ExportRequest& r) {
    model_dir_->setText(r.model_directory);
    model_id_->setText(r.model_id);
    adapter_dir_->setText(r.adapter_directory);
    gpu_->setCurrentIndex(gpu_->findData(r.gpu));
    gpus_per_node_->setValue(r.gpus_per_node);
    nodes_->setValue(r.nodes);
    context_length_->setValue(int(r.context));
    concurrency_->setValue(int(r.concurrency));
    format_->setCurrentIndex(format_->findData(int(r.format)));
    schedule_plan();
}

void ExportPage::show_preview(std::shared_ptr<app::ExportPreview> preview) {
    if (!preview->error.isEmpty()) {
        preview_.reset();
        save_->setEnabled(false);
        verdict_->setText(tr("<b>No plan:</b> %1").arg(preview->error.toHtmlEscaped()));
        suggestion_->clear();
        emit planShown();
        return;
    }
    preview_ = std::move(preview);
    const deploy::DeploymentPlan& plan = preview_->plan;
    // "Fits on 8×H200 as …" in colour up to the colon, the numbers after it.
    QString verdict = QString::fromStdString(plan.verdict);
    verdict[0] = verdict[0].toUpper();
    const qsizetype colon = verdict.indexOf(':');
    verdict_->setText(QStringLiteral("<b style='color:%1'>%2</b>%3")
                          .arg(plan.fits ? "#2e7d32" : "#c62828", verdict.left(colon).toHtmlEscaped(), verdict.mid(colon).toHtmlEscaped()));
    QString suggestion = plan.smallest_fit ? QString::fromStdString(*plan.smallest_fit) : QString();
    if (!suggestion.isEmpty()) suggestion[0] = suggestion[0].toUpper();
    suggestion_->setText(suggestion.toHtmlEscaped());
    suggestion_->setVisible(plan.smallest_fit.has_value());
    memory_->set_memory(plan.per_gpu.capacity, plan.per_gpu.usable, plan.per_gpu.weights, plan.per_gpu.kv_cache, plan.per_gpu.workspace);
    const QLocale locale;
    QList<QPair<QString, QString>> rows = {
        {tr("Layout"), QString::fromStdString(plan.layout.describe())},
        {tr("Weights"), tr("%1 in %2").arg(gigabytes(plan.weight_bytes), QString::fromStdString(plan.weight_format))},
        {tr("KV cache per token"), tr("%1 bytes (%2)").arg(locale.toString(plan.kv_bytes_per_token),
                                                            plan.request.config.mla ? tr("MLA latent") : tr("K and V per head"))},
        {tr("KV cache, all requests"), gigabytes(plan.kv_bytes_total)},
        {tr("Per GPU"), tr("%1 weights + %2 KV + %3 workspace of %4 usable")
                            .arg(gigabytes(plan.per_gpu.weights), gigabytes(plan.per_gpu.kv_cache), gigabytes(plan.per_gpu.workspace), gigabytes(plan.per_gpu.usable))},
        {tr("Sequences that fit"), tr("%1 of %2 tokens").arg(locale.toString(plan.max_concurrency)).arg(locale.toString(plan.request.context))},
        {tr("MTP"), plan.mtp_layers > 0 ? tr("speculative decoding with %1 MTP module(s)").arg(plan.mtp_layers) : tr("none")},
        {tr("Decode, batch 1"), tr("about %1 tok/s (bound %2 tok/s from bandwidth)")
                                    .arg(plan.decode_estimate_tokens_per_s, 0, 'f', 0)
                                    .arg(plan.decode_bound_tokens_per_s, 0, 'f', 0)},
    };
    for (const auto& note : plan.notes) rows.append({tr("Note"), QString::fromStdString(note)});
    plan_table_->setRowCount(int(rows.size()));
    for (int i = 0; i < rows.size(); ++i) {
        plan_table_->setItem(i, 0, new QTableWidgetItem(rows[i].first));
        plan_table_->setItem(i, 1, new QTableWidgetItem(rows[i].second));
    }
    plan_table_->resizeRowsToContents();
    for (size_t t = 0; t < target_views_.size() && t < preview_->results.size(); ++t) {
        TargetView& view = target_views_[t];
        const QSignalBlocker block(view.files);
        view.files->clear();
        for (const auto& file : preview_->results[t].files) view.files->addItem(QString::fromStdString(file.name));
        view.how_to_run->setText(QString::fromStdString(preview_->results[t].how_to_run));
        show_file(int(t), 0);
    }
    save_->setEnabled(true);
    emit planShown();
}

void ExportPage::show_file(int target, int file) {
    if (!preview_ || target < 0 || size_t(target) >= preview_->results.size()) return;
    const auto& files = preview_->results[size_t(target)].files;
    target_views_[size_t(target)].text->setPlainText(file >= 0 && size_t(file) < files.size() ? QString::fromStdString(files[size_t(file)].contents)
                                                                                             : QString());
}

void ExportPage::show_target(const QString& id) {
    for (size_t i = 0; i < exporters::exporters().size(); ++i)
        if (QString::fromStdString(exporters::exporters()[i]->id()) == id) targets_->setCurrentIndex(int(i));
}

void ExportPage::choose_folder_and_save() {
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Folder for the deployment files"));
    if (!folder.isEmpty()) save_to(folder);
}

void ExportPage::save_to(const QString& folder) {
    if (!preview_) return;
    const auto preview = preview_;
    if (Status saved = app::save_export_folder(folder, *preview); !saved) {
        emit statusMessage(tr("The export was not saved: %1").arg(QString::fromStdString(saved.error().message)));
        return;
    }
    const QString title = app::export_title(*preview), params = app::export_params_json(*preview, folder);
    const QString model = request().model_directory;
    const bool fits = preview->plan.fits;
    context_.storage.write([title, params, model, fits](app::RunDatabase& db) -> Status {
        auto id = db.create_run("export", title, model, params);
        if (!id) return id.error();
        return db.finish_run(*id, fits ? "fits" : "does not fit");
    });
    emit statusMessage(tr("Saved the deployment files to %1").arg(folder));
    emit exportSaved(folder);
}

}  // namespace mwb::ui
