// `mwb logits` and `mwb generate` with `--image` on the dsvl-tiny fixture, as a user runs them: the file they
// write holds the processor's pixel values, the image features and the logits of the reference, the greedy
// tokens are the reference's, and bad image files are refused with their name.
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstdint>

#include "engine/io/safetensors.h"
#include "tests/support/cli_process.h"

using namespace mwb;
using testing::run_mwb;

namespace {

const QString kModel = QStringLiteral(MWB_TEST_DATA "/models/dsvl-tiny");
const QString kImage = kModel + "/test_image.png";

QString joined(const std::vector<int64_t>& ids) {
    QStringList parts;
    for (int64_t id : ids) parts << QString::number(id);
    return parts.join(',');
}

float max_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

void write_bytes(const QString& path, const QByteArray& bytes) {
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    QCOMPARE(file.write(bytes), bytes.size());
}

// A PNG chunk: length, type, data and the CRC-32 of type and data, as PNG defines them.
QByteArray png_chunk(const QByteArray& type, const QByteArray& data) {
    const QByteArray body = type + data;
    quint32 crc = 0xffffffffu;
    for (char byte : body) {
        crc ^= quint8(byte);
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    crc ^= 0xffffffffu;
    auto be32 = [](quint32 v) { return QByteArray(1, char(v >> 24)) + char(v >> 16) + char(v >> 8) + char(v); };
    return be32(quint32(data.size())) + body + be32(crc);
}

// A well-formed PNG whose header says `width` × `height` and that holds no pixels.
QByteArray png_header(quint32 width, quint32 height) {
    auto be32 = [](quint32 v) { return QByteArray(1, char(v >> 24)) + char(v >> 16) + char(v >> 8) + char(v); };
    return QByteArray("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", be32(width) + be32(height) + QByteArray("\x08\x02\x00\x00\x00", 5)) +
           png_chunk("IDAT", {}) + png_chunk("IEND", {});
}

}  // namespace

class VisionCliTest : public QObject {
    Q_OBJECT

private slots:
    void logits_file_matches_the_reference() {
        auto reference = TensorStore::open_file((kModel + "/reference.safetensors").toStdString());
        QVERIFY(reference.ok());
        const auto ids = *reference->read_int64("input_ids");
        QTemporaryDir dir;
        const QString out = dir.filePath("vl.safetensors");
        const auto run = run_mwb({"logits", kModel, "--ids", joined(ids), "--image", kImage, "--out", out});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));
        auto written = TensorStore::open_file(out.toStdString());
        QVERIFY(written.ok());
        for (const char* name : {"pixel_values", "image_features", "logits"}) {
            const float tolerance = std::string(name) == "pixel_values" ? 1.0f / 255 / 0.26f : 1e-3f;
            const float error = max_difference(*written->read_float(name, {}), *reference->read_float(name, {}));
            QVERIFY2(error <= tolerance, qPrintable(QString("%1: max error %2").arg(name).arg(error)));
        }
    }

    void generation_with_the_image_is_the_reference_greedy() {
        auto reference = TensorStore::open_file((kModel + "/reference.safetensors").toStdString());
        QVERIFY(reference.ok());
        const auto ids = *reference->read_int64("input_ids");
        const auto greedy = *reference->read_int64("greedy");
        const auto run = run_mwb({"generate", kModel, "--ids", joined(ids), "--image", kImage, "--max-new", QString::number(greedy.size())});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));
        QCOMPARE(run.out.trimmed(), joined(greedy));

        // One placeholder stands for the image's 16 tokens, as the processor expands it.
        std::vector<int64_t> placeholder;
        for (size_t i = 0; i < ids.size(); ++i)
            if (ids[i] != 511 || (i > 0 && ids[i - 1] != 511)) placeholder.push_back(ids[i]);
        QCOMPARE(placeholder.size(), ids.size() - 15);
        const auto short_form = run_mwb({"generate", kModel, "--ids", joined(placeholder), "--image", kImage, "--max-new", QString::number(greedy.size())});
        QCOMPARE(short_form.out.trimmed(), joined(greedy));
    }

    void bad_images_are_refused_by_name() {
        QTemporaryDir dir;
        QFile original(kImage);
        QVERIFY(original.open(QIODevice::ReadOnly));
        const QByteArray png = original.readAll();
        write_bytes(dir.filePath("truncated.png"), png.left(png.size() / 2));
        write_bytes(dir.filePath("empty.png"), {});
        write_bytes(dir.filePath("notes.png"), "these are notes, not a picture");
        write_bytes(dir.filePath("huge.png"), png_header(60000, 60000));
        const struct {
            const char* file;
            const char* says;
        } cases[] = {{"truncated.png", "damaged or truncated"}, {"empty.png", "empty"}, {"notes.png", "not an image"},
                     {"huge.png", "megapixels"}, {"missing.png", "does not exist"}};
        for (const auto& c : cases) {
            const auto run = run_mwb({"generate", kModel, "--ids", "23,511,48", "--image", dir.filePath(c.file), "--max-new", "1"});
            QCOMPARE(run.exit_code, 1);
            QVERIFY2(run.err.contains(c.file) && run.err.contains(c.says), qPrintable(run.err));
        }
        // A prompt without the image's token, and a model that cannot see.
        QVERIFY(run_mwb({"generate", kModel, "--ids", "23,48", "--image", kImage}).err.contains("no image token (511)"));
        const auto text_model = run_mwb({"generate", QStringLiteral(MWB_TEST_DATA "/models/llama-tiny"), "--ids", "1,2", "--image", kImage});
        QCOMPARE(text_model.exit_code, 1);
        QVERIFY2(text_model.err.contains("(llama) cannot see images"), qPrintable(text_model.err));
    }
};

QTEST_MAIN(VisionCliTest)
#include "test_vision_cli.moc"
