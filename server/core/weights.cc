#include "server/core/weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/normal_random.h"
#include "nlohmann/json.hpp"

// safetensors stores little-endian IEEE-754 data, which we read as is.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.cc assumes a little-endian host"
#endif
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
              "weights.cc assumes IEEE-754 binary32 floats");

namespace reluserve {
namespace {

using json = nlohmann::json;

// Same limit as the reference implementation (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kMaxNamesListed = 10;

absl::Status Invalid(const std::string& path, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("weights file ", path, ": ", problem));
}

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

std::string FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

absl::Status NotRegular(const std::string& path, mode_t mode) {
  return Invalid(path, absl::StrCat("is not a regular file (", FileKind(mode),
                                    "); expected a safetensors file"));
}

// Closes the descriptor on every way out.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `size` bytes at `offset` into `out`. The caller has checked
// the range against the file's size, so coming up short means the file
// changed underneath.
absl::Status ReadAt(int fd, const std::string& path, uint64_t offset, void* out,
                    uint64_t size, absl::string_view what) {
  char* next = static_cast<char*>(out);
  while (size > 0) {
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>(size, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd, next, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return Invalid(
          path, absl::StrCat("read error in ", what, ": ", ErrnoText(error)));
    }
    if (got == 0) {
      return Invalid(path, absl::StrCat("file ended while reading ", what,
                                        " (truncated while loading?)"));
    }
    next += got;
    offset += static_cast<uint64_t>(got);
    size -= static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

// A validated tensor entry: shape and the byte range within the data section.
struct TensorInfo {
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

std::string ListNames(const json& header) {
  std::vector<std::string> names;
  size_t total = 0;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") continue;
    ++total;
    if (names.size() < kMaxNamesListed) names.push_back(item.key());
  }
  if (total == 0) return "the file has no tensors";
  std::string list = absl::StrCat("the file has: ", absl::StrJoin(names, ", "));
  if (total > names.size()) {
    absl::StrAppend(&list, ", ... (", total, " tensors)");
  }
  return list;
}

absl::StatusOr<TensorInfo> ParseTensor(const std::string& path,
                                       const json& header,
                                       const std::string& name, size_t rank,
                                       uint64_t data_size) {
  auto it = header.find(name);
  if (it == header.end()) {
    return Invalid(path, absl::StrCat("missing tensor '", name, "' (",
                                      ListNames(header), ")"));
  }
  const json& entry = *it;
  const std::string what = absl::StrCat("tensor '", name, "'");
  if (!entry.is_object()) {
    return Invalid(path, absl::StrCat(what, " entry is not a JSON object"));
  }

  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return Invalid(path, absl::StrCat(what, " has no dtype string"));
  }
  if (dtype->get<std::string>() != "F32") {
    return Invalid(path,
                   absl::StrCat(what, " has dtype ", dtype->get<std::string>(),
                                ", expected F32"));
  }

  TensorInfo info;
  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return Invalid(path, absl::StrCat(what, " has no shape array"));
  }
  // Element count, checked so that count * sizeof(float) cannot overflow.
  constexpr uint64_t kMaxElements =
      std::numeric_limits<uint64_t>::max() / sizeof(float);
  uint64_t elements = 1;
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned()) {
      return Invalid(path, absl::StrCat(what, " has shape ", shape->dump(),
                                        " with a dimension that is not a "
                                        "non-negative integer"));
    }
    const uint64_t d = dim.get<uint64_t>();
    if (d == 0) {
      return Invalid(path, absl::StrCat(what, " has shape ", shape->dump(),
                                        " with a zero dimension"));
    }
    if (d > kMaxElements / elements) {
      return Invalid(path, absl::StrCat(what, " has shape ", shape->dump(),
                                        " whose size overflows"));
    }
    elements *= d;
    info.shape.push_back(d);
  }
  if (info.shape.size() != rank) {
    return Invalid(path,
                   absl::StrCat(what, " has shape ", shape->dump(), " of rank ",
                                info.shape.size(), ", expected rank ", rank));
  }

  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return Invalid(path, absl::StrCat(what,
                                      " has bad data_offsets (expected "
                                      "two non-negative integers)"));
  }
  info.begin = (*offsets)[0].get<uint64_t>();
  info.end = (*offsets)[1].get<uint64_t>();
  if (info.begin > info.end) {
    return Invalid(path, absl::StrCat(what, " has data_offsets [", info.begin,
                                      ", ", info.end, "] with begin > end"));
  }
  if (info.end > data_size) {
    return Invalid(
        path, absl::StrCat(what, " has data_offsets [", info.begin, ", ",
                           info.end, "] beyond the data section of ", data_size,
                           " bytes (truncated file?)"));
  }
  const uint64_t expected_bytes = elements * sizeof(float);
  if (info.end - info.begin != expected_bytes) {
    return Invalid(path, absl::StrCat(what, " has ", info.end - info.begin,
                                      " data bytes, but shape ", shape->dump(),
                                      " of F32 needs ", expected_bytes));
  }
  return info;
}

}  // namespace

absl::StatusOr<LinearWeights> LoadSafetensors(const std::string& path,
                                              const std::string& prefix) {
  // Only a regular file has a size to check the header against; a FIFO would
  // block the read, /dev/zero would never end. stat() first, so that nothing
  // but a regular file is ever opened.
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("weights file ", path, ": no such file"));
    }
    return Invalid(path, absl::StrCat("cannot stat: ", ErrnoText(error)));
  }
  if (!S_ISREG(info.st_mode)) return NotRegular(path, info.st_mode);
  // O_NONBLOCK: should the path have become a FIFO since stat(), open()
  // returns at once rather than waiting for a writer; fstat() then refuses
  // it. Reads from a regular file ignore the flag.
  const FileDescriptor file(
      ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (file.get() < 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("weights file ", path, ": no such file"));
    }
    return Invalid(path,
                   absl::StrCat("cannot open for reading: ", ErrnoText(error)));
  }
  if (::fstat(file.get(), &info) != 0) {
    return Invalid(path, absl::StrCat("cannot stat: ", ErrnoText(errno)));
  }
  if (!S_ISREG(info.st_mode)) return NotRegular(path, info.st_mode);
  const auto file_size = static_cast<uint64_t>(info.st_size);

  // Every length the file claims is checked against its size before
  // anything that long is read or allocated.
  if (file_size < 8) {
    return Invalid(path, absl::StrCat("file is ", file_size,
                                      " bytes, too short for the 8-byte "
                                      "header length (truncated?)"));
  }
  unsigned char len_bytes[8];
  if (absl::Status read = ReadAt(file.get(), path, 0, len_bytes,
                                 sizeof(len_bytes), "the header length");
      !read.ok()) {
    return read;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return Invalid(
        path, absl::StrCat("header length ", header_len, " is absurd (limit ",
                           kMaxHeaderBytes, "); not a safetensors file?"));
  }
  if (header_len > file_size - 8) {
    return Invalid(path, absl::StrCat("header length ", header_len,
                                      " exceeds the ", file_size - 8,
                                      " bytes after it (truncated header)"));
  }
  std::string header_text(header_len, '\0');
  if (absl::Status read = ReadAt(file.get(), path, 8, header_text.data(),
                                 header_len, "the header");
      !read.ok()) {
    return read;
  }

  const json header = json::parse(header_text, nullptr,
                                  /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    return Invalid(path, "header is not valid JSON");
  }
  if (!header.is_object()) {
    return Invalid(path, "header is not a JSON object");
  }

  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = file_size - data_begin;
  const std::string weight_name = prefix + "weight";
  const std::string bias_name = prefix + "bias";

  absl::StatusOr<TensorInfo> w =
      ParseTensor(path, header, weight_name, 2, data_size);
  if (!w.ok()) return w.status();
  absl::StatusOr<TensorInfo> b =
      ParseTensor(path, header, bias_name, 1, data_size);
  if (!b.ok()) return b.status();

  if (b->shape[0] != w->shape[0]) {
    return Invalid(path,
                   absl::StrCat("shape mismatch: '", bias_name, "' has length ",
                                b->shape[0], " but '", weight_name, "' has ",
                                w->shape[0], " rows"));
  }
  if (w->begin < b->end && b->begin < w->end) {
    return Invalid(path, absl::StrCat("data of '", weight_name, "' and '",
                                      bias_name, "' overlap"));
  }

  LinearWeights result;
  // Both fit in int64: each is at most data_size / 4, and data_size is the
  // size of a file that exists.
  result.out_features = static_cast<int64_t>(w->shape[0]);
  result.in_features = static_cast<int64_t>(w->shape[1]);
  try {
    result.weight.resize(w->shape[0] * w->shape[1]);
    result.bias.resize(b->shape[0]);
  } catch (const std::bad_alloc&) {
    return Invalid(
        path, absl::StrCat("out of memory for the ",
                           w->end - w->begin + b->end - b->begin, " bytes of '",
                           weight_name, "' and '", bias_name, "'"));
  }
  // Only the two tensors are read: a larger state dict's other layers stay
  // on disk.
  if (absl::Status read =
          ReadAt(file.get(), path, data_begin + w->begin, result.weight.data(),
                 w->end - w->begin, absl::StrCat("'", weight_name, "'"));
      !read.ok()) {
    return read;
  }
  if (absl::Status read =
          ReadAt(file.get(), path, data_begin + b->begin, result.bias.data(),
                 b->end - b->begin, absl::StrCat("'", bias_name, "'"));
      !read.ok()) {
    return read;
  }
  result.source = prefix.empty()
                      ? absl::StrCat("file ", path)
                      : absl::StrCat("file ", path, " (prefix '", prefix, "')");
  return result;
}

absl::Status WriteSafetensors(const std::string& path,
                              const LinearWeights& weights,
                              const std::string& prefix) {
  const int64_t m = weights.out_features;
  const int64_t k = weights.in_features;
  if (m <= 0 || k <= 0 ||
      weights.weight.size() != static_cast<uint64_t>(m) * k ||
      weights.bias.size() != static_cast<uint64_t>(m)) {
    return Invalid(path, absl::StrCat("refusing to write inconsistent weights: "
                                      "out_features=",
                                      m, " in_features=", k,
                                      " weight.size()=", weights.weight.size(),
                                      " bias.size()=", weights.bias.size()));
  }

  const uint64_t weight_bytes = weights.weight.size() * sizeof(float);
  const uint64_t bias_bytes = weights.bias.size() * sizeof(float);
  json header = json::object();
  header[prefix + "weight"] = {
      {"dtype", "F32"},
      {"shape", json::array({m, k})},
      {"data_offsets", json::array({uint64_t{0}, weight_bytes})}};
  header[prefix + "bias"] = {
      {"dtype", "F32"},
      {"shape", json::array({m})},
      {"data_offsets", json::array({weight_bytes, weight_bytes + bias_bytes})}};
  std::string header_text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, like the
  // reference writer.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  char len_bytes[8];
  uint64_t len = header_text.size();
  for (char& c : len_bytes) {
    c = static_cast<char>(len & 0xff);
    len >>= 8;
  }

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out.is_open()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights file ", path, ": cannot open for writing"));
  }
  out.write(len_bytes, sizeof(len_bytes));
  out.write(header_text.data(),
            static_cast<std::streamsize>(header_text.size()));
  out.write(reinterpret_cast<const char*>(weights.weight.data()),
            static_cast<std::streamsize>(weight_bytes));
  out.write(reinterpret_cast<const char*>(weights.bias.data()),
            static_cast<std::streamsize>(bias_bytes));
  out.close();
  if (out.fail()) {
    return absl::InternalError(
        absl::StrCat("weights file ", path, ": write failed"));
  }
  return absl::OkStatus();
}

LinearWeights MakeDefaultWeights(int64_t in_features, int64_t out_features,
                                 uint64_t seed) {
  LinearWeights result;
  result.source = absl::StrCat("He-normal init, seed ", seed);
  if (in_features <= 0 || out_features <= 0) return result;  // Empty layer.
  result.in_features = in_features;
  result.out_features = out_features;

  const size_t count = static_cast<size_t>(in_features) * out_features;
  result.weight.resize(count);
  FillNormal(seed, std::sqrt(2.0 / static_cast<double>(in_features)),
             result.weight.data(), count);
  result.bias.assign(static_cast<size_t>(out_features), 0.01f);
  return result;
}

}  // namespace reluserve
