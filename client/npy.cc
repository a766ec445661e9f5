#include "client/npy.h"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace reluserve {
namespace {

constexpr absl::string_view kMagic("\x93NUMPY", 6);
// Magic, two version bytes, then the header length (2 bytes in version 1.0,
// 4 bytes from 2.0 on).
constexpr size_t kVersionOffset = 6;
constexpr size_t kHeaderLengthOffset = 8;
// np.save pads the header so the data starts on a 64-byte boundary.
constexpr size_t kAlignment = 64;

absl::Status Invalid(absl::string_view name, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", problem));
}

uint64_t LoadUnsigned(const unsigned char* bytes, int size,
                      bool little_endian) {
  uint64_t value = 0;
  for (int i = 0; i < size; ++i) {
    const int byte = little_endian ? size - 1 - i : i;
    value = (value << 8) | bytes[byte];
  }
  return value;
}

// Rounds to float as IEEE 754 does: values beyond float's range become +-Inf.
// A plain cast of such a value would be undefined behaviour.
float DoubleToFloat(double value) {
  // Halfway between FLT_MAX and 2^128: from here on, round-to-nearest gives
  // infinity.
  static const double kOverflow = std::ldexp(2.0 - std::ldexp(1.0, -24), 127);
  if (std::fabs(value) >= kOverflow) {
    const float inf = std::numeric_limits<float>::infinity();
    return std::signbit(value) ? -inf : inf;
  }
  return static_cast<float>(value);
}

// The three keys of a .npy header.
struct Header {
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<std::vector<int64_t>> shape;
};

// Parses the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// in any key order, with either quote style, any whitespace, optional trailing
// commas and Python 2's `3L` integers. Errors are plain descriptions; the
// caller adds the file name.
class HeaderParser {
 public:
  explicit HeaderParser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Header> Parse() {
    Header header;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    while (!Consume('}')) {
      absl::StatusOr<std::string> key = ParseString();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      absl::Status status = ParseValue(*key, header);
      if (!status.ok()) return status;
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != '}') {
        return Error("expected ',' or '}'");
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the dict");
    if (!header.descr) return Error("missing key 'descr'");
    if (!header.fortran_order) return Error("missing key 'fortran_order'");
    if (!header.shape) return Error("missing key 'shape'");
    return header;
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  bool Consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool ConsumeWord(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::Status Error(absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed header at byte ", pos_, " (", problem,
                     "): ", text_.substr(0, 200)));
  }

  absl::Status ParseValue(const std::string& key, Header& header) {
    if (key == "descr") {
      if (header.descr) return Error("duplicate key 'descr'");
      if (Peek() == '[') {
        return absl::InvalidArgumentError(
            "structured dtypes are not supported; expected float32 '<f4' or "
            "float64 '<f8'");
      }
      absl::StatusOr<std::string> descr = ParseString();
      if (!descr.ok()) return descr.status();
      header.descr = *descr;
    } else if (key == "fortran_order") {
      if (header.fortran_order) return Error("duplicate key 'fortran_order'");
      if (ConsumeWord("True")) {
        header.fortran_order = true;
      } else if (ConsumeWord("False")) {
        header.fortran_order = false;
      } else {
        return Error("fortran_order must be True or False");
      }
    } else if (key == "shape") {
      if (header.shape) return Error("duplicate key 'shape'");
      absl::StatusOr<std::vector<int64_t>> shape = ParseShape();
      if (!shape.ok()) return shape.status();
      header.shape = *std::move(shape);
    } else {
      return Error(absl::StrCat("unexpected key '", key, "'"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ParseString() {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Error("expected a quoted string");
    ++pos_;
    std::string value;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      value.push_back(text_[pos_++]);
    }
    if (!Consume(quote)) return Error("unterminated string");
    return value;
  }

  absl::StatusOr<int64_t> ParseDimension() {
    if (Peek() == '-') return Error("negative dimension");
    if (Peek() < '0' || Peek() > '9') return Error("expected a dimension");
    int64_t value = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      const int digit = Peek() - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
        return Error("dimension too large");
      }
      value = value * 10 + digit;
      ++pos_;
    }
    Consume('L');  // Python 2's long literal.
    return value;
  }

  absl::StatusOr<std::vector<int64_t>> ParseShape() {
    if (!Consume('(')) return Error("shape must be a tuple");
    std::vector<int64_t> shape;
    SkipSpace();
    while (!Consume(')')) {
      absl::StatusOr<int64_t> dim = ParseDimension();
      if (!dim.ok()) return dim.status();
      shape.push_back(*dim);
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
      } else if (Peek() != ')') {
        return Error("expected ',' or ')' in shape");
      }
    }
    return shape;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

std::string ShapeTuple(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

absl::Status ErrnoError(const std::string& path, absl::string_view action,
                        int error) {
  const std::string message =
      absl::StrCat(path, ": cannot ", action, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM) {
    return absl::PermissionDeniedError(message);
  }
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes,
                                absl::string_view name) {
  if (bytes.size() < kMagic.size() ||
      bytes.substr(0, kMagic.size()) != kMagic) {
    return Invalid(name, "not a .npy file (bad magic; expected \\x93NUMPY)");
  }
  if (bytes.size() < kHeaderLengthOffset + 2) {
    return Invalid(name, "truncated: the file ends inside the preamble");
  }
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = data[kVersionOffset];
  const int minor = data[kVersionOffset + 1];
  int length_size;
  if (major == 1 && minor == 0) {
    length_size = 2;
  } else if ((major == 2 || major == 3) && minor == 0) {
    length_size = 4;
  } else {
    return Invalid(name, absl::StrCat("unsupported .npy format version ", major,
                                      ".", minor, " (read: 1.0, 2.0, 3.0)"));
  }
  const size_t header_offset = kHeaderLengthOffset + length_size;
  if (bytes.size() < header_offset) {
    return Invalid(name, "truncated: the file ends inside the preamble");
  }
  const uint64_t header_length =
      LoadUnsigned(data + kHeaderLengthOffset, length_size, true);
  if (header_length > bytes.size() - header_offset) {
    return Invalid(name, absl::StrCat("truncated: the header claims ",
                                      header_length, " bytes but the file has ",
                                      bytes.size() - header_offset,
                                      " after the preamble"));
  }

  absl::StatusOr<Header> header =
      HeaderParser(bytes.substr(header_offset, header_length)).Parse();
  if (!header.ok()) return Invalid(name, header.status().message());

  if (*header->fortran_order) {
    return Invalid(name,
                   "fortran_order True is not supported; save a C-order array "
                   "(np.ascontiguousarray)");
  }
  const std::string& descr = *header->descr;
  int item_size = 0;
  if (descr == "<f4" || descr == ">f4") {
    item_size = 4;
  } else if (descr == "<f8" || descr == ">f8") {
    item_size = 8;
  } else {
    return Invalid(name, absl::StrCat("unsupported dtype '", descr,
                                      "'; expected float32 '<f4' or float64 "
                                      "'<f8'"));
  }
  const bool little_endian = descr[0] == '<';

  Tensor tensor;
  tensor.shape = *std::move(header->shape);
  absl::StatusOr<int64_t> count = NumElements(tensor.shape);
  if (!count.ok()) return Invalid(name, count.status().message());
  const uint64_t data_offset = header_offset + header_length;
  const uint64_t available = bytes.size() - data_offset;
  const uint64_t values = static_cast<uint64_t>(*count);
  if (values > available / item_size) {
    const std::string needed =
        values > std::numeric_limits<uint64_t>::max() / item_size
            ? "more than 2^64"
            : absl::StrCat(values * item_size);
    return Invalid(
        name, absl::StrCat("truncated: shape ", ShapeToString(tensor.shape),
                           " of ", descr, " needs ", needed,
                           " data bytes but the file has ", available));
  }

  tensor.data.resize(static_cast<size_t>(*count));
  const unsigned char* in = data + data_offset;
  for (float& out : tensor.data) {
    const uint64_t bits = LoadUnsigned(in, item_size, little_endian);
    if (item_size == 4) {
      const uint32_t bits32 = static_cast<uint32_t>(bits);
      std::memcpy(&out, &bits32, sizeof(out));
    } else {
      double value;
      std::memcpy(&value, &bits, sizeof(value));
      out = DoubleToFloat(value);
    }
    in += item_size;
  }
  return tensor;
}

absl::StatusOr<std::string> EncodeNpy(const Tensor& tensor) {
  absl::StatusOr<int64_t> count = NumElements(tensor.shape);
  if (!count.ok()) return count.status();
  if (static_cast<uint64_t>(*count) != tensor.data.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeToString(tensor.shape), " has ", *count,
                     " elements but the data has ", tensor.data.size()));
  }

  // Byte for byte what np.save writes: the dict, then spaces and a newline up
  // to the alignment (a full 64 spaces when already aligned, as numpy does).
  std::string header =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': ",
                   ShapeTuple(tensor.shape), ", }");
  const size_t unpadded = kHeaderLengthOffset + 2 + header.size() + 1;
  header.append(kAlignment - unpadded % kAlignment, ' ');
  header.push_back('\n');
  if (header.size() > std::numeric_limits<uint16_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeToString(tensor.shape),
                     " is too long for a version 1.0 .npy header"));
  }

  std::string out;
  out.reserve(kHeaderLengthOffset + 2 + header.size() + tensor.data.size() * 4);
  out.append(kMagic.data(), kMagic.size());
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out.append(header);
  for (float value : tensor.data) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    for (int i = 0; i < 4; ++i) {
      out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    }
  }
  return out;
}

absl::StatusOr<Tensor> ReadNpy(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return ErrnoError(path, "open", errno);
  std::string bytes;
  char buffer[1 << 16];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    bytes.append(buffer, read);
  }
  if (std::ferror(file.get())) return ErrnoError(path, "read", errno);
  return ParseNpy(bytes, path);
}

absl::Status WriteNpy(const std::string& path, const Tensor& tensor) {
  absl::StatusOr<std::string> bytes = EncodeNpy(tensor);
  if (!bytes.ok()) return Invalid(path, bytes.status().message());
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (file == nullptr) return ErrnoError(path, "open for writing", errno);
  if (std::fwrite(bytes->data(), 1, bytes->size(), file.get()) !=
      bytes->size()) {
    return ErrnoError(path, "write", errno);
  }
  if (std::fclose(file.release()) != 0) return ErrnoError(path, "write", errno);
  return absl::OkStatus();
}

}  // namespace reluserve
