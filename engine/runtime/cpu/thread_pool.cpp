#include "engine/runtime/cpu/thread_pool.h"

#include <algorithm>
#include <cstdint>

namespace mwb {

ThreadPool::ThreadPool(int threads) {
    if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
}

namespace {

void run_share(const std::function<void(int64_t, int64_t)>& body, int64_t count, int index, int parts) {
    const int64_t begin = count * index / parts, end = count * (index + 1) / parts;
    if (begin < end) body(begin, end);
}

}  // namespace

void ThreadPool::parallel_for(int64_t count, const std::function<void(int64_t, int64_t)>& body) {
    if (count <= 0) return;
    if (workers_.empty() || count == 1) {
        body(0, count);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        body_ = &body;
        count_ = count;
        pending_ = int(workers_.size());
        ++generation_;
    }
    wake_.notify_all();
    run_share(body, count, 0, size());
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
}

void ThreadPool::work(int index) {
    uint64_t seen = 0;
    for (;;) {
        const std::function<void(int64_t, int64_t)>* body;
        int64_t count;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
            if (stopping_) return;
            seen = generation_;
            body = body_;
            count = count_;
        }
        run_share(*body, count, index, size());
        {
            std::lock_guard lock(mutex_);
            --pending_;
        }
        done_.notify_one();
    }
}

}  // namespace mwb
