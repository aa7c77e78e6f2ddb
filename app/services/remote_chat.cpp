#include "app/services/remote_chat.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QUrl>

namespace mwb::app {

namespace {

// The endpoint's URL for `path` ("/chat/completions"), whether the base URL ends in /v1 or not.
QUrl endpoint_url(const QString& base_url, const QString& path) {
    QString base = base_url.trimmed();
    while (base.endsWith('/')) base.chop(1);
    if (!base.endsWith("/v1")) base += "/v1";
    return QUrl(base + path);
}

// The message a user can act on for a failed HTTP exchange: the server's own error message when it sent one.
QString failure_message(const QString& endpoint, QNetworkReply* reply, const QByteArray& body) {
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status >= 400) {
        const QJsonObject error = QJsonDocument::fromJson(body).object().value("error").toObject();
        const QString detail = error.value("message").toString();
        return QObject::tr("%1 answered HTTP %2: %3")
            .arg(endpoint)
            .arg(status)
            .arg(detail.isEmpty() ? QString::fromUtf8(body.left(300)).trimmed() : detail);
    }
    if (reply->error() == QNetworkReply::OperationCanceledError)
        return QObject::tr("%1 sent nothing for too long: the stream stalled").arg(endpoint);
    return QObject::tr("cannot reach %1: %2").arg(endpoint, reply->errorString());
}

}  // namespace

QString RemoteEndpoint::label() const {
    const QUrl url(base_url.trimmed());
    const QString where = url.port() > 0 ? url.host() + ":" + QString::number(url.port()) : url.host();
    return QObject::tr("%1 at %2").arg(model.isEmpty() ? QObject::tr("the default model") : model, where.isEmpty() ? base_url : where);
}

RemoteChat::RemoteChat(QObject* parent) : QObject(parent), network_(new QNetworkAccessManager(this)) {}

QNetworkRequest RemoteChat::request_for(const RemoteEndpoint& endpoint, const QString& path) const {
    QNetworkRequest request(endpoint_url(endpoint.base_url, path));
    request.setHeader(QNetworkRequest::ContentTypeHeader, "application/json");
    if (!endpoint.api_key.isEmpty()) request.setRawHeader("Authorization", "Bearer " + endpoint.api_key.toUtf8());
    // A stream that sends nothing for this long is aborted (and reported as stalled).
    request.setTransferTimeout(stall_timeout_ms_);
    return request;
}

quint64 RemoteChat::generate(const RemoteEndpoint& endpoint, const QList<ChatMessage>& messages, const SamplingSettings& sampling,
                             const QString& continuation) {
    const quint64 id = next_id_++;
    if (!continuation.isEmpty()) {
        // Emitted after the caller has the id.
        QMetaObject::invokeMethod(this, [this, id] {
            emit generationFailed(id, tr("continuing a reply needs the local engine; use Regenerate with a remote endpoint"));
        }, Qt::QueuedConnection);
        return id;
    }
    QJsonArray list;
    for (const ChatMessage& m : messages) list.append(QJsonObject{{"role", m.role}, {"content", m.content}});
    QJsonObject body{{"messages", list},
                     {"stream", true},
                     {"stream_options", QJsonObject{{"include_usage", true}}},
                     {"max_tokens", sampling.max_new_tokens},
                     {"temperature", sampling.temperature},
                     {"top_p", sampling.top_p},
                     {"seed", qint64(sampling.seed & 0x7fffffffffffffffULL)}};
    if (!endpoint.model.isEmpty()) body["model"] = endpoint.model;
    // Beyond OpenAI's parameters (vLLM, SGLang and our server take them): sent only when set.
    if (sampling.top_k > 0) body["top_k"] = qint64(sampling.top_k);
    if (sampling.min_p > 0) body["min_p"] = sampling.min_p;
    if (sampling.repetition_penalty != 1.0) body["repetition_penalty"] = sampling.repetition_penalty;

    Stream stream;
    stream.endpoint_label = endpoint.label();
    stream.clock.start();
    QNetworkReply* reply = network_->post(request_for(endpoint, "/chat/completions"), QJsonDocument(body).toJson(QJsonDocument::Compact));
    stream.reply = reply;
    streams_.insert(id, stream);
    connect(reply, &QNetworkReply::readyRead, this, [this, id] { on_ready_read(id); });
    connect(reply, &QNetworkReply::finished, this, [this, id] { on_finished(id); });
    return id;
}

void RemoteChat::stop(quint64 request_id) {
    auto it = streams_.find(request_id);
    if (it == streams_.end() || !it->reply) return;
    it->stopped = true;
    it->reply->abort();  // finished() follows and reports the reply so far
}

void RemoteChat::on_ready_read(quint64 id) {
    auto it = streams_.find(id);
    if (it == streams_.end() || !it->reply) return;
    Stream& stream = *it;
    const int status = stream.reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status != 200) return;  // an error body: read whole when the reply finishes
    if (!stream.started) {
        stream.started = true;
        emit generationStarted(id, 0, {});
    }
    stream.pending += stream.reply->readAll();
    stream.pending.replace("\r\n", "\n");
    for (qsizetype end; (end = stream.pending.indexOf("\n\n")) >= 0;) {
        const QByteArray event = stream.pending.left(end);
        stream.pending.remove(0, end + 2);
        QByteArray data;
        for (const QByteArray& line : event.split('\n'))
            if (line.startsWith("data:")) data += line.mid(line.size() > 5 && line[5] == ' ' ? 6 : 5);
        if (!data.isEmpty()) handle_event(id, stream, data);
    }
}

void RemoteChat::emit_text(quint64 id, Stream& stream, const QString& piece) {
    if (piece.isEmpty()) return;
    const qint64 now = stream.clock.elapsed();
    if (stream.first_token_ms < 0) stream.first_token_ms = now;
    stream.last_token_ms = now;
    stream.text += piece;
    emit tokenText(id, piece);
}

void RemoteChat::handle_event(quint64 id, Stream& stream, const QByteArray& data) {
    if (data.trimmed() == "[DONE]") {
        stream.done = true;
        return;
    }
    const QJsonObject event = QJsonDocument::fromJson(data).object();
    if (event.contains("error")) {
        stream.error = tr("%1 reported: %2").arg(stream.endpoint_label, event.value("error").toObject().value("message").toString());
        return;
    }
    const QJsonObject usage = event.value("usage").toObject();
    if (!usage.isEmpty()) {
        stream.stats.prompt_tokens = usage.value("prompt_tokens").toInt();
        stream.stats.generated_tokens = usage.value("completion_tokens").toInt();
    }
    const QJsonArray choices = event.value("choices").toArray();
    if (choices.isEmpty()) return;
    const QJsonObject choice = choices.first().toObject();
    const QJsonObject delta = choice.value("delta").toObject();
    const QString reasoning = delta.value("reasoning_content").toString();
    const QString content = delta.value("content").toString() + choice.value("text").toString();
    // R1 reasoning is shown as the local engine shows it: inside <think>…</think> before the answer.
    if (!reasoning.isEmpty()) {
        if (!stream.in_reasoning) emit_text(id, stream, "<think>\n");
        stream.in_reasoning = true;
        emit_text(id, stream, reasoning);
    }
    if (!content.isEmpty()) {
        if (stream.in_reasoning) emit_text(id, stream, "\n</think>\n\n");
        stream.in_reasoning = false;
        emit_text(id, stream, content);
        ++stream.chunks;
    }
    if (!choice.value("finish_reason").isNull() && choice.contains("finish_reason"))
        stream.finish_reason = choice.value("finish_reason").toString();
}

void RemoteChat::on_finished(quint64 id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream stream = *it;
    streams_.erase(it);
    QNetworkReply* reply = stream.reply;
    if (!reply) return;
    reply->deleteLater();
    const QByteArray rest = reply->readAll();
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (stream.in_reasoning) emit_text(id, stream, "\n</think>\n\n");

    if (stream.stopped) {
        stream.finish_reason = "cancelled";
    } else if (status != 200 || (reply->error() != QNetworkReply::NoError && !stream.done)) {
        emit generationFailed(id, failure_message(stream.endpoint_label, reply, rest));
        return;
    } else if (!stream.error.isEmpty()) {
        emit generationFailed(id, stream.error);
        return;
    }
    if (!stream.started) emit generationStarted(id, stream.stats.prompt_tokens, {});
    GenerationStats& stats = stream.stats;
    if (stats.generated_tokens == 0) stats.generated_tokens = stream.chunks;  // no usage sent: one token a chunk, about
    if (stream.first_token_ms >= 0) stats.time_to_first_token_s = double(stream.first_token_ms) / 1000.0;
    if (stats.generated_tokens > 1 && stream.last_token_ms > stream.first_token_ms)
        stats.decode_tokens_per_s = double(stats.generated_tokens - 1) * 1000.0 / double(stream.last_token_ms - stream.first_token_ms);
    stats.finish_reason = stream.finish_reason.isEmpty() ? QStringLiteral("stop") : stream.finish_reason;
    emit generationFinished(id, stream.text, stats, {});
}

void RemoteChat::listModels(const RemoteEndpoint& endpoint) {
    QNetworkReply* reply = network_->get(request_for(endpoint, "/models"));
    connect(reply, &QNetworkReply::finished, this, [this, reply, label = endpoint.label()] {
        reply->deleteLater();
        const QByteArray body = reply->readAll();
        const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        if (status != 200) {
            emit modelsFailed(failure_message(label, reply, body));
            return;
        }
        QStringList models;
        for (const QJsonValue& m : QJsonDocument::fromJson(body).object().value("data").toArray()) models << m.toObject().value("id").toString();
        emit modelsListed(models);
    });
}

}  // namespace mwb::app
