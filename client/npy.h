#ifndef RELUSERVE_CLIENT_NPY_H_
#define RELUSERVE_CLIENT_NPY_H_

// NumPy .npy files holding one float32 array, so tensors pass between the
// client and Python (np.save / np.load) without any conversion.
//
// Reading takes format versions 1.0, 2.0 and 3.0, dtypes float32 and float64
// in either byte order (float64 is rounded to float32 as numpy's
// `astype(np.float32)` does, overflowing to +-Inf), and C (row-major) order
// only. Writing gives exactly what np.save writes for a '<f4' array: format
// 1.0, header padded to a 64-byte boundary. Free functions, no shared state:
// safe to call from any thread.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/tensor.h"

namespace reluserve {

// Reads the array in the .npy file at `path`. NotFound when the file does not
// exist; InvalidArgument for anything else wrong (bad magic, unsupported
// version or dtype, fortran_order True, malformed header, truncated data).
// Every message starts with `path`. Bytes after the array are ignored, as
// np.load ignores them.
absl::StatusOr<Tensor> ReadNpy(const std::string& path);

// Writes `tensor` to `path` as a '<f4' .npy file, replacing any file there.
// InvalidArgument when the data does not match the shape; an error naming
// `path` when the file cannot be written.
absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

// The in-memory halves of the above. `name` (a path, or any label) starts
// every error message.
absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes,
                                absl::string_view name);
absl::StatusOr<std::string> EncodeNpy(const Tensor& tensor);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_NPY_H_
