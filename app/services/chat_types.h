// Values the services hand to the UI and to storage: chat messages, sampling settings, per-reply statistics.
// Plain Qt value types so that they travel through queued signals.
#pragma once

#include <QList>
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QVector>

#include "engine/runtime/sampler.h"

namespace mwb::app {

struct ChatMessage {
    QString role;  // "system", "user" or "assistant"
    QString content;
    QStringList images{};  // image files attached to the message, shown to the model before its text
};

// The engine's sampling parameters plus the reply length, starting from DeepSeek's recommended
// temperature 0.6 and top-p 0.95.
struct SamplingSettings : SamplingParams {
    SamplingSettings() {
        temperature = 0.6;
        top_p = 0.95;
    }
    int max_new_tokens = 256;
};

// A passage an answer was given as source [number], copied from the document index so that the answer keeps
// its sources when the document is removed or changes.
struct CitedSource {
    int number = 0;          // from 1, as cited in the answer
    qint64 document_id = 0;  // 0 once the document has left the index
    QString path;
    QString document;        // the file's name
    int page = 0;            // from 1
    int char_start = 0;      // in the page's text
    int char_end = 0;
    QString text;
};

// Expert-load counts of one reply: for each MoE layer, how many tokens each routed expert received.
struct RoutingSummary {
    int experts = 0;
    QVector<int> layers;             // MoE layer indices, ascending
    QVector<QVector<int>> counts;    // counts[i][e]: tokens of layers[i] routed to expert e

    bool empty() const { return layers.isEmpty(); }
};

struct GenerationStats {
    int prompt_tokens = 0;
    int generated_tokens = 0;
    double time_to_first_token_s = 0;
    double prefill_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
    QString finish_reason;  // "stop", "length", "context_full", "cancelled"
};

// What to do with a conversation that no longer fits the context, chosen in Settings.
enum class ContextOverflow {
    Refuse,          // nothing is sent; the user is told by how much it is too long
    DropOldestTurns, // the oldest messages after the system prompt leave the prompt (not the history)
    TruncateMiddle,  // tokens from the middle of the prompt are left out, keeping its start and its end
};

struct ChatRequest {
    quint64 id = 0;
    QList<ChatMessage> messages;  // the system prompt, when any, first
    SamplingSettings sampling;
    ContextOverflow overflow = ContextOverflow::Refuse;
    // Continue an interrupted reply: its text so far, which the prompt ends with; the reply streams what follows.
    QString continuation;
};

// What a model folder is, once loaded by the engine worker.
struct LoadedModelInfo {
    QString path;
    QString name;
    QString architecture;
    qint64 context_length = 0;  // the KV cache reserved for one conversation
    qint64 max_context_length = 0;
    bool is_demo = false;
    bool sees_images = false;  // a vision-language model (DeepSeek-VL): messages may carry images
    bool has_generation_config = false;  // default_sampling came from the model's generation_config.json
    SamplingSettings default_sampling;
};

}  // namespace mwb::app

Q_DECLARE_METATYPE(mwb::app::ChatMessage)
Q_DECLARE_METATYPE(mwb::app::SamplingSettings)
Q_DECLARE_METATYPE(mwb::app::RoutingSummary)
Q_DECLARE_METATYPE(mwb::app::GenerationStats)
Q_DECLARE_METATYPE(mwb::app::ChatRequest)
Q_DECLARE_METATYPE(mwb::app::ContextOverflow)
Q_DECLARE_METATYPE(mwb::app::LoadedModelInfo)
