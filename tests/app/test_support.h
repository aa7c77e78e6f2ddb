// Shared by the app tests: a smaller demo model (same architecture and the real DeepSeek-V3 tokenizer) so
// that creating and running it stays quick, and a signal recorder for signals emitted on other threads.
#pragma once

#include <QJsonObject>
#include <QList>
#include <QObject>
#include <QVariant>

#include "app/services/demo_model.h"

namespace mwb::app::testing {

inline DemoModelRecipe small_demo_recipe() {
    DemoModelRecipe recipe = standard_demo_recipe();
    recipe.config["hidden_size"] = 64;
    recipe.config["intermediate_size"] = 128;
    recipe.config["moe_intermediate_size"] = 32;
    recipe.config["num_hidden_layers"] = 2;
    recipe.config["max_position_embeddings"] = 2048;
    return recipe;
}

// Records every emission of a signal as the test's thread receives it (queued), the way the UI does.
// QSignalSpy records on the emitting thread, which races with the test reading it when that is a worker thread.
class QueuedSpy : public QObject {
public:
    template <class Sender, class... Args>
    QueuedSpy(const Sender* sender, void (Sender::*signal)(Args...)) {
        connect(sender, signal, this, [this](Args... args) { records_.append(QVariantList{QVariant::fromValue(args)...}); },
                Qt::QueuedConnection);
    }

    qsizetype size() const { return records_.size(); }
    bool isEmpty() const { return records_.isEmpty(); }
    const QVariantList& first() const { return records_.first(); }
    const QVariantList& at(qsizetype i) const { return records_.at(i); }
    auto begin() const { return records_.begin(); }
    auto end() const { return records_.end(); }

private:
    QList<QVariantList> records_;
};

}  // namespace mwb::app::testing
