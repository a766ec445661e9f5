#ifndef RELUSERVE_SERVER_CORE_ONEDNN_EXECUTION_H_
#define RELUSERVE_SERVER_CORE_ONEDNN_EXECUTION_H_

#include <cstdint>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dnnl.hpp"
#include "server/core/precision.h"

// The plumbing every oneDNN layer shares: one engine, a stream and bound
// memory objects per thread, user scratchpads from per-thread buffers, and
// the edge where oneDNN's exceptions become a status.
namespace reluserve::onednn {

// One process-wide CPU engine, never destroyed: per-thread streams and
// memory objects made on it may outlive any one layer.
const dnnl::engine& CpuEngine();

// Primitive attributes asking for a scratchpad the caller passes at
// execution (oneDNN's own is not safe to share between threads).
dnnl::primitive_attr UserScratchpadAttr();

dnnl::memory::data_type DataTypeOf(Precision precision);

// A number no other primitive of this process has: names a primitive's
// bound arguments in each thread's table.
uint64_t NextPrimitiveId();

// Wraps a caller's buffer; oneDNN only reads from inputs, so dropping const
// here does not let it write into them.
dnnl::memory Wrap(const dnnl::memory::desc& desc, const void* data);

// One argument of a primitive: either a caller's buffer, re-pointed every
// call, or a memory object fixed for the primitive's life (weights, bias).
struct Binding {
  int id;
  const dnnl::memory::desc* desc = nullptr;
  const void* data = nullptr;
  const dnnl::memory* fixed = nullptr;
};

// Runs `primitive` on the calling thread's stream with `bindings` and a
// scratchpad of the thread's, and waits for it. `key` names the primitive
// for this thread (from NextPrimitiveId, unique for the process's life).
// Making memory objects costs more than an N=1 kernel's work, so each
// thread makes them once per key and only re-points them afterwards.
void Execute(uint64_t key, const dnnl::primitive& primitive,
             const dnnl::memory::desc& scratchpad,
             std::initializer_list<Binding> bindings);

// The calling thread's OpenMP team size for the calls it makes.
void SetThreads(int threads);

// `buffer` grown to at least `count` elements; its data.
template <typename T>
T* Grown(std::vector<T>& buffer, size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// Runs `compute` with this thread's OpenMP team set to `threads`, turning
// oneDNN's exceptions and allocation failures into an Internal status at
// the core's edge.
template <typename Compute>
absl::Status Guarded(const char* what, int threads, Compute&& compute) {
  try {
    SetThreads(threads);
    compute();
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::InternalError(absl::StrCat("out of memory in ", what));
  }
}

// The instruction set oneDNN dispatches to on this machine, e.g.
// "avx512_core_bf16".
std::string CpuIsaName();

}  // namespace reluserve::onednn

#endif  // RELUSERVE_SERVER_CORE_ONEDNN_EXECUTION_H_
