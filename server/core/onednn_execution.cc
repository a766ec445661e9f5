#include "server/core/onednn_execution.h"

#include <omp.h>

#include <atomic>
#include <unordered_map>
#include <utility>

namespace reluserve::onednn {
namespace {

using dnnl::memory;

constexpr size_t kScratchpadAlignment = 64;
// Evicted primitives leave their entries behind; start over past this.
constexpr size_t kMaxBoundPrimitives = 1024;

// The calling thread's stream, scratchpad and, per primitive it has run,
// the argument memory objects.
struct ThreadBindings {
  dnnl::stream stream{CpuEngine()};
  std::unordered_map<uint64_t, std::unordered_map<int, memory>> args;
  std::vector<uint8_t> scratchpad;
};

ThreadBindings& LocalBindings() {
  thread_local ThreadBindings bindings;
  return bindings;
}

void* AlignedScratchpad(std::vector<uint8_t>& buffer, size_t bytes) {
  if (buffer.size() < bytes + kScratchpadAlignment) {
    buffer.resize(bytes + kScratchpadAlignment);
  }
  auto address = reinterpret_cast<uintptr_t>(buffer.data());
  address = (address + kScratchpadAlignment - 1) & ~(kScratchpadAlignment - 1);
  return reinterpret_cast<void*>(address);
}

}  // namespace

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine =
      new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

dnnl::primitive_attr UserScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::memory::data_type DataTypeOf(Precision precision) {
  return precision == Precision::kBFloat16 ? memory::data_type::bf16
                                           : memory::data_type::f32;
}

uint64_t NextPrimitiveId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

memory Wrap(const memory::desc& desc, const void* data) {
  return memory(desc, CpuEngine(), const_cast<void*>(data));
}

// The CPU engine runs primitives synchronously on the calling thread (the
// OpenMP runtime), so each Execute has finished before the next one may grow
// the thread's scratchpad.
void Execute(uint64_t key, const dnnl::primitive& primitive,
             const memory::desc& scratchpad,
             std::initializer_list<Binding> bindings) {
  ThreadBindings& local = LocalBindings();
  auto found = local.args.find(key);
  if (found == local.args.end()) {
    if (local.args.size() >= kMaxBoundPrimitives) local.args.clear();
    std::unordered_map<int, memory> made;
    for (const Binding& binding : bindings) {
      made.emplace(binding.id,
                   binding.fixed != nullptr
                       ? *binding.fixed
                       : memory(*binding.desc, CpuEngine(), DNNL_MEMORY_NONE));
    }
    if (scratchpad.get_size() > 0) {
      made.emplace(DNNL_ARG_SCRATCHPAD,
                   memory(scratchpad, CpuEngine(), DNNL_MEMORY_NONE));
    }
    found = local.args.emplace(key, std::move(made)).first;
  }
  std::unordered_map<int, memory>& args = found->second;
  for (const Binding& binding : bindings) {
    if (binding.fixed == nullptr) {
      args.at(binding.id).set_data_handle(const_cast<void*>(binding.data));
    }
  }
  if (scratchpad.get_size() > 0) {
    args.at(DNNL_ARG_SCRATCHPAD)
        .set_data_handle(
            AlignedScratchpad(local.scratchpad, scratchpad.get_size()));
  }
  primitive.execute(local.stream, args);
  local.stream.wait();
}

void SetThreads(int threads) { omp_set_num_threads(threads); }

std::string CpuIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "unknown";
  }
}

}  // namespace reluserve::onednn
