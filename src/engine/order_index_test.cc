#include "src/engine/order_index.h"

#include <unordered_map>

#include "gtest/gtest.h"
#include "src/base/rng.h"

namespace ocx::engine {
namespace {

TEST(OrderIndexTest, InsertFindErase) {
  OrderIndex index(4);
  index.Insert(10, 1);
  index.Insert(-5, 2);
  EXPECT_EQ(index.Find(10), 1u);
  EXPECT_EQ(index.Find(-5), 2u);
  EXPECT_EQ(index.Find(11), OrderIndex::kNotFound);
  EXPECT_TRUE(index.Erase(10));
  EXPECT_FALSE(index.Erase(10));
  EXPECT_EQ(index.Find(10), OrderIndex::kNotFound);
  EXPECT_EQ(index.size(), 1u);
}

TEST(OrderIndexTest, MatchesAReferenceMapUnderRandomChurn) {
  const uint64_t seed = 20261121;
  base::Rng rng(seed);
  OrderIndex index(8);  // Small on purpose: forces growth and long probe runs.
  std::unordered_map<OrderId, uint32_t> reference;
  for (int step = 0; step < 200'000; ++step) {
    const OrderId key = static_cast<OrderId>(rng.Below(5'000)) - 2'500;
    if (reference.contains(key)) {
      ASSERT_EQ(index.Find(key), reference[key]) << "seed " << seed << " step " << step;
      if (rng.Percent(60)) {
        ASSERT_TRUE(index.Erase(key));
        reference.erase(key);
      }
    } else {
      ASSERT_EQ(index.Find(key), OrderIndex::kNotFound) << "seed " << seed << " step " << step;
      const uint32_t value = static_cast<uint32_t>(rng.Below(1'000'000));
      index.Insert(key, value);
      reference[key] = value;
    }
    ASSERT_EQ(index.size(), reference.size());
  }
  for (const auto& [key, value] : reference) EXPECT_EQ(index.Find(key), value);
}

}  // namespace
}  // namespace ocx::engine
