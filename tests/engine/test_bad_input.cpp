// Broken or lying model files must produce errors that name the file and the tensor or key — never a crash.
// This suite links the parsers built with AddressSanitizer and UBSan.
#include <QtTest>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.h"
#include "engine/model/config.h"
#include "engine/model/model_graph.h"

using namespace mwb;
namespace fs = std::filesystem;

namespace {

const std::string kModels = MWB_TEST_DATA "/models/";

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file with the given header text and `data_bytes` zero bytes of data.
std::string safetensors_bytes(const std::string& header, size_t data_bytes, uint64_t claimed_length = 0) {
    const uint64_t length = claimed_length ? claimed_length : header.size();
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((length >> (8 * i)) & 0xff);
    return bytes + header + std::string(data_bytes, '\0');
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Copies a fixture model into a scratch directory, optionally dropping one tensor and editing config.json.
fs::path copy_model(const std::string& name, const fs::path& target, const std::string& drop_tensor = {}) {
    fs::create_directories(target);
    fs::copy_file(kModels + name + "/config.json", target / "config.json", fs::copy_options::overwrite_existing);
    auto store = TensorStore::open_directory(kModels + name);
    if (!store) qFatal("%s", store.error().message.c_str());
    std::vector<TensorToWrite> tensors;
    for (const auto& [tensor_name, view] : store->tensors()) {
        if (tensor_name == drop_tensor) continue;
        tensors.push_back({tensor_name, view.dtype, view.shape, std::vector<uint8_t>(view.data, view.data + view.bytes)});
    }
    if (!write_safetensors((target / "model.safetensors").string(), tensors)) qFatal("cannot write scratch model");
    return target;
}

void expect_error_mentions(const Error& error, std::initializer_list<const char*> words) {
    for (const char* word : words)
        QVERIFY2(error.message.find(word) != std::string::npos,
                 qPrintable(QString("error '%1' does not mention '%2'").arg(QString::fromStdString(error.message), word)));
}

}  // namespace

class BadInputTest : public QObject {
    Q_OBJECT

    QTemporaryDir scratch_;
    fs::path dir() const { return fs::path(scratch_.path().toStdString()); }

private slots:
    void truncated_file() {
        write_bytes(dir() / "short.safetensors", "abc");
        auto file = SafetensorsFile::open((dir() / "short.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"short.safetensors", "truncated"});
    }

    void header_length_beyond_file() {
        write_bytes(dir() / "long.safetensors", safetensors_bytes("{}", 0, 4096));
        auto file = SafetensorsFile::open((dir() / "long.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"long.safetensors", "header length 4096"});
    }

    void header_not_json() {
        write_bytes(dir() / "garbage.safetensors", safetensors_bytes("{not json", 0));
        auto file = SafetensorsFile::open((dir() / "garbage.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"garbage.safetensors", "JSON"});
    }

    void offsets_out_of_range() {
        write_bytes(dir() / "range.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
        auto file = SafetensorsFile::open((dir() / "range.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"range.safetensors", "tensor w", "outside the data region"});
    }

    void shape_and_size_mismatch() {
        write_bytes(dir() / "size.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]}})", 8));
        auto file = SafetensorsFile::open((dir() / "size.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"size.safetensors", "tensor w", "needs 12 bytes", "give 8"});
    }

    void unknown_dtype() {
        write_bytes(dir() / "dtype.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8));
        auto file = SafetensorsFile::open((dir() / "dtype.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"dtype.safetensors", "tensor w", "C64"});
    }

    void overlapping_tensors() {
        write_bytes(dir() / "overlap.safetensors",
                    safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
        auto file = SafetensorsFile::open((dir() / "overlap.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"overlap.safetensors", "overlap"});
    }

    // The tensors must tile the data region exactly: one byte of header length too few shifts every tensor (here
    // the header ends in a padding space, so it still parses), trailing bytes, a gap, and an empty tensor placed
    // inside another are all errors.
    void data_region_must_be_tiled_exactly_data() {
        QTest::addColumn<QString>("header");
        QTest::addColumn<int>("data_bytes");
        QTest::addColumn<int>("length_change");
        QTest::addColumn<QString>("mentions");
        const QString one = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
        QTest::newRow("header length one short") << one + " " << 8 << -1 << "end at byte 8 of a data region of 9";
        QTest::newRow("trailing bytes") << one << 12 << 0 << "end at byte 8 of a data region of 12";
        QTest::newRow("gap") << QString(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})")
                             << 12 << 0 << "bytes 4 to 8";
        QTest::newRow("empty tensor hiding an overlap")
            << QString(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})")
            << 12 << 0 << "overlap";
    }
    void data_region_must_be_tiled_exactly() {
        QFETCH(QString, header);
        QFETCH(int, data_bytes);
        QFETCH(int, length_change);
        QFETCH(QString, mentions);
        const std::string text = header.toStdString();
        write_bytes(dir() / "tiling.safetensors", safetensors_bytes(text, size_t(data_bytes), uint64_t(int64_t(text.size()) + length_change)));
        auto file = SafetensorsFile::open((dir() / "tiling.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"tiling.safetensors", mentions.toStdString().c_str()});
    }

    void thousands_of_dimensions_give_a_short_message() {
        std::string shape = "[1";
        for (int i = 0; i < 10000; ++i) shape += ",1";
        write_bytes(dir() / "dims.safetensors",
                    safetensors_bytes(R"({"w":{"dtype":"F32","shape":)" + shape + R"(],"data_offsets":[0,8]}})", 8));
        auto file = SafetensorsFile::open((dir() / "dims.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"dims.safetensors", "10001 dimensions"});
        QVERIFY(file.error().message.size() < 400);
    }

    void duplicate_tensor_names() {
        write_bytes(dir() / "twice.safetensors", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                                                   R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                                                   8));
        auto file = SafetensorsFile::open((dir() / "twice.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"twice.safetensors", "tensor w more than once"});
    }

    void byte_order_mark_before_the_header() {
        write_bytes(dir() / "bom.safetensors", safetensors_bytes("\xEF\xBB\xBF{}", 0));
        auto file = SafetensorsFile::open((dir() / "bom.safetensors").string());
        QVERIFY(!file.ok());
        expect_error_mentions(file.error(), {"bom.safetensors", "does not start with '{'"});
    }

    // A FIFO, a device or a directory where a model file belongs: an error at once, never a hang or a read of /dev/zero.
    void special_files_are_refused() {
        const fs::path model = copy_model("dsv3-tiny", dir() / "special");
        fs::remove(model / "model.safetensors");
        QCOMPARE(::mkfifo((model / "model.safetensors").c_str(), 0600), 0);
        auto fifo_weights = load_model_graph(model.string());
        QVERIFY(!fifo_weights.ok());
        expect_error_mentions(fifo_weights.error(), {"model.safetensors", "not a regular file"});

        fs::remove(model / "config.json");
        QCOMPARE(::mkfifo((model / "config.json").c_str(), 0600), 0);
        auto fifo_config = load_model_config(model.string());
        QVERIFY(!fifo_config.ok());
        expect_error_mentions(fifo_config.error(), {"config.json", "not a regular file"});

        fs::remove(model / "config.json");
        fs::create_symlink("/dev/zero", model / "config.json");
        auto zero_config = load_model_config(model.string());
        QVERIFY(!zero_config.ok());
        expect_error_mentions(zero_config.error(), {"config.json", "not a regular file"});

        fs::remove(model / "config.json");
        fs::create_directory(model / "config.json");
        auto directory_config = load_model_config(model.string());
        QVERIFY(!directory_config.ok());
        expect_error_mentions(directory_config.error(), {"config.json", "directory"});
    }

    // Values a checkpoint cannot mean: each is refused with its key, instead of non-finite logits later.
    void config_values_out_of_range_data() {
        QTest::addColumn<QString>("key");
        QTest::addColumn<QString>("value");
        QTest::newRow("max_position_embeddings 0") << "max_position_embeddings" << "0";
        QTest::newRow("rms_norm_eps 0") << "rms_norm_eps" << "0";
        QTest::newRow("rms_norm_eps negative") << "rms_norm_eps" << "-1e-6";
        QTest::newRow("rope_theta 0") << "rope_theta" << "0";
        QTest::newRow("n_shared_experts negative") << "n_shared_experts" << "-1";
        QTest::newRow("routed_scaling_factor absurd") << "routed_scaling_factor" << "1e9";
        QTest::newRow("eos_token_id outside the vocabulary") << "eos_token_id" << "999999";
        QTest::newRow("bos_token_id negative") << "bos_token_id" << "-5";
        QTest::newRow("hidden_size beyond int64 (float)") << "hidden_size" << "1e30";
        QTest::newRow("vocab_size beyond int64 (unsigned)") << "vocab_size" << "18446744073709551615";
        QTest::newRow("model_type of the wrong type") << "model_type" << "42";
    }
    void config_values_out_of_range() {
        QFETCH(QString, key);
        QFETCH(QString, value);
        nlohmann::json config = nlohmann::json::parse(read_text(kModels + "dsv3-tiny/config.json"));
        config[key.toStdString()] = nlohmann::json::parse(value.toStdString());
        auto parsed = parse_model_config(config.dump());
        QVERIFY(!parsed.ok());
        expect_error_mentions(parsed.error(), {"config.json", key.toStdString().c_str()});
        QVERIFY2(parsed.error().message.find("missing") == std::string::npos, parsed.error().message.c_str());
    }

    void original_max_position_embeddings_must_be_positive() {
        nlohmann::json config = nlohmann::json::parse(read_text(kModels + "dsv3-tiny/config.json"));
        config["rope_scaling"]["original_max_position_embeddings"] = 0;
        auto parsed = parse_model_config(config.dump());
        QVERIFY(!parsed.ok());
        expect_error_mentions(parsed.error(), {"original_max_position_embeddings"});
    }

    void write_then_read_round_trips() {
        const std::vector<float> values = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, 7.0f};
        const std::vector<int64_t> ids = {5, -1, 1ll << 40};
        QVERIFY(write_safetensors((dir() / "round.safetensors").string(),
                                  {tensor_f32("x", {2, 3}, values), tensor_i64("ids", {3}, ids)}, {{"format", "pt"}}).ok());
        auto store = TensorStore::open_file((dir() / "round.safetensors").string());
        QVERIFY(store.ok());
        QCOMPARE(*store->read_float("x", {2, 3}), values);
        QCOMPARE(*store->read_int64("ids"), ids);
        // The header is padded to 8 bytes, so the data region starts aligned.
        const std::string bytes = read_text(dir() / "round.safetensors");
        uint64_t header = 0;
        std::memcpy(&header, bytes.data(), 8);
        QCOMPARE(header % 8, uint64_t(0));
    }

    void dtype_conversions_match_hand_values() {
        QCOMPARE(bf16_to_float(0x3f80), 1.0f);
        QCOMPARE(bf16_to_float(0xc040), -3.0f);
        QCOMPARE(f16_to_float(0x3c00), 1.0f);
        QCOMPARE(f16_to_float(0xc000), -2.0f);
        QCOMPARE(f16_to_float(0x0001), 5.9604644775390625e-08f);  // smallest subnormal, 2^-24
        QCOMPARE(f8_e4m3_to_float(0x38), 1.0f);                   // exponent 7 = bias
        QCOMPARE(f8_e4m3_to_float(0x7e), 448.0f);                 // largest finite e4m3fn
        QCOMPARE(f8_e4m3_to_float(0x01), 0.001953125f);           // smallest subnormal, 2^-9
        QVERIFY(std::isnan(f8_e4m3_to_float(0x7f)));
        QCOMPARE(float_to_bf16(1.0f), uint16_t(0x3f80));
        QCOMPARE(float_to_bf16(1.00390625f), uint16_t(0x3f80));    // halfway rounds to even
        QCOMPARE(float_to_f16(1.0f), uint16_t(0x3c00));
        QCOMPARE(float_to_f16(-2.0f), uint16_t(0xc000));
        QCOMPARE(float_to_f16(65504.0f), uint16_t(0x7bff));           // largest finite
        QCOMPARE(float_to_f16(65520.0f), uint16_t(0x7c00));           // rounds to infinity
        QCOMPARE(float_to_f16(1.0f + 1.0f / 2048), uint16_t(0x3c00)); // halfway between 1 and 1 + 2^-10: even
        QCOMPARE(float_to_f16(1.0f + 3.0f / 2048), uint16_t(0x3c02)); // halfway up to the even neighbour
        QCOMPARE(float_to_f16(5.9604644775390625e-08f), uint16_t(0x0001));  // smallest subnormal
        QCOMPARE(float_to_f16(6.103515625e-05f), uint16_t(0x0400));         // smallest normal, 2^-14
        QCOMPARE(float_to_f16(2.0e-8f), uint16_t(0x0000));                  // under half the smallest subnormal
        QVERIFY(std::isnan(f16_to_float(float_to_f16(NAN))));
        // Every finite float16 survives the round trip.
        for (uint32_t bits = 0; bits < 0x10000; ++bits)
            if ((bits & 0x7c00u) != 0x7c00u) QCOMPARE(float_to_f16(f16_to_float(uint16_t(bits))), uint16_t(bits));
    }

    void unknown_model_type() {
        auto config = parse_model_config(R"({"model_type": "mixtral", "hidden_size": 8})");
        QVERIFY(!config.ok());
        expect_error_mentions(config.error(), {"config.json", "mixtral", "not supported"});
    }

    void malformed_config() {
        auto config = parse_model_config("{\"model_type\": \"llama\", ");
        QVERIFY(!config.ok());
        expect_error_mentions(config.error(), {"config.json", "not valid JSON"});
    }

    void incomplete_config_names_the_key() {
        std::string text = read_text(kModels + "dsv3-tiny/config.json");
        text.replace(text.find("\"kv_lora_rank\""), 14, "\"kv_lora_rank_typo\"");
        auto config = parse_model_config(text);
        QVERIFY(!config.ok());
        expect_error_mentions(config.error(), {"config.json", "kv_lora_rank", "missing"});
    }

    void wrongly_typed_config_value() {
        std::string text = read_text(kModels + "qwen2-tiny/config.json");
        text.replace(text.find("\"hidden_size\": 96"), 17, "\"hidden_size\": \"96\"");
        auto config = parse_model_config(text);
        QVERIFY(!config.ok());
        expect_error_mentions(config.error(), {"hidden_size", "integer"});
    }

    void missing_tensor_names_tensor_and_file() {
        const fs::path model = copy_model("dsv3-tiny", dir() / "missing-tensor", "model.layers.2.mlp.gate.weight");
        auto graph = load_model_graph(model.string());
        QVERIFY(!graph.ok());
        expect_error_mentions(graph.error(), {"model.layers.2.mlp.gate.weight", "missing", "model.safetensors"});
    }

    void tensor_shape_disagreeing_with_config() {
        const fs::path model = copy_model("qwen2-tiny", dir() / "wrong-shape");
        std::string text = read_text(model / "config.json");
        text.replace(text.find("\"intermediate_size\": 192"), 24, "\"intermediate_size\": 200");
        write_bytes(model / "config.json", text);
        auto graph = load_model_graph(model.string());
        QVERIFY(!graph.ok());
        expect_error_mentions(graph.error(),
                              {"config.json does not describe these weights", "model.layers.0.mlp.gate_proj.weight", "model.safetensors",
                               "[192, 96]", "[200, 96]", "intermediate_size"});
    }

    void missing_files() {
        fs::create_directories(dir() / "empty");
        auto no_config = load_model_graph((dir() / "empty").string());
        QVERIFY(!no_config.ok());
        expect_error_mentions(no_config.error(), {"config.json", "missing"});

        fs::copy_file(kModels + "qwen2-tiny/config.json", dir() / "empty" / "config.json");
        auto no_weights = load_model_graph((dir() / "empty").string());
        QVERIFY(!no_weights.ok());
        expect_error_mentions(no_weights.error(), {"safetensors"});
    }

    void sharded_index_with_missing_shard() {
        const fs::path model = dir() / "sharded";
        fs::create_directories(model);
        for (const auto& entry : fs::directory_iterator(kModels + "llama-tiny"))
            fs::copy_file(entry.path(), model / entry.path().filename());
        fs::remove(model / "model-00003-of-00004.safetensors");
        auto graph = load_model_graph(model.string());
        QVERIFY(!graph.ok());
        expect_error_mentions(graph.error(), {"model-00003-of-00004.safetensors", "missing"});
    }

    void sharded_index_naming_a_tensor_its_shard_lacks() {
        const fs::path model = dir() / "lying-index";
        fs::create_directories(model);
        for (const auto& entry : fs::directory_iterator(kModels + "llama-tiny"))
            fs::copy_file(entry.path(), model / entry.path().filename());
        std::string index = read_text(model / "model.safetensors.index.json");
        const std::string entry = "\"model.norm.weight\": \"";
        const size_t at = index.find(entry);
        QVERIFY(at != std::string::npos);
        const size_t file_start = at + entry.size();
        const std::string original = index.substr(file_start, index.find('"', file_start) - file_start);
        const std::string other = original == "model-00001-of-00004.safetensors" ? "model-00002-of-00004.safetensors"
                                                                                 : "model-00001-of-00004.safetensors";
        index.replace(file_start, original.size(), other);
        write_bytes(model / "model.safetensors.index.json", index);
        auto graph = load_model_graph(model.string());
        QVERIFY(!graph.ok());
        expect_error_mentions(graph.error(), {"model.norm.weight", "missing in", other.c_str()});
    }

    void sharded_checkpoint_loads() {
        auto graph = load_model_graph(kModels + "llama-tiny");
        QVERIFY2(graph.ok(), graph.ok() ? "" : graph.error().message.c_str());
        QCOMPARE(graph->store->files().size(), size_t(4));
    }
};

QTEST_APPLESS_MAIN(BadInputTest)
#include "test_bad_input.moc"
