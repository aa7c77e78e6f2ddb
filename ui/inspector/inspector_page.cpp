#include "ui/inspector/inspector_page.h"

#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLegendMarker>
#include <QLineSeries>
#include <QListWidget>
#include <QMenu>
#include <QScrollArea>
#include <QScrollBar>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QTimer>
#include <QToolButton>
#include <QValueAxis>
#include <QVBoxLayout>

#include <algorithm>
#include <cstdint>

#include "ui/inspector/heatmap_widget.h"
#include "ui/inspector/image_attention_view.h"

namespace mwb::ui {

namespace {

constexpr int kRefreshMilliseconds = 100;  // ten refreshes a second while tokens stream

QStringList numbered(const QString& prefix, int count) {
    QStringList labels;
    for (int i = 0; i < count; ++i) labels << prefix + QString::number(i);
    return labels;
}

QTableWidgetItem* cell(const QString& text) {
    auto* item = new QTableWidgetItem(text);
    item->setFlags(item->flags() & ~Qt::ItemIsEditable);
    return item;
}

bool write_file(const QString& path, const std::string& text) {
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate)) return false;
    return file.write(text.data(), qint64(text.size())) == qint64(text.size());
}

}  // namespace

InspectorPage::InspectorPage(app::InspectorFeed* feed, QWidget* parent) : QWidget(parent), feed_(feed) {
    auto* layout = new QVBoxLayout(this);
    auto* bar = new QHBoxLayout();
    scope_ = new QComboBox(this);
    scope_->addItems({tr("Whole conversation"), tr("Current reply"), tr("Token range")});
    range_first_ = new QSpinBox(this);
    range_last_ = new QSpinBox(this);
    range_first_->setPrefix(tr("from "));
    range_last_->setPrefix(tr("to "));
    range_first_->setMaximumWidth(110);
    range_last_->setMaximumWidth(110);
    range_first_->setMaximum(1 << 30);
    range_last_->setMaximum(1 << 30);
    range_first_->setEnabled(false);
    range_last_->setEnabled(false);
    metric_ = new QComboBox(this);
    metric_->addItems({tr("Token count"), tr("Routed weight mass")});
    auto* export_button = new QToolButton(this);
    export_button->setText(tr("Export"));
    export_button->setPopupMode(QToolButton::InstantPopup);
    auto* export_menu = new QMenu(export_button);
    QAction* export_png = export_menu->addAction(tr("Chart as PNG…"));
    QAction* export_trace = export_menu->addAction(tr("Routing trace as CSV…"));
    QAction* export_load = export_menu->addAction(tr("Expert load as CSV…"));
    export_button->setMenu(export_menu);
    status_ = new QLabel(this);
    status_->setObjectName("inspectorStatus");
    status_->setWordWrap(true);
    bar->addWidget(new QLabel(tr("Tokens:"), this));
    bar->addWidget(scope_);
    bar->addWidget(range_first_);
    bar->addWidget(range_last_);
    bar->addWidget(new QLabel(tr("Measure:"), this));
    bar->addWidget(metric_);
    bar->addStretch();
    bar->addWidget(export_button);
    layout->addLayout(bar);

    tabs_ = new QTabWidget(this);
    tabs_->addTab(build_load_view(), tr("Expert load"));
    tabs_->addTab(build_token_view(), tr("Per token"));
    tabs_->addTab(build_coactivation_view(), tr("Co-activation"));
    tabs_->addTab(build_attention_view(), tr("Attention heads"));
    image_view_ = new ImageAttentionView(this);
    tabs_->addTab(image_view_, tr("Image attention"));
    connect(image_view_, &ImageAttentionView::exportRequested, this, [this] {
        export_with_dialog(tr("Export the image attention"), "image-attention.png", tr("PNG images (*.png)"),
                           [this](const QString& path) { return image_view_->export_png(path); });
    });
    layout->addWidget(tabs_, 1);
    layout->addWidget(status_);

    auto redraw = [this] {
        shown_version_ = ~uint64_t(0);
        refresh();
    };
    connect(scope_, &QComboBox::currentIndexChanged, this, [this, redraw](int index) {
        range_first_->setEnabled(index == 2);
        range_last_->setEnabled(index == 2);
        redraw();
    });
    connect(range_first_, &QSpinBox::valueChanged, this, redraw);
    connect(range_last_, &QSpinBox::valueChanged, this, redraw);
    connect(metric_, &QComboBox::currentIndexChanged, this, redraw);
    connect(tabs_, &QTabWidget::currentChanged, this, [this, redraw] {
        update_attention_watch();
        redraw();
    });
    connect(export_png, &QAction::triggered, this, [this] {
        export_with_dialog(tr("Export chart"), "inspector.png", tr("PNG images (*.png)"), [this](const QString& path) { return this->export_png(path); });
    });
    connect(export_trace, &QAction::triggered, this, [this] {
        export_with_dialog(tr("Export routing trace"), "routing.csv", tr("CSV (*.csv)"), [this](const QString& path) { return export_trace_csv(path); });
    });
    connect(export_load, &QAction::triggered, this, [this] {
        export_with_dialog(tr("Export expert load"), "expert_load.csv", tr("CSV (*.csv)"), [this](const QString& path) { return export_load_csv(path); });
    });

    auto* timer = new QTimer(this);
    timer->setInterval(kRefreshMilliseconds);
    connect(timer, &QTimer::timeout, this, [this] {
        if (isVisible() && feed_->version() != shown_version_) refresh();
    });
    timer->start();
}

QWidget* InspectorPage::build_load_view() {
    auto* view = new QWidget(this);
    auto* layout = new QVBoxLayout(view);
    auto* maps = new QHBoxLayout();
    load_map_ = new HeatmapWidget(view);
    shared_map_ = new HeatmapWidget(view);
    shared_map_->setMaximumWidth(220);
    maps->addWidget(load_map_, 1);
    maps->addWidget(shared_map_);
    layout->addLayout(maps, 3);
    imbalance_table_ = new QTableWidget(0, 4, view);
    imbalance_table_->setHorizontalHeaderLabels({tr("Layer"), tr("Max / mean"), tr("Coefficient of variation"), tr("Normalised entropy")});
    imbalance_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    imbalance_table_->verticalHeader()->hide();
    layout->addWidget(imbalance_table_, 1);
    return view;
}

QWidget* InspectorPage::build_token_view() {
    auto* view = new QSplitter(Qt::Horizontal, this);
    auto* left = new QWidget(view);
    auto* left_layout = new QVBoxLayout(left);
    left_layout->setContentsMargins(0, 0, 0, 0);
    auto* legend = new QLabel(tr("Position, token; ◂ marks tokens the model generated"), left);
    legend->setObjectName("tokenLegend");
    legend->setWordWrap(true);
    token_list_ = new QListWidget(left);
    left_layout->addWidget(legend);
    left_layout->addWidget(token_list_, 1);
    auto* right = new QWidget(view);
    auto* layout = new QVBoxLayout(right);
    token_grid_ = new QTableWidget(0, 0, right);
    token_grid_->verticalHeader()->setDefaultSectionSize(22);
    layout->addWidget(new QLabel(tr("Experts per layer (top-k, weight)"), right));
    layout->addWidget(token_grid_, 2);
    auto* chart_bar = new QHBoxLayout();
    token_layer_ = new QComboBox(right);
    chart_bar->addWidget(new QLabel(tr("Router scores of layer"), right));
    chart_bar->addWidget(token_layer_);
    chart_bar->addStretch();
    layout->addLayout(chart_bar);
    score_chart_ = new QChartView(right);
    score_chart_->setRenderHint(QPainter::Antialiasing);
    layout->addWidget(score_chart_, 3);
    view->setStretchFactor(1, 3);
    connect(token_list_, &QListWidget::currentRowChanged, this, [this] { refresh_token(); });
    connect(token_layer_, &QComboBox::currentIndexChanged, this, [this] { refresh_token(); });
    return view;
}

QWidget* InspectorPage::build_coactivation_view() {
    auto* view = new QWidget(this);
    auto* layout = new QVBoxLayout(view);
    auto* bar = new QHBoxLayout();
    coactivation_layer_ = new QComboBox(view);
    bar->addWidget(new QLabel(tr("Layer"), view));
    bar->addWidget(coactivation_layer_);
    bar->addStretch();
    layout->addLayout(bar);
    auto* split = new QSplitter(Qt::Horizontal, view);
    coactivation_map_ = new HeatmapWidget(split);
    flow_table_ = new QTableWidget(0, 3, split);
    flow_table_->setObjectName("flowTable");
    flow_table_->setHorizontalHeaderLabels({tr("From"), tr("To (next MoE layer)"), tr("Tokens")});
    // Columns as wide as their header and cells, the last one taking the rest: no header is ever cut.
    flow_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    flow_table_->verticalHeader()->hide();
    fit_flow_table();
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    layout->addWidget(split, 1);
    connect(coactivation_layer_, &QComboBox::currentIndexChanged, this, [this] { refresh_coactivation(); });
    return view;
}

QWidget* InspectorPage::build_attention_view() {
    auto* view = new QWidget(this);
    auto* layout = new QVBoxLayout(view);
    auto* bar = new QHBoxLayout();
    attention_layer_ = new QComboBox(view);
    attention_head_ = new QSpinBox(view);
    attention_head_->setPrefix(tr("head "));
    attention_layer_->setObjectName("attentionLayer");
    attention_zoom_ = new QComboBox(view);
    attention_zoom_->setObjectName("attentionZoom");
    attention_zoom_->addItem(tr("Fit"), 0);
    for (int pixels : {4, 8, 16, 24}) attention_zoom_->addItem(tr("%1 px per token").arg(pixels), pixels);
    attention_zoom_->setToolTip(tr("Zoom: a fixed size per token, scrolled, for long conversations"));
    bar->addWidget(new QLabel(tr("Layer"), view));
    bar->addWidget(attention_layer_);
    bar->addWidget(attention_head_);
    bar->addWidget(new QLabel(tr("Zoom"), view));
    bar->addWidget(attention_zoom_);
    bar->addStretch();
    layout->addLayout(bar);
    auto* split = new QSplitter(Qt::Horizontal, view);
    auto* grid_holder = new QWidget(split);
    head_grid_ = new QGridLayout(grid_holder);
    head_grid_->setSpacing(4);
    auto* detail_scroll = new QScrollArea(split);
    detail_scroll->setWidgetResizable(true);
    detail_scroll->setFrameShape(QFrame::NoFrame);
    head_detail_ = new HeatmapWidget;
    head_detail_->setObjectName("attentionDetail");
    detail_scroll->setWidget(head_detail_);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 2);
    layout->addWidget(split, 1);
    connect(attention_layer_, &QComboBox::currentIndexChanged, this, [this] {
        update_attention_watch();
        refresh_attention();
        const qint64 layer = attention_layer();
        if (!snapshot_.origin.isEmpty() && !snapshot_.attention.count(layer)) emit captureRequested(layer);
    });
    connect(attention_head_, &QSpinBox::valueChanged, this, [this] { refresh_attention(); });
    connect(attention_zoom_, &QComboBox::currentIndexChanged, this, [this] { head_detail_->set_cell_size(attention_zoom_->currentData().toInt()); });
    return view;
}

void InspectorPage::showEvent(QShowEvent* event) {
    QWidget::showEvent(event);
    update_attention_watch();
    refresh();
}

void InspectorPage::hideEvent(QHideEvent* event) {
    QWidget::hideEvent(event);
    feed_->watch_attention({});
}

void InspectorPage::update_attention_watch() {
    // Attention probabilities cost a copy per token and head: capture them only while someone looks.
    const bool attention_shown = tabs_->currentIndex() == int(View::Attention) || tabs_->currentIndex() == int(View::ImageAttention);
    if (isVisible() && attention_shown && attention_layer_->currentIndex() >= 0)
        feed_->watch_attention({attention_layer_->currentData().toLongLong()});
    else
        feed_->watch_attention({});
}

void InspectorPage::show_view(View view) { tabs_->setCurrentIndex(int(view)); }

qint64 InspectorPage::attention_layer() const { return attention_layer_->currentIndex() >= 0 ? attention_layer_->currentData().toLongLong() : 0; }

QString InspectorPage::status_text() const { return status_->text(); }

void InspectorPage::export_with_dialog(const QString& caption, const QString& file_name, const QString& filter,
                                       const std::function<bool(const QString&)>& write) {
    const QString path = QFileDialog::getSaveFileName(this, caption, QDir::home().filePath(file_name), filter);
    if (path.isEmpty()) return;
    const QString message = write(path) ? tr("Saved %1").arg(QDir::toNativeSeparators(path))
                                        : tr("Could not write %1 (check the folder exists and is writable)").arg(QDir::toNativeSeparators(path));
    status_->setText(message);
    emit statusMessage(message);
}

void InspectorPage::select_token(int position) {
    show_view(View::PerToken);
    refresh();
    token_list_->setCurrentRow(position);
}

TokenRange InspectorPage::selection() const {
    switch (scope_->currentIndex()) {
        case 1: return {snapshot_.prompt_tokens, INT64_MAX};
        case 2: return {range_first_->value(), range_last_->value()};
        default: return {};
    }
}

void InspectorPage::refresh() {
    feed_->update(snapshot_);
    shown_version_ = snapshot_.version;

    auto fill_layers = [](QComboBox* combo, const std::vector<int64_t>& layers) {
        if (combo->count() == int(layers.size())) return;
        const QVariant kept = combo->currentData();
        combo->blockSignals(true);
        combo->clear();
        for (int64_t layer : layers) combo->addItem(QString::number(layer), qlonglong(layer));
        const int index = combo->findData(kept);
        combo->setCurrentIndex(index >= 0 ? index : 0);
        combo->blockSignals(false);
    };
    std::vector<int64_t> moe_layers;
    for (const auto& [layer, bias] : snapshot_.score_bias) moe_layers.push_back(layer);
    std::vector<int64_t> all_layers;
    for (int64_t l = 0; l < snapshot_.num_layers; ++l) all_layers.push_back(l);
    fill_layers(token_layer_, moe_layers);
    fill_layers(coactivation_layer_, moe_layers);
    fill_layers(attention_layer_, all_layers);

    const int64_t tokens = int64_t(snapshot_.token_ids.size());
    const int64_t routed = snapshot_.moe ? load_matrix(snapshot_.routing, snapshot_.moe->n_routed_experts).tokens : 0;
    if (snapshot_.token_ids.empty() && snapshot_.stored_load)
        status_->setText(tr("From the history: the expert load stored with the reply (the history keeps counts only; Inspect a message in "
                            "Chat for its tokens, routing and attention)."));
    else if (snapshot_.token_ids.empty())
        status_->setText(tr("Nothing to show yet: chat with the model, or use Inspect on a message in Chat."));
    else
        status_->setText(tr("%1%2 tokens: %3 prompt, %4 reply · %5 routed through the experts%6")
                             .arg(snapshot_.origin.isEmpty() ? QString() : snapshot_.origin + " · ")
                             .arg(tokens)
                             .arg(snapshot_.prompt_tokens)
                             .arg(tokens - snapshot_.prompt_tokens)
                             .arg(routed)
                             .arg(routed + 1 == tokens && tokens > snapshot_.prompt_tokens ? tr(" (the last generated token is not fed back)")
                                                                                           : QString()));
    switch (View(tabs_->currentIndex())) {
        case View::ExpertLoad: refresh_load(); break;
        case View::PerToken: refresh_token(); break;
        case View::CoActivation: refresh_coactivation(); break;
        case View::Attention: refresh_attention(); break;
        case View::ImageAttention:
            refresh_attention();  // keeps the layer list, which the image view shares
            image_view_->show_snapshot(snapshot_, attention_layer());
            break;
    }
}

void InspectorPage::refresh_load() {
    if (!snapshot_.moe) {
        load_map_->set_title(tr("This model has no experts"));
        load_map_->set_data(0, 0, {}, {}, {});
        return;
    }
    const MoeConfig& moe = *snapshot_.moe;
    const bool stored = snapshot_.routing.empty() && snapshot_.stored_load && snapshot_.stored_load->experts == moe.n_routed_experts;
    LoadMatrix load = stored ? *snapshot_.stored_load : load_matrix(snapshot_.routing, moe.n_routed_experts, selection());
    if (stored && !load.layers.empty()) {
        // Every routed token adds top-k counts to a layer.
        int64_t routed = 0;
        for (int64_t e = 0; e < load.experts; ++e) routed += load.count(0, e);
        load.tokens = routed / std::max<int64_t>(1, moe.experts_per_token);
    }
    const bool mass = metric_->currentIndex() == 1 && !stored;  // the history keeps counts only
    std::vector<double> values(load.counts.size());
    for (size_t i = 0; i < values.size(); ++i) values[i] = mass ? load.weight_mass[i] : double(load.counts[i]);
    QStringList rows;
    for (int64_t layer : load.layers) rows << tr("layer %1").arg(layer);
    load_map_->set_title(stored ? snapshot_.stored_label
                                : tr("Routed experts — %1 over %2 routed tokens").arg(mass ? tr("weight mass") : tr("tokens")).arg(load.tokens));
    load_map_->set_column_group_size(moe.topk_method != TopkMethod::Greedy && moe.n_group > 1 ? int(moe.n_routed_experts / moe.n_group) : 0);
    load_map_->set_data(int(load.layers.size()), int(moe.n_routed_experts), std::move(values), rows, numbered("", int(moe.n_routed_experts)));

    // Shared experts see every token of every MoE layer.
    std::vector<double> shared(load.layers.size() * size_t(std::max<int64_t>(1, moe.n_shared_experts)), double(load.tokens));
    shared_map_->set_title(tr("Shared experts (every token)"));
    shared_map_->set_data(int(load.layers.size()), int(std::max<int64_t>(1, moe.n_shared_experts)), std::move(shared), rows,
                          numbered("S", int(std::max<int64_t>(1, moe.n_shared_experts))));

    imbalance_table_->setRowCount(int(load.layers.size()));
    for (size_t row = 0; row < load.layers.size(); ++row) {
        const LoadImbalance stats = imbalance(load, row);
        imbalance_table_->setItem(int(row), 0, cell(QString::number(load.layers[row])));
        imbalance_table_->setItem(int(row), 1, cell(QString::number(stats.max_over_mean, 'f', 2)));
        imbalance_table_->setItem(int(row), 2, cell(QString::number(stats.coefficient_of_variation, 'f', 3)));
        imbalance_table_->setItem(int(row), 3, cell(QString::number(stats.normalised_entropy, 'f', 3)));
    }
}

void InspectorPage::refresh_token() {
    if (token_list_->count() != int(snapshot_.token_texts.size())) {
        const int kept = token_list_->currentRow();
        token_list_->blockSignals(true);
        token_list_->clear();
        for (size_t i = 0; i < snapshot_.token_texts.size(); ++i) {
            QString text = snapshot_.token_texts[i];
            text.replace('\n', QStringLiteral("⏎"));
            token_list_->addItem(QStringLiteral("%1  %2%3").arg(i).arg(text, int64_t(i) >= snapshot_.prompt_tokens ? QStringLiteral("  ◂") : QString()));
        }
        token_list_->setCurrentRow(kept >= 0 ? kept : 0);
        token_list_->blockSignals(false);
    }
    const int64_t position = token_list_->currentRow();
    if (!snapshot_.moe || position < 0) return;
    const MoeConfig& moe = *snapshot_.moe;

    std::vector<const RoutingRecord*> records;
    for (const auto& r : snapshot_.routing)
        if (r.position == position) records.push_back(&r);
    token_grid_->setRowCount(int(records.size()));
    token_grid_->setColumnCount(int(moe.experts_per_token));
    token_grid_->setHorizontalHeaderLabels(numbered(tr("choice "), int(moe.experts_per_token)));
    QStringList row_labels;
    for (size_t row = 0; row < records.size(); ++row) {
        row_labels << tr("layer %1").arg(records[row]->layer);
        for (size_t i = 0; i < records[row]->experts.size(); ++i)
            token_grid_->setItem(int(row), int(i), cell(QStringLiteral("E%1  %2").arg(records[row]->experts[i]).arg(records[row]->weights[i], 0, 'f', 3)));
    }
    token_grid_->setVerticalHeaderLabels(row_labels);

    const int64_t layer = token_layer_->currentData().toLongLong();
    auto* chart = new QChart();
    chart->legend()->setAlignment(Qt::AlignBottom);
    for (const RoutingRecord* r : records) {
        if (r->layer != layer || r->router_logits.empty()) continue;
        const RouterScores scores = explain_routing(moe, r->router_logits, snapshot_.score_bias[layer]);
        auto* score_set = new QBarSet(tr("score (%1)").arg(moe.scoring == ScoringFunction::Sigmoid ? "sigmoid" : "softmax"));
        auto* selection_set = new QBarSet(tr("selection score (bias-corrected, other groups masked)"));
        QStringList categories;
        for (int64_t e = 0; e < moe.n_routed_experts; ++e) {
            *score_set << scores.scores[size_t(e)];
            *selection_set << scores.selection_scores[size_t(e)];
            categories << QString::number(e);
        }
        auto* series = new QBarSeries();
        series->append(score_set);
        series->append(selection_set);
        chart->addSeries(series);
        auto* experts_axis = new QBarCategoryAxis();
        experts_axis->append(categories);
        chart->addAxis(experts_axis, Qt::AlignBottom);
        series->attachAxis(experts_axis);
        auto* value_axis = new QValueAxis();
        chart->addAxis(value_axis, Qt::AlignLeft);
        series->attachAxis(value_axis);
        // Group boundaries of group-limited routing, drawn on a hidden axis aligned with the bar slots.
        if (scores.group_size < moe.n_routed_experts) {
            auto* slot_axis = new QValueAxis();
            slot_axis->setRange(-0.5, double(moe.n_routed_experts) - 0.5);
            slot_axis->setVisible(false);
            chart->addAxis(slot_axis, Qt::AlignBottom);
            const double top = std::max(1.0, value_axis->max());
            for (int64_t g = scores.group_size; g < moe.n_routed_experts; g += scores.group_size) {
                auto* boundary = new QLineSeries();
                boundary->setName(tr("group boundary"));
                boundary->setPen(QPen(QColor(128, 128, 128), 1.5, Qt::DashLine));
                boundary->append(double(g) - 0.5, 0);
                boundary->append(double(g) - 0.5, top);
                chart->addSeries(boundary);
                boundary->attachAxis(slot_axis);
                boundary->attachAxis(value_axis);
                if (g > scores.group_size)
                    for (auto* marker : chart->legend()->markers(boundary)) marker->setVisible(false);
            }
        }
        QStringList chosen;
        for (size_t i = 0; i < scores.chosen.size(); ++i)
            chosen << QStringLiteral("E%1 (%2)").arg(scores.chosen[i]).arg(scores.weights[i], 0, 'f', 3);
        const QString token = position < int64_t(snapshot_.token_texts.size()) ? snapshot_.token_texts[size_t(position)] : QString();
        chart->setTitle(tr("Token %1 “%2”, layer %3 → %4").arg(position).arg(token.toHtmlEscaped()).arg(layer).arg(chosen.join(", ")));
    }
    QChart* previous = score_chart_->chart();
    score_chart_->setChart(chart);
    delete previous;
}

void InspectorPage::refresh_coactivation() {
    if (!snapshot_.moe || coactivation_layer_->currentIndex() < 0) return;
    const int64_t experts = snapshot_.moe->n_routed_experts;
    const int64_t layer = coactivation_layer_->currentData().toLongLong();
    const auto p = co_activation(snapshot_.routing, layer, experts, selection());
    coactivation_map_->set_title(tr("P(expert b | expert a), layer %1 — row a, column b").arg(layer));
    coactivation_map_->set_data(int(experts), int(experts), p, numbered("a=", int(experts)), numbered("", int(experts)));

    flow_table_->setRowCount(0);
    const int next_index = coactivation_layer_->currentIndex() + 1;
    if (next_index >= coactivation_layer_->count()) return;
    const int64_t next = coactivation_layer_->itemData(next_index).toLongLong();
    const auto flows = expert_flow(snapshot_.routing, layer, next, 20, selection());
    flow_table_->setRowCount(int(flows.size()));
    for (size_t i = 0; i < flows.size(); ++i) {
        flow_table_->setItem(int(i), 0, cell(tr("layer %1 · E%2").arg(layer).arg(flows[i].from_expert)));
        flow_table_->setItem(int(i), 1, cell(tr("layer %1 · E%2").arg(next).arg(flows[i].to_expert)));
        flow_table_->setItem(int(i), 2, cell(QString::number(flows[i].tokens)));
    }
    fit_flow_table();
}

void InspectorPage::fit_flow_table() {
    // As wide as its columns, so that neither a header nor a cell is cut and it never scrolls sideways.
    QHeaderView* header = flow_table_->horizontalHeader();
    header->resizeSections(QHeaderView::ResizeToContents);
    flow_table_->setMinimumWidth(header->length() + 2 * flow_table_->frameWidth() + flow_table_->verticalScrollBar()->sizeHint().width());
}

void InspectorPage::refresh_attention() {
    if (attention_layer_->currentIndex() < 0) return;
    const int64_t layer = attention_layer_->currentData().toLongLong();
    auto found = snapshot_.attention.find(layer);
    const int64_t heads = found == snapshot_.attention.end() ? 0 : found->second.heads;
    attention_head_->setMaximum(std::max<int64_t>(0, heads - 1));
    // Rows are the captured queries only (a view opened mid-reply captures from then on), columns every key up
    // to the last of them.
    std::vector<int64_t> positions;
    if (found != snapshot_.attention.end())
        for (const auto& [position, row] : found->second.rows) positions.push_back(position);
    const int64_t keys = positions.empty() ? 0 : positions.back() + 1;
    auto matrix = [&](int64_t head) {
        std::vector<double> values(positions.size() * size_t(keys), 0.0);
        for (size_t r = 0; r < positions.size(); ++r) {
            const std::vector<float>& row = found->second.rows.at(positions[r]);
            const int64_t row_keys = positions[r] + 1;
            for (int64_t k = 0; k < row_keys; ++k) values[r * size_t(keys) + size_t(k)] = row[size_t(head * row_keys + k)];
        }
        return values;
    };
    while (int64_t(head_maps_.size()) < heads) {
        auto* map = new HeatmapWidget();
        map->set_compact(true);
        const int index = int(head_maps_.size());
        connect(map, &HeatmapWidget::cell_clicked, this, [this, index] { attention_head_->setValue(index); });
        const int columns = 4;
        head_grid_->addWidget(map, index / columns, index % columns);
        head_maps_.push_back(map);
    }
    for (size_t h = 0; h < head_maps_.size(); ++h) {
        head_maps_[h]->setVisible(int64_t(h) < heads);
        if (int64_t(h) >= heads) continue;
        head_maps_[h]->set_title(tr("head %1").arg(h));
        head_maps_[h]->set_data(int(positions.size()), int(keys), matrix(int64_t(h)), {}, {});
    }
    auto label = [&](int64_t position) {
        QString text = position < int64_t(snapshot_.token_texts.size()) ? snapshot_.token_texts[size_t(position)] : QString();
        text.replace('\n', QStringLiteral("⏎")).replace(' ', QStringLiteral("·"));
        return QStringLiteral("%1 %2").arg(position).arg(text);
    };
    QStringList row_labels, column_labels;
    for (int64_t position : positions) row_labels << label(position);
    for (int64_t k = 0; k < keys; ++k) column_labels << label(k);
    const int64_t head = attention_head_->value();
    if (heads) {
        head_detail_->set_title(tr("Layer %1, head %2 — %3 query rows captured, %4 keys").arg(layer).arg(head).arg(positions.size()).arg(keys));
        head_detail_->set_data(int(positions.size()), int(keys), matrix(head), row_labels, column_labels);
    } else {
        head_detail_->set_title(tr("Layer %1").arg(layer));
        head_detail_->set_empty_text(tr("No attention captured for layer %1.\nUse Inspect on a message in Chat (it re-runs that message's "
                                        "forward pass), or keep this view open while a reply is generated.")
                                         .arg(layer));
        head_detail_->set_data(0, 0, {}, {}, {});
    }
}

bool InspectorPage::export_png(const QString& path) { return tabs_->currentWidget()->grab().save(path, "PNG"); }

bool InspectorPage::export_trace_csv(const QString& path) const {
    const auto snapshot = feed_->snapshot();
    return write_file(path, routing_trace_csv(snapshot.routing, snapshot.token_ids));
}

bool InspectorPage::export_load_csv(const QString& path) const {
    const auto snapshot = feed_->snapshot();
    if (!snapshot.moe) return false;
    return write_file(path, load_matrix_csv(load_matrix(snapshot.routing, snapshot.moe->n_routed_experts)));
}

}  // namespace mwb::ui
