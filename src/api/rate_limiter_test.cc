#include "src/api/rate_limiter.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ocx::api {
namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kStart = 1'700'000'000 * kSecond;  // Any epoch works; this is realistic.

TEST(RateLimiterTest, AllowsBurstThenRefuses) {
  RateLimiter limiter(/*rate_per_second=*/10, /*burst=*/5, /*keys_max=*/100);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.Acquire(7, kStart), 0) << i;
  EXPECT_GT(limiter.Acquire(7, kStart), 0);
  EXPECT_GT(limiter.Acquire(7, kStart), 0);
}

TEST(RateLimiterTest, RetryAfterIsTheTimeUntilTheNextToken) {
  RateLimiter limiter(/*rate_per_second=*/10, /*burst=*/2, /*keys_max=*/100);
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  // Empty; one token takes 100 ms at 10/s.
  EXPECT_EQ(limiter.Acquire(1, kStart), 100'000);
  // A refused call takes nothing: 30 ms later the wait is 70 ms.
  EXPECT_EQ(limiter.Acquire(1, kStart + 30'000), 70'000);
  // One microsecond short is still refused, with a wait of one microsecond.
  EXPECT_EQ(limiter.Acquire(1, kStart + 99'999), 1);
  // Waiting exactly as long as told is enough.
  EXPECT_EQ(limiter.Acquire(1, kStart + 100'000), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart + 100'000), 100'000);
}

TEST(RateLimiterTest, WaitingTheReturnedTimeAlwaysSucceeds) {
  // Rates that are not round in microseconds, where the refill sums round.
  for (double rate : {3.0, 7.0, 0.3, 2000.0, 1e6 / 3}) {
    RateLimiter limiter(rate, /*burst=*/1, /*keys_max=*/10);
    int64_t now = kStart;
    ASSERT_EQ(limiter.Acquire(9, now), 0);
    for (int i = 0; i < 200; ++i) {
      const int64_t wait = limiter.Acquire(9, now);
      ASSERT_GT(wait, 0) << "rate " << rate << " step " << i;
      now += wait;
      ASSERT_EQ(limiter.Acquire(9, now), 0) << "rate " << rate << " step " << i;
    }
  }
}

TEST(RateLimiterTest, RefillsOverTimeUpToBurst) {
  RateLimiter limiter(/*rate_per_second=*/2, /*burst=*/4, /*keys_max=*/100);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(limiter.Acquire(1, kStart), 0);
  ASSERT_GT(limiter.Acquire(1, kStart), 0);
  // One second refills two tokens.
  EXPECT_EQ(limiter.Acquire(1, kStart + kSecond), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart + kSecond), 0);
  EXPECT_GT(limiter.Acquire(1, kStart + kSecond), 0);
  // An hour refills no more than the burst.
  const int64_t later = kStart + 3600 * kSecond;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(limiter.Acquire(1, later), 0) << i;
  EXPECT_GT(limiter.Acquire(1, later), 0);
}

TEST(RateLimiterTest, KeysAreIndependent) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/2, /*keys_max=*/100);
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_GT(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.Acquire(2, kStart), 0);
  EXPECT_EQ(limiter.Acquire(2, kStart), 0);
  EXPECT_GT(limiter.Acquire(2, kStart), 0);
  EXPECT_EQ(limiter.Acquire(3, kStart), 0);
}

TEST(RateLimiterTest, TimeGoingBackwardsAddsNoTokens) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/1, /*keys_max=*/100);
  ASSERT_EQ(limiter.Acquire(1, kStart + 10 * kSecond), 0);
  // Earlier times refill nothing...
  EXPECT_GT(limiter.Acquire(1, kStart), 0);
  EXPECT_GT(limiter.Acquire(1, kStart + 5 * kSecond), 0);
  // ...and do not move the bucket's time back, which would count the same second twice.
  EXPECT_EQ(limiter.Acquire(1, kStart + 10 * kSecond), kSecond);
  EXPECT_EQ(limiter.Acquire(1, kStart + 11 * kSecond), 0);
  EXPECT_GT(limiter.Acquire(1, kStart + 11 * kSecond), 0);
}

TEST(RateLimiterTest, KeepsAtMostKeysMaxBuckets) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/10, /*keys_max=*/64);
  EXPECT_LE(limiter.keys_max(), 64u);
  for (uint64_t key = 0; key < 10'000; ++key) {
    ASSERT_EQ(limiter.Acquire(key, kStart), 0);
    ASSERT_LE(limiter.size(), 64u);
  }
  EXPECT_GT(limiter.size(), 0u);
}

TEST(RateLimiterTest, FullShardDropsIdleBucketsFirst) {
  // One shard, so that which bucket goes is observable.
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/2, /*keys_max=*/2, /*shards=*/1);
  ASSERT_EQ(limiter.Acquire(1, kStart), 0);  // Key 1: used first, refills by kStart + 1 s.
  ASSERT_EQ(limiter.Acquire(2, kStart + kSecond / 2), 0);
  ASSERT_EQ(limiter.Acquire(2, kStart + kSecond / 2), 0);  // Key 2: empty.
  // Key 2 is not idle but key 1 is full again at kStart + 2 s: key 1 goes.
  ASSERT_EQ(limiter.Acquire(3, kStart + 2 * kSecond), 0);
  EXPECT_EQ(limiter.size(), 2u);
  // Key 2 kept its state: 1.5 s refilled 1.5 tokens, so one call passes and the next waits.
  EXPECT_EQ(limiter.Acquire(2, kStart + 2 * kSecond), 0);
  EXPECT_EQ(limiter.Acquire(2, kStart + 2 * kSecond), kSecond / 2);
}

TEST(RateLimiterTest, FullShardWithoutIdleBucketsDropsTheLeastRecentlyUsed) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/2, /*keys_max=*/2, /*shards=*/1);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(limiter.Acquire(1, kStart), 0);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(limiter.Acquire(2, kStart), 0);
  ASSERT_GT(limiter.Acquire(1, kStart), 0);  // Key 1 is now the most recently used.
  ASSERT_EQ(limiter.Acquire(3, kStart), 0);  // Nobody is idle: key 2, used least recently, goes.
  EXPECT_EQ(limiter.size(), 2u);
  EXPECT_GT(limiter.Acquire(1, kStart), 0);  // Key 1 is still limited...
  EXPECT_EQ(limiter.Acquire(2, kStart), 0);  // ...key 2 starts again with a full bucket.
}

TEST(RateLimiterTest, ConcurrentCallersShareOneBucket) {
  RateLimiter limiter(/*rate_per_second=*/1, /*burst=*/1000, /*keys_max=*/100'000);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (limiter.Acquire(42, kStart) == 0) allowed.fetch_add(1);
        limiter.Acquire(1000 + static_cast<uint64_t>(i), kStart);  // Other keys and shards.
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 1000);
}

TEST(RateLimiterTest, RetryAfterSecondsRoundsUp) {
  EXPECT_EQ(RetryAfterSeconds(1), 1);
  EXPECT_EQ(RetryAfterSeconds(1'000'000), 1);
  EXPECT_EQ(RetryAfterSeconds(1'000'001), 2);
  EXPECT_EQ(RetryAfterSeconds(0), 1);
}

}  // namespace
}  // namespace ocx::api
