#include "app/documents/chunker.h"

#include <QTextBoundaryFinder>
#include <algorithm>
#include <utility>
#include <vector>

namespace mwb::app {

namespace {

// [start, end) of every word-like segment: one that holds a letter or a digit (not spaces or punctuation).
std::vector<std::pair<int, int>> word_spans(const QString& text) {
    std::vector<std::pair<int, int>> spans;
    QTextBoundaryFinder finder(QTextBoundaryFinder::Word, text);
    int start = 0;
    for (int end = finder.toNextBoundary(); end != -1; end = finder.toNextBoundary()) {
        const bool word_like = std::any_of(text.begin() + start, text.begin() + end, [](QChar c) { return c.isLetterOrNumber(); });
        if (word_like) spans.emplace_back(start, end);
        start = end;
    }
    return spans;
}

}  // namespace

QList<TextChunk> chunk_page(int page, const QString& text, const ChunkOptions& options) {
    const auto words = word_spans(text);
    const int size = std::max(1, options.tokens);
    const int step = std::max(1, size - std::clamp(options.overlap, 0, size - 1));
    QList<TextChunk> chunks;
    for (size_t first = 0; first < words.size(); first += size_t(step)) {
        const size_t last = std::min(words.size(), first + size_t(size)) - 1;
        TextChunk chunk;
        chunk.page = page;
        chunk.char_start = words[first].first;
        chunk.char_end = words[last].second;
        // The punctuation that closes the last word (a full stop, a bracket) belongs to the chunk.
        while (chunk.char_end < text.size() && !text[chunk.char_end].isSpace() && !text[chunk.char_end].isLetterOrNumber()) ++chunk.char_end;
        chunk.text = text.mid(chunk.char_start, chunk.char_end - chunk.char_start);
        chunks << chunk;
        if (last + 1 == words.size()) break;
    }
    return chunks;
}

}  // namespace mwb::app
