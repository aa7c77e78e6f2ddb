// The Inspector while a generation streams: its data equals the reference router outputs and attention,
// attention is captured only while its view is open, exports round-trip, and every view is saved as a picture.
#include <QtTest>

#include <cstdint>

#include <QApplication>
#include <QComboBox>
#include <QLabel>
#include <QListWidget>
#include <QTabWidget>

#include <cmath>
#include <thread>

#include "app/services/inspector_feed.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/generation.h"
#include "tests/support/fixture.h"
#include "ui/inspector/heatmap_widget.h"
#include "ui/inspector/inspector_page.h"

using namespace mwb;

namespace {

const QString kOutput = QStringLiteral(MWB_TEST_OUTPUT);

}  // namespace

class InspectorTest : public QObject {
    Q_OBJECT

    std::optional<testing::Fixture> fixture_;
    std::shared_ptr<const ModelGraph> graph_;
    std::vector<int32_t> prompt_;
    app::InspectorFeed feed_;
    std::unique_ptr<ui::InspectorPage> page_;

    // Generates on a thread of its own, as the engine worker does, while the page refreshes live.
    void generate_live(int64_t new_tokens) {
        auto backend = make_cpu_backend(graph_, 2);
        QVERIFY(backend->reserve_cache(1, int64_t(prompt_.size()) + new_tokens).ok());
        std::vector<QString> texts;
        for (int32_t id : prompt_) texts.push_back(QStringLiteral("#%1").arg(id));
        feed_.begin(prompt_, texts);
        std::atomic<bool> finished{false};
        std::thread engine([&] {
            GenerationRequest request;
            request.prompt = prompt_;
            request.sampling.temperature = 0;
            request.max_new_tokens = new_tokens;
            auto result = generate(*backend, request, [&](int32_t token) {
                feed_.append_token(token, QStringLiteral("#%1").arg(token));
                return true;
            }, &feed_);
            finished = result.ok();
        });
        QTRY_VERIFY_WITH_TIMEOUT(finished.load(), 60000);
        engine.join();
        page_->refresh();
    }

private slots:
    void initTestCase() {
        fixture_.emplace(testing::load_fixture("dsv3-tiny"));
        graph_ = fixture_->graph;
        prompt_ = fixture_->prompt(0);
        feed_.set_model(*graph_);
        page_ = std::make_unique<ui::InspectorPage>(&feed_);
        page_->resize(1280, 800);
        page_->show();
        QVERIFY(QTest::qWaitForWindowExposed(page_.get()));
    }

    void attention_is_captured_only_while_its_view_is_open() {
        page_->show_view(ui::InspectorPage::View::ExpertLoad);
        QVERIFY(!feed_.wants_attention(0));
        page_->show_view(ui::InspectorPage::View::Attention);
        QVERIFY(feed_.wants_attention(0));
        QVERIFY(!feed_.wants_attention(1));
        page_->hide();
        QVERIFY(!feed_.wants_attention(0));
        page_->show();
        QVERIFY(feed_.wants_attention(0));
    }

    void live_data_equals_the_reference() {
        generate_live(12);
        const auto snapshot = feed_.snapshot();
        QCOMPARE(snapshot.token_ids.size(), prompt_.size() + 12);
        const auto greedy = *fixture_->reference.read_int64("p0.greedy");
        for (size_t i = 0; i < greedy.size(); ++i) QCOMPARE(int64_t(snapshot.token_ids[prompt_.size() + i]), greedy[i]);

        const int64_t k = graph_->config.moe->experts_per_token;
        int compared = 0;
        for (const auto& r : snapshot.routing) {
            if (r.position >= int64_t(prompt_.size())) continue;
            const std::string name = "p0.router." + std::to_string(r.layer);
            const auto indices = *fixture_->reference.read_int64(name + ".indices");
            const auto weights = *fixture_->reference.read_float(name + ".weights", {});
            for (int64_t i = 0; i < k; ++i) {
                QCOMPARE(int64_t(r.experts[size_t(i)]), indices[size_t(r.position * k + i)]);
                QVERIFY(std::fabs(r.weights[size_t(i)] - weights[size_t(r.position * k + i)]) <= 1e-5f);
            }
            ++compared;
        }
        QCOMPARE(compared, int(prompt_.size() * graph_->moe_layers().size()));

        // Layer 0 attention was watched during the prompt: it equals the reference probabilities.
        const auto attention = snapshot.attention.at(0);
        const auto expected = *fixture_->reference.read_float("p0.attn.0", {});
        const int64_t t = int64_t(prompt_.size());
        for (int64_t position = 0; position < t; ++position)
            for (int64_t h = 0; h < attention.heads; ++h)
                for (int64_t key = 0; key <= position; ++key)
                    QVERIFY(std::fabs(attention.rows.at(position)[size_t(h * (position + 1) + key)] -
                                      expected[size_t((h * t + position) * t + key)]) <= 1e-5f);
        QVERIFY(!snapshot.attention.count(1));
    }

    void incremental_updates_equal_a_full_snapshot() {
        app::InspectorFeed feed;
        feed.set_model(*graph_);
        feed.watch_attention({0});
        app::InspectorSnapshot view;
        auto report = [&](int64_t position) {
            const std::vector<int32_t> experts = {int32_t(position % 16), 15};
            const std::vector<float> weights = {0.5f, 0.25f}, logits(16, float(position));
            feed.on_routing(0, position, 1, experts, weights, logits);
            const std::vector<float> probabilities(size_t(2 * (position + 1)), 1.0f / float(position + 1));
            feed.on_attention(0, position, 0, 2, position + 1, probabilities.data());
        };
        auto same_as_full = [&] {
            const app::InspectorSnapshot full = feed.snapshot();
            QCOMPARE(view.token_ids, full.token_ids);
            QCOMPARE(view.routing.size(), full.routing.size());
            for (size_t i = 0; i < full.routing.size(); ++i) {
                QCOMPARE(view.routing[i].position, full.routing[i].position);
                QCOMPARE(view.routing[i].experts, full.routing[i].experts);
                QCOMPARE(view.routing[i].router_logits, full.routing[i].router_logits);
            }
            QCOMPARE(view.attention.at(0).rows, full.attention.at(0).rows);
            QCOMPARE(view.version, full.version);
        };
        feed.begin({7, 8, 9}, {"a", "b", "c"});
        for (int64_t p = 0; p < 3; ++p) report(p);
        feed.update(view);
        same_as_full();
        feed.append_token(10, "d");
        report(3);
        feed.update(view);
        same_as_full();
        QCOMPARE(view.routing.size(), size_t(4));
        // A new generation starts over: the view is replaced, not appended to.
        feed.begin({1}, {"x"});
        report(0);
        feed.update(view);
        same_as_full();
        QCOMPARE(view.token_ids, std::vector<int32_t>{1});
    }

    // A long conversation whose attention view opened late: the grid has the captured query rows only (not a
    // mostly empty square), every key up to the last of them, rows labelled by position and token, and a zoom.
    void attention_grid_holds_the_captured_rows_only() {
        app::InspectorFeed feed;
        feed.set_model(*graph_);
        std::vector<int32_t> ids(300);
        std::vector<QString> texts;
        for (int i = 0; i < 300; ++i) {
            ids[size_t(i)] = i;
            texts.push_back(QStringLiteral("t%1").arg(i));
        }
        feed.begin(ids, texts);
        const int64_t heads = 2;
        for (int64_t position = 280; position < 300; ++position) {
            std::vector<float> probabilities(size_t(heads * (position + 1)), 0.0f);
            probabilities[size_t(position)] = 1.0f;  // head 0 looks at itself
            feed.on_attention(0, position, 0, heads, position + 1, probabilities.data());
        }
        ui::InspectorPage page(&feed);
        page.resize(1024, 700);
        page.show();
        page.show_view(ui::InspectorPage::View::Attention);
        page.refresh();
        auto* detail = page.findChild<ui::HeatmapWidget*>("attentionDetail");
        QVERIFY(detail);
        QCOMPARE(detail->rows(), 20);
        QCOMPARE(detail->columns(), 300);
        QCOMPARE(detail->row_labels().first(), QStringLiteral("280 t280"));
        QCOMPARE(detail->row_labels().last(), QStringLiteral("299 t299"));
        QVERIFY(detail->title().contains("20 query rows captured, 300 keys"));
        auto* zoom = page.findChild<QComboBox*>("attentionZoom");
        zoom->setCurrentIndex(zoom->findData(8));
        QTRY_VERIFY(detail->width() >= 300 * 8);  // wider than the page: it scrolls
        QVERIFY(page.grab().save(kOutput + "/inspector_attention_long.png"));
        // Nothing captured for another layer: the view says how to get it.
        page.findChild<QComboBox*>("attentionLayer")->setCurrentIndex(1);
        QCOMPARE(detail->rows(), 0);
    }

    void each_layer_load_sums_to_tokens_times_top_k() {
        const auto snapshot = feed_.snapshot();
        const LoadMatrix load = load_matrix(snapshot.routing, graph_->config.moe->n_routed_experts);
        // Every prompt token and every generated token but the last (it is sampled, never fed back) is routed.
        const int64_t routed_tokens = int64_t(snapshot.token_ids.size()) - 1;
        QCOMPARE(load.tokens, routed_tokens);
        for (size_t row = 0; row < load.layers.size(); ++row) {
            int64_t total = 0;
            for (int64_t e = 0; e < load.experts; ++e) total += load.count(row, e);
            QCOMPARE(total, routed_tokens * graph_->config.moe->experts_per_token);
        }
    }

    void exports_round_trip() {
        QVERIFY(page_->export_trace_csv(kOutput + "/routing.csv"));
        QFile file(kOutput + "/routing.csv");
        QVERIFY(file.open(QIODevice::ReadOnly));
        auto parsed = parse_routing_trace_csv(file.readAll().toStdString());
        QVERIFY(parsed.ok());
        const auto snapshot = feed_.snapshot();
        QCOMPARE(parsed->size(), snapshot.routing.size());
        for (size_t i = 0; i < parsed->size(); ++i) QCOMPARE((*parsed)[i].experts, snapshot.routing[i].experts);
        QVERIFY(page_->export_load_csv(kOutput + "/expert_load.csv"));
        QVERIFY(page_->export_png(kOutput + "/exported_chart.png"));
        QImage png(kOutput + "/exported_chart.png");
        QVERIFY(!png.isNull());
    }

    void screenshots_of_every_view() {
        const std::pair<ui::InspectorPage::View, const char*> views[] = {
            {ui::InspectorPage::View::ExpertLoad, "inspector_expert_load.png"},
            {ui::InspectorPage::View::CoActivation, "inspector_coactivation.png"},
            {ui::InspectorPage::View::Attention, "inspector_attention.png"},
        };
        for (const auto& [view, file] : views) {
            page_->show_view(view);
            page_->refresh();
            QVERIFY(page_->grab().save(kOutput + "/" + file));
        }
        page_->select_token(int(prompt_.size()) + 2);
        auto* tokens = page_->findChild<QListWidget*>();
        QVERIFY(tokens);
        QCOMPARE(tokens->currentRow(), int(prompt_.size()) + 2);
        QVERIFY(page_->grab().save(kOutput + "/inspector_per_token.png"));
    }
};

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    InspectorTest test;
    return QTest::qExec(&test, argc, argv);
}
#include "test_inspector.moc"
