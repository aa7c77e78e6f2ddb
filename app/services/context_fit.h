// Fitting a conversation into the context before it is sent: the prompt ids of a chat request, with room
// left for a reply, trimmed by the user's overflow policy or refused with the numbers.
#pragma once

#include <QString>
#include <cstdint>
#include <vector>

#include "app/services/chat_types.h"
#include "engine/core/result.h"

namespace mwb::tok {
class Tokenizer;
}

namespace mwb::app {

struct FittedPrompt {
    std::vector<int32_t> ids;
    QString note;  // what was left out to fit, for the user; empty when the conversation fits as it is
};

// The prompt ids of a conversation (chat template with the generation prompt), followed by the
// continuation's tokens when one is given.
Result<std::vector<int32_t>> conversation_ids(const tok::Tokenizer& tokenizer, const QList<ChatMessage>& messages,
                                              const QString& continuation = {});

// Room a reply needs: its token budget, but never more than half of the context, and at least one token.
qint64 reply_room(qint64 context, int max_new_tokens);

// The prompt of `request` (with its continuation) in at most `context - reply_room(...)` tokens.
Result<FittedPrompt> fit_prompt(const tok::Tokenizer& tokenizer, const ChatRequest& request, qint64 context);

}  // namespace mwb::app
