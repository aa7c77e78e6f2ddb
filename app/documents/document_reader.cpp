#include "app/documents/document_reader.h"

#include <QFile>
#include <QFileInfo>
#include <QImageReader>
#include <QPainter>
#include <QPdfDocument>
#include <QPdfSelection>
#include <QStringDecoder>
#include <cmath>

#include "app/documents/ocr_engine.h"

namespace mwb::app {

namespace {

const QStringList kTextSuffixes = {"txt", "text", "md", "markdown", "rst"};
const QStringList kImageSuffixes = {"png", "jpg", "jpeg", "tif", "tiff", "webp", "bmp"};

Error file_error(const QString& path, const QString& what) {
    return make_error((QFileInfo(path).fileName() + ": " + what).toStdString());
}

int non_space_characters(const QString& text) {
    int count = 0;
    for (QChar c : text) count += !c.isSpace();
    return count;
}

class PdfReader final : public DocumentReader {
public:
    PdfReader(QString path, ReaderLimits limits) : path_(std::move(path)), limits_(limits) {}

    Status load() {
        switch (document_.load(path_)) {
        case QPdfDocument::Error::None: break;
        case QPdfDocument::Error::IncorrectPassword:
        case QPdfDocument::Error::UnsupportedSecurityScheme:
            return file_error(path_, "the PDF is encrypted (protected by a password); save an unprotected copy and add that");
        case QPdfDocument::Error::FileNotFound: return file_error(path_, "the file cannot be opened");
        default: return file_error(path_, "the PDF is damaged or truncated and cannot be read");
        }
        if (document_.pageCount() <= 0) return file_error(path_, "the PDF has no pages");
        if (document_.pageCount() > limits_.max_pages)
            return file_error(path_, QStringLiteral("the PDF has %1 pages, more than the limit of %2").arg(document_.pageCount()).arg(limits_.max_pages));
        return Status::success();
    }

    QString kind() const override { return QStringLiteral("pdf"); }
    int page_count() const override { return document_.pageCount(); }

    Result<PageText> read_page(int number, OcrEngine* ocr) override {
        PageText page;
        page.number = number;
        page.text = document_.getAllText(number - 1).text();
        if (non_space_characters(page.text) >= limits_.min_text_characters) return page;
        // A scanned page: its text is in the picture.
        if (!ocr) {
            page.source = PageSource::Ocr;
            page.text.clear();
            return page;
        }
        auto image = render_page(number, limits_.ocr_dpi);
        if (!image) return image.error();
        const int dpi = int(std::lround(limits_.ocr_dpi * double(image->width()) / rendered_width(number, limits_.ocr_dpi)));
        auto read = ocr->read(*image, dpi, number);
        if (!read) return file_error(path_, QStringLiteral("page %1: ").arg(number) + QString::fromStdString(read.error().message));
        return read;
    }

    Result<QImage> render_page(int number, int dpi) override {
        if (number < 1 || number > page_count()) return file_error(path_, QStringLiteral("there is no page %1").arg(number));
        QSizeF size = document_.pagePointSize(number - 1) * (dpi / 72.0);
        // Shrink a huge page (a poster, a map) to the pixel limit rather than fail.
        const double pixels = size.width() * size.height();
        if (pixels > double(limits_.max_image_pixels)) size *= std::sqrt(double(limits_.max_image_pixels) / pixels);
        const QImage drawn = document_.render(number - 1, size.toSize());
        if (drawn.isNull()) return file_error(path_, QStringLiteral("page %1 cannot be drawn").arg(number));
        // PDFium leaves the paper transparent; OCR and the viewer want it white.
        QImage page(drawn.size(), QImage::Format_RGB32);
        page.fill(Qt::white);
        QPainter painter(&page);
        painter.drawImage(0, 0, drawn);
        return page;
    }

private:
    double rendered_width(int number, int dpi) const { return document_.pagePointSize(number - 1).width() * dpi / 72.0; }

    QString path_;
    ReaderLimits limits_;
    QPdfDocument document_{nullptr};
};

// A text file: pages are separated by form feeds (as `pdftotext` and many exports write them), else one page.
class TextReader final : public DocumentReader {
public:
    static Result<std::unique_ptr<DocumentReader>> open(const QString& path, const ReaderLimits& limits) {
        QFile file(path);
        if (!file.open(QIODevice::ReadOnly)) return file_error(path, "the file cannot be opened: " + file.errorString());
        if (file.size() > limits.max_text_file_bytes)
            return file_error(path, QStringLiteral("the text file is larger than %1 MiB").arg(limits.max_text_file_bytes >> 20));
        const QByteArray bytes = file.readAll();
        QStringDecoder utf8(QStringDecoder::Utf8);
        QString text = utf8(bytes);
        // Not UTF-8: most likely Latin-1 / Windows-1252, which every byte decodes as.
        if (utf8.hasError()) text = QString::fromLatin1(bytes);
        if (text.contains(QChar(0))) return file_error(path, "the file is binary, not text");
        auto reader = std::make_unique<TextReader>();
        reader->pages_ = text.split(QChar('\f'));
        return std::unique_ptr<DocumentReader>(std::move(reader));
    }

    QString kind() const override { return QStringLiteral("text"); }
    int page_count() const override { return int(pages_.size()); }
    Result<PageText> read_page(int number, OcrEngine*) override {
        PageText page;
        page.number = number;
        page.text = pages_.value(number - 1);
        return page;
    }
    Result<QImage> render_page(int, int) override { return make_error("a text file has no page images"); }

private:
    QStringList pages_;
};

// An image file, every frame of it a page (multi-page TIFF).
class ImageReader final : public DocumentReader {
public:
    ImageReader(QString path, ReaderLimits limits) : path_(std::move(path)), limits_(limits) {}

    Status load() {
        QImageReader reader(path_);
        if (!reader.canRead()) return file_error(path_, "not an image that can be read (" + reader.errorString() + ")");
        pages_ = std::max(1, reader.imageCount());
        if (pages_ > limits_.max_pages) return file_error(path_, QStringLiteral("the image has %1 pages, more than %2").arg(pages_).arg(limits_.max_pages));
        return Status::success();
    }

    QString kind() const override { return QStringLiteral("image"); }
    int page_count() const override { return pages_; }

    Result<PageText> read_page(int number, OcrEngine* ocr) override {
        if (!ocr) {
            PageText page;
            page.number = number;
            page.source = PageSource::Ocr;
            return page;
        }
        auto image = render_page(number, 0);
        if (!image) return image.error();
        // Scans carry their resolution; a screenshot or photo says nothing, and 300 is Tesseract's best guess.
        const int dpi = image->dotsPerMeterX() > 0 ? int(std::lround(image->dotsPerMeterX() * 0.0254)) : limits_.ocr_dpi;
        auto read = ocr->read(*image, dpi >= 70 ? dpi : limits_.ocr_dpi, number);
        if (!read) return file_error(path_, QString::fromStdString(read.error().message));
        return read;
    }

    Result<QImage> render_page(int number, int) override {
        QImageReader reader(path_);
        if (number > 1 && !reader.jumpToImage(number - 1)) return file_error(path_, QStringLiteral("there is no page %1").arg(number));
        const QSize size = reader.size();
        if (size.isValid() && qint64(size.width()) * size.height() > limits_.max_image_pixels)
            return file_error(path_, QStringLiteral("the image is %1×%2 pixels, more than the limit of %3 megapixels")
                                         .arg(size.width()).arg(size.height()).arg(limits_.max_image_pixels / 1'000'000));
        reader.setAllocationLimit(int(limits_.max_image_pixels * 4 >> 20) + 1);
        QImage image = reader.read();
        if (image.isNull()) return file_error(path_, "the image is damaged or truncated (" + reader.errorString() + ")");
        return image;
    }

private:
    QString path_;
    ReaderLimits limits_;
    int pages_ = 1;
};

bool starts_like_pdf(const QString& path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) return false;
    // The header may follow a few bytes of junk; readers accept it within the first kilobyte.
    return file.read(1024).contains("%PDF-");
}

}  // namespace

QStringList document_suffixes() { return QStringList{"pdf"} + kTextSuffixes + kImageSuffixes; }

bool is_document_file(const QString& path) { return document_suffixes().contains(QFileInfo(path).suffix().toLower()); }

Result<std::unique_ptr<DocumentReader>> DocumentReader::open(const QString& path, const ReaderLimits& limits) {
    const QFileInfo info(path);
    if (!info.exists()) return file_error(path, "the file does not exist");
    if (!info.isFile()) return file_error(path, "not a regular file");
    if (!info.isReadable()) return file_error(path, "the file cannot be read (permissions)");
    if (info.size() == 0) return file_error(path, "the file is empty (0 bytes)");
    if (info.size() > limits.max_file_bytes)
        return file_error(path, QStringLiteral("the file is larger than %1 GiB").arg(limits.max_file_bytes >> 30));
    const QString suffix = info.suffix().toLower();
    if (starts_like_pdf(path)) {
        auto reader = std::make_unique<PdfReader>(path, limits);
        MWB_TRY(reader->load());
        return std::unique_ptr<DocumentReader>(std::move(reader));
    }
    if (suffix == QLatin1String("pdf")) return file_error(path, "the file is named .pdf but is not a PDF (no %PDF- header)");
    if (kTextSuffixes.contains(suffix)) return TextReader::open(path, limits);
    if (kImageSuffixes.contains(suffix)) {
        auto reader = std::make_unique<ImageReader>(path, limits);
        MWB_TRY(reader->load());
        return std::unique_ptr<DocumentReader>(std::move(reader));
    }
    return file_error(path, "not a supported document (supported: " + document_suffixes().join(", ") + ")");
}

}  // namespace mwb::app
