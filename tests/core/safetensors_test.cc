#include "server/core/safetensors.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/support/file_testing.h"

namespace reluserve {
namespace {

namespace fs = std::filesystem;
using ::reluserve::testing::FloatBytes;
using ::reluserve::testing::IsRefused;
using ::reluserve::testing::LittleEndianU64;
using ::reluserve::testing::Safetensors;
using ::reluserve::testing::TempDirTest;

class SafetensorsTest : public TempDirTest {
 protected:
  // Expects Open() of a file holding `header` and `data` to fail on `word`.
  ::testing::AssertionResult OpenRefuses(const std::string& header,
                                         const std::string& data,
                                         const std::string& word) const {
    const std::string path = WriteFile(Safetensors(header, data));
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
    return IsRefused(file.status(), absl::StatusCode::kInvalidArgument, path,
                     word);
  }
};

TEST_F(SafetensorsTest, ListsTensorsSortedByNameAndIgnoresMetadata) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("half":{"dtype":"F16","shape":[3],"data_offsets":[32,38]},)"
      R"("scalar":{"dtype":"F32","shape":[],"data_offsets":[40,44]}})";
  std::string data = FloatBytes({1, 2, 3, 4, 5, 6, -1, -2}) +
                     std::string(8, '\0') + FloatBytes({7});
  const std::string path = WriteFile(Safetensors(header, data));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  ASSERT_EQ(file->tensors().size(), 4u);
  EXPECT_EQ(file->tensors()[0].name, "a");
  EXPECT_EQ(file->tensors()[1].name, "b");
  EXPECT_EQ(file->tensors()[2].name, "half");
  EXPECT_EQ(file->tensors()[3].name, "scalar");
  const SafetensorsTensor& a = file->tensors()[0];
  EXPECT_EQ(a.dtype, "F32");
  EXPECT_EQ(a.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(a.ShapeText(), "[2,3]");
  EXPECT_EQ(a.elements(), 6u);
  EXPECT_EQ(a.begin, 0u);
  EXPECT_EQ(a.end, 24u);
  EXPECT_EQ(file->tensors()[2].dtype, "F16");
  EXPECT_EQ(file->Find("__metadata__"), nullptr);
  EXPECT_EQ(file->Find("c"), nullptr);
  ASSERT_NE(file->Find("b"), nullptr);

  absl::StatusOr<std::vector<float>> b = file->ReadF32(*file->Find("b"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, (std::vector<float>{-1, -2}));
  absl::StatusOr<std::vector<float>> scalar =
      file->ReadF32(*file->Find("scalar"));
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(*scalar, (std::vector<float>{7}));
}

TEST_F(SafetensorsTest, GetNamesWhatIsMissingAndWhatIsThere) {
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::string path = WriteFile(Safetensors(header, FloatBytes({1})));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE(file->Get("x").ok());
  EXPECT_TRUE(IsRefused(file->Get("y").status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "missing tensor 'y' (the file has: x)"));
}

TEST_F(SafetensorsTest, EmptyHeaderObjectHasNoTensors) {
  const std::string path = WriteFile(Safetensors("{}", ""));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_EQ(file->DescribeNames(), "the file has no tensors");
}

TEST_F(SafetensorsTest, MovedFileStillReads) {
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string path = WriteFile(Safetensors(header, FloatBytes({3, 4})));
  absl::StatusOr<SafetensorsFile> opened = SafetensorsFile::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  SafetensorsFile file = *std::move(opened);
  SafetensorsFile other = std::move(file);
  absl::StatusOr<std::vector<float>> x = other.ReadF32(*other.Find("x"));
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(*x, (std::vector<float>{3, 4}));
}

// --- Header checks ----------------------------------------------------------

TEST_F(SafetensorsTest, RefusesMissingFileAsNotFound) {
  const std::string path = PathFor("nope.safetensors");
  EXPECT_TRUE(IsRefused(SafetensorsFile::Open(path).status(),
                        absl::StatusCode::kNotFound, path, "no such file"));
}

TEST_F(SafetensorsTest, RefusesDirectory) {
  EXPECT_TRUE(IsRefused(SafetensorsFile::Open(dir_.string()).status(),
                        absl::StatusCode::kInvalidArgument, dir_.string(),
                        "not a regular file"));
}

TEST_F(SafetensorsTest, RefusesHugeHeaderLength) {
  const std::string path = WriteFile(LittleEndianU64(uint64_t{1} << 40) + "{}");
  EXPECT_TRUE(IsRefused(SafetensorsFile::Open(path).status(),
                        absl::StatusCode::kInvalidArgument, path, "absurd"));
}

TEST_F(SafetensorsTest, RefusesHeaderLongerThanTheFile) {
  const std::string path = WriteFile(LittleEndianU64(1000) + "{}");
  EXPECT_TRUE(IsRefused(SafetensorsFile::Open(path).status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "truncated header"));
}

TEST_F(SafetensorsTest, RefusesNonJsonAndNonObjectHeaders) {
  EXPECT_TRUE(OpenRefuses("not json at all", "", "not valid JSON"));
  EXPECT_TRUE(OpenRefuses(R"({"x":)", "", "not valid JSON"));
  EXPECT_TRUE(OpenRefuses(R"("a string")", "", "not a JSON object"));
  EXPECT_TRUE(OpenRefuses(R"({"x":[1,2]})", "", "entry is not a JSON object"));
}

TEST_F(SafetensorsTest, RefusesBadEntries) {
  EXPECT_TRUE(OpenRefuses(R"({"x":{"shape":[1],"data_offsets":[0,4]}})",
                          FloatBytes({1}), "no dtype string"));
  EXPECT_TRUE(OpenRefuses(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})",
                          FloatBytes({1}), "no shape array"));
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
                  FloatBytes({1}), "not a non-negative integer"));
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})",
                  FloatBytes({1}), "bad data_offsets"));
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],)"
                  R"("data_offsets":[0,4]}})",
                  FloatBytes({1}), "overflows"));
}

TEST_F(SafetensorsTest, RefusesOffsetsOutsideTheFile) {
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  FloatBytes({1, 2}), "beyond the data section of 8 bytes"));
  // Far beyond, where begin + size would overflow a careless check.
  EXPECT_TRUE(OpenRefuses(R"({"x":{"dtype":"F32","shape":[2],)"
                          R"("data_offsets":[18446744073709551608,0]}})",
                          FloatBytes({1, 2}), "begin > end"));
  EXPECT_TRUE(OpenRefuses(R"({"x":{"dtype":"F32","shape":[2],)"
                          R"("data_offsets":[18446744073709551608,)"
                          R"(18446744073709551615]}})",
                          FloatBytes({1, 2}), "beyond"));
}

TEST_F(SafetensorsTest, ChecksByteCountsForEveryKnownDtype) {
  // F16 [2, 3] is 12 bytes, F64 [2] 16, BF16 [3] 6: the F32 count is wrong.
  EXPECT_TRUE(OpenRefuses(
      R"({"x":{"dtype":"F16","shape":[2,3],"data_offsets":[0,24]}})",
      std::string(24, '\0'), "of F16 needs 12"));
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})",
                  std::string(8, '\0'), "of F64 needs 16"));
  EXPECT_TRUE(
      OpenRefuses(R"({"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})",
                  std::string(8, '\0'), "of BF16 needs 6"));
  // An unknown dtype is listed (its size unchecked) but never read as F32.
  const std::string header =
      R"({"x":{"dtype":"Q4_K","shape":[32],"data_offsets":[0,18]}})";
  const std::string path = WriteFile(Safetensors(header, std::string(18, 'q')));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(IsRefused(file->ReadF32(file->tensors()[0]).status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "dtype Q4_K, expected F32"));
}

// --- Per-tensor checks ------------------------------------------------------

TEST_F(SafetensorsTest, ReadF32RefusesOtherDtypesAndZeroSize) {
  const std::string header =
      R"({"half":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
      R"("double":{"dtype":"F64","shape":[1],"data_offsets":[4,12]},)"
      R"("empty":{"dtype":"F32","shape":[0,3],"data_offsets":[12,12]}})";
  const std::string path = WriteFile(Safetensors(header, std::string(12, 0)));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(IsRefused(file->ReadF32(*file->Find("half")).status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "tensor 'half' has dtype F16, expected F32"));
  EXPECT_TRUE(IsRefused(file->ReadF32(*file->Find("double")).status(),
                        absl::StatusCode::kInvalidArgument, path, "dtype F64"));
  EXPECT_TRUE(IsRefused(file->ReadF32(*file->Find("empty")).status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "zero dimension"));
  EXPECT_TRUE(IsRefused(file->CheckF32(*file->Find("empty"), 2),
                        absl::StatusCode::kInvalidArgument, path,
                        "[0,3] with a zero dimension"));
}

TEST_F(SafetensorsTest, CheckF32ChecksRank) {
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}})";
  const std::string path = WriteFile(Safetensors(header, FloatBytes({1, 2})));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->CheckF32(file->tensors()[0], 2).ok());
  EXPECT_TRUE(IsRefused(file->CheckF32(file->tensors()[0], 1),
                        absl::StatusCode::kInvalidArgument, path,
                        "of rank 2, expected rank 1"));
}

TEST_F(SafetensorsTest, CheckDisjointFindsOverlaps) {
  // big [0, 40) contains small [8, 16) and overlaps late [36, 44); edge
  // [44, 48) only touches late; empty [4, 4) overlaps nothing.
  const std::string header =
      R"({"big":{"dtype":"F32","shape":[10],"data_offsets":[0,40]},)"
      R"("small":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("late":{"dtype":"F32","shape":[2],"data_offsets":[36,44]},)"
      R"("edge":{"dtype":"F32","shape":[1],"data_offsets":[44,48]},)"
      R"("empty":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})";
  const std::string path = WriteFile(Safetensors(header, std::string(48, 0)));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << "overlap is checked per selection, not at Open: "
                         << file.status();
  const SafetensorsTensor* big = file->Find("big");
  const SafetensorsTensor* small = file->Find("small");
  const SafetensorsTensor* late = file->Find("late");
  const SafetensorsTensor* edge = file->Find("edge");
  const SafetensorsTensor* empty = file->Find("empty");
  EXPECT_TRUE(file->CheckDisjoint({late, edge, empty, small}).ok());
  EXPECT_TRUE(file->CheckDisjoint({big, big}).ok()) << "the same tensor twice";
  EXPECT_TRUE(IsRefused(file->CheckDisjoint({edge, late, big}),
                        absl::StatusCode::kInvalidArgument, path,
                        "data of 'big' [0, 40] and 'late' [36, 44] overlap"));
  EXPECT_TRUE(IsRefused(file->CheckDisjoint({small, late, big}),
                        absl::StatusCode::kInvalidArgument, path,
                        "'big' [0, 40] and 'small' [8, 16] overlap"));
}

TEST_F(SafetensorsTest, ReadNoticesAFileTruncatedAfterOpen) {
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  const std::string path =
      WriteFile(Safetensors(header, FloatBytes({1, 2, 3, 4})));
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  fs::resize_file(path, fs::file_size(path) - 6);
  EXPECT_TRUE(IsRefused(file->ReadF32(file->tensors()[0]).status(),
                        absl::StatusCode::kInvalidArgument, path,
                        "file ended while reading 'x'"));
}

// --- Writer -----------------------------------------------------------------

TEST_F(SafetensorsTest, WriterRoundTripsInOrderAndAligned) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {-1, -2};
  const std::string path = PathFor("rt.safetensors");
  ASSERT_TRUE(
      WriteSafetensorsF32(path, {{"z.weight", {2, 3}, w}, {"a.bias", {2}, b}})
          .ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), 2u);
  const SafetensorsTensor* zw = file->Find("z.weight");
  const SafetensorsTensor* ab = file->Find("a.bias");
  ASSERT_NE(zw, nullptr);
  ASSERT_NE(ab, nullptr);
  // Data in the order given, not in name order.
  EXPECT_EQ(zw->begin, 0u);
  EXPECT_EQ(zw->end, 24u);
  EXPECT_EQ(ab->begin, 24u);
  EXPECT_EQ(zw->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(*file->ReadF32(*zw), w);
  EXPECT_EQ(*file->ReadF32(*ab), b);
  EXPECT_EQ((fs::file_size(path) - 32) % 8, 0u) << "data 8-byte aligned";
}

TEST_F(SafetensorsTest, WriterRefusesBadEntries) {
  const std::vector<float> two = {1, 2};
  const std::string path = PathFor("bad.safetensors");
  EXPECT_TRUE(IsRefused(WriteSafetensorsF32(path, {{"x", {3}, two}}),
                        absl::StatusCode::kInvalidArgument, path,
                        "shape [3] but 2 values"));
  EXPECT_TRUE(
      IsRefused(WriteSafetensorsF32(path, {{"x", {2}, two}, {"x", {2}, two}}),
                absl::StatusCode::kInvalidArgument, path, "'x'"));
  EXPECT_TRUE(IsRefused(WriteSafetensorsF32(path, {{"__metadata__", {2}, two}}),
                        absl::StatusCode::kInvalidArgument, path, "reserved"));
  EXPECT_TRUE(IsRefused(WriteSafetensorsF32(path, {{"", {2}, two}}),
                        absl::StatusCode::kInvalidArgument, path, "empty"));
  // A shape whose product overflows never matches the values.
  EXPECT_FALSE(WriteSafetensorsF32(
                   path, {{"x", {uint64_t{1} << 33, uint64_t{1} << 33}, two}})
                   .ok());
  const std::string unwritable = PathFor("no_dir/x.safetensors");
  EXPECT_TRUE(IsRefused(WriteSafetensorsF32(unwritable, {{"x", {2}, two}}),
                        absl::StatusCode::kInvalidArgument, unwritable,
                        "cannot open for writing"));
}

}  // namespace
}  // namespace reluserve
