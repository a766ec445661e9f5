// reluserve-wire-bench: what reading a ModelInferRequest out of gRPC's
// received slices costs, against the copy any reader must make when the
// tensor bytes are spread over several slices (a memcpy of every slice into
// one buffer). The request is the forward+backward one reluserve-load sends
// to the default layer (x [N, 3072], grad_y [N, 100], four outputs), cut
// into slices of 16 or 64 KiB, or left whole, as gRPC hands them over. If
// protobuf's parse costs about one copy, a hand-written reader that keeps
// the bytes in place can only save the parse's bookkeeping.
#include <benchmark/benchmark.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "grpc_service.pb.h"

namespace {

constexpr int64_t kInFeatures = 3072;
constexpr int64_t kOutFeatures = 100;

std::string RandomBytes(size_t bytes) {
  std::mt19937 generator(11);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(generator());
  return out;
}

inference::ModelInferRequest ForwardBackwardRequest(int64_t batch) {
  inference::ModelInferRequest request;
  request.set_model_name("linear_relu");
  request.set_id("12345");
  for (const auto& [name, features] :
       {std::pair<const char*, int64_t>{"x", kInFeatures},
        std::pair<const char*, int64_t>{"grad_y", kOutFeatures}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(batch);
    input->add_shape(features);
    request.add_raw_input_contents(
        RandomBytes(static_cast<size_t>(batch * features) * sizeof(float)));
  }
  for (const char* name : {"y", "grad_x", "grad_weight", "grad_bias"}) {
    request.add_outputs()->set_name(name);
  }
  return request;
}

// The serialized request as slices of `slice_bytes` (0: one slice).
grpc::ByteBuffer Received(int64_t batch, size_t slice_bytes) {
  const std::string wire = ForwardBackwardRequest(batch).SerializeAsString();
  if (slice_bytes == 0) slice_bytes = wire.size();
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < wire.size(); at += slice_bytes) {
    slices.emplace_back(wire.data() + at,
                        std::min(slice_bytes, wire.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// What the server does per call: a fresh message, protobuf's parse.
void Parse(benchmark::State& state) {
  const grpc::ByteBuffer received =
      Received(state.range(0), static_cast<size_t>(state.range(1)) << 10);
  for (auto _ : state) {
    inference::ModelInferRequest request;
    grpc::ByteBuffer bytes(received);
    if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
             &bytes, &request)
             .ok()) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(request.raw_input_contents(0).data());
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(received.Length()));
}

// The floor of any reader over spread slices: one copy of every byte into a
// fresh buffer.
void Copy(benchmark::State& state) {
  const grpc::ByteBuffer received =
      Received(state.range(0), static_cast<size_t>(state.range(1)) << 10);
  for (auto _ : state) {
    std::vector<grpc::Slice> slices;
    received.Dump(&slices).IgnoreError();
    std::string contiguous;
    contiguous.reserve(received.Length());
    for (const grpc::Slice& slice : slices) {
      contiguous.append(reinterpret_cast<const char*>(slice.begin()),
                        slice.size());
    }
    benchmark::DoNotOptimize(contiguous.data());
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(received.Length()));
}

void Shapes(benchmark::internal::Benchmark* benchmark) {
  benchmark->ArgNames({"N", "slice_kib"});
  for (int64_t batch : {1, 100}) {
    for (int64_t slice_kib : {16, 64, 0}) benchmark->Args({batch, slice_kib});
  }
}

BENCHMARK(Parse)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(Copy)->Apply(Shapes)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  if (!reluserve::bench::InitializeWithDefaults(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
