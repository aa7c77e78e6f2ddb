#include "app/services/document_library.h"

#include <QAtomicInteger>
#include <QFileInfo>
#include <QThread>
#include <functional>

#include "app/documents/embedding_model.h"
#include "app/services/run_database.h"

namespace mwb::app {

namespace {

QAtomicInteger<int> lane_counter;

QString text_of(const Error& error) { return QString::fromStdString(error.message); }

}  // namespace

// A thread with its own database connection; jobs run in the order they are posted.
class DatabaseLane {
public:
    explicit DatabaseLane(const QString& name) {
        thread_.setObjectName(name);
        executor_ = new QObject;
        executor_->moveToThread(&thread_);
        QObject::connect(&thread_, &QThread::finished, executor_, &QObject::deleteLater);
        thread_.start();
    }
    ~DatabaseLane() {
        post([this] {
            store_.reset();
            database_.reset();
        });
        thread_.quit();
        thread_.wait();
    }

    void post(std::function<void()> job) { QMetaObject::invokeMethod(executor_, std::move(job), Qt::QueuedConnection); }
    // Runs `job` with the lane's store once the database is open; reports a closed one through `failed`.
    void with_store(std::function<void(DocumentStore&)> job, std::function<void(const QString&)> failed) {
        post([this, job = std::move(job), failed = std::move(failed)] {
            if (!store_) return failed(QObject::tr("The document index is not open."));
            job(*store_);
        });
    }
    // On the lane's thread.
    Status open(const QString& path) {
        database_ = std::make_unique<RunDatabase>(QStringLiteral("mwb-documents-%1").arg(lane_counter.fetchAndAddRelaxed(1)));
        MWB_TRY(database_->open(path));
        store_ = std::make_unique<DocumentStore>(database_->connection());
        return Status::success();
    }

private:
    QThread thread_;
    QObject* executor_ = nullptr;
    std::unique_ptr<RunDatabase> database_;
    std::unique_ptr<DocumentStore> store_;
};

void register_document_metatypes() {
    qRegisterMetaType<DocumentRecord>();
    qRegisterMetaType<QList<DocumentRecord>>();
    qRegisterMetaType<IngestProgress>();
    qRegisterMetaType<IngestSummary>();
    qRegisterMetaType<Passage>();
    qRegisterMetaType<QList<Passage>>();
    qRegisterMetaType<PageView>();
}

DocumentLibrary::DocumentLibrary(QObject* parent)
    : QObject(parent), ingest_lane_(std::make_unique<DatabaseLane>("mwb-documents-ingest")),
      query_lane_(std::make_unique<DatabaseLane>("mwb-documents-query")) {
    register_document_metatypes();
}

DocumentLibrary::~DocumentLibrary() {
    cancel_ = true;
    ingest_lane_.reset();
    query_lane_.reset();
}

void DocumentLibrary::open(const QString& path) {
    // The ingest lane opens first: it migrates the schema when the file is new, before the query lane reads it.
    ingest_lane_->post([this, path] {
        if (Status status = ingest_lane_->open(path); !status) return emit failed(text_of(status.error()));
        query_lane_->post([this, path] {
            if (Status status = query_lane_->open(path); !status) return emit failed(text_of(status.error()));
            emit opened();
            refresh();
        });
    });
}

void DocumentLibrary::refresh() {
    query_lane_->with_store([this](DocumentStore& store) {
        auto documents = store.documents();
        auto collections = store.collections();
        if (!documents || !collections) return emit failed(text_of(!documents ? documents.error() : collections.error()));
        emit documentsChanged(*documents, *collections);
    }, [this](const QString& message) { emit failed(message); });
}

void DocumentLibrary::add(const QStringList& paths, const IngestOptions& options) {
    adding_ = true;
    cancel_ = false;
    ingest_lane_->with_store([this, paths, options](DocumentStore& store) {
        const IngestReport report = ingest_documents(store, paths, options, [this](const IngestProgress& p) { emit progress(p); }, &cancel_);
        IngestSummary summary;
        summary.indexed = report.count(FileOutcome::State::Indexed);
        summary.unchanged = report.count(FileOutcome::State::Unchanged);
        summary.failed = report.count(FileOutcome::State::Failed);
        summary.cancelled = report.cancelled;
        for (const FileOutcome& f : report.files) {
            if (f.error.isEmpty()) continue;
            (f.state == FileOutcome::State::Failed ? summary.errors : summary.notes) << f.error;
        }
        refresh();
        if (!report.cancelled) embed_missing(store);
        adding_ = false;
        emit addFinished(summary);
    }, [this](const QString& message) {
        adding_ = false;
        emit failed(message);
    });
}

void DocumentLibrary::cancel() { cancel_ = true; }

void DocumentLibrary::remove(qint64 document_id) {
    ingest_lane_->with_store([this, document_id](DocumentStore& store) {
        if (Status status = store.remove_document(document_id); !status) emit failed(text_of(status.error()));
        refresh();
    }, [this](const QString& message) { emit failed(message); });
}

void DocumentLibrary::setEmbeddingModel(const QString& folder, const QString& device) {
    cancel_ = false;
    ingest_lane_->with_store([this, folder, device](DocumentStore& store) {
        std::shared_ptr<EmbeddingModel> model;
        if (!folder.isEmpty()) {
            auto opened = EmbeddingModel::open(folder, device);
            if (!opened) return emit embeddingChanged(embeddingModel(), text_of(opened.error()));
            model = std::move(opened.value());
        }
        {
            std::lock_guard lock(embedding_mutex_);
            embedding_ = model;
            embedding_folder_ = folder;
        }
        emit embeddingChanged(folder, {});
        if (model) embed_missing(store);
    }, [this](const QString& message) { emit failed(message); });
}

QString DocumentLibrary::embeddingModel() const {
    std::lock_guard lock(embedding_mutex_);
    return embedding_folder_;
}

void DocumentLibrary::embed_missing(DocumentStore& store) {
    std::shared_ptr<EmbeddingModel> model;
    {
        std::lock_guard lock(embedding_mutex_);
        model = embedding_;
    }
    if (!model) return;
    // Small batches: a question waits for the model during one batch at most.
    constexpr int kBatch = 8;
    auto embedded = embed_missing_chunks(store, *model, kBatch, [this](int done, int total) { emit embeddingProgress(done, total); }, &cancel_);
    if (!embedded) emit failed(tr("Embedding the chunks failed: %1").arg(text_of(embedded.error())));
}

quint64 DocumentLibrary::retrieve(const QString& question, const DocumentScope& scope, const RetrievalOptions& options) {
    const quint64 id = next_request_id_++;
    query_lane_->with_store([this, id, question, scope, options](DocumentStore& store) {
        std::shared_ptr<EmbeddingModel> model;
        {
            std::lock_guard lock(embedding_mutex_);
            model = embedding_;
        }
        auto found = app::retrieve(store, model.get(), question, scope, options);
        if (!found) return emit requestFailed(id, text_of(found.error()));
        emit retrieved(id, found->passages, found->hybrid);
    }, [this, id](const QString& message) { emit requestFailed(id, message); });
    return id;
}

quint64 DocumentLibrary::loadPage(qint64 document_id, const QString& path, int page, int char_start, int char_end) {
    const quint64 id = next_request_id_++;
    query_lane_->with_store([this, id, document_id, path, page, char_start, char_end](DocumentStore& store) {
        auto view = load_page_view(store, document_id, path, page, char_start, char_end);
        if (!view) return emit requestFailed(id, text_of(view.error()));
        emit pageLoaded(id, *view);
    }, [this, id](const QString& message) { emit requestFailed(id, message); });
    return id;
}

}  // namespace mwb::app
