#ifndef RELUSERVE_SERVER_CORE_SAFETENSORS_H_
#define RELUSERVE_SERVER_CORE_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace reluserve {

// One entry of a safetensors header. `begin` and `end` are the entry's
// data_offsets, relative to the start of the data section.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // As written, e.g. "F32", "F16", "BF16".
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t elements() const;      // Product of `shape` (1 for a scalar).
  std::string ShapeText() const;  // E.g. "[2,3]", as the header writes it.
};

// A safetensors file opened for reading, its header parsed and checked.
// Move-only; holds the file open until destroyed. Not thread-safe.
//
// Every failure is an InvalidArgument (NotFound for a missing file) whose
// message starts "weights file <path>: " and says what is wrong.
class SafetensorsFile {
 public:
  // Opens `path`, which must be a regular file (a FIFO, device or directory
  // is refused as "not a regular file" and never read), reads its header
  // and checks every entry but `__metadata__` (which is ignored): every
  // length against the file's size before reading that much, dtype a
  // string, shape non-negative integers whose byte size does not overflow,
  // data_offsets inside the data section, and the byte count equal to the
  // shape's for every dtype safetensors defines. Entries are not compared
  // with each other (see CheckDisjoint). Tensor data is not read.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Every tensor of the header, sorted by name.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }

  // The tensor called `name`, or nullptr.
  const SafetensorsTensor* Find(const std::string& name) const;
  // The tensor called `name`, or an InvalidArgument "missing tensor '<name>'"
  // that lists (a bounded number of) the names the file does have.
  absl::StatusOr<const SafetensorsTensor*> Get(const std::string& name) const;

  // Refuses `tensor` unless it is F32, has no zero dimension and is of rank
  // `rank`.
  absl::Status CheckF32(const SafetensorsTensor& tensor, size_t rank) const;
  // Refuses the tensors if the data of any two of them overlap. Checked by
  // a loader for the tensors it uses, so that other tensors' bytes (which a
  // loader ignores) cannot make a file unusable.
  absl::Status CheckDisjoint(
      absl::Span<const SafetensorsTensor* const> tensors) const;
  // Reads the values of an F32 tensor (refusing any other dtype and a zero
  // dimension). Reads only that tensor's bytes.
  absl::StatusOr<std::vector<float>> ReadF32(
      const SafetensorsTensor& tensor) const;

  // An InvalidArgument "weights file <path>: <problem>".
  absl::Status Invalid(absl::string_view problem) const;
  // "the file has: a, b, ... (N tensors)" with at most 10 names.
  std::string DescribeNames() const;

 private:
  SafetensorsFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
  uint64_t data_begin_ = 0;  // File offset of the data section.
  std::vector<SafetensorsTensor> tensors_;
};

// A named F32 tensor to write; `values` must outlive the write.
struct SafetensorsF32Entry {
  std::string name;
  std::vector<uint64_t> shape;
  absl::Span<const float> values;  // Row-major, as many as `shape` says.
};

// Writes the tensors as a safetensors file, data in the order given, the
// header padded so that the data is 8-byte aligned (as the reference writer
// does). Refuses an empty, duplicate or "__metadata__" name and values whose
// count disagrees with the shape. For tests and tooling.
absl::Status WriteSafetensorsF32(
    const std::string& path, const std::vector<SafetensorsF32Entry>& tensors);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_SAFETENSORS_H_
