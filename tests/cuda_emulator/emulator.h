// Internals shared by the emulator's runtime, device and cuBLAS parts (tests only).
#pragma once

#include <functional>
#include <string>

#include <cuda_runtime.h>

namespace mwb_emulator {

// What a piece of device work reports: nothing (cudaSuccess), or the sticky error it leaves and why.
struct Fault {
    cudaError_t error = cudaSuccess;
    std::string message;
};

// Work queued on a stream. It runs when the stream is synchronised, as on a device, so a host that reads results
// too early, or changes an input it has already handed over, sees the consequences. A fault becomes the sticky
// error of the context.
using Work = std::function<Fault()>;

// Queues `work` on `stream` (or records it into the stream's capture). Fails as the runtime does, for example on
// the legacy stream while this thread captures.
cudaError_t enqueue(cudaStream_t stream, const std::string& what, Work work);

// Records a failed call for cudaGetLastError and returns the error.
cudaError_t record(cudaError_t error);

// Empty when [pointer, pointer + bytes) lies inside one live device allocation; else a message naming `operand`.
std::string check_device_range(const void* pointer, size_t bytes, const std::string& operand);

// Runs every block of a kernel, one after another, each thread a fiber. Empty, or a message that names the
// kernel, the block and the thread that broke a rule (a deadlock, a warp-level sync after lanes returned).
std::string run_kernel(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

// Prints a diagnostic to stderr: the runtime's error codes say little, the emulator can say exactly what failed.
void report(const std::string& message);

}  // namespace mwb_emulator
