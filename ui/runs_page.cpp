#include "ui/runs_page.h"

#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QLineSeries>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QSaveFile>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>

#include "app/services/image_store.h"
#include "app/services/chat_text.h"

namespace mwb::ui {

namespace {
enum Column { kTitle, kKind, kModel, kCreated, kMessages, kStatus };
}

RunsPage::RunsPage(AppContext& context, QWidget* parent) : QWidget(parent), context_(context) {
    search_ = new QLineEdit;
    search_->setPlaceholderText(tr("Search titles and messages"));
    search_->setClearButtonEnabled(true);
    kind_ = new QComboBox;
    kind_->addItem(tr("All kinds"), QString());
    kind_->addItem(tr("Chat"), QStringLiteral("chat"));
    kind_->addItem(tr("Documents"), QStringLiteral("documents"));
    kind_->addItem(tr("Fine-tune"), QStringLiteral("finetune"));
    kind_->addItem(tr("Export"), QStringLiteral("export"));
    model_ = new QComboBox;
    model_->addItem(tr("All models"), QString());
    model_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    period_ = new QComboBox;
    period_->addItem(tr("Any time"), -1);
    period_->addItem(tr("Today"), 0);
    period_->addItem(tr("Last 7 days"), 6);
    period_->addItem(tr("Last 30 days"), 29);
    auto* filters = new QHBoxLayout;
    filters->addWidget(search_, 1);
    filters->addWidget(kind_);
    filters->addWidget(model_);
    filters->addWidget(period_);

    table_ = new QTableWidget(0, 6);
    table_->setObjectName("runsTable");
    table_->setHorizontalHeaderLabels({tr("Title"), tr("Kind"), tr("Model"), tr("Created"), tr("Messages"), tr("Status")});
    table_->setSelectionBehavior(QAbstractItemView::SelectRows);
    table_->setSelectionMode(QAbstractItemView::SingleSelection);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->verticalHeader()->setVisible(false);
    table_->horizontalHeader()->setSectionResizeMode(kTitle, QHeaderView::Stretch);
    table_->setAlternatingRowColors(true);

    auto* open = new QPushButton(tr("Open in Chat"));
    auto* markdown = new QPushButton(tr("Export Markdown…"));
    auto* json = new QPushButton(tr("Export JSON…"));
    json->setToolTip(tr("The conversation in the OpenAI chat “messages” format"));
    auto* remove = new QPushButton(tr("Delete…"));
    resume_ = new QPushButton(tr("Resume training"));
    resume_->setObjectName("resumeRun");
    resume_->setToolTip(tr("Go on from the run's last checkpoint, on the Fine-tune page"));
    resume_->setVisible(false);
    auto* actions = new QHBoxLayout;
    actions->addWidget(open);
    actions->addWidget(resume_);
    actions->addWidget(markdown);
    actions->addWidget(json);
    actions->addStretch();
    actions->addWidget(remove);

    curve_ = new QChartView;
    curve_->setObjectName("runCurve");
    curve_->setRenderHint(QPainter::Antialiasing);
    curve_->setMinimumHeight(220);
    curve_->setVisible(false);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(filters);
    layout->addWidget(table_, 1);
    layout->addWidget(curve_);
    layout->addLayout(actions);

    auto* debounce = new QTimer(this);
    debounce->setSingleShot(true);
    debounce->setInterval(200);
    connect(search_, &QLineEdit::textChanged, debounce, qOverload<>(&QTimer::start));
    connect(debounce, &QTimer::timeout, this, &RunsPage::refresh);
    for (QComboBox* box : {kind_, model_, period_}) connect(box, &QComboBox::activated, this, &RunsPage::refresh);
    auto open_chat = [this] {
        const qint64 id = selected_run();
        if (!id) return;
        if (selected_kind() == "chat") emit openChatRequested(id);
        else if (selected_kind() == "documents") emit openDocumentsRequested(id);
        else emit statusMessage(tr("This is a training run: its curve is shown below the table, its adapter in the folder of its settings"));
    };
    connect(open, &QPushButton::clicked, this, open_chat);
    connect(table_, &QTableWidget::cellDoubleClicked, this, open_chat);
    connect(table_, &QTableWidget::itemSelectionChanged, this, &RunsPage::show_selected);
    connect(resume_, &QPushButton::clicked, this, [this] {
        if (const qint64 id = selected_run()) emit resumeTrainingRequested(id);
    });
    connect(markdown, &QPushButton::clicked, this, [this] { ask_export(false); });
    connect(json, &QPushButton::clicked, this, [this] { ask_export(true); });
    connect(remove, &QPushButton::clicked, this, &RunsPage::delete_selected);
    connect(&context_.storage, &app::Storage::runsChanged, debounce, qOverload<>(&QTimer::start));
}

void RunsPage::showEvent(QShowEvent* event) {
    QWidget::showEvent(event);
    refresh();
}

QString RunsPage::selected_kind() const {
    const int row = table_->currentRow();
    return row < 0 || !table_->item(row, kKind) ? QString() : table_->item(row, kKind)->text();
}

void RunsPage::show_selected() {
    const qint64 id = selected_run();
    const int row = table_->currentRow();
    const bool training = id && selected_kind() == "finetune";
    resume_->setVisible(training && table_->item(row, kStatus) && table_->item(row, kStatus)->text() != "finished");
    if (!training) {
        curve_->setVisible(false);
        return;
    }
    context_.storage.request<QList<app::TrainingStep>>(
        [id](app::RunDatabase& db) { return db.training_steps(id); }, this, [this, id](const QList<app::TrainingStep>& steps) {
            if (selected_run() != id) return;
            auto* chart = new QChart;
            auto* loss = new QLineSeries;
            loss->setName(tr("training loss"));
            auto* validation = new QLineSeries;
            validation->setName(tr("validation loss"));
            for (const app::TrainingStep& s : steps) {
                loss->append(double(s.step), s.loss);
                if (s.validation_loss >= 0) validation->append(double(s.step), s.validation_loss);
            }
            chart->addSeries(loss);
            if (validation->count()) chart->addSeries(validation);
            else delete validation;
            chart->createDefaultAxes();
            chart->setTitle(tr("%1 steps").arg(steps.size()));
            QChart* previous = curve_->chart();
            curve_->setChart(chart);
            delete previous;
            curve_->setVisible(true);
        });
}

qint64 RunsPage::selected_run() const {
    const int row = table_->currentRow();
    return row < 0 ? 0 : table_->item(row, kTitle)->data(Qt::UserRole).toLongLong();
}

void RunsPage::refresh() {
    app::RunFilter filter;
    filter.text = search_->text().trimmed();
    filter.kind = kind_->currentData().toString();
    filter.model = model_->currentData().toString();
    if (const int days = period_->currentData().toInt(); days >= 0) filter.since = QDate::currentDate().addDays(-days);
    struct Listing {
        QList<app::RunRecord> runs;
        QStringList models;
    };
    context_.storage.request<Listing>(
        [filter](app::RunDatabase& db) -> Result<Listing> {
            auto runs = db.list_runs(filter);
            if (!runs) return runs.error();
            auto models = db.models();
            if (!models) return models.error();
            return Listing{*runs, *models};
        },
        this, [this](const Listing& listing) {
            const QString chosen_model = model_->currentData().toString();
            model_->clear();
            model_->addItem(tr("All models"), QString());
            for (const QString& model : listing.models) model_->addItem(QFileInfo(model).fileName(), model);
            model_->setCurrentIndex(std::max(0, model_->findData(chosen_model)));

            const qint64 selected = selected_run();
            table_->setRowCount(0);
            for (const app::RunRecord& run : listing.runs) {
                const int row = table_->rowCount();
                table_->insertRow(row);
                auto* title = new QTableWidgetItem(run.title);
                title->setData(Qt::UserRole, run.id);
                table_->setItem(row, kTitle, title);
                table_->setItem(row, kKind, new QTableWidgetItem(run.kind));
                auto* model = new QTableWidgetItem(QFileInfo(run.model).fileName());
                model->setToolTip(run.model);
                table_->setItem(row, kModel, model);
                table_->setItem(row, kCreated, new QTableWidgetItem(QLocale().toString(run.created_at, QLocale::ShortFormat)));
                table_->setItem(row, kMessages, new QTableWidgetItem(QString::number(run.message_count)));
                table_->setItem(row, kStatus, new QTableWidgetItem(run.status));
                if (run.id == selected) table_->selectRow(row);
            }
            table_->resizeColumnsToContents();
            table_->horizontalHeader()->setSectionResizeMode(kTitle, QHeaderView::Stretch);
            emit refreshed();
        });
}

void RunsPage::ask_export(bool as_json) {
    const int row = table_->currentRow();
    if (row < 0) {
        emit statusMessage(tr("Select a run to export"));
        return;
    }
    QString name = table_->item(row, kTitle)->text();
    name.replace(QRegularExpression("[^\\w\\- ]+"), "_");
    const QString path = QFileDialog::getSaveFileName(this, as_json ? tr("Export as JSON") : tr("Export as Markdown"),
                                                      name + (as_json ? ".json" : ".md"),
                                                      as_json ? tr("JSON (*.json)") : tr("Markdown (*.md)"));
    if (!path.isEmpty()) export_selected(as_json, path);
}

void RunsPage::export_selected(bool as_json, const QString& path) {
    const qint64 id = selected_run();
    if (!id) return;
    // Reading the run and writing the file both happen on the storage thread.
    context_.storage.request<QString>(
        [id, as_json, path](app::RunDatabase& db) -> Result<QString> {
            auto run = db.run(id);
            if (!run) return run.error();
            auto messages = db.messages(id);
            if (!messages) return messages.error();
            const QByteArray bytes = as_json ? app::chat_to_openai_json(*run, *messages) : app::chat_to_markdown(*run, *messages).toUtf8();
            QSaveFile file(path);
            if (!file.open(QIODevice::WriteOnly) || file.write(bytes) != bytes.size() || !file.commit())
                return make_error(("cannot write " + path + ": " + file.errorString()).toStdString());
            return path;
        },
        this, [this](const QString& written) { emit statusMessage(tr("Exported to %1").arg(written)); });
}

void RunsPage::delete_selected() {
    const int row = table_->currentRow();
    if (row < 0) return;
    const qint64 id = selected_run();
    if (QMessageBox::question(this, tr("Delete run"),
                              tr("Delete “%1” and everything stored with it? This cannot be undone.").arg(table_->item(row, kTitle)->text())) !=
        QMessageBox::Yes)
        return;
    table_->removeRow(row);
    const app::ImageStore images(context_.settings.image_directory());
    context_.storage.write([id, images](app::RunDatabase& db) { return app::delete_run_and_images(db, images, id); });
    emit runDeleted(id);
}

}  // namespace mwb::ui
