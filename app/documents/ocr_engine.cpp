#include "app/documents/ocr_engine.h"

#include <tesseract/baseapi.h>
#include <tesseract/resultiterator.h>

#include <dlfcn.h>

#include <string>
#include <vector>

namespace mwb::app {

namespace {

// Tesseract's OpenMP loops (libgomp, linked by libtesseract) ask for more threads than a desktop has spare
// and run slower than one thread: 5× slower measured on 2 cores, as Tesseract's documentation warns (it
// suggests OMP_THREAD_LIMIT=1, which OpenMP reads only at start-up). Allowing no active parallel level on
// the recognising thread runs those loops on it alone. Found at run time: the app is not built with OpenMP.
void use_one_openmp_thread() {
    using SetLevels = void (*)(int);
    static const auto set_levels = reinterpret_cast<SetLevels>(dlsym(RTLD_DEFAULT, "omp_set_max_active_levels"));
    if (set_levels) set_levels(0);
}

const char* const kMissingData = "Tesseract's language data is missing: install tesseract-ocr-eng (and tesseract-ocr-LANG for other languages)";

}  // namespace

OcrEngine::OcrEngine(std::unique_ptr<tesseract::TessBaseAPI> api, QString languages)
    : api_(std::move(api)), languages_(std::move(languages)) {}

OcrEngine::~OcrEngine() {
    if (api_) api_->End();
}

QStringList OcrEngine::installed_languages() {
    tesseract::TessBaseAPI api;
    if (api.Init(nullptr, "eng") != 0) return {};
    std::vector<std::string> names;
    api.GetAvailableLanguagesAsVector(&names);
    api.End();
    QStringList languages;
    for (const std::string& name : names)
        if (name != "osd") languages << QString::fromStdString(name);
    languages.sort();
    return languages;
}

Result<std::unique_ptr<OcrEngine>> OcrEngine::open(const QString& languages) {
    auto api = std::make_unique<tesseract::TessBaseAPI>();
    // Debug output would go to stderr for every page.
    api->SetVariable("debug_file", "/dev/null");
    if (api->Init(nullptr, languages.toUtf8().constData(), tesseract::OEM_LSTM_ONLY) != 0) {
        if (languages == QLatin1String("eng")) return make_error(kMissingData);
        return make_error("Tesseract cannot load the languages '" + languages.toStdString() + "'; installed: " +
                          installed_languages().join(", ").toStdString());
    }
    api->SetPageSegMode(tesseract::PSM_AUTO);
    return std::unique_ptr<OcrEngine>(new OcrEngine(std::move(api), languages));
}

Result<PageText> OcrEngine::read(const QImage& image, int dpi, int page_number) {
    if (image.isNull() || image.width() < 3 || image.height() < 3) return make_error("the page image is empty");
    use_one_openmp_thread();
    const QImage gray = image.convertToFormat(QImage::Format_Grayscale8);
    api_->SetImage(gray.constBits(), gray.width(), gray.height(), 1, int(gray.bytesPerLine()));
    api_->SetSourceResolution(dpi);
    if (api_->Recognize(nullptr) != 0) return make_error("Tesseract could not recognise the page");

    PageText page;
    page.number = page_number;
    page.source = PageSource::Ocr;
    std::unique_ptr<tesseract::ResultIterator> it(api_->GetIterator());
    if (!it) return page;  // nothing recognised
    const double width = gray.width(), height = gray.height();
    do {
        std::unique_ptr<char[]> word(it->GetUTF8Text(tesseract::RIL_WORD));
        if (!word) continue;
        const QString text = QString::fromUtf8(word.get()).trimmed();
        if (text.isEmpty()) continue;
        // Layout between words: a blank line between paragraphs, a line break between lines, else a space.
        if (!page.text.isEmpty()) {
            if (it->IsAtBeginningOf(tesseract::RIL_PARA)) page.text += QLatin1String("\n\n");
            else if (it->IsAtBeginningOf(tesseract::RIL_TEXTLINE)) page.text += QLatin1Char('\n');
            else page.text += QLatin1Char(' ');
        }
        int left = 0, top = 0, right = 0, bottom = 0;
        it->BoundingBox(tesseract::RIL_WORD, &left, &top, &right, &bottom);
        WordBox box;
        box.char_start = int(page.text.size());
        page.text += text;
        box.char_end = int(page.text.size());
        box.box = QRectF(left / width, top / height, (right - left) / width, (bottom - top) / height);
        page.words << box;
    } while (it->Next(tesseract::RIL_WORD));
    api_->Clear();
    return page;
}

}  // namespace mwb::app
