// Reads the pages of one document file: PDF (the text layer through Qt PDF, OCR for pages without one),
// plain text and Markdown, and images (PNG, JPEG, TIFF with all its pages, WebP) through OCR. Pages are read
// one at a time, so memory stays bounded on long documents. Every failure is an error naming the file.
#pragma once

#include <QImage>
#include <QString>
#include <QStringList>
#include <memory>

#include "app/documents/document_types.h"
#include "engine/core/result.h"

namespace mwb::app {

class OcrEngine;

struct ReaderLimits {
    qint64 max_file_bytes = qint64(1) << 31;       // 2 GiB
    qint64 max_text_file_bytes = qint64(64) << 20;  // a text file is held whole while it is chunked
    int max_pages = 20000;
    qint64 max_image_pixels = 200'000'000;          // also caps a page rendered for OCR
    int ocr_dpi = 300;                              // Tesseract reads best at 300 DPI
    int min_text_characters = 16;                   // a PDF page with less text is read by OCR
};

// File suffixes the reader takes (lower case, without the dot), for folder scans and file dialogs.
QStringList document_suffixes();
bool is_document_file(const QString& path);

class DocumentReader {
public:
    // Opens `path` by its content (a PDF is recognised by its header, whatever its name) or its suffix.
    static Result<std::unique_ptr<DocumentReader>> open(const QString& path, const ReaderLimits& limits = {});
    virtual ~DocumentReader() = default;

    virtual QString kind() const = 0;  // "pdf", "text" or "image"
    virtual int page_count() const = 0;
    // The text of page `number` (from 1). Pages that need OCR are read with `ocr`; without one they come back
    // empty, marked as OCR pages.
    virtual Result<PageText> read_page(int number, OcrEngine* ocr) = 0;
    // Page `number` drawn as an image, `dpi` for PDF pages (images come back as they are).
    virtual Result<QImage> render_page(int number, int dpi) = 0;
};

}  // namespace mwb::app
