#include "app/services/history_schema.h"

#include <iterator>

#include "app/services/run_database.h"

namespace mwb::app {

const char* const kHistoryMigrations[] = {
    // 0 → 1: runs and their messages.
    R"sql(
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'open');
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at INTEGER NOT NULL);
    )sql",
    // 1 → 2: generation statistics per message and the routing summary of each reply.
    R"sql(
    ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER;
    ALTER TABLE messages ADD COLUMN generated_tokens INTEGER;
    ALTER TABLE messages ADD COLUMN ttft_s REAL;
    ALTER TABLE messages ADD COLUMN prefill_tokens_per_s REAL;
    ALTER TABLE messages ADD COLUMN decode_tokens_per_s REAL;
    ALTER TABLE messages ADD COLUMN finish_reason TEXT;
    CREATE TABLE routing_summaries (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        experts INTEGER NOT NULL,
        layers BLOB NOT NULL,
        counts BLOB NOT NULL);
    )sql",
    // 2 → 3: sort runs by last activity; indices for the Runs page and for opening a chat.
    R"sql(
    ALTER TABLE runs ADD COLUMN updated_at INTEGER;
    UPDATE runs SET updated_at = COALESCE(finished_at, created_at);
    CREATE INDEX messages_by_run ON messages(run_id, position);
    CREATE INDEX runs_by_updated ON runs(updated_at);
    )sql",
    // 3 → 4: messages form a tree (edits and regenerations keep the earlier branch), the run remembers the
    // branch shown, and a reply is stored while it streams (complete = 0 until it ends).
    R"sql(
    ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE;
    ALTER TABLE messages ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runs ADD COLUMN head_message_id INTEGER;
    UPDATE messages SET parent_id = (SELECT p.id FROM messages p WHERE p.run_id = messages.run_id AND p.position < messages.position
                                     ORDER BY p.position DESC, p.id DESC LIMIT 1);
    UPDATE runs SET head_message_id = (SELECT m.id FROM messages m WHERE m.run_id = runs.id ORDER BY m.position DESC, m.id DESC LIMIT 1);
    WITH RECURSIVE depth(id, d) AS (SELECT id, 0 FROM messages WHERE parent_id IS NULL
                                    UNION ALL SELECT m.id, depth.d + 1 FROM messages m JOIN depth ON m.parent_id = depth.id)
    UPDATE messages SET position = (SELECT d FROM depth WHERE depth.id = messages.id);
    CREATE INDEX messages_by_parent ON messages(parent_id);
    )sql",
    // 4 → 5: the curve of a training run, one row per optimizer step.
    R"sql(
    CREATE TABLE training_steps (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        loss REAL NOT NULL,
        learning_rate REAL NOT NULL,
        grad_norm REAL NOT NULL,
        tokens INTEGER NOT NULL,
        seconds REAL NOT NULL,
        validation_loss REAL,
        PRIMARY KEY (run_id, step));
    )sql",
    // 5 → 6: documents for question answering: the files, the text of their pages (with word boxes for OCR'd
    // pages), chunks with a full-text index (FTS5 over the chunks table, kept in step by triggers), chunk vectors
    // per embedding model, and the sources an answer cited (copied, so the answer keeps them when a document goes).
    R"sql(
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        collection TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        page_count INTEGER NOT NULL DEFAULT 0,
        ocr_pages INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        added_at INTEGER NOT NULL);
    CREATE TABLE document_pages (
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        source TEXT NOT NULL,
        text TEXT NOT NULL,
        word_boxes BLOB,
        PRIMARY KEY (document_id, number));
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        page INTEGER NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        text TEXT NOT NULL);
    CREATE INDEX chunks_by_document ON chunks(document_id, page);
    CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE chunk_vectors (
        chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model, chunk_id));
    CREATE INDEX chunk_vectors_by_chunk ON chunk_vectors(chunk_id);
    CREATE TABLE message_sources (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        path TEXT NOT NULL,
        document TEXT NOT NULL,
        page INTEGER NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (message_id, number));
    )sql",
    // 6 → 7: images attached to messages, by the SHA-256 of their bytes (the files live in the image store).
    R"sql(
    CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (message_id, position));
    CREATE INDEX message_images_by_hash ON message_images(sha256);
    )sql",
};
static_assert(std::size(kHistoryMigrations) == RunDatabase::kSchemaVersion);

}  // namespace mwb::app
