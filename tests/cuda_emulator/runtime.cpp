// The runtime side of the emulator: device memory with a budget (cudaMemGetInfo and out-of-memory behave as on a
// device), streams whose work runs only when it is synchronised, stream capture into graphs with the calls a
// capturing thread may not make, and errors as the runtime reports them: sticky after a kernel fault.
//
// Environment: MWB_CUDA_EMULATOR_MEMORY_MIB (device memory, default 4096), MWB_CUDA_EMULATOR_MULTIPROCESSORS
// (what the device reports, default 132 as an H100 SXM, which the backend's launch planning reads).
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tests/cuda_emulator/emulator.h"

struct Operation {
    std::string what;
    mwb_emulator::Work work;
};
struct CUgraph_st {
    std::vector<Operation> operations;
};
struct CUgraphExec_st {
    std::vector<Operation> operations;
};
struct CUstream_st {
    bool blocking = true;  // ordered with the legacy stream (not created with cudaStreamNonBlocking)
    std::deque<Operation> pending;
    CUgraph_st* capture = nullptr;  // while capturing
    bool capture_invalidated = false;
    std::thread::id capture_thread;
};

namespace mwb_emulator {

namespace {

constexpr size_t kGranularity = 512;              // what an allocation costs at least, as cudaMalloc rounds
constexpr size_t kPoisonLimit = size_t(256) << 20;  // allocations up to this size start filled with 0xff

size_t environment_number(const char* name, size_t fallback) {
    const char* text = std::getenv(name);
    if (!text || !*text) return fallback;
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    return end && *end == '\0' && value > 0 ? size_t(value) : fallback;
}

struct Context {
    std::recursive_mutex mutex;
    std::map<uintptr_t, size_t> device;  // start → bytes
    std::map<uintptr_t, size_t> pinned;
    size_t total = environment_number("MWB_CUDA_EMULATOR_MEMORY_MIB", 4096) << 20;
    size_t used = 0;
    int multiprocessors = int(environment_number("MWB_CUDA_EMULATOR_MULTIPROCESSORS", 132));
    cudaError_t sticky = cudaSuccess;
    CUstream_st legacy;
    std::set<CUstream_st*> streams;
};

Context& context() {
    static Context* instance = new Context();  // never destroyed: streams and memory may outlive static destructors
    return *instance;
}

using Lock = std::lock_guard<std::recursive_mutex>;
thread_local cudaError_t last_error = cudaSuccess;
thread_local CUstream_st* capturing_here = nullptr;  // the stream this thread captures, in global or thread-local mode

size_t rounded(size_t bytes) { return (std::max<size_t>(bytes, 1) + kGranularity - 1) / kGranularity * kGranularity; }

// The allocation of `table` that contains `pointer`, or table.end().
std::map<uintptr_t, size_t>::const_iterator containing(const std::map<uintptr_t, size_t>& table, const void* pointer) {
    const auto address = reinterpret_cast<uintptr_t>(pointer);
    auto it = table.upper_bound(address);
    if (it == table.begin()) return table.end();
    --it;
    return address < it->first + std::max<size_t>(it->second, 1) ? it : table.end();
}

CUstream_st& resolve(cudaStream_t stream) { return stream ? *stream : context().legacy; }

void drop_all_pending() {
    Context& c = context();
    c.legacy.pending.clear();
    for (CUstream_st* s : c.streams) s->pending.clear();
}

void drain(CUstream_st& stream) {
    Context& c = context();
    while (!stream.pending.empty() && c.sticky == cudaSuccess) {
        Operation operation = std::move(stream.pending.front());
        stream.pending.pop_front();
        const Fault fault = operation.work();
        if (fault.error != cudaSuccess) {
            c.sticky = fault.error;
            report(operation.what + ": " + fault.message);
            drop_all_pending();
        }
    }
}

// What an operation on the legacy stream waits for: the blocking streams, then the legacy stream itself.
void drain_legacy() {
    for (CUstream_st* s : context().streams)
        if (s->blocking) drain(*s);
    drain(context().legacy);
}

void drain_all() {
    drain(context().legacy);
    for (CUstream_st* s : context().streams) drain(*s);
}

// A call that this thread may not make while it captures: the capture is invalidated, as the runtime does.
bool refused_while_capturing() {
    if (!capturing_here) return false;
    capturing_here->capture_invalidated = true;
    return true;
}

enum class Memory { Device, Pinned, Pageable };

Memory memory_of(const void* pointer) {
    Context& c = context();
    if (containing(c.device, pointer) != c.device.end()) return Memory::Device;
    if (containing(c.pinned, pointer) != c.pinned.end()) return Memory::Pinned;
    return Memory::Pageable;
}

// Checks a copy's direction and ranges; empty or a message.
std::string check_copy(void* target, const void* source, size_t bytes, cudaMemcpyKind kind) {
    const bool device_target = memory_of(target) == Memory::Device, device_source = memory_of(source) == Memory::Device;
    switch (kind) {
        case cudaMemcpyHostToDevice:
            if (!device_target || device_source) return "cudaMemcpyHostToDevice needs a device target and a host source";
            break;
        case cudaMemcpyDeviceToHost:
            if (device_target || !device_source) return "cudaMemcpyDeviceToHost needs a host target and a device source";
            break;
        case cudaMemcpyDeviceToDevice:
            if (!device_target || !device_source) return "cudaMemcpyDeviceToDevice needs device memory on both sides";
            break;
        case cudaMemcpyHostToHost:
        case cudaMemcpyDefault: break;
    }
    if (device_target)
        if (auto problem = check_device_range(target, bytes, "the copy's target"); !problem.empty()) return problem;
    if (device_source)
        if (auto problem = check_device_range(source, bytes, "the copy's source"); !problem.empty()) return problem;
    return {};
}

}  // namespace

cudaError_t record(cudaError_t error) {
    if (error != cudaSuccess) last_error = error;
    return error;
}

void report(const std::string& message) { std::fprintf(stderr, "CUDA emulator: %s\n", message.c_str()); }

std::string check_device_range(const void* pointer, size_t bytes, const std::string& operand) {
    Context& c = context();
    Lock lock(c.mutex);
    const auto it = containing(c.device, pointer);
    char text[256];
    if (it == c.device.end()) {
        std::snprintf(text, sizeof text, "%s at %p is outside every device allocation", operand.c_str(), pointer);
        return text;
    }
    const size_t offset = reinterpret_cast<uintptr_t>(pointer) - it->first;
    if (offset + bytes > it->second) {
        std::snprintf(text, sizeof text, "%s spans %zu bytes from offset %zu of a %zu-byte allocation: %zu bytes outside it", operand.c_str(),
                      bytes, offset, it->second, offset + bytes - it->second);
        return text;
    }
    return {};
}

cudaError_t enqueue(cudaStream_t handle, const std::string& what, Work work) {
    Context& c = context();
    Lock lock(c.mutex);
    if (c.sticky) return c.sticky;
    CUstream_st& stream = resolve(handle);
    if (!handle && capturing_here && capturing_here->blocking) {
        capturing_here->capture_invalidated = true;  // the legacy stream would wait for the capturing stream
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (stream.capture) stream.capture->operations.push_back({what, std::move(work)});
    else stream.pending.push_back({what, std::move(work)});
    return cudaSuccess;
}

}  // namespace mwb_emulator

using namespace mwb_emulator;

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
        case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError() {
    Lock lock(context().mutex);
    if (context().sticky) return context().sticky;
    const cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return record(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
    if (!properties) return record(cudaErrorInvalidValue);
    if (device != 0) return record(cudaErrorInvalidDevice);
    *properties = {};
    std::snprintf(properties->name, sizeof properties->name, "CUDA emulator (CPU)");
    properties->totalGlobalMem = context().total;
    properties->multiProcessorCount = context().multiprocessors;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    Context& c = context();
    Lock lock(c.mutex);
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    drain_all();
    return record(c.sticky);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!free_bytes || !total_bytes) return record(cudaErrorInvalidValue);
    *free_bytes = c.total - c.used;
    *total_bytes = c.total;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!pointer) return record(cudaErrorInvalidValue);
    *pointer = nullptr;
    if (c.sticky) return c.sticky;
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    const size_t cost = rounded(bytes);
    if (c.used + cost > c.total) return record(cudaErrorMemoryAllocation);
    void* memory = nullptr;
    if (posix_memalign(&memory, 256, std::max<size_t>(bytes, 1)) != 0) return record(cudaErrorMemoryAllocation);
    if (bytes <= kPoisonLimit) std::memset(memory, 0xff, bytes);  // device memory starts as garbage, not zeros
    c.device[reinterpret_cast<uintptr_t>(memory)] = bytes;
    c.used += cost;
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!pointer) return cudaSuccess;
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    drain_all();  // cudaFree waits for the device
    const auto it = c.device.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == c.device.end()) {
        report("cudaFree of a pointer that is not the start of a live device allocation");
        return record(cudaErrorInvalidValue);
    }
    c.used -= rounded(it->second);
    c.device.erase(it);
    std::free(pointer);
    return c.sticky;
}

cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!pointer) return record(cudaErrorInvalidValue);
    *pointer = nullptr;
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    void* memory = nullptr;
    if (posix_memalign(&memory, 64, std::max<size_t>(bytes, 1)) != 0) return record(cudaErrorMemoryAllocation);
    c.pinned[reinterpret_cast<uintptr_t>(memory)] = bytes;
    *pointer = memory;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!pointer) return cudaSuccess;
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    drain_all();
    const auto it = c.pinned.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == c.pinned.end()) {
        report("cudaFreeHost of a pointer that cudaMallocHost did not return");
        return record(cudaErrorInvalidValue);
    }
    c.pinned.erase(it);
    std::free(pointer);
    return c.sticky;
}

cudaError_t cudaMemcpy(void* target, const void* source, size_t bytes, cudaMemcpyKind kind) {
    Context& c = context();
    Lock lock(c.mutex);
    if (c.sticky) return c.sticky;
    if (refused_while_capturing()) return record(cudaErrorStreamCaptureUnsupported);
    if (bytes == 0) return cudaSuccess;
    if (auto problem = check_copy(target, source, bytes, kind); !problem.empty()) {
        report("cudaMemcpy: " + problem);
        return record(cudaErrorInvalidValue);
    }
    drain_legacy();
    if (c.sticky) return c.sticky;
    std::memmove(target, source, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* target, const void* source, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    Context& c = context();
    Lock lock(c.mutex);
    if (c.sticky) return c.sticky;
    if (bytes == 0) return cudaSuccess;
    if (auto problem = check_copy(target, source, bytes, kind); !problem.empty()) {
        report("cudaMemcpyAsync: " + problem);
        return record(cudaErrorInvalidValue);
    }
    CUstream_st& s = resolve(stream);
    const bool pageable_source = memory_of(source) == Memory::Pageable, pageable_target = memory_of(target) == Memory::Pageable;
    if ((pageable_source || pageable_target) && s.capture) {
        s.capture_invalidated = true;  // a graph cannot copy from or to pageable memory
        report("cudaMemcpyAsync with pageable host memory while capturing");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (pageable_target) {
        // The runtime copies into pageable memory synchronously: after the stream's earlier work.
        if (stream) drain(s);
        else drain_legacy();
        if (c.sticky) return c.sticky;
        std::memmove(target, source, bytes);
        return cudaSuccess;
    }
    if (pageable_source) {
        // ... and stages pageable sources at once: the caller may reuse its buffer when the call returns.
        auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(source),
                                                                    static_cast<const unsigned char*>(source) + bytes);
        return record(enqueue(stream, "cudaMemcpyAsync", [target, staged] {
            std::memcpy(target, staged->data(), staged->size());
            return Fault{};
        }));
    }
    return record(enqueue(stream, "cudaMemcpyAsync", [target, source, bytes] {
        std::memmove(target, source, bytes);
        return Fault{};
    }));
}

cudaError_t cudaMemsetAsync(void* target, int value, size_t bytes, cudaStream_t stream) {
    Context& c = context();
    Lock lock(c.mutex);
    if (c.sticky) return c.sticky;
    if (bytes == 0) return cudaSuccess;
    if (auto problem = check_device_range(target, bytes, "the target"); !problem.empty()) {
        report("cudaMemsetAsync: " + problem);
        return record(cudaErrorInvalidValue);
    }
    return record(enqueue(stream, "cudaMemsetAsync", [target, value, bytes] {
        std::memset(target, value, bytes);
        return Fault{};
    }));
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!stream) return record(cudaErrorInvalidValue);
    auto* created = new CUstream_st();
    created->blocking = (flags & cudaStreamNonBlocking) == 0;
    c.streams.insert(created);
    *stream = created;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!stream || !c.streams.count(stream)) return record(cudaErrorInvalidResourceHandle);
    drain(*stream);  // the work already queued still completes
    if (capturing_here == stream) capturing_here = nullptr;
    delete stream->capture;
    c.streams.erase(stream);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    Context& c = context();
    Lock lock(c.mutex);
    CUstream_st& s = resolve(stream);
    if (s.capture || (!stream && capturing_here)) {
        (s.capture ? s : *capturing_here).capture_invalidated = true;
        report("cudaStreamSynchronize during stream capture");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (stream) drain(s);
    else drain_legacy();
    return record(c.sticky);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!stream) return record(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
    if (stream->capture) return record(cudaErrorInvalidValue);
    stream->capture = new CUgraph_st();
    stream->capture_invalidated = false;
    stream->capture_thread = std::this_thread::get_id();
    if (mode != cudaStreamCaptureModeRelaxed) capturing_here = stream;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    Context& c = context();
    Lock lock(c.mutex);
    if (!stream || !graph || !stream->capture) return record(cudaErrorInvalidValue);
    if (stream->capture_thread != std::this_thread::get_id()) return record(cudaErrorStreamCaptureWrongThread);
    CUgraph_st* captured = stream->capture;
    stream->capture = nullptr;
    if (capturing_here == stream) capturing_here = nullptr;
    if (stream->capture_invalidated) {
        delete captured;
        *graph = nullptr;
        return record(cudaErrorStreamCaptureInvalidated);
    }
    *graph = captured;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    Lock lock(context().mutex);
    if (!exec || !graph) return record(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{graph->operations};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    Lock lock(context().mutex);
    if (!exec) return record(cudaErrorInvalidValue);
    for (const Operation& operation : exec->operations)
        if (const cudaError_t error = enqueue(stream, "graph node " + operation.what, operation.work); error != cudaSuccess)
            return record(error);
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

namespace mwb_emulator {

void launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body) {
    const unsigned long long threads = 1ull * block.x * block.y * block.z;
    std::string problem;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
        problem = "grid (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) + ") out of range";
    else if (threads == 0 || threads > 1024 || block.z > 64)
        problem = std::to_string(threads) + " threads per block (at most 1024)";
    else if (shared_bytes > (48u << 10))
        problem = std::to_string(shared_bytes) + " bytes of dynamic shared memory (48 KiB without cudaFuncSetAttribute)";
    if (!problem.empty()) {
        report(std::string("launch of ") + kernel + ": " + problem);
        record(cudaErrorInvalidConfiguration);
        return;
    }
    record(enqueue(stream, std::string("kernel ") + kernel, [kernel, grid, block, shared_bytes, body = std::move(body)] {
        std::string failure = run_kernel(kernel, grid, block, shared_bytes, body);
        return failure.empty() ? Fault{} : Fault{cudaErrorLaunchFailure, std::move(failure)};
    }));
}

}  // namespace mwb_emulator
