#include "server/core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <limits>
#include <new>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"

// safetensors stores little-endian IEEE-754 data, which we read as is.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cc assumes a little-endian host"
#endif
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
              "safetensors.cc assumes IEEE-754 binary32 floats");

namespace reluserve {
namespace {

using json = nlohmann::json;

// Same limit as the reference implementation (safetensors' MAX_HEADER_SIZE).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kMaxNamesListed = 10;
constexpr char kMetadata[] = "__metadata__";

absl::Status InvalidFile(const std::string& path, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("weights file ", path, ": ", problem));
}

absl::Status NoSuchFile(const std::string& path) {
  return absl::NotFoundError(
      absl::StrCat("weights file ", path, ": no such file"));
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
  return InvalidFile(path,
                     absl::StrCat("is not a regular file (", FileKind(mode),
                                  "); expected a safetensors file"));
}

// Bits per element of the dtypes safetensors defines; 0 for any other
// string, whose byte count then goes unchecked (it is never read).
uint64_t DtypeBits(absl::string_view dtype) {
  struct Dtype {
    absl::string_view name;
    uint64_t bits;
  };
  static constexpr Dtype kDtypes[] = {
      {"BOOL", 8},    {"U8", 8},   {"I8", 8},   {"F8_E5M2", 8}, {"F8_E4M3", 8},
      {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16}, {"F16", 16},    {"BF16", 16},
      {"I32", 32},    {"U32", 32}, {"F32", 32}, {"F64", 64},    {"I64", 64},
      {"U64", 64},    {"C64", 64}, {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  for (const Dtype& d : kDtypes) {
    if (d.name == dtype) return d.bits;
  }
  return 0;
}

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
      return InvalidFile(
          path, absl::StrCat("read error in ", what, ": ", ErrnoText(error)));
    }
    if (got == 0) {
      return InvalidFile(path, absl::StrCat("file ended while reading ", what,
                                            " (truncated while loading?)"));
    }
    next += got;
    offset += static_cast<uint64_t>(got);
    size -= static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

// Checks one header entry against the data section's size.
absl::StatusOr<SafetensorsTensor> ParseEntry(const std::string& path,
                                             const std::string& name,
                                             const json& entry,
                                             uint64_t data_size) {
  const std::string what = absl::StrCat("tensor '", name, "'");
  if (!entry.is_object()) {
    return InvalidFile(path, absl::StrCat(what, " entry is not a JSON object"));
  }
  SafetensorsTensor tensor;
  tensor.name = name;

  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return InvalidFile(path, absl::StrCat(what, " has no dtype string"));
  }
  tensor.dtype = dtype->get<std::string>();
  const uint64_t bits = DtypeBits(tensor.dtype);

  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) {
    return InvalidFile(path, absl::StrCat(what, " has no shape array"));
  }
  for (const json& dim : *shape) {
    if (!dim.is_number_unsigned()) {
      return InvalidFile(path, absl::StrCat(what, " has shape ", shape->dump(),
                                            " with a dimension that is not a "
                                            "non-negative integer"));
    }
    tensor.shape.push_back(dim.get<uint64_t>());
  }
  // Element count, checked so that count * bits cannot overflow. A zero
  // dimension makes it 0 whatever the others are.
  const uint64_t max_elements =
      std::numeric_limits<uint64_t>::max() / std::max<uint64_t>(bits, 8);
  if (std::find(tensor.shape.begin(), tensor.shape.end(), 0) ==
      tensor.shape.end()) {
    uint64_t elements = 1;
    for (uint64_t d : tensor.shape) {
      if (d > max_elements / elements) {
        return InvalidFile(path,
                           absl::StrCat(what, " has shape ", shape->dump(),
                                        " whose size overflows"));
      }
      elements *= d;
    }
  }

  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return InvalidFile(path, absl::StrCat(what,
                                          " has bad data_offsets (expected "
                                          "two non-negative integers)"));
  }
  tensor.begin = (*offsets)[0].get<uint64_t>();
  tensor.end = (*offsets)[1].get<uint64_t>();
  if (tensor.begin > tensor.end) {
    return InvalidFile(
        path, absl::StrCat(what, " has data_offsets [", tensor.begin, ", ",
                           tensor.end, "] with begin > end"));
  }
  if (tensor.end > data_size) {
    return InvalidFile(
        path, absl::StrCat(what, " has data_offsets [", tensor.begin, ", ",
                           tensor.end, "] beyond the data section of ",
                           data_size, " bytes (truncated file?)"));
  }
  if (bits != 0) {
    const uint64_t expected_bytes = (tensor.elements() * bits + 7) / 8;
    if (tensor.end - tensor.begin != expected_bytes) {
      return InvalidFile(
          path, absl::StrCat(what, " has ", tensor.end - tensor.begin,
                             " data bytes, but shape ", shape->dump(), " of ",
                             tensor.dtype, " needs ", expected_bytes));
    }
  }
  return tensor;
}

}  // namespace

uint64_t SafetensorsTensor::elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

std::string SafetensorsTensor::ShapeText() const {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  // Only a regular file has a size to check the header against; a FIFO would
  // block the read, /dev/zero would never end. stat() first, so that nothing
  // but a regular file is ever opened.
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    const int error = errno;
    if (error == ENOENT) return NoSuchFile(path);
    return InvalidFile(path, absl::StrCat("cannot stat: ", ErrnoText(error)));
  }
  if (!S_ISREG(info.st_mode)) return NotRegular(path, info.st_mode);
  // O_NONBLOCK: should the path have become a FIFO since stat(), open()
  // returns at once rather than waiting for a writer; fstat() then refuses
  // it. Reads from a regular file ignore the flag.
  const int fd =
      ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return NoSuchFile(path);
    return InvalidFile(
        path, absl::StrCat("cannot open for reading: ", ErrnoText(error)));
  }
  SafetensorsFile file(path, fd);  // Closes fd on every way out.
  if (::fstat(fd, &info) != 0) {
    return file.Invalid(absl::StrCat("cannot stat: ", ErrnoText(errno)));
  }
  if (!S_ISREG(info.st_mode)) return NotRegular(path, info.st_mode);
  const auto file_size = static_cast<uint64_t>(info.st_size);

  // Every length the file claims is checked against its size before
  // anything that long is read or allocated.
  if (file_size < 8) {
    return file.Invalid(absl::StrCat("file is ", file_size,
                                     " bytes, too short for the 8-byte "
                                     "header length (truncated?)"));
  }
  unsigned char len_bytes[8];
  if (absl::Status read = ReadAt(fd, path, 0, len_bytes, sizeof(len_bytes),
                                 "the header length");
      !read.ok()) {
    return read;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return file.Invalid(absl::StrCat("header length ", header_len,
                                     " is absurd (limit ", kMaxHeaderBytes,
                                     "); not a safetensors file?"));
  }
  if (header_len > file_size - 8) {
    return file.Invalid(absl::StrCat("header length ", header_len,
                                     " exceeds the ", file_size - 8,
                                     " bytes after it (truncated header)"));
  }
  std::string header_text(header_len, '\0');
  if (absl::Status read =
          ReadAt(fd, path, 8, header_text.data(), header_len, "the header");
      !read.ok()) {
    return read;
  }

  const json header = json::parse(header_text, nullptr,
                                  /*allow_exceptions=*/false);
  if (header.is_discarded()) return file.Invalid("header is not valid JSON");
  if (!header.is_object()) return file.Invalid("header is not a JSON object");

  file.data_begin_ = 8 + header_len;
  const uint64_t data_size = file_size - file.data_begin_;
  // json objects iterate in key order, so tensors_ ends up sorted by name.
  for (const auto& item : header.items()) {
    if (item.key() == kMetadata) continue;
    absl::StatusOr<SafetensorsTensor> tensor =
        ParseEntry(path, item.key(), item.value(), data_size);
    if (!tensor.ok()) return tensor.status();
    file.tensors_.push_back(*std::move(tensor));
  }
  return file;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      data_begin_(other.data_begin_),
      tensors_(std::move(other.tensors_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    data_begin_ = other.data_begin_;
    tensors_ = std::move(other.tensors_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const SafetensorsTensor& t,
                                const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

absl::StatusOr<const SafetensorsTensor*> SafetensorsFile::Get(
    const std::string& name) const {
  const SafetensorsTensor* tensor = Find(name);
  if (tensor == nullptr) {
    return Invalid(
        absl::StrCat("missing tensor '", name, "' (", DescribeNames(), ")"));
  }
  return tensor;
}

absl::Status SafetensorsFile::CheckF32(const SafetensorsTensor& tensor,
                                       size_t rank) const {
  const std::string what = absl::StrCat("tensor '", tensor.name, "'");
  if (tensor.dtype != "F32") {
    return Invalid(
        absl::StrCat(what, " has dtype ", tensor.dtype, ", expected F32"));
  }
  if (tensor.elements() == 0) {
    return Invalid(absl::StrCat(what, " has shape ", tensor.ShapeText(),
                                " with a zero dimension"));
  }
  if (tensor.shape.size() != rank) {
    return Invalid(absl::StrCat(what, " has shape ", tensor.ShapeText(),
                                " of rank ", tensor.shape.size(),
                                ", expected rank ", rank));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsFile::CheckDisjoint(
    absl::Span<const SafetensorsTensor* const> tensors) const {
  std::vector<const SafetensorsTensor*> sorted;
  for (const SafetensorsTensor* t : tensors) {
    if (t->begin < t->end) sorted.push_back(t);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
              return a->begin < b->begin;
            });
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // Compared with the range reaching furthest so far, not only the previous
  // one: [0, 100) contains [10, 20) and also overlaps [30, 40).
  const SafetensorsTensor* furthest = nullptr;
  for (const SafetensorsTensor* t : sorted) {
    if (furthest != nullptr && t->begin < furthest->end) {
      return Invalid(absl::StrCat("data of '", furthest->name, "' [",
                                  furthest->begin, ", ", furthest->end,
                                  "] and '", t->name, "' [", t->begin, ", ",
                                  t->end, "] overlap"));
    }
    if (furthest == nullptr || t->end > furthest->end) furthest = t;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadF32(
    const SafetensorsTensor& tensor) const {
  if (absl::Status ok = CheckF32(tensor, tensor.shape.size()); !ok.ok()) {
    return ok;
  }
  std::vector<float> values;
  try {
    // Fits: Open() checked the byte count against the file's size.
    values.resize(static_cast<size_t>(tensor.elements()));
  } catch (const std::bad_alloc&) {
    return Invalid(absl::StrCat("out of memory for the ",
                                tensor.end - tensor.begin, " bytes of '",
                                tensor.name, "'"));
  }
  if (absl::Status read = ReadAt(fd_, path_, data_begin_ + tensor.begin,
                                 values.data(), tensor.end - tensor.begin,
                                 absl::StrCat("'", tensor.name, "'"));
      !read.ok()) {
    return read;
  }
  return values;
}

absl::Status SafetensorsFile::Invalid(absl::string_view problem) const {
  return InvalidFile(path_, problem);
}

std::string SafetensorsFile::DescribeNames() const {
  if (tensors_.empty()) return "the file has no tensors";
  std::vector<absl::string_view> names;
  for (size_t i = 0; i < tensors_.size() && i < kMaxNamesListed; ++i) {
    names.push_back(tensors_[i].name);
  }
  std::string list = absl::StrCat("the file has: ", absl::StrJoin(names, ", "));
  if (tensors_.size() > names.size()) {
    absl::StrAppend(&list, ", ... (", tensors_.size(), " tensors)");
  }
  return list;
}

absl::Status WriteSafetensorsF32(
    const std::string& path, const std::vector<SafetensorsF32Entry>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const SafetensorsF32Entry& t : tensors) {
    if (t.name.empty() || t.name == kMetadata || !names.insert(t.name).second) {
      return InvalidFile(
          path, absl::StrCat("refusing to write a tensor named '", t.name,
                             "' (empty, reserved or repeated)"));
    }
    uint64_t elements = 1;
    for (uint64_t d : t.shape) {
      elements = d != 0 && elements > std::numeric_limits<uint64_t>::max() / d
                     ? std::numeric_limits<uint64_t>::max()
                     : elements * d;
    }
    if (elements != t.values.size()) {
      return InvalidFile(
          path, absl::StrCat("refusing to write tensor '", t.name, "': shape [",
                             absl::StrJoin(t.shape, ","), "] but ",
                             t.values.size(), " values"));
    }
    const uint64_t bytes = elements * sizeof(float);
    header[t.name] = {{"dtype", "F32"},
                      {"shape", t.shape},
                      {"data_offsets", json::array({offset, offset + bytes})}};
    offset += bytes;
  }
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
  if (!out.is_open()) return InvalidFile(path, "cannot open for writing");
  out.write(len_bytes, sizeof(len_bytes));
  out.write(header_text.data(),
            static_cast<std::streamsize>(header_text.size()));
  for (const SafetensorsF32Entry& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.values.data()),
              static_cast<std::streamsize>(t.values.size() * sizeof(float)));
  }
  out.close();
  if (out.fail()) {
    return absl::InternalError(
        absl::StrCat("weights file ", path, ": write failed"));
  }
  return absl::OkStatus();
}

}  // namespace reluserve
