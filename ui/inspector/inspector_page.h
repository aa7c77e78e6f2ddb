// The Inspector: live expert routing and attention of the generation in progress, or of a conversation message
// re-run for it — expert-load heat map with per-layer imbalance, per-token routing with the router's scores,
// co-activation and expert flow, attention heads (captured rows only, zoomable).
#pragma once

#include <QWidget>

#include <cstdint>
#include <functional>

#include "app/services/inspector_feed.h"

class QChartView;
class QComboBox;
class QLabel;
class QListWidget;
class QSpinBox;
class QTabWidget;
class QTableWidget;
class QGridLayout;

namespace mwb::ui {

class HeatmapWidget;
class ImageAttentionView;

class InspectorPage : public QWidget {
    Q_OBJECT
public:
    enum class View { ExpertLoad, PerToken, CoActivation, Attention, ImageAttention };

    explicit InspectorPage(app::InspectorFeed* feed, QWidget* parent = nullptr);

    void show_view(View view);
    void select_token(int position);
    // Redraws from the feed now (the timer does this ten times a second while something changed).
    void refresh();

    bool export_png(const QString& path);
    ImageAttentionView* image_attention_view() const { return image_view_; }
    bool export_trace_csv(const QString& path) const;
    bool export_load_csv(const QString& path) const;

    // The layer the attention view shows: the one an inspection of a message captures.
    qint64 attention_layer() const;
    QString status_text() const;

signals:
    // The attention view moved to a layer the inspected message has no capture of: re-run it for that layer.
    void captureRequested(qint64 layer);
    void statusMessage(QString text);

protected:
    void showEvent(QShowEvent* event) override;
    void hideEvent(QHideEvent* event) override;

private:
    QWidget* build_load_view();
    QWidget* build_token_view();
    QWidget* build_coactivation_view();
    QWidget* build_attention_view();
    void update_attention_watch();
    void refresh_load();
    void refresh_token();
    void refresh_coactivation();
    void refresh_attention();
    void fit_flow_table();
    TokenRange selection() const;
    // Asks for a file name (in the home folder by default), writes it and says where it went, or why not.
    void export_with_dialog(const QString& caption, const QString& file_name, const QString& filter,
                            const std::function<bool(const QString&)>& write);

    app::InspectorFeed* feed_;
    app::InspectorSnapshot snapshot_;
    uint64_t shown_version_ = ~uint64_t(0);

    QTabWidget* tabs_;
    QComboBox* scope_;
    QSpinBox* range_first_;
    QSpinBox* range_last_;
    QComboBox* metric_;
    QLabel* status_;

    HeatmapWidget* load_map_;
    HeatmapWidget* shared_map_;
    QTableWidget* imbalance_table_;

    QListWidget* token_list_;
    QTableWidget* token_grid_;
    QComboBox* token_layer_;
    QChartView* score_chart_;

    QComboBox* coactivation_layer_;
    HeatmapWidget* coactivation_map_;
    QTableWidget* flow_table_;

    QComboBox* attention_layer_;
    QSpinBox* attention_head_;
    QGridLayout* head_grid_;
    std::vector<HeatmapWidget*> head_maps_;
    HeatmapWidget* head_detail_;
    QComboBox* attention_zoom_;

    ImageAttentionView* image_view_;
};

}  // namespace mwb::ui
