#include "app/services/context_fit.h"

#include <QCoreApplication>
#include <QLocale>
#include <algorithm>

#include "engine/runtime/chat_prompt.h"
#include "engine/tokenizer/tokenizer.h"

namespace mwb::app {

namespace {

QString tr(const char* text) { return QCoreApplication::translate("ContextFit", text); }
QString number(qint64 n) { return QLocale().toString(n); }

}  // namespace

Result<std::vector<int32_t>> conversation_ids(const tok::Tokenizer& tokenizer, const QList<ChatMessage>& messages, const QString& continuation) {
    std::vector<tok::ChatMessage> chat;
    for (const ChatMessage& m : messages) chat.push_back({m.role.toStdString(), m.content.toStdString(), {}, {}, tok::TemplateJson::object()});
    auto ids = chat_prompt_ids(tokenizer, chat);
    if (!ids || continuation.isEmpty()) return ids;
    auto continued = tokenizer.encode(continuation.toStdString(), /*add_special_tokens=*/false);
    if (!continued) return continued.error();
    ids->insert(ids->end(), continued->begin(), continued->end());
    return ids;
}

qint64 reply_room(qint64 context, int max_new_tokens) { return std::clamp<qint64>(max_new_tokens, 1, std::max<qint64>(1, context / 2)); }

Result<FittedPrompt> fit_prompt(const tok::Tokenizer& tokenizer, const ChatRequest& request, qint64 context) {
    auto ids = conversation_ids(tokenizer, request.messages, request.continuation);
    if (!ids) return ids.error();
    const qint64 room = reply_room(context, request.sampling.max_new_tokens);
    const qint64 limit = context - room;
    const qint64 full = qint64(ids->size());
    // Refusing leaves the whole context to a conversation that has any room left for a reply.
    if (request.overflow == ContextOverflow::Refuse ? full < context : full <= limit) return FittedPrompt{std::move(ids.value()), {}};

    switch (request.overflow) {
    case ContextOverflow::Refuse:
        return make_error(tr("The conversation takes %1 tokens but the context holds %2, so no reply fits. Shorten the message, start a "
                             "new chat, load the model with a longer context on the Models page, or let Settings drop old turns or "
                             "truncate the middle.")
                              .arg(number(full), number(context))
                              .toStdString());
    case ContextOverflow::DropOldestTurns: {
        QList<ChatMessage> messages = request.messages;
        const int first = !messages.isEmpty() && messages.first().role == "system" ? 1 : 0;
        int dropped = 0;
        // Whole turns go, so that what remains still starts with a user message; the last message (what is being
        // answered) always stays.
        while (messages.size() - first > 1) {
            do {
                messages.removeAt(first);
                ++dropped;
            } while (messages.size() - first > 1 && messages[first].role != "user");
            auto shorter = conversation_ids(tokenizer, messages, request.continuation);
            if (!shorter) return shorter.error();
            const qint64 kept = qint64(shorter->size());
            if (kept <= limit)
                return FittedPrompt{std::move(shorter.value()),
                                    tr("Left out the %1 oldest messages (%2 → %3 tokens) to keep %4 tokens of the context of %5 for the reply.")
                                        .arg(dropped)
                                        .arg(number(full), number(kept), number(room), number(context))};
        }
        return make_error(tr("Even the last message alone takes more than %1 of the context's %2 tokens (the other %3 are kept for the "
                             "reply). Shorten it, lower Max tokens, or choose \"truncate the middle\" in Settings.")
                              .arg(number(limit), number(context), number(room))
                              .toStdString());
    }
    case ContextOverflow::TruncateMiddle: {
        // Keep the start (system prompt, template header) and the end (the latest message and the generation prompt).
        if (limit < 2) return make_error(tr("The context is too small to hold any conversation.").toStdString());
        const qint64 head = limit / 2;
        const qint64 tail = limit - head;
        std::vector<int32_t> kept(ids->begin(), ids->begin() + head);
        kept.insert(kept.end(), ids->end() - tail, ids->end());
        return FittedPrompt{std::move(kept), tr("Left out %1 tokens from the middle of the conversation (%2 → %3 tokens) to keep %4 tokens "
                                                "of the context of %5 for the reply.")
                                                 .arg(number(full - limit), number(full), number(limit), number(room), number(context))};
    }
    }
    return make_error("unknown context overflow policy");
}

}  // namespace mwb::app
