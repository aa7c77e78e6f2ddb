// LoRA training on CUDA (CudaLoraModel) against the CPU trainer, whose gradients finite differences check and whose
// losses equal peft's (tests/train): on every fixture model, with an adapter on every linear layer, the row's
// loss, logits and the gradient of every adapter matrix, routing replayed from the CPU run so that both take the
// same experts; gradient checkpointing changes nothing; lora_dropout draws the CPU's masks; and twelve AdamW
// steps reproduce the peft trace of dsv3-tiny.
//
// Tolerances (bf16 frozen weights: every product with a frozen weight rounds its input to bf16, 2⁻⁹ relative,
// where the CPU reference is float32 throughout). Measured on the emulator over the five models: loss ≤ 4.9e-4
// relative, logits cosine ≥ 0.99992, gradients ≤ 3.7e-2 relative (norm of the difference per matrix; the worst
// are routed experts that see two or three tokens), and against peft's 12 losses ≤ 5.4e-3. The bounds leave about
// 3× or more: loss 5e-3, 1 − cosine 5e-4, gradients 0.1, peft losses 2e-2. A wrong or missing term moves these
// by O(1) (dropout alone moves the gradients by 2.7).
#include <QtTest>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/train/lora_model.h"
#include "engine/train/optimizer.h"
#include "kernels/cuda_lora_model.h"
#include "tests/gpu/cuda_test_support.h"
#include "tests/support/fixture.h"
#include "tests/train/lora_trace.h"

using namespace mwb;
using namespace mwb::testing;

namespace {

constexpr double kLossTolerance = 5e-3, kLogitCosine = 0.9995, kGradientTolerance = 0.1, kTraceTolerance = 2e-2;

std::unique_ptr<CudaLoraModel> cuda_model(std::shared_ptr<const ModelGraph> graph) {
    auto model = CudaLoraModel::create(std::move(graph));
    if (!model) qFatal("%s", model.error().message.c_str());
    return std::move(model.value());
}

// A fixture prompt as a training row: labels are the ids, a few of them ignored.
struct Row {
    std::vector<int32_t> ids;
    std::vector<int64_t> labels;
};
Row row_of(const Fixture& f) {
    Row row;
    row.ids = f.prompt(0);
    row.labels.assign(row.ids.begin(), row.ids.end());
    for (size_t i = 0; i < row.labels.size(); i += 5) row.labels[i] = train::kIgnoredLabel;
    return row;
}

struct Pass {
    double loss = 0;
    std::vector<float> logits;
    train::LoraGradients gradients;
};

Pass run(train::TrainableModel& model, const train::LoraAdapter& adapter, const Row& row, std::vector<int32_t>& routing) {
    Pass pass{0, {}, train::LoraGradients::zeros_like(adapter)};
    const float scale = 1.0f / float(train::counted_labels(row.labels));
    auto loss = model.row_loss(adapter, row.ids, row.labels, scale, &pass.gradients, &pass.logits, &routing);
    if (!loss) qFatal("%s", loss.error().message.c_str());
    pass.loss = *loss;
    return pass;
}

// The worst relative error over the adapter's matrices, with the matrix named.
std::pair<double, std::string> worst_gradient(const train::LoraAdapter& adapter, const Pass& gpu, const Pass& cpu) {
    std::pair<double, std::string> worst{0, ""};
    for (size_t i = 0; i < adapter.modules().size(); ++i)
        for (bool b : {false, true}) {
            const double error = relative_error(b ? gpu.gradients.b[i] : gpu.gradients.a[i], b ? cpu.gradients.b[i] : cpu.gradients.a[i]);
            if (error > worst.first) worst = {error, adapter.modules()[i].name + (b ? " B" : " A")};
        }
    return worst;
}

}  // namespace

class CudaTrainingTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void gradients_match_the_cpu_trainer_data() { add_model_rows(); }
    void gradients_match_the_cpu_trainer() {
        QFETCH(QString, model);
        const Fixture f = load_fixture(model.toStdString());
        const train::LoraAdapter adapter = random_lora_adapter(*f.graph, 3);
        const Row row = row_of(f);
        auto cpu = train::LoraModel::create(f.graph, 2);
        QVERIFY(cpu.ok());
        std::vector<int32_t> routing;
        const Pass reference = run(*cpu, adapter, row, routing);
        auto gpu = cuda_model(f.graph);
        const Pass pass = run(*gpu, adapter, row, routing);  // the CPU's experts, replayed

        const double loss_error = std::fabs(pass.loss - reference.loss) / std::fabs(reference.loss);
        const int64_t vocab = f.graph->config.vocab_size;
        double worst_cosine = 1;
        for (size_t t = 0; t < row.ids.size(); ++t)
            worst_cosine = std::min(worst_cosine, cosine(pass.logits.data() + t * vocab, reference.logits.data() + t * vocab, size_t(vocab)));
        const auto [gradient_error, matrix] = worst_gradient(adapter, pass, reference);
        qInfo("loss %.6f vs %.6f (relative error %.2e), worst logits cosine %.7f, worst gradient error %.2e (%s)", pass.loss, reference.loss,
              loss_error, worst_cosine, gradient_error, matrix.c_str());
        QVERIFY(loss_error <= kLossTolerance);
        QVERIFY(worst_cosine >= kLogitCosine);
        QVERIFY2(gradient_error <= kGradientTolerance, matrix.c_str());
    }

    void checkpointing_and_dropout_follow_the_cpu() {
        const Fixture f = load_fixture("dsv3-tiny");
        const train::LoraAdapter adapter = random_lora_adapter(*f.graph, 4, 0.25);
        const Row row = row_of(f);
        auto gpu = cuda_model(f.graph);
        std::vector<int32_t> routing;
        const Pass plain = run(*gpu, adapter, row, routing);  // no dropout seed: evaluation, no dropout
        gpu->set_gradient_checkpointing(true);
        const Pass recomputed = run(*gpu, adapter, row, routing);
        QCOMPARE(recomputed.loss, plain.loss);
        for (size_t i = 0; i < adapter.modules().size(); ++i) {
            QCOMPARE(recomputed.gradients.a[i], plain.gradients.a[i]);
            QCOMPARE(recomputed.gradients.b[i], plain.gradients.b[i]);
        }

        auto cpu = train::LoraModel::create(f.graph, 2);
        QVERIFY(cpu.ok());
        for (train::TrainableModel* model : {static_cast<train::TrainableModel*>(gpu.get()), static_cast<train::TrainableModel*>(&*cpu)})
            model->set_dropout_seed(12345);
        const Pass reference = run(*cpu, adapter, row, routing);
        const Pass dropped = run(*gpu, adapter, row, routing);
        const auto [error, matrix] = worst_gradient(adapter, dropped, reference);
        const auto [change, changed] = worst_gradient(adapter, dropped, plain);
        qInfo("with dropout: worst gradient error %.2e (%s); dropout moves the gradients by up to %.2e", error, matrix.c_str(), change);
        QVERIFY2(error <= kGradientTolerance, matrix.c_str());
        QVERIFY(change > 10 * error);
    }

    void twelve_steps_follow_the_peft_trace() {
        const Trace trace = load_trace("dsv3-tiny-lora");
        const Fixture f = load_fixture("dsv3-tiny");
        auto adapter = train::LoraAdapter::load(kTraces + "dsv3-tiny-lora/adapter_init", *f.graph);
        QVERIFY(adapter.ok());
        auto gpu = cuda_model(f.graph);
        const auto& h = trace.train["hyperparameters"];
        const int64_t batch = h["batch_size"].get<int64_t>();
        train::AdamWConfig config;
        config.lr = h["lr"].get<double>();
        config.beta1 = h["betas"][0].get<double>();
        config.beta2 = h["betas"][1].get<double>();
        config.eps = h["eps"].get<double>();
        config.weight_decay = h["weight_decay"].get<double>();
        train::AdamW optimizer(*adapter, config);
        train::LoraGradients gradients = train::LoraGradients::zeros_like(*adapter);
        const auto losses = trace.train["losses"].get<std::vector<double>>();
        double worst = 0;
        for (size_t step = 0; step < losses.size(); ++step) {
            const double loss = batch_gradient(*gpu, *adapter, trace, int64_t(step % 2) * batch, batch, gradients);
            const double error = std::fabs(loss - losses[step]) / std::fabs(losses[step]);
            worst = std::max(worst, error);
            QVERIFY2(error <= kTraceTolerance, qPrintable(QString("step %1: loss %2, peft %3").arg(step).arg(loss).arg(losses[step])));
            optimizer.step(*adapter, gradients, config.lr);
        }
        qInfo("12 steps: worst loss error against peft %.2e", worst);
    }

    void bad_rows_are_errors() {
        const Fixture f = load_fixture("qwen2-tiny");
        const train::LoraAdapter adapter = random_lora_adapter(*f.graph, 5);
        auto gpu = cuda_model(f.graph);
        const int32_t vocab = int32_t(f.graph->config.vocab_size);
        auto outside = gpu->row_loss(adapter, std::vector<int32_t>{1, vocab}, std::vector<int64_t>{1, 2}, 1.0f, nullptr);
        QVERIFY(!outside.ok());
        QVERIFY(outside.error().message.find("outside the vocabulary") != std::string::npos);
        auto label = gpu->row_loss(adapter, std::vector<int32_t>{1, 2}, std::vector<int64_t>{1, vocab}, 1.0f, nullptr);
        QVERIFY(!label.ok());
        auto mismatched = gpu->row_loss(adapter, std::vector<int32_t>{1, 2}, std::vector<int64_t>{1}, 1.0f, nullptr);
        QVERIFY(!mismatched.ok());
    }
};

QTEST_APPLESS_MAIN(CudaTrainingTest)
#include "test_cuda_training.moc"
