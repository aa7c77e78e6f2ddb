// Shared by the GPU suites: device buffers with checked copies, and comparisons in the terms of the fixtures README.
#pragma once

#include <QtTest>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include "engine/io/dtype.h"
#include "engine/train/lora_adapter.h"
#include "kernels/cuda_backend.h"
#include "kernels/kernels.h"
#include "tests/support/fixture.h"

// Called from each GPU suite's initTestCase: a clear failure instead of a crash where no device exists.
inline void require_cuda_device() {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) QFAIL("no CUDA device: the gpu-labelled suites need one");
}

template <class T>
class DeviceArray {
public:
    explicit DeviceArray(size_t count) : count_(count) {
        if (cudaMalloc(&data_, std::max<size_t>(count, 1) * sizeof(T)) != cudaSuccess) qFatal("cudaMalloc failed");
    }
    explicit DeviceArray(const std::vector<T>& values) : DeviceArray(values.size()) { upload(values); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    ~DeviceArray() { cudaFree(data_); }
    void upload(const std::vector<T>& values) {
        if (cudaMemcpy(data_, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess) qFatal("upload failed");
    }
    std::vector<T> download() const {
        std::vector<T> values(count_);
        if (cudaDeviceSynchronize() != cudaSuccess || cudaGetLastError() != cudaSuccess) qFatal("a kernel failed");
        if (cudaMemcpy(values.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess) qFatal("download failed");
        return values;
    }
    T* get() const { return data_; }

private:
    T* data_ = nullptr;
    size_t count_ = 0;
};

inline double cosine(const float* a, const float* b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
    return ab / std::sqrt(aa * bb + 1e-30);
}

inline size_t argmax(const float* values, size_t n) { return size_t(std::max_element(values, values + n) - values); }

inline std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = mwb::float_to_bf16(values[i]);
    return bits;
}

inline std::vector<float> from_bf16(const std::vector<uint16_t>& bits) {
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) values[i] = mwb::bf16_to_float(bits[i]);
    return values;
}

inline mwb::cuda::bf16* as_bf16(const DeviceArray<uint16_t>& array) { return reinterpret_cast<mwb::cuda::bf16*>(array.get()); }

// n values drawn from N(0, scale²), reproducibly from `seed`.
inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 random(seed);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> values(n);
    for (auto& v : values) v = normal(random);
    return values;
}

// A fixture model on the CUDA backend; a failure to start it ends the suite.
inline std::unique_ptr<mwb::CudaBackend> cuda_backend(const mwb::testing::Fixture& f, mwb::CudaOptions options = {}) {
    auto backend = mwb::make_cuda_backend(f.graph, options);
    if (!backend) qFatal("%s", backend.error().message.c_str());
    return std::move(backend.value());
}

// A LoRA adapter of rank 8 on every linear layer of the model, B uniform in ±0.5/√rank (PEFT's zero B would leave
// the model unchanged).
inline mwb::train::LoraAdapter random_lora_adapter(const mwb::ModelGraph& graph, uint64_t seed, double dropout = 0) {
    mwb::train::LoraConfig config;
    config.dropout = dropout;
    for (const auto& [name, weight] : mwb::train::linear_modules(graph)) config.target_modules.push_back(name);
    auto adapter = mwb::train::LoraAdapter::create(graph, config, seed);
    if (!adapter) qFatal("%s", adapter.error().message.c_str());
    std::mt19937_64 random(seed + 1);
    const float bound = 0.5f / std::sqrt(float(config.rank));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    for (mwb::train::LoraModule& m : adapter->modules())
        for (float& b : m.b) b = uniform(random);
    return std::move(adapter.value());
}
