#include "client/npy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reluserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh path in the test's temp dir, named after the running test.
std::string TempPath(const std::string& suffix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return ::testing::TempDir() + "/npy_test_" + info->test_suite_name() + "_" +
         info->name() + suffix;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(file.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

template <typename T>
std::string Bytes(const std::vector<T>& values, bool little_endian = true) {
  std::string out;
  for (T value : values) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));  // the test hosts are little-endian
    if (!little_endian) std::reverse(bytes, bytes + sizeof(T));
    out.append(bytes, sizeof(T));
  }
  return out;
}

// A .npy file: magic, version, header length (2 bytes for 1.0, 4 after),
// `header` exactly as given, then `data`.
std::string MakeNpy(int major, const std::string& header,
                    const std::string& data) {
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const int length_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < length_bytes; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  return out + header + data;
}

const std::vector<float> kSix = {1.5f, -2.25f, 0.0f, 3.0f, -0.0f, 1e-30f};

TEST(NpyTest, RoundTripsShapesAndBits) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<Tensor> tensors = {
      {{2, 3}, kSix},
      {{5}, {1, 2, 3, 4, 5}},
      {{}, {42.0f}},
      {{0, 4}, {}},
      {{2, 1, 2},
       {std::nanf(""), inf, -inf, std::numeric_limits<float>::min()}},
  };
  const std::string path = TempPath(".npy");
  for (const Tensor& tensor : tensors) {
    ASSERT_TRUE(WriteNpy(path, tensor).ok());
    absl::StatusOr<Tensor> read = ReadNpy(path);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->shape, tensor.shape);
    // Bit-exact, so NaN, -0.0 and denormals count too.
    EXPECT_EQ(Bytes(read->data), Bytes(tensor.data));
  }
}

TEST(NpyTest, WritesWhatNumpyWrites) {
  // np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3)) with numpy 1.24.
  const std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" +
      std::string(58, ' ') + "\n";
  ASSERT_EQ(header.size(), 118u);
  const std::vector<float> values = {0, 1, 2, 3, 4, 5};
  absl::StatusOr<std::string> bytes = EncodeNpy({{2, 3}, values});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, MakeNpy(1, header, Bytes(values)));
  EXPECT_EQ(bytes->size(), 152u);
}

TEST(NpyTest, WritesOneTupleAndScalarShapesAsPython) {
  absl::StatusOr<std::string> vector = EncodeNpy({{5}, {1, 2, 3, 4, 5}});
  ASSERT_TRUE(vector.ok());
  EXPECT_THAT(*vector, HasSubstr("'shape': (5,), }"));
  absl::StatusOr<std::string> scalar = EncodeNpy({{}, {1}});
  ASSERT_TRUE(scalar.ok());
  EXPECT_THAT(*scalar, HasSubstr("'shape': (), }"));
  // Data starts on a 64-byte boundary, as np.save aligns it.
  EXPECT_EQ((vector->size() - 5 * 4) % 64, 0u);
  EXPECT_EQ((scalar->size() - 4) % 64, 0u);
}

TEST(NpyTest, WriteRefusesDataThatDoesNotMatchTheShape) {
  const std::string path = TempPath(".npy");
  absl::Status status = WriteNpy(path, {{2, 3}, {1, 2, 3}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(NpyTest, WriteToMissingDirectoryNamesTheFile) {
  const std::string path = TempPath("_no_such_dir/x.npy");
  absl::Status status = WriteNpy(path, {{1}, {1}});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
}

TEST(NpyTest, ReadsVersion2Header) {
  const std::string path = TempPath(".npy");
  WriteBytes(path,
             MakeNpy(2,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), "
                     "}       \n",
                     Bytes(std::vector<float>{1, 2, 3})));
  absl::StatusOr<Tensor> read = ReadNpy(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->shape, ElementsAre(3));
  EXPECT_THAT(read->data, ElementsAre(1, 2, 3));
}

TEST(NpyTest, ReadsVersion3Header) {
  absl::StatusOr<Tensor> read = ParseNpy(
      MakeNpy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n",
              Bytes(std::vector<float>{7})),
      "v3");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->data, ElementsAre(7));
}

TEST(NpyTest, ParsesHeaderVariants) {
  const std::string data = Bytes(std::vector<float>{1, 2, 3, 4, 5, 6});
  const std::vector<std::string> headers = {
      // Key order, quotes, whitespace and trailing commas vary by writer.
      "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}\n",
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}",
      "{ 'descr' : '<f4' ,\t'fortran_order' : False , 'shape' : ( 2 , 3 , ) , "
      "}   \n",
      // numpy under Python 2 wrote long integers.
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }\n",
  };
  for (const std::string& header : headers) {
    absl::StatusOr<Tensor> read = ParseNpy(MakeNpy(1, header, data), "variant");
    ASSERT_TRUE(read.ok()) << header << ": " << read.status();
    EXPECT_THAT(read->shape, ElementsAre(2, 3)) << header;
    EXPECT_THAT(read->data, ElementsAre(1, 2, 3, 4, 5, 6)) << header;
  }
}

TEST(NpyTest, ConvertsFloat64ToFloat32) {
  const std::vector<double> values = {0.1, -2.5, 1e300, -1e300, 1e-300, 3.0};
  const std::string path = TempPath(".npy");
  WriteBytes(path, MakeNpy(1,
                           "{'descr': '<f8', 'fortran_order': False, 'shape': "
                           "(3, 2), }\n",
                           Bytes(values)));
  absl::StatusOr<Tensor> read = ReadNpy(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->shape, ElementsAre(3, 2));
  const float inf = std::numeric_limits<float>::infinity();
  // Rounded to nearest; out of float's range becomes +-Inf, as in numpy.
  EXPECT_THAT(read->data, ElementsAre(0.1f, -2.5f, inf, -inf, 0.0f, 3.0f));
}

TEST(NpyTest, ReadsBigEndian) {
  absl::StatusOr<Tensor> f4 = ParseNpy(
      MakeNpy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
              Bytes(std::vector<float>{1.5f, -3.0f}, /*little_endian=*/false)),
      "be4");
  ASSERT_TRUE(f4.ok()) << f4.status();
  EXPECT_THAT(f4->data, ElementsAre(1.5f, -3.0f));
  absl::StatusOr<Tensor> f8 = ParseNpy(
      MakeNpy(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }",
              Bytes(std::vector<double>{0.25, 8.0}, /*little_endian=*/false)),
      "be8");
  ASSERT_TRUE(f8.ok()) << f8.status();
  EXPECT_THAT(f8->data, ElementsAre(0.25f, 8.0f));
}

TEST(NpyTest, IgnoresBytesAfterTheArrayAsNumpyDoes) {
  absl::StatusOr<Tensor> read = ParseNpy(
      MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
              Bytes(std::vector<float>{2, 9})),
      "extra");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(read->data, ElementsAre(2));
}

// Every refusal is InvalidArgument and names the file.
void ExpectRefused(const std::string& bytes, const std::string& expected) {
  const std::string path = TempPath(".npy");
  WriteBytes(path, bytes);
  absl::StatusOr<Tensor> read = ReadNpy(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument)
      << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr(path));
  EXPECT_THAT(read.status().message(), HasSubstr(expected));
}

TEST(NpyTest, RefusesFortranOrder) {
  ExpectRefused(MakeNpy(1,
                        "{'descr': '<f4', 'fortran_order': True, 'shape': "
                        "(2, 3), }\n",
                        Bytes(kSix)),
                "fortran_order True");
}

TEST(NpyTest, RefusesTruncatedData) {
  std::string bytes = MakeNpy(
      1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
      Bytes(kSix));
  bytes.resize(bytes.size() - 1);
  ExpectRefused(bytes, "truncated");
  // The same for float64: 6 values need 48 bytes.
  ExpectRefused(
      MakeNpy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
              Bytes(std::vector<double>{1, 2, 3, 4, 5})),
      "needs 48 data bytes");
}

TEST(NpyTest, RefusesTruncatedHeaderAndPreamble) {
  const std::string full = MakeNpy(
      1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
      Bytes(kSix));
  ExpectRefused(full.substr(0, 30), "truncated");
  ExpectRefused(full.substr(0, 9), "truncated");
  ExpectRefused(full.substr(0, 6), "truncated");
}

TEST(NpyTest, RefusesBadMagic) {
  std::string bytes = MakeNpy(
      1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
      Bytes(kSix));
  bytes[1] = 'n';
  ExpectRefused(bytes, "bad magic");
  ExpectRefused("", "bad magic");
  ExpectRefused("PK\x03\x04 a zip file, as np.savez writes", "bad magic");
}

TEST(NpyTest, RefusesUnsupportedVersion) {
  std::string bytes =
      MakeNpy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
              Bytes(std::vector<float>{1}));
  bytes[6] = 4;
  ExpectRefused(bytes, "version 4.0");
}

TEST(NpyTest, RefusesOtherDtypes) {
  for (const std::string descr : {"<i4", "<f2", "|u1", "<c8", "=f4"}) {
    ExpectRefused(MakeNpy(1,
                          "{'descr': '" + descr +
                              "', 'fortran_order': False, 'shape': (1,), }",
                          std::string(16, '\0')),
                  "unsupported dtype '" + descr + "'");
  }
  ExpectRefused(
      MakeNpy(1,
              "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': "
              "(1,), }",
              std::string(4, '\0')),
      "structured");
}

TEST(NpyTest, RefusesMalformedHeaders) {
  const std::string data = Bytes(std::vector<float>{1, 2});
  const std::vector<std::string> headers = {
      "{'descr': '<f4', 'fortran_order': False}",  // no shape
      "{'descr': '<f4', 'shape': (2,)}",           // no order
      "{'fortran_order': False, 'shape': (2,)}",   // no descr
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
      "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
      "{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",  // no '}'
      "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",  // no ','
      "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing",
      "{'descr': '<f4', 'fortran_order': False, 'shape': "
      "(99999999999999999999,)}",
  };
  for (const std::string& header : headers) {
    SCOPED_TRACE(header);
    ExpectRefused(MakeNpy(1, header, data), "");
  }
}

TEST(NpyTest, RefusesShapesWhoseSizeOverflows) {
  ExpectRefused(MakeNpy(1,
                        "{'descr': '<f4', 'fortran_order': False, 'shape': "
                        "(4294967296, 4294967296), }",
                        Bytes(std::vector<float>{1})),
                "too many elements");
  // Fits in int64 as a count, but not as a byte count.
  ExpectRefused(MakeNpy(1,
                        "{'descr': '<f8', 'fortran_order': False, 'shape': "
                        "(4611686018427387904,), }",
                        Bytes(std::vector<float>{1})),
                "truncated");
}

TEST(NpyTest, MissingFileIsNotFound) {
  const std::string path = TempPath("_missing.npy");
  std::remove(path.c_str());
  absl::StatusOr<Tensor> read = ReadNpy(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(path));
}

TEST(NpyTest, ReadsBackWhatItWroteOnDisk) {
  const std::string path = TempPath(".npy");
  ASSERT_TRUE(WriteNpy(path, {{2, 3}, kSix}).ok());
  absl::StatusOr<std::string> encoded = EncodeNpy({{2, 3}, kSix});
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(ReadBytes(path), *encoded);
}

}  // namespace
}  // namespace reluserve
