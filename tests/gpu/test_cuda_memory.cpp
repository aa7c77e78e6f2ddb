// Out of GPU memory is an error with the numbers, never a crash, and leaves nothing behind: after a failed weight
// upload (the GPU filled on purpose) and a KV cache that cannot fit, the device holds what it held before, and a
// second load works.
#include <QtTest>

#include <cstdint>

#include "engine/model/model_graph.h"
#include "engine/model/random_weights.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_planning.h"
#include "tests/gpu/cuda_test_support.h"

using namespace mwb;

namespace {

size_t free_device_bytes() {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) qFatal("cudaMemGetInfo failed");
    return free_bytes;
}

std::shared_ptr<const ModelGraph> reference_layer() {
    ModelConfig config = reference_shape_v3_16b(1);
    auto store = TensorStore::from_memory(random_weights(config, 1));
    if (!store) qFatal("%s", store.error().message.c_str());
    auto graph = build_model_graph(config, std::make_shared<const TensorStore>(std::move(store.value())));
    if (!graph) qFatal("%s", graph.error().message.c_str());
    return std::make_shared<const ModelGraph>(std::move(graph.value()));
}

}  // namespace

class CudaMemoryTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void an_impossible_cache_is_an_error_and_the_backend_still_works() {
        auto graph = load_model_graph(MWB_TEST_DATA "/models/dsv3-tiny");
        QVERIFY(graph.ok());
        auto backend = make_cuda_backend(std::make_shared<const ModelGraph>(std::move(graph.value())));
        QVERIFY(backend.ok());
        const size_t before = free_device_bytes();
        const Status huge = (*backend)->reserve_cache(4096, int64_t(1) << 22);
        QVERIFY(!huge.ok());
        QVERIFY2(huge.error().message.find("out of GPU memory") != std::string::npos, huge.error().message.c_str());
        QVERIFY2(huge.error().message.find("free") != std::string::npos, huge.error().message.c_str());
        QVERIFY(free_device_bytes() + (size_t(64) << 20) >= before);
        QVERIFY((*backend)->reserve_cache(1, 64).ok());
        auto logits = (*backend)->forward({{5, 6, 7}, {{0, 0, 3}}, false}, nullptr);
        QVERIFY(logits.ok());
        const MemoryReport memory = (*backend)->memory();
        QVERIFY(memory.weight_bytes > 0 && memory.kv_cache_bytes > 0 && memory.workspace_bytes > 0);
        QCOMPARE(memory.weight_bytes, cuda::device_weight_bytes((*backend)->model(), cuda::WeightQuantisation::None));
    }

    void a_full_gpu_fails_the_load_cleanly_and_a_second_load_works() {
        const auto graph = reference_layer();
        const size_t needed = cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::None);
        const size_t baseline = free_device_bytes();

        // Leave a little less free than the weights need: the first allocations succeed, a later one fails.
        void* hog = nullptr;
        const size_t keep = needed / 2;
        QVERIFY(baseline > keep);
        QCOMPARE(cudaMalloc(&hog, baseline - keep), cudaSuccess);
        auto failed = make_cuda_backend(graph);
        QVERIFY(!failed.ok());
        QVERIFY2(failed.error().message.find("out of GPU memory") != std::string::npos, failed.error().message.c_str());
        qInfo("%s", failed.error().message.c_str());
        cudaFree(hog);
        QVERIFY(free_device_bytes() + (size_t(64) << 20) >= baseline);  // nothing leaked

        auto loaded = make_cuda_backend(graph);
        QVERIFY2(loaded.ok(), loaded.ok() ? "" : loaded.error().message.c_str());
        QVERIFY((*loaded)->reserve_cache(1, 32).ok());
        auto logits = (*loaded)->forward({{1, 2, 3, 4}, {{0, 0, 4}}, false}, nullptr);
        QVERIFY(logits.ok());
        for (float v : *logits) QVERIFY(std::isfinite(v));
    }

    void weight_only_int8_takes_about_half() {
        const auto graph = reference_layer();
        CudaOptions options;
        options.quantisation = cuda::WeightQuantisation::Int8;
        auto backend = make_cuda_backend(graph, options);
        QVERIFY(backend.ok());
        const size_t int8 = (*backend)->memory().weight_bytes;
        QCOMPARE(int8, cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::Int8));
        QVERIFY(double(int8) < 0.75 * double(cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::None)));
    }

    void weight_only_int4_takes_about_a_quarter() {
        const auto graph = reference_layer();
        CudaOptions options;
        options.quantisation = cuda::WeightQuantisation::Int4;
        auto backend = make_cuda_backend(graph, options);
        QVERIFY(backend.ok());
        const size_t int4 = (*backend)->memory().weight_bytes;
        QCOMPARE(int4, cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::Int4));
        // One layer: the embedding (kept bf16) is half of the bf16 total.
        QVERIFY(int4 < cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::Int8));
        QVERIFY(double(int4) < 0.65 * double(cuda::device_weight_bytes(*graph, cuda::WeightQuantisation::None)));
        // Uniform random weights: about max/(7·√12) error against an rms of max/√3, 0.07, with 128-column groups.
        const auto& worst = (*backend)->worst_quantisation_error();
        QVERIFY2(worst.relative_error > 0.03 && worst.relative_error < 0.12, qPrintable(QString::number(worst.relative_error)));
        QVERIFY(!worst.matrix.empty());
    }
};

QTEST_APPLESS_MAIN(CudaMemoryTest)
#include "test_cuda_memory.moc"
