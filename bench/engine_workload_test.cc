// Properties of the benchmark workload and of the engine under it: the stream is
// reproducible from its seed, holds the book at the documented size, and a warm book does
// not allocate while it runs.
#include <atomic>
#include <cstdlib>
#include <new>

#include "bench/engine_workload.h"
#include "gtest/gtest.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// Counts every allocation made while g_counting is set (this test binary only). The
// replacements pair malloc with free, which GCC cannot see through.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace ocx::bench {
namespace {

TEST(EngineWorkloadTest, SameSeedGivesSameStream) {
  MixedStreamOptions options;
  options.commands = 20'000;
  const Workload a = GenerateMixedStream(options);
  const Workload b = GenerateMixedStream(options);
  ASSERT_EQ(a.measured.size(), b.measured.size());
  for (size_t i = 0; i < a.measured.size(); ++i) {
    ASSERT_EQ(a.measured[i].op, b.measured[i].op) << i;
    ASSERT_EQ(a.measured[i].order.id, b.measured[i].order.id) << i;
    ASSERT_EQ(a.measured[i].order.price, b.measured[i].order.price) << i;
  }
  options.seed = 2;
  const Workload c = GenerateMixedStream(options);
  bool differs = false;
  for (size_t i = 0; i < c.measured.size() && !differs; ++i) {
    differs = c.measured[i].order.price != a.measured[i].order.price;
  }
  EXPECT_TRUE(differs);
}

TEST(EngineWorkloadTest, HoldsTheBookAtAboutAThousandLevels) {
  MixedStreamOptions options;
  options.commands = 200'000;
  const RunResult result = RunThroughput(GenerateMixedStream(options), engine::BookConfig{});
  EXPECT_GT(result.mean_levels, 700);
  EXPECT_LT(result.mean_levels, 1500);
  EXPECT_GT(result.trades, 10'000u);
}

TEST(EngineWorkloadTest, WarmBookDoesNotAllocatePerCommand) {
  MixedStreamOptions options;
  options.commands = 300'000;
  const Workload workload = GenerateMixedStream(options);
  engine::OrderBook book;  // Default config: pools reserved for 65,536 orders.
  std::vector<engine::Event> events;
  events.reserve(4096);
  for (const engine::Command& command : workload.prefill) {
    events.clear();
    engine::Apply(book, command, &events);
  }
  g_allocations = 0;
  g_counting = true;
  for (const engine::Command& command : workload.measured) {
    events.clear();
    engine::Apply(book, command, &events);
  }
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0u);
}

}  // namespace
}  // namespace ocx::bench
