#include "server/service/message_pool.h"

#include <gtest/gtest.h>

namespace reluserve {
namespace {

TEST(InferMessagePoolTest, ReusesClearedPairsWithTheirCapacity) {
  InferMessagePool pool(/*max_idle=*/4, /*max_pooled_bytes=*/1 << 20);
  auto* first = pool.AllocateMessages();
  first->request()->set_id("a");
  first->request()->add_raw_input_contents(std::string(100000, 'x'));
  first->response()->add_raw_output_contents(std::string(50000, 'y'));
  auto* request = first->request();
  first->Release();
  EXPECT_EQ(pool.idle(), 1u);

  auto* second = pool.AllocateMessages();
  EXPECT_EQ(second->request(), request);
  EXPECT_EQ(second->request()->id(), "");
  EXPECT_EQ(second->request()->raw_input_contents_size(), 0);
  EXPECT_EQ(second->response()->raw_output_contents_size(), 0);
  // The cleared string is handed out again, capacity and all.
  std::string* reused = second->response()->add_raw_output_contents();
  EXPECT_GE(reused->capacity(), 50000u);
  second->Release();
}

TEST(InferMessagePoolTest, FreesPairsAboveTheSizeLimit) {
  InferMessagePool pool(/*max_idle=*/4, /*max_pooled_bytes=*/1000);
  auto* holder = pool.AllocateMessages();
  holder->response()->add_raw_output_contents(std::string(5000, 'y'));
  holder->Release();
  EXPECT_EQ(pool.idle(), 0u);
}

TEST(InferMessagePoolTest, KeepsAtMostMaxIdle) {
  InferMessagePool pool(/*max_idle=*/2, /*max_pooled_bytes=*/1 << 20);
  std::vector<grpc::MessageHolder<inference::ModelInferRequest,
                                  inference::ModelInferResponse>*>
      holders;
  for (int i = 0; i < 5; ++i) holders.push_back(pool.AllocateMessages());
  for (auto* holder : holders) holder->Release();
  EXPECT_EQ(pool.idle(), 2u);
}

}  // namespace
}  // namespace reluserve
