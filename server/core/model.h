#ifndef RELUSERVE_SERVER_CORE_MODEL_H_
#define RELUSERVE_SERVER_CORE_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/precision.h"

namespace reluserve {

// One tensor a model takes or gives. Plain value type.
struct TensorSpec {
  std::string name;
  // -1 marks the batch dimension (only ever the first); every other
  // dimension is fixed. An output with no -1 is summed over the batch.
  std::vector<int64_t> shape;
  // The datatypes accepted (inputs) or available (outputs).
  std::vector<Precision> datatypes = {Precision::kFloat32,
                                      Precision::kBFloat16};
  // Inputs: may be left out.
  bool optional = false;
  // Inputs with shape [-1, F]: the dimensions after the batch may be given
  // as any [d1, ..., dk] with d1·…·dk = F (an image for a flat layer).
  bool reshapeable = false;
  // Outputs: has the shape of this input as the request gave it.
  std::string shape_of;
  // Outputs: can only be computed when this input is given.
  std::string needs;
};

// What a model takes and gives, in the order metadata lists them. The one
// description every front end, the validation and the load generator derive
// the model's contract from.
struct ModelSignature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;

  // Index into inputs/outputs, or -1.
  int InputIndex(const std::string& name) const;
  int OutputIndex(const std::string& name) const;
};

// Observes activations as a model computes them, for the dead-ReLU monitor.
// Called on the computing thread; implementations must be thread-safe.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // `relu` indexes Model::relu_layers(); `values` holds rows × units FP32.
  virtual void Observe(size_t relu, const float* values, int64_t rows) = 0;
};

// One computation: inputs and outputs by their index in the signature.
struct ModelRun {
  int64_t batch = 0;
  // Of every input given.
  Precision input_precision = Precision::kFloat32;
  // Null: not given (an optional input).
  std::vector<const void*> inputs;
  // FP32 buffers the caller owns, each the output's full size for `batch`;
  // null: not wanted.
  std::vector<float*> outputs;
  ActivationObserver* observer = nullptr;  // may be null
};

// A ReLU the model applies: which layer it follows, and its width.
struct ReluLayer {
  std::string label;  // the index of the module it follows, e.g. "0"
  int64_t units = 0;
};

// A model: its signature and a computation that writes the requested
// outputs into the caller's buffers.
//
// Thread safety: implementations are immutable after construction; Run may
// be called from any number of threads at once.
class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelSignature& signature() const = 0;
  // The run must match the signature (the runtime's validation makes sure):
  // every required input, a batch of at least 1, outputs whose `needs` is
  // given. Failures inside are Internal.
  virtual absl::Status Run(const ModelRun& run) const = 0;
  virtual const std::vector<ReluLayer>& relu_layers() const = 0;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_MODEL_H_
