#include "ui/models_page.h"

#include <QComboBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLocale>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTextBrowser>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "ui/remote_endpoint_box.h"

namespace mwb::ui {

namespace {
enum Column { kName, kType, kSource, kStatus };
}

ModelsPage::ModelsPage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
    auto* open = new QPushButton(tr("Open folder…"));
    open->setToolTip(tr("Add a model folder (or a folder of model folders) to the library (Ctrl+O)"));
    auto* rescan_button = new QPushButton(tr("Rescan"));
    remove_ = new QPushButton(tr("Remove from list"));
    remove_->setObjectName("removeModel");
    remove_->setToolTip(tr("Take the selected model off this list; its files are not touched"));
    remove_->setEnabled(false);
    tokenizer_ = new QPushButton(tr("Tokenizer folder…"));
    tokenizer_->setObjectName("chooseTokenizer");
    tokenizer_->setToolTip(tr("Read the selected model's tokenizer (tokenizer.json, tokenizer_config.json) from another folder, "
                              "for a model folder that has none"));
    tokenizer_->setEnabled(false);
    hub_label_ = new QLabel;
    hub_label_->setWordWrap(true);
    auto* toolbar = new QHBoxLayout;
    toolbar->addWidget(open);
    toolbar->addWidget(rescan_button);
    toolbar->addWidget(remove_);
    toolbar->addWidget(tokenizer_);
    toolbar->addWidget(hub_label_, 1);

    list_ = new QTreeWidget;
    list_->setObjectName("modelList");
    list_->setHeaderLabels({tr("Model"), tr("Type"), tr("Source"), tr("Status")});
    list_->setRootIsDecorated(false);
    list_->setAlternatingRowColors(true);
    list_->header()->setSectionResizeMode(kName, QHeaderView::Stretch);
    list_->header()->setSectionResizeMode(kStatus, QHeaderView::Stretch);

    card_label_ = new QTextBrowser;
    card_label_->setObjectName("modelCard");
    card_label_->setFrameShape(QFrame::NoFrame);
    card_label_->setOpenExternalLinks(true);
    card_label_->setText(tr("Select a model to see its card."));
    device_ = new QComboBox;
    device_->addItem(app::device_name(app::Device::Cpu));
    device_->addItem(app::device_name(app::Device::Cuda));
    device_->setCurrentIndex(context_.settings.default_device() == app::Device::Cuda ? 1 : 0);
    context_length_ = new QSpinBox;
    context_length_->setRange(256, 256);
    context_length_->setSingleStep(1024);
    context_length_->setSuffix(tr(" tokens"));
    estimate_ = new QLabel;
    estimate_->setObjectName("memoryEstimate");
    estimate_->setWordWrap(true);
    load_ = new QPushButton(tr("Load model"));
    load_->setObjectName("loadModelButton");
    load_->setEnabled(false);
    auto* controls = new QFormLayout;
    controls->addRow(tr("Device"), device_);
    controls->addRow(tr("Context length"), context_length_);
    controls->addRow(tr("Memory"), estimate_);
    auto* card_box = new QGroupBox(tr("Model card"));
    auto* card_layout = new QVBoxLayout(card_box);
    card_layout->addWidget(card_label_, 1);
    card_layout->addLayout(controls);
    card_layout->addWidget(load_);

    auto* splitter = new QSplitter;
    splitter->addWidget(list_);
    splitter->addWidget(card_box);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(toolbar);
    layout->addWidget(splitter, 1);
    auto* remote = new RemoteEndpointBox(context_);
    layout->addWidget(remote);
    connect(remote, &RemoteEndpointBox::chatRequested, this, &ModelsPage::remoteChatRequested);

    connect(open, &QPushButton::clicked, this, &ModelsPage::open_folder);
    connect(rescan_button, &QPushButton::clicked, this, &ModelsPage::rescan);
    connect(remove_, &QPushButton::clicked, this, &ModelsPage::remove_selected);
    connect(tokenizer_, &QPushButton::clicked, this, &ModelsPage::choose_tokenizer_folder);
    connect(list_, &QTreeWidget::currentItemChanged, this, &ModelsPage::describe_selected);
    connect(device_, &QComboBox::currentIndexChanged, this, &ModelsPage::update_estimate);
    connect(context_length_, &QSpinBox::valueChanged, this, &ModelsPage::update_estimate);
    connect(&scan_watcher_, &QFutureWatcher<QList<app::ModelEntry>>::finished, this, [this] { show_entries(scan_watcher_.result()); });
    connect(&card_watcher_, &QFutureWatcher<Result<app::ModelCard>>::finished, this, [this] {
        const Result<app::ModelCard> result = card_watcher_.result();
        card_.reset();
        card_error_.clear();
        if (result) card_ = result.value();
        else card_error_ = QString::fromStdString(result.error().message);
        show_card();
    });
    connect(load_, &QPushButton::clicked, this, [this] {
        if (adapter_) {
            emit adapterRequested(adapter_->adapter_base, adapter_->path);
            return;
        }
        if (!card_) return;
        context_.settings.set_context_length(card_->path, context_length_->value());
        context_.settings.set_default_device(device_->currentIndex() == 1 ? app::Device::Cuda : app::Device::Cpu);
        emit loadRequested(card_->path, context_length_->value(), device_->currentIndex() == 1);
    });
}

void ModelsPage::rescan() {
    const app::LibraryLocations locations = app::library_locations(context_.settings);
    hub_label_->setText(tr("Hugging Face cache: %1").arg(locations.hub_directory));
    scan_watcher_.setFuture(QtConcurrent::run([locations] { return app::scan_models(locations); }));
}

void ModelsPage::open_folder() {
    const QString directory = QFileDialog::getExistingDirectory(this, tr("Open a model folder"), QDir::homePath());
    if (!directory.isEmpty()) add_folder(directory);
}

QString ModelsPage::selected_path() const {
    return list_->currentItem() ? list_->currentItem()->data(kName, Qt::UserRole).toString() : QString();
}

const app::ModelEntry* ModelsPage::entry_of(const QString& path) const {
    for (const app::ModelEntry& entry : entries_)
        if (entry.path == path) return &entry;
    return nullptr;
}

void ModelsPage::remove_selected() {
    const QString path = selected_path();
    if (path.isEmpty()) return;
    QStringList folders = context_.settings.model_folders();
    if (folders.removeAll(path) > 0 || folders.removeAll(QDir::cleanPath(path)) > 0) {
        context_.settings.set_model_folders(folders);
    } else {
        QStringList hidden = context_.settings.hidden_models();
        hidden << path;
        context_.settings.set_hidden_models(hidden);
    }
    load_failures_.remove(path);
    emit statusMessage(tr("Removed %1 from the list; its files are untouched (Open folder adds it back)").arg(QDir::toNativeSeparators(path)));
    rescan();
}

void ModelsPage::choose_tokenizer_folder() {
    const QString model = selected_path();
    if (model.isEmpty()) return;
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Folder with tokenizer.json for %1").arg(QFileInfo(model).fileName()),
                                                             QDir::homePath());
    if (!folder.isEmpty()) set_tokenizer_folder(model, folder);
}

void ModelsPage::set_tokenizer_folder(const QString& model, const QString& folder) {
    if (!QFileInfo(QDir(folder).filePath("tokenizer.json")).isFile()) {
        emit statusMessage(tr("%1 has no tokenizer.json: choose the folder of a Hugging Face tokenizer").arg(QDir::toNativeSeparators(folder)));
        return;
    }
    context_.settings.set_tokenizer_folder(model, QDir::cleanPath(QFileInfo(folder).absoluteFilePath()));
    load_failures_.remove(model);
    pending_selection_ = model;
    emit statusMessage(tr("%1 now reads its tokenizer from %2").arg(QFileInfo(model).fileName(), QDir::toNativeSeparators(folder)));
    rescan();
}

void ModelsPage::set_load_failure(const QString& path, const QString& message) {
    if (message.isEmpty()) load_failures_.remove(path);
    else load_failures_.insert(path, message);
    for (int i = 0; i < list_->topLevelItemCount(); ++i) {
        QTreeWidgetItem* item = list_->topLevelItem(i);
        if (item->data(kName, Qt::UserRole).toString() != path) continue;
        const app::ModelEntry* entry = entry_of(path);
        const QString status = !message.isEmpty() ? tr("failed to load: %1").arg(message) : entry && entry->supported ? tr("ready") : entry ? entry->problem : QString();
        item->setText(kStatus, status);
        item->setToolTip(kStatus, status);
        item->setForeground(kStatus, message.isEmpty() ? palette().brush(QPalette::Text) : QBrush(QColor(0xc0, 0x39, 0x2b)));
    }
    if (selected_path() == path) describe_selected();
}

void ModelsPage::add_folder(const QString& directory) {
    QStringList folders = context_.settings.model_folders();
    if (!folders.contains(directory)) folders << directory;
    context_.settings.set_model_folders(folders);
    pending_selection_ = QDir::cleanPath(QFileInfo(directory).absoluteFilePath());
    rescan();
}

void ModelsPage::select_model(const QString& path) {
    for (int i = 0; i < list_->topLevelItemCount(); ++i)
        if (list_->topLevelItem(i)->data(kName, Qt::UserRole).toString() == path) list_->setCurrentItem(list_->topLevelItem(i));
}

void ModelsPage::set_loaded_model(const QString& path) {
    loaded_path_ = path;
    for (int i = 0; i < list_->topLevelItemCount(); ++i) {
        QTreeWidgetItem* item = list_->topLevelItem(i);
        QFont font = item->font(kName);
        font.setBold(item->data(kName, Qt::UserRole).toString() == path);
        item->setFont(kName, font);
    }
}

void ModelsPage::show_entries(const QList<app::ModelEntry>& entries) {
    const QString previous = list_->currentItem() ? list_->currentItem()->data(kName, Qt::UserRole).toString() : QString();
    entries_ = entries;
    list_->clear();
    for (const app::ModelEntry& entry : entries) {
        auto* item = new QTreeWidgetItem(list_);
        item->setText(kName, entry.is_adapter() ? QStringLiteral("   ↳ ") + entry.name : entry.name);
        item->setText(kType, entry.model_type.isEmpty() ? tr("unknown") : entry.model_type);
        item->setText(kSource, entry.source);
        item->setText(kStatus, entry.is_adapter() ? tr("adapter for %1").arg(QFileInfo(entry.adapter_base).fileName())
                               : entry.supported  ? tr("ready")
                                                  : entry.problem);
        item->setToolTip(kName, entry.path);
        item->setToolTip(kStatus, entry.supported ? entry.path : entry.problem);
        item->setData(kName, Qt::UserRole, entry.path);
        if (!entry.supported)
            for (int c = 0; c < list_->columnCount(); ++c) item->setForeground(c, palette().brush(QPalette::Disabled, QPalette::Text));
    }
    if (entries.isEmpty())
        card_label_->setText(tr("No models found. Open a Hugging Face model folder (config.json, *.safetensors, tokenizer.json), or "
                                "download one with <code>huggingface-cli download</code> into the cache above."));
    set_loaded_model(loaded_path_);
    for (auto failure = load_failures_.cbegin(); failure != load_failures_.cend(); ++failure) set_load_failure(failure.key(), failure.value());
    select_model(!pending_selection_.isEmpty() ? pending_selection_ : !previous.isEmpty() ? previous : loaded_path_);
    pending_selection_.clear();
    emit scanFinished();
}

void ModelsPage::describe_selected() {
    card_.reset();
    adapter_.reset();
    load_->setEnabled(false);
    const QString path = selected_path();
    const app::ModelEntry* entry = entry_of(path);
    remove_->setEnabled(entry != nullptr);
    tokenizer_->setEnabled(entry != nullptr && !(entry && entry->is_adapter()));
    if (!entry) return;
    if (entry->is_adapter()) {
        adapter_ = *entry;
        card_label_->setHtml(tr("<h3>%1</h3><p>A LoRA adapter (PEFT format), rank %2, alpha %3, for the model <b>%4</b>.</p>"
                                "<p style='color:gray'>%5</p><p>Chat with it: the base model is loaded first when it is not, and "
                                "replies are generated with the adapter applied.</p>")
                                 .arg(entry->name.toHtmlEscaped())
                                 .arg(entry->adapter_rank)
                                 .arg(entry->adapter_alpha)
                                 .arg(entry->adapter_base.toHtmlEscaped(), entry->path.toHtmlEscaped()));
        estimate_->clear();
        load_->setText(tr("Chat with this adapter"));
        load_->setEnabled(QFileInfo::exists(QDir(entry->adapter_base).filePath("config.json")));
        emit cardShown();
        return;
    }
    if (!entry->supported) {
        card_label_->setText(tr("<b>%1</b><br>%2<br><br>This folder cannot be loaded: %3%4")
                                 .arg(entry->name.toHtmlEscaped(), path.toHtmlEscaped(), entry->problem.toHtmlEscaped(),
                                      entry->missing_tokenizer ? tr("<br><br>If its tokenizer is in another folder (the original model's), "
                                                                    "choose it with <b>Tokenizer folder…</b>.")
                                                               : QString()));
        estimate_->clear();
        emit cardShown();
        return;
    }
    card_label_->setText(tr("Reading %1…").arg(path));
    card_watcher_.setFuture(QtConcurrent::run([path] { return app::describe_model(path); }));
}

void ModelsPage::show_card() {
    if (!card_) {
        card_label_->setText(tr("This folder cannot be loaded: %1").arg(card_error_.toHtmlEscaped()));
        estimate_->clear();
        emit cardShown();
        return;
    }
    const app::ModelCard& c = *card_;
    QString rows;
    auto row = [&rows](const QString& key, const QString& value) {
        rows += QStringLiteral("<tr><td style='padding-right:12px'>%1</td><td><b>%2</b></td></tr>").arg(key, value.toHtmlEscaped());
    };
    row(tr("Architecture"), c.architecture);
    row(tr("Parameters"), tr("%1 total, %2 active per token").arg(app::format_count(c.total_parameters), app::format_count(c.active_parameters)));
    row(tr("Layers"), tr("%1 (%2 MoE)").arg(c.layers).arg(c.moe_layers));
    if (c.routed_experts > 0)
        row(tr("Experts"), tr("%1 routed, top-%2 per token, %3 shared").arg(c.routed_experts).arg(c.experts_per_token).arg(c.shared_experts));
    row(tr("Context"), tr("%1 tokens (config.json)").arg(QLocale().toString(c.context_length)));
    row(tr("Weights"), tr("%1, %2").arg(c.weights_dtype, app::format_bytes(c.weight_bytes)));
    row(tr("Size on disk"), app::format_bytes(c.size_on_disk));
    const QString demo = c.is_demo ? tr("<p><i>The built-in demo: DeepSeek-V3 architecture with random weights, so every page works offline. "
                                        "Its replies are gibberish.</i></p>")
                                   : QString();
    const app::ModelEntry* entry = entry_of(c.path);
    if (entry && entry->tokenizer_directory != c.path) row(tr("Tokenizer"), QDir::toNativeSeparators(entry->tokenizer_directory));
    const QString failure = load_failures_.contains(c.path)
                                ? tr("<p style='color:#c0392b'>The last load failed: %1</p>").arg(load_failures_.value(c.path).toHtmlEscaped())
                                : QString();
    card_label_->setText(QStringLiteral("<h3>%1</h3>%2%5<table>%3</table><p style='color:gray'>%4</p>")
                             .arg(c.name.toHtmlEscaped(), demo, rows, c.path.toHtmlEscaped(), failure));
    const int max_context = int(std::min<qint64>(c.context_length > 0 ? c.context_length : 4096, 1 << 20));
    context_length_->setRange(std::min(256, max_context), max_context);
    const int chosen = context_.settings.context_length(c.path);
    context_length_->setValue(chosen > 0 ? std::min(chosen, max_context) : int(std::min<qint64>(max_context, app::LoadOptions::kDefaultContextCap)));
    load_->setEnabled(true);
    load_->setText(c.path == loaded_path_ ? tr("Reload model") : tr("Load model"));
    update_estimate();
    emit cardShown();
}

void ModelsPage::update_estimate() {
    if (!card_) return;
    const app::Device device = device_->currentIndex() == 1 ? app::Device::Cuda : app::Device::Cpu;
    const app::MemoryEstimate m = app::estimate_memory(*card_, device, context_length_->value());
    estimate_->setText(tr("%1 = weights %2 + KV cache %3 (%4, %5 tokens)")
                           .arg(app::format_bytes(m.total()), app::format_bytes(m.weight_bytes), app::format_bytes(m.kv_cache_bytes),
                                device == app::Device::Cuda ? tr("bf16 on the GPU") : tr("float32 in RAM"))
                           .arg(context_length_->value()));
}

}  // namespace mwb::ui
