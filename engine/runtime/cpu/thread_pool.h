// A fixed set of worker threads for data-parallel loops of the CPU backend.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mwb {

class ThreadPool {
public:
    explicit ThreadPool(int threads);  // 0: all hardware threads
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return int(workers_.size()) + 1; }
    // Calls body(begin, end) on disjoint ranges covering [0, count); returns when all are done.
    void parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body);

private:
    void work(int index);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(int64_t, int64_t)>* body_ = nullptr;
    int64_t count_ = 0;
    uint64_t generation_ = 0;
    int pending_ = 0;
    bool stopping_ = false;
};

}  // namespace mwb
