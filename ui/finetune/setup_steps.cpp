// The Model and Data steps of the Fine-tune wizard.
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QPushButton>
#include <QSpinBox>
#include <QTextBrowser>
#include <QTimer>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "ui/browse_field.h"
#include "ui/finetune/finetune_steps.h"

namespace mwb::ui {


ModelStep::ModelStep(AppContext& context, FineTuneState& state) : context_(context), state_(state) {
    setTitle(tr("Model"));
    setSubTitle(tr("The base model the adapter is trained for: the loaded one, or any Hugging Face model folder."));
    library_ = new QComboBox;
    library_->setObjectName("fineTuneLibrary");
    library_->setToolTip(tr("The models of the Models page that can be trained"));
    path_ = new QLineEdit;
    path_->setObjectName("fineTuneModel");
    card_ = new QTextBrowser;
    card_->setObjectName("fineTuneModelCard");
    auto* layout = new QVBoxLayout(this);
    auto* form = new QFormLayout;
    form->addRow(tr("From the library"), library_);
    form->addRow(tr("Model folder"), browse_field(path_, Browse::Folder, tr("Model folder")));
    layout->addLayout(form);
    layout->addWidget(card_, 1);
    connect(path_, &QLineEdit::textChanged, this, &ModelStep::describe);
    connect(library_, &QComboBox::activated, this, [this](int index) {
        if (const QString path = library_->itemData(index).toString(); !path.isEmpty()) path_->setText(path);
    });
    connect(&scan_, &QFutureWatcher<QList<app::ModelEntry>>::finished, this, [this] {
        library_->clear();
        library_->addItem(tr("Choose a model…"), QString());
        for (const app::ModelEntry& entry : scan_.result())
            if (entry.supported && !entry.is_adapter()) library_->addItem(entry.name, entry.path);
    });
    connect(&watcher_, &QFutureWatcher<Result<app::ModelCard>>::finished, this, [this] {
        const Result<app::ModelCard> card = watcher_.result();
        state_.card.reset();
        if (!card) {
            card_->setText(tr("This folder cannot be trained on: %1").arg(QString::fromStdString(card.error().message).toHtmlEscaped()));
        } else {
            state_.card = *card;
            card_->setHtml(tr("<h3>%1</h3><p>%2 · %3 parameters (%4 active per token) · %5 layers · weights %6 · context %7 tokens</p>")
                               .arg(card->name.toHtmlEscaped(), card->architecture, app::format_count(card->total_parameters),
                                    app::format_count(card->active_parameters))
                               .arg(card->layers)
                               .arg(card->weights_dtype)
                               .arg(card->context_length));
        }
        emit completeChanged();
    });
}

void ModelStep::set_model(const QString& directory) { path_->setText(directory); }

void ModelStep::initializePage() { list_library(); }

void ModelStep::list_library() {
    const app::LibraryLocations locations = app::library_locations(context_.settings);
    scan_.setFuture(QtConcurrent::run([locations] { return app::scan_models(locations); }));
}

void ModelStep::describe() {
    state_.model_directory = path_->text().trimmed();
    state_.card.reset();
    emit completeChanged();
    if (state_.model_directory.isEmpty()) return;
    card_->setText(tr("Reading %1…").arg(state_.model_directory));
    const QString directory = state_.model_directory;
    watcher_.setFuture(QtConcurrent::run([directory] { return app::describe_model(directory); }));
}

bool ModelStep::isComplete() const { return state_.card.has_value() && !watcher_.isRunning(); }

DataStep::DataStep(AppContext& context, FineTuneState& state) : context_(context), state_(state) {
    setTitle(tr("Data"));
    setSubTitle(tr("JSONL in the alpaca, messages, ShareGPT or text format, or a pre-tokenized .safetensors file. Green is what "
                   "the model learns; grey is only read."));
    path_ = new QLineEdit;
    path_->setObjectName("fineTuneData");
    auto* demo = new QPushButton(tr("Use the bundled demo dataset"));
    demo->setObjectName("useDemoData");
    cutoff_ = new QSpinBox;
    cutoff_->setRange(8, 131072);
    cutoff_->setValue(1024);
    cutoff_->setSuffix(tr(" tokens"));
    cutoff_->setToolTip(tr("Longer rows are cut to this length (and counted)"));
    all_tokens_ = new QCheckBox(tr("Learn every token, not only the assistant's"));
    validation_ = new QDoubleSpinBox;
    validation_->setRange(0, 0.5);
    validation_->setSingleStep(0.05);
    validation_->setToolTip(tr("The fraction of rows held out to measure the validation loss"));
    summary_ = new QLabel;
    summary_->setObjectName("dataSummary");
    summary_->setWordWrap(true);
    bad_lines_ = new QListWidget;
    bad_lines_->setObjectName("badLines");
    bad_lines_->setMaximumHeight(90);
    bad_lines_->setVisible(false);
    preview_ = new QTextBrowser;
    preview_->setObjectName("dataPreview");
    auto* form = new QFormLayout;
    form->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    form->addRow(tr("Cutoff"), cutoff_);
    form->addRow(QString(), all_tokens_);
    form->addRow(tr("Validation split"), validation_);
    auto* top = new QHBoxLayout;
    top->addWidget(browse_field(path_, Browse::File, tr("Training data"), tr("Training data (*.jsonl *.json *.safetensors)")), 1);
    top->addWidget(demo);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addLayout(form);
    layout->addWidget(summary_);
    layout->addWidget(bad_lines_);
    layout->addWidget(preview_, 1);

    debounce_ = new QTimer(this);
    debounce_->setSingleShot(true);
    debounce_->setInterval(250);
    connect(debounce_, &QTimer::timeout, this, &DataStep::read);
    connect(path_, &QLineEdit::textChanged, debounce_, qOverload<>(&QTimer::start));
    connect(cutoff_, &QSpinBox::valueChanged, debounce_, qOverload<>(&QTimer::start));
    connect(all_tokens_, &QCheckBox::toggled, debounce_, qOverload<>(&QTimer::start));
    connect(validation_, &QDoubleSpinBox::valueChanged, this, [this](double v) { state_.validation_split = v; });
    connect(&watcher_, &QFutureWatcher<app::DatasetPreview>::finished, this, &DataStep::show_preview);
    connect(demo, &QPushButton::clicked, this, [this] {
        // The bundled dataset is copied beside the history once, so that it is a file like any other.
        const QString target = QDir(context_.settings.data_directory()).filePath("datasets/demo_instructions.jsonl");
        QDir().mkpath(QFileInfo(target).path());
        if (!QFileInfo::exists(target)) QFile::copy(":/datasets/demo_instructions.jsonl", target);
        set_data(target);
    });
}

void DataStep::set_data(const QString& path) { path_->setText(path); }

void DataStep::read() {
    state_.data_path = path_->text().trimmed();
    state_.data.cutoff = cutoff_->value();
    state_.data.train_on_prompt = all_tokens_->isChecked();
    state_.preview = {};
    emit completeChanged();
    if (state_.data_path.isEmpty()) return;
    reading_ = true;
    summary_->setText(tr("Reading %1…").arg(state_.data_path));
    const QString path = state_.data_path;
    const QString tokenizer = context_.settings.tokenizer_folder(state_.model_directory).isEmpty()
                                  ? state_.model_directory
                                  : context_.settings.tokenizer_folder(state_.model_directory);
    const train::DatasetOptions options = state_.data;
    watcher_.setFuture(QtConcurrent::run([path, tokenizer, options] { return app::preview_dataset(path, tokenizer, options); }));
}

void DataStep::show_preview() {
    reading_ = false;
    state_.preview = watcher_.result();
    const app::DatasetPreview& p = state_.preview;
    bad_lines_->clear();
    if (!p.error.isEmpty()) {
        summary_->setText(tr("⚠ %1").arg(p.error));
        preview_->clear();
    } else {
        const QLocale locale;
        summary_->setText(tr("Format: %1 · %2 rows · %3 tokens, %4 of them learnt · %5 rows cut to %6 tokens · %7 bad lines skipped")
                              .arg(p.format, locale.toString(p.stats.rows), locale.toString(p.stats.tokens),
                                   locale.toString(p.stats.label_tokens), locale.toString(p.stats.truncated_rows))
                              .arg(state_.data.cutoff)
                              .arg(p.stats.skipped_lines));
        for (const auto& [line, message] : p.bad_lines) bad_lines_->addItem(tr("line %1: %2").arg(line).arg(message));
        preview_->setHtml(p.html);
    }
    bad_lines_->setVisible(bad_lines_->count() > 0);
    emit completeChanged();
    emit previewShown();
}

bool DataStep::isComplete() const { return !reading_ && state_.preview.error.isEmpty() && state_.preview.stats.rows > 0; }

}  // namespace mwb::ui
