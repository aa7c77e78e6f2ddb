// Collects what a generation shows the Inspector — tokens, routing per token per MoE layer, attention of the
// layers being watched — from the engine thread, and hands the GUI consistent snapshots (no locks held there).
#pragma once

#include <QObject>
#include <QString>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "app/services/chat_types.h"
#include "engine/model/config.h"
#include "engine/observe/observer.h"
#include "engine/observe/routing_stats.h"
#include "engine/observe/routing_trace.h"

namespace mwb {
struct ModelGraph;
}

namespace mwb::app {

struct AttentionSnapshot {
    int64_t heads = 0;
    // Per query position: heads × (position + 1) probabilities.
    std::map<int64_t, std::vector<float>> rows;
};

// An image of the prompt: its file and the positions of its image tokens, in patch order (row by row).
struct InspectedImage {
    QString file;
    std::vector<int64_t> positions;
};

struct InspectorSnapshot {
    std::vector<int32_t> token_ids;
    std::vector<QString> token_texts;  // one label per position
    int64_t prompt_tokens = 0;
    std::vector<RoutingRecord> routing;  // with router logits
    std::optional<MoeConfig> moe;
    int64_t num_layers = 0;
    std::map<int64_t, std::vector<float>> score_bias;  // per MoE layer, empty without noaux_tc
    std::map<int64_t, AttentionSnapshot> attention;
    std::vector<InspectedImage> images;  // the prompt's images (a vision-language model)
    // A reply reopened from the history: its stored expert-load counts, shown until a new generation starts.
    std::optional<LoadMatrix> stored_load;
    QString stored_label;
    // What the data is: empty for the generation in progress, else e.g. the conversation message re-run for it.
    QString origin;
    uint64_t version = 0;     // grows with every change, so views redraw only when needed
    uint64_t generation = 0;  // grows when the data starts over (a new model, generation or stored reply)
};

// How much the token at `position` attends to each patch of `image` in `layer`: head `head`'s probabilities, or
// their mean over the heads when `head` is negative. Empty when that row of that layer was not captured.
std::vector<float> image_attention(const InspectorSnapshot& snapshot, int64_t layer, int64_t position, const InspectedImage& image,
                                   int head);

// The history keeps a reply's expert load as a RoutingSummary; the Inspector computes with LoadMatrix.
RoutingSummary routing_summary_of(const LoadMatrix& load);
LoadMatrix load_matrix_of(const RoutingSummary& summary);

class InspectorFeed final : public QObject, public ForwardObserver {
    Q_OBJECT
public:
    explicit InspectorFeed(QObject* parent = nullptr);

    // A new model: its MoE shape and router biases. Clears everything.
    void set_model(const ModelGraph& graph);
    // A new generation of one sequence, with its prompt; `origin` says what it is when not a live reply.
    void begin(const std::vector<int32_t>& prompt, const std::vector<QString>& prompt_texts, const QString& origin = {},
               std::vector<InspectedImage> images = {});
    void append_token(int32_t id, const QString& text);
    // Shows a stored reply's expert load (counts per MoE layer) in place of a live generation.
    void show_stored_load(LoadMatrix load, const QString& label);

    // Attention is captured only for the layers a view asks for (the capture costs time), and for the layers of
    // a message being inspected while its forward pass runs.
    void watch_attention(std::set<int64_t> layers);
    void capture_attention(std::set<int64_t> layers);

    InspectorSnapshot snapshot() const;
    // Brings `view` up to date, copying only what was added since it was last updated (the engine thread waits
    // on the same lock, so a refresh must not copy a long conversation's whole history).
    void update(InspectorSnapshot& view) const;
    uint64_t version() const { return version_.load(); }

    // ForwardObserver, called on the engine thread.
    void on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                    std::span<const float> weights, std::span<const float> router_logits) override;
    bool wants_attention(int64_t layer) const override;
    void on_attention(int64_t sequence, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                      const float* probabilities) override;

private:
    mutable std::mutex mutex_;
    InspectorSnapshot data_;
    std::set<int64_t> attention_layers_;
    std::set<int64_t> capture_layers_;
    std::atomic<uint64_t> version_{0};
    uint64_t generation_ = 0;
};

}  // namespace mwb::app
