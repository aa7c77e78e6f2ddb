// Optical character recognition of a page image through Tesseract (libtesseract): the page's text, laid out
// in lines and paragraphs, with a box for every word so that a cited passage can be highlighted on the page.
// One OcrEngine per thread: Tesseract's state is not shared between threads.
#pragma once

#include <QImage>
#include <QString>
#include <QStringList>
#include <memory>

#include "app/documents/document_types.h"
#include "engine/core/result.h"

namespace tesseract {
class TessBaseAPI;
}

namespace mwb::app {

class OcrEngine {
public:
    // The languages whose Tesseract data is installed (e.g. "eng", "deu"), without the script detector "osd".
    static QStringList installed_languages();

    // `languages` as Tesseract takes them: one code or several joined by '+' ("eng+deu").
    static Result<std::unique_ptr<OcrEngine>> open(const QString& languages = QStringLiteral("eng"));
    ~OcrEngine();
    OcrEngine(const OcrEngine&) = delete;
    OcrEngine& operator=(const OcrEngine&) = delete;

    QString languages() const { return languages_; }
    // The text of `image`, scanned or rendered at `dpi`, as page `page_number`.
    Result<PageText> read(const QImage& image, int dpi, int page_number);

private:
    OcrEngine(std::unique_ptr<tesseract::TessBaseAPI> api, QString languages);

    std::unique_ptr<tesseract::TessBaseAPI> api_;
    QString languages_;
};

}  // namespace mwb::app
