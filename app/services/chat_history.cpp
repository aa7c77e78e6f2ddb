#include "app/services/chat_history.h"

namespace mwb::app {

namespace {
ChatHistory::MessageId new_id(qint64 value = 0) { return std::make_shared<std::atomic<qint64>>(value); }
}  // namespace

ChatHistory::ChatHistory(Storage& storage, QObject* parent) : QObject(parent), storage_(storage) {
    stream_timer_.setSingleShot(true);
    stream_timer_.setInterval(kStreamIntervalMs);
    connect(&stream_timer_, &QTimer::timeout, this, &ChatHistory::write_stream);
}

ChatHistory::~ChatHistory() { write_stream(); }

void ChatHistory::reset() {
    write_stream();
    streaming_.reset();
    run_.reset();
    system_message_.reset();
}

void ChatHistory::adopt(qint64 run_id, qint64 system_message) {
    reset();
    run_ = new_id(run_id);
    if (system_message != 0) system_message_ = new_id(system_message);
}

void ChatHistory::create_run(const QString& title, const QString& model, const QString& params_json, const QString& system_prompt) {
    if (run_) return;
    run_ = new_id();
    if (!system_prompt.isEmpty()) system_message_ = new_id();
    storage_.request<qint64>(
        [run = run_, system = system_message_, title, model, params_json, system_prompt](RunDatabase& db) -> Result<qint64> {
            auto id = db.create_run("chat", title, model, params_json);
            if (!id) return id;
            if (system) {
                MessageRecord m;
                m.run_id = *id;
                m.parent_id = 0;
                m.role = "system";
                m.content = system_prompt;
                auto stored = db.add_message(m);
                if (!stored) return stored.error();
                system->store(*stored);
            }
            run->store(*id);
            return id;
        },
        this, [this, run = run_](qint64 id) {
            if (run_ == run) emit runCreated(id);
        });
}

void ChatHistory::set_params(const QString& params_json) {
    if (!run_) return;
    storage_.update([run = run_, params_json](RunDatabase& db) -> Status {
        if (run->load() == 0) return Status::success();  // its creation failed and was reported
        return db.set_run_params(run->load(), params_json);
    });
}

ChatHistory::MessageId ChatHistory::add(MessageRecord message, const MessageId& parent, const QStringList& image_files,
                                        const ImageStore& images) {
    MessageId id = new_id();
    const MessageId after = parent ? parent : system_message_;
    storage_.write([run = run_, after, id, message = std::move(message), image_files, images](RunDatabase& db) mutable -> Status {
        if (!run || run->load() == 0)
            return make_error("the message was not saved because its conversation could not be created in the run history");
        if (after && after->load() == 0) return make_error("the message was not saved because the one before it was not saved");
        for (const QString& file : image_files) {
            auto stored = images.add(file);
            if (!stored) return stored.error();
            message.images << *stored;
        }
        message.run_id = run->load();
        message.parent_id = after ? after->load() : 0;
        auto stored = db.add_message(message);
        if (!stored) return stored.error();
        id->store(*stored);
        return Status::success();
    });
    return id;
}

void ChatHistory::stream(const MessageId& reply, const QString& content) {
    if (streaming_ && streaming_ != reply) write_stream();
    streaming_ = reply;
    streaming_text_ = content;
    if (!stream_timer_.isActive()) stream_timer_.start();
}

void ChatHistory::write_stream() {
    stream_timer_.stop();
    if (!streaming_) return;
    MessageRecord record;
    record.content = streaming_text_;
    record.complete = false;
    storage_.update([reply = streaming_, record](RunDatabase& db) mutable -> Status {
        if (reply->load() == 0) return Status::success();  // the reply's row was not written: that failure was reported
        record.id = reply->load();
        return db.update_message(record);
    });
    streaming_.reset();
}

void ChatHistory::finish(const MessageId& reply, MessageRecord record) {
    if (streaming_ == reply) {
        stream_timer_.stop();
        streaming_.reset();
    }
    storage_.write([reply, record](RunDatabase& db) mutable -> Status {
        if (reply->load() == 0) return make_error("the reply was not saved because its row could not be written");
        record.id = reply->load();
        return db.update_message(record);
    });
}

void ChatHistory::read(QObject* context, std::function<void(QList<MessageRecord>)> done) {
    storage_.request<QList<MessageRecord>>(
        [run = run_](RunDatabase& db) -> Result<QList<MessageRecord>> {
            if (!run || run->load() == 0) return QList<MessageRecord>();
            return db.messages(run->load());
        },
        context, std::move(done));
}

void ChatHistory::switch_alternative(const MessageId& message, int step, QObject* context, std::function<void(QList<MessageRecord>)> done) {
    write_stream();
    storage_.request<QList<MessageRecord>>(
        [run = run_, message, step](RunDatabase& db) -> Result<QList<MessageRecord>> {
            if (!run || run->load() == 0 || message->load() == 0) return make_error("this message is not in the run history");
            auto shown = db.messages(run->load());
            if (!shown) return shown;
            for (const MessageRecord& m : *shown) {
                if (m.id != message->load()) continue;
                const qsizetype target = m.siblings.indexOf(m.id) + step;
                if (target < 0 || target >= m.siblings.size()) return shown;
                MWB_TRY(db.select_branch(run->load(), m.siblings[target]));
                return db.messages(run->load());
            }
            return make_error("this message is no longer part of the conversation shown");
        },
        context, std::move(done));
}

}  // namespace mwb::app
