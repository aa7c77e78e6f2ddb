// A cumulative histogram of durations with fixed bucket bounds, in the shape Prometheus histograms take.
#pragma once

#include <cstdint>
#include <vector>

namespace mwb {

class LatencyHistogram {
public:
    explicit LatencyHistogram(std::vector<double> upper_bounds_s) : bounds_(std::move(upper_bounds_s)), counts_(bounds_.size(), 0) {}

    void observe(double seconds) {
        for (size_t i = 0; i < bounds_.size(); ++i)
            if (seconds <= bounds_[i]) ++counts_[i];
        ++count_;
        sum_ += seconds;
    }

    const std::vector<double>& upper_bounds() const { return bounds_; }
    // Observations at or below each bound (cumulative, as Prometheus' `le` buckets); +Inf is count().
    const std::vector<int64_t>& cumulative_counts() const { return counts_; }
    int64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> bounds_;
    std::vector<int64_t> counts_;
    int64_t count_ = 0;
    double sum_ = 0;
};

}  // namespace mwb
