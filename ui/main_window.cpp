#include "ui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QShortcut>
#include <QStackedWidget>
#include <QStatusBar>
#include <algorithm>

#include "app/services/model_library.h"
#include "ui/chat_page.h"
#include "ui/documents/documents_page.h"
#include "ui/elided_label.h"
#include "ui/export_page.h"
#include "ui/finetune/finetune_page.h"
#include "ui/models_page.h"
#include "ui/inspector/inspector_page.h"
#include "ui/runs_page.h"
#include "ui/server_page.h"
#include "ui/settings_page.h"
#include "ui/theme.h"

namespace mwb::ui {

MainWindow::MainWindow(AppContext& context, QWidget* parent) : QMainWindow(parent), context_(context) {
    setWindowTitle(tr("MoE Workbench"));
    setObjectName("mainWindow");

    chat_ = new ChatPage(context_);
    models_ = new ModelsPage(context_);
    runs_ = new RunsPage(context_);
    settings_page_ = new SettingsPage(context_);
    server_page_ = new ServerPage(context_, server_host_);
    export_page_ = new ExportPage(context_);
    pages_ = new QStackedWidget;
    navigation_ = new QListWidget;
    navigation_->setObjectName("navigation");
    navigation_->setFixedWidth(150);
    auto add_page = [this](const QString& name, QWidget* page) {
        auto* item = new QListWidgetItem(name, navigation_);
        item->setSizeHint(QSize(0, 2 * fontMetrics().height()));
        pages_->addWidget(page);
    };
    add_page(tr("Chat"), chat_);
    documents_ = new DocumentsPage(context_, document_library_);
    add_page(tr("Documents"), documents_);
    inspector_ = new InspectorPage(context_.engine.inspector());
    add_page(tr("Inspector"), inspector_);
    finetune_ = new FineTunePage(context_);
    add_page(tr("Fine-tune"), finetune_);
    add_page(tr("Runs"), runs_);
    add_page(tr("Server"), server_page_);
    add_page(tr("Export"), export_page_);
    add_page(tr("Models"), models_);
    add_page(tr("Settings"), settings_page_);
    connect(navigation_, &QListWidget::currentRowChanged, pages_, &QStackedWidget::setCurrentIndex);

    auto* central = new QWidget;
    auto* layout = new QHBoxLayout(central);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(navigation_);
    layout->addWidget(pages_, 1);
    setCentralWidget(central);

    model_status_ = new ElidedLabel(tr("No model"));
    model_status_->setObjectName("modelStatus");
    model_status_->setMaximumWidth(480);
    load_progress_ = new QProgressBar;
    load_progress_->setObjectName("loadProgress");
    load_progress_->setRange(0, 1000);
    load_progress_->setMaximumWidth(220);
    load_progress_->setVisible(false);
    cancel_load_ = new QPushButton(tr("Cancel"));
    cancel_load_->setToolTip(tr("Stop loading the model"));
    cancel_load_->setVisible(false);
    statusBar()->addPermanentWidget(load_progress_);
    statusBar()->addPermanentWidget(cancel_load_);
    statusBar()->addPermanentWidget(model_status_);
    connect(cancel_load_, &QPushButton::clicked, this, [this] { context_.engine.cancelLoad(); });

    for (QObject* page : {static_cast<QObject*>(chat_), static_cast<QObject*>(models_), static_cast<QObject*>(runs_),
                          static_cast<QObject*>(settings_page_), static_cast<QObject*>(inspector_), static_cast<QObject*>(finetune_),
                          static_cast<QObject*>(server_page_), static_cast<QObject*>(export_page_), static_cast<QObject*>(documents_)})
        connect(page, SIGNAL(statusMessage(QString)), this, SLOT(showStatusMessage(QString)));
    connect(models_, &ModelsPage::loadRequested, this, &MainWindow::load_model);
    connect(models_, &ModelsPage::adapterRequested, this, &MainWindow::chat_with_adapter);
    connect(models_, &ModelsPage::remoteChatRequested, this, &MainWindow::chat_with_endpoint);
    connect(server_page_, &ServerPage::chatRequested, this, &MainWindow::chat_with_endpoint);
    connect(finetune_, &FineTunePage::chatWithAdapter, this, &MainWindow::chat_with_adapter);
    connect(context_.engine.worker(), &app::EngineWorker::adapterChanged, this, [this](const QString& adapter) {
        chat_->set_adapter(adapter);
        if (!adapter.isEmpty()) statusBar()->showMessage(tr("Replies now use the adapter %1").arg(adapter), 8000);
    });
    connect(context_.engine.worker(), &app::EngineWorker::adapterFailed, this,
            [this](const QString&, const QString& message) { chat_->show_notice(message); });
    connect(chat_, &ChatPage::inspectRequested, this, [this](const QList<app::ChatMessage>& messages, const QString& reply, const QString& origin) {
        last_inspection_ = Inspection{messages, reply, origin};
        show_page(Page::Inspector);
        const bool with_images = std::any_of(messages.begin(), messages.end(), [](const app::ChatMessage& m) { return !m.images.isEmpty(); });
        inspector_->show_view(with_images ? InspectorPage::View::ImageAttention : InspectorPage::View::Attention);
        context_.engine.inspect(messages, reply, inspector_->attention_layer(), origin);
        statusBar()->showMessage(tr("Inspecting %1…").arg(origin));
    });
    connect(inspector_, &InspectorPage::captureRequested, this, [this](qint64 layer) {
        if (last_inspection_) context_.engine.inspect(last_inspection_->messages, last_inspection_->reply, layer, last_inspection_->origin);
    });
    connect(runs_, &RunsPage::openChatRequested, this, [this](qint64 id) {
        chat_->open_run(id);
        show_page(Page::Chat);
    });
    connect(runs_, &RunsPage::openDocumentsRequested, this, [this](qint64 id) {
        documents_->open_run(id);
        show_page(Page::Documents);
    });
    connect(&context_.storage, &app::Storage::opened, &document_library_, [this](const QString& path) { document_library_.open(path); });
    connect(runs_, &RunsPage::resumeTrainingRequested, this, [this](qint64 id) {
        show_page(Page::FineTune);
        finetune_->resume_run(id);
    });
    connect(runs_, &RunsPage::runDeleted, this, [this](qint64 id) {
        if (chat_->current_run_id() == id) chat_->new_chat();
    });
    connect(settings_page_, &SettingsPage::themeChanged, this, [](app::Theme theme) { apply_theme(theme); });
    connect(&context_.storage, &app::Storage::failed, this,
            [this](const QString& message) { statusBar()->showMessage(tr("Run history: %1").arg(message), 15000); });
    connect(&context_.storage, &app::Storage::recovered, this, [this](const QString& copy) {
        QMessageBox::warning(this, tr("The run history was damaged"),
                             tr("The run history could not be read, so MoE Workbench started a new one. The damaged file was kept "
                                "as\n%1\nNothing was deleted.")
                                 .arg(QDir::toNativeSeparators(copy)));
    });

    const app::EngineWorker* worker = context_.engine.worker();
    connect(worker, &app::EngineWorker::loadStarted, this, &MainWindow::on_load_started);
    connect(worker, &app::EngineWorker::loadProgress, this, &MainWindow::on_load_progress);
    connect(worker, &app::EngineWorker::modelLoaded, this, &MainWindow::on_model_loaded);
    connect(worker, &app::EngineWorker::loadFailed, this, &MainWindow::on_load_failed);
    connect(worker, &app::EngineWorker::inspectionFinished, this,
            [this](quint64, int tokens) { statusBar()->showMessage(tr("Inspected %1 tokens").arg(tokens), 5000); });
    connect(worker, &app::EngineWorker::inspectionFailed, this, [this](quint64, const QString& message) { showStatusMessage(message); });
    connect(worker, &app::EngineWorker::loadCancelled, this, [this] { on_load_ended(tr("Loading was cancelled")); });

    build_menus();
    resize(1280, 820);
    restoreGeometry(context_.settings.window_geometry());
    restoreState(context_.settings.window_state());
    navigation_->setCurrentRow(int(Page::Chat));
}

void MainWindow::build_menus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    QAction* new_chat = file->addAction(tr("&New chat"), this, [this] {
        show_page(Page::Chat);
        chat_->new_chat();
    });
    new_chat->setShortcut(QKeySequence::New);
    QAction* open = file->addAction(tr("&Open model folder…"), this, [this] {
        show_page(Page::Models);
        models_->open_folder();
    });
    open->setShortcut(QKeySequence::Open);
    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setShortcut(QKeySequence::Quit);

    QMenu* chat = menuBar()->addMenu(tr("&Chat"));
    QAction* send = chat->addAction(tr("&Send"), chat_, &ChatPage::send);
    send->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_Return), QKeySequence(Qt::CTRL | Qt::Key_Enter)});
    QAction* stop = chat->addAction(tr("S&top"), chat_, &ChatPage::stop);
    stop->setShortcut(Qt::Key_Escape);

    QMenu* go = menuBar()->addMenu(tr("&Go"));
    for (int i = 0; i < navigation_->count(); ++i) {
        QAction* page = go->addAction(navigation_->item(i)->text(), this, [this, i] { show_page(Page(i)); });
        page->setShortcut(QKeySequence(Qt::CTRL | Qt::Key(Qt::Key_1 + i)));
    }
}

void MainWindow::chat_with_adapter(const QString& model, const QString& adapter) {
    show_page(Page::Chat);
    if (current_model_ && QDir::cleanPath(current_model_->path) == QDir::cleanPath(model)) {
        context_.engine.setAdapter(adapter);
        return;
    }
    pending_adapter_ = adapter;  // applied once the base model has loaded
    load_model(model, context_.settings.context_length(model), false);
}

void MainWindow::showStatusMessage(const QString& text) { statusBar()->showMessage(text, 8000); }

void MainWindow::show_page(Page page) { navigation_->setCurrentRow(int(page)); }

void MainWindow::start(const QString& model_directory) {
    QDir().mkpath(context_.settings.data_directory());
    context_.storage.open(context_.settings.database_path());
    models_->rescan();
    if (!model_directory.isEmpty()) {
        // When it cannot be loaded, the usual start-up model is loaded instead (on_load_failed).
        fall_back_on_failure_ = true;
        models_->add_folder(model_directory);
        const QString path = QDir::cleanPath(QFileInfo(model_directory).absoluteFilePath());
        load_model(path, context_.settings.context_length(path), context_.settings.default_device() == app::Device::Cuda);
        return;
    }
    load_startup_model();
}

void MainWindow::load_startup_model() {
    const QString crashed = context_.settings.model_load_in_progress();
    if (!crashed.isEmpty()) {
        context_.settings.end_model_load();
        chat_->show_notice(tr("The previous session ended while loading %1, so it was not loaded again automatically. "
                              "Load it from the Models page when you are ready (a shorter context needs less memory).")
                               .arg(crashed));
        chat_->clear_model(tr("No model loaded."));
        model_status_->setText(tr("No model"));
        return;
    }
    const QString last = context_.settings.last_model();
    if (!last.isEmpty() && last != context_.settings.demo_model_directory() && QFileInfo::exists(QDir(last).filePath("config.json"))) {
        load_model(last, context_.settings.context_length(last), context_.settings.default_device() == app::Device::Cuda);
        return;
    }
    load_demo_model();
}

void MainWindow::load_model(const QString& directory, qint64 context_length, bool cuda) {
    if (chat_->is_generating()) chat_->stop();
    context_.settings.begin_model_load(directory);
    if (directory == context_.settings.demo_model_directory()) {
        app::LoadOptions options;
        options.context_length = context_length;
        context_.engine.loadDemo(directory, context_.demo_recipe.config, context_.demo_recipe.seed, options);
        return;
    }
    app::LoadOptions options;
    options.context_length = context_length;
    options.cuda = cuda;
    options.tokenizer_directory = context_.settings.tokenizer_folder(directory);
    context_.engine.load(directory, options);
}

void MainWindow::load_demo_model() {
    const QString demo = context_.settings.demo_model_directory();
    load_model(demo, context_.settings.context_length(demo), false);
}

void MainWindow::on_load_started(const QString& directory) {
    load_progress_->setValue(0);
    load_progress_->setVisible(true);
    cancel_load_->setVisible(true);
    model_status_->setText(tr("Loading %1…").arg(QFileInfo(directory).fileName()));
    chat_->clear_model(tr("Loading %1…").arg(directory));
}

void MainWindow::on_load_progress(double fraction, const QString& stage) {
    load_progress_->setValue(int(fraction * 1000));
    load_progress_->setFormat(stage);
    load_progress_->setTextVisible(true);
    load_progress_->setToolTip(stage);
}

void MainWindow::on_load_failed(const QString& directory, const QString& message) {
    on_load_ended(message);
    models_->set_load_failure(directory, message);
    const bool fall_back = std::exchange(fall_back_on_failure_, false) && !current_model_;
    chat_->show_notice(fall_back ? tr("%1 could not be loaded, so the model of the last session (or the demo) is loaded instead. %2")
                                       .arg(QDir::toNativeSeparators(directory), message)
                                 : tr("%1 could not be loaded. %2").arg(QDir::toNativeSeparators(directory), message));
    if (fall_back) load_startup_model();
}

void MainWindow::on_model_loaded(const app::LoadedModelInfo& info) {
    fall_back_on_failure_ = false;
    finetune_->set_loaded_model(info.path);
    if (!pending_adapter_.isEmpty()) context_.engine.setAdapter(std::exchange(pending_adapter_, QString()));
    models_->set_load_failure(info.path, {});
    context_.settings.end_model_load();
    context_.settings.set_last_model(info.path);
    current_model_ = info;
    show_model(info);
    statusBar()->showMessage(tr("Loaded %1").arg(info.name), 5000);
}

void MainWindow::chat_with_endpoint(const app::RemoteEndpoint& endpoint) {
    chat_->use_remote(endpoint);
    model_status_->setText(tr("Remote: %1").arg(endpoint.label()));
    show_page(Page::Chat);
    statusBar()->showMessage(tr("Chat now talks to %1; load a model on the Models page to go back to the local engine")
                                 .arg(endpoint.base_url), 8000);
}

void MainWindow::show_model(const app::LoadedModelInfo& info) {
    load_progress_->setVisible(false);
    cancel_load_->setVisible(false);
    model_status_->setText(info.is_demo ? tr("%1 — demo, random weights").arg(info.name)
                                        : tr("%1 · context %2").arg(info.name).arg(info.context_length));
    chat_->set_model(info);
    models_->set_loaded_model(info.path);
    server_page_->set_loaded_model(info.path, context_.settings.tokenizer_folder(info.path));
    export_page_->set_loaded_model(info.path);
    if (info.is_demo) models_->rescan();  // the demo may have just been created
}

void MainWindow::on_load_ended(const QString& message) {
    context_.settings.end_model_load();
    load_progress_->setVisible(false);
    cancel_load_->setVisible(false);
    statusBar()->showMessage(message, 10000);
    if (current_model_) {
        show_model(*current_model_);
        return;
    }
    model_status_->setText(tr("No model"));
    chat_->clear_model(message);
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (finetune_->is_training() &&
        QMessageBox::question(this, tr("Training is running"),
                              tr("Quit and stop the training run? Its last checkpoint is kept and it can be resumed.")) != QMessageBox::Yes) {
        event->ignore();
        return;
    }
    context_.settings.set_window_layout(saveGeometry(), saveState());
    context_.settings.sync();
    QMainWindow::closeEvent(event);
}

}  // namespace mwb::ui
