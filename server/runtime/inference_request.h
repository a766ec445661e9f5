#ifndef RELUSERVE_SERVER_RUNTIME_INFERENCE_REQUEST_H_
#define RELUSERVE_SERVER_RUNTIME_INFERENCE_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/core/precision.h"

namespace reluserve {

// An inference request as every front end hands it to the runtime: names,
// datatypes and shapes as the client wrote them, and views of the tensor
// bytes (no copies). Valid while the protocol message it views lives.
struct InferenceRequest {
  struct Input {
    std::string name;
    std::string datatype;  // as sent, e.g. "FP32"
    std::vector<int64_t> shape;
    const void* data = nullptr;
    int64_t byte_size = 0;
    // Where the values came from, for messages ("raw_input_contents",
    // "contents.fp32_contents"), and whether that place counts values
    // rather than bytes.
    const char* data_field = "";
    bool counted_in_values = false;
  };
  struct Output {
    std::string name;
    // The datatype asked for, e.g. "BF16"; empty: the inputs'.
    std::string datatype;
    bool datatype_given = false;
  };
  std::vector<Input> inputs;
  std::vector<Output> outputs;  // empty: the model's defaults
};

// A request that passed every check against a model's signature. Inputs
// and outputs are indexed as in the signature.
struct ValidatedRequest {
  int64_t batch = 0;
  Precision input_precision = Precision::kFloat32;
  // Per signature input: its bytes (row-major, [batch, ...]) or null when
  // not given, and its shape as sent.
  std::vector<const void*> inputs;
  std::vector<std::vector<int64_t>> input_shapes;
  struct Output {
    int index = 0;  // into the signature's outputs
    Precision precision = Precision::kFloat32;
    std::vector<int64_t> shape;
    int64_t count = 0;  // elements
  };
  std::vector<Output> outputs;  // what to return, in order
  // Some output needs an optional input (a gradient): the backward pass.
  bool backward = false;
  // Every output has one row per input row, so this request's rows may
  // share one execution with other requests' (dynamic batching).
  bool row_wise = true;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_INFERENCE_REQUEST_H_
