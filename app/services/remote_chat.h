// Chat through a remote OpenAI-compatible endpoint (a vLLM or SGLang deployment, another workbench's
// server): replies stream over QNetworkAccessManager as Server-Sent Events and come back through the same
// signals the engine worker sends, so the Chat page treats both alike. Remote replies carry no routing data.
#pragma once

#include <QElapsedTimer>
#include <QHash>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>

#include "app/services/chat_types.h"

class QNetworkAccessManager;
class QNetworkReply;
class QNetworkRequest;

namespace mwb::app {

struct RemoteEndpoint {
    QString base_url;  // e.g. http://gpu-box:8000 (with or without /v1)
    QString api_key;
    QString model;
    QString label() const;  // "model at host:port"
};

class RemoteChat : public QObject {
    Q_OBJECT
public:
    explicit RemoteChat(QObject* parent = nullptr);

    // Ids are far above the engine's, so one page can tell both apart. A stream that sends nothing for
    // `stall_timeout_ms` fails as stalled; Stop ends it at once.
    quint64 generate(const RemoteEndpoint& endpoint, const QList<ChatMessage>& messages, const SamplingSettings& sampling,
                     const QString& continuation = {});
    void stop(quint64 request_id);
    void listModels(const RemoteEndpoint& endpoint);
    void set_stall_timeout_ms(int milliseconds) { stall_timeout_ms_ = milliseconds; }

signals:
    void generationStarted(quint64 request_id, int prompt_tokens, QString context_note);
    void tokenText(quint64 request_id, QString text);
    void generationFinished(quint64 request_id, QString text, mwb::app::GenerationStats stats, mwb::app::RoutingSummary routing);
    void generationFailed(quint64 request_id, QString message);
    void modelsListed(QStringList models);
    void modelsFailed(QString message);

private:
    struct Stream {
        QPointer<QNetworkReply> reply;
        QString endpoint_label;
        QByteArray pending;     // bytes of an event not complete yet
        QString text;           // what was shown, reasoning wrapped in <think>…</think>
        bool started = false, in_reasoning = false, done = false, stopped = false;
        QString finish_reason, error;
        GenerationStats stats;
        QElapsedTimer clock;
        qint64 first_token_ms = -1, last_token_ms = -1;
        int chunks = 0;
    };
    QNetworkRequest request_for(const RemoteEndpoint& endpoint, const QString& path) const;
    void on_ready_read(quint64 id);
    void on_finished(quint64 id);
    void handle_event(quint64 id, Stream& stream, const QByteArray& data);
    void emit_text(quint64 id, Stream& stream, const QString& piece);

    QNetworkAccessManager* network_;
    QHash<quint64, Stream> streams_;
    quint64 next_id_ = quint64(1) << 48;
    int stall_timeout_ms_ = 120000;
};

}  // namespace mwb::app
