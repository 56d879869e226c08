#include "src/api/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "src/base/assert.h"

namespace ocx::api {
namespace {

constexpr double kMicrosPerSecond = 1e6;
// Floating-point slack when comparing token counts: after waiting exactly the time Acquire
// named, a token must be there even if the refill sum rounded a hair below 1.
constexpr double kTokenEpsilon = 1e-9;
// Caps a wait so that the conversion to int64_t cannot overflow (a rate of almost zero).
constexpr double kWaitMicrosMax = 1e18;

// SplitMix64's finalizer: spreads sequential ids (accounts 1, 2, 3...) over the shards.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

RateLimiter::RateLimiter(double rate_per_second, double burst, size_t keys_max, size_t shards)
    : rate_per_micro_(rate_per_second / kMicrosPerSecond), burst_(burst) {
  OCX_ASSERT_MSG(std::isfinite(rate_per_second) && rate_per_second > 0,
                 "rate_per_second must be positive");
  OCX_ASSERT_MSG(std::isfinite(burst) && burst >= 1, "burst must be at least 1");
  OCX_ASSERT(keys_max >= 1);
  OCX_ASSERT(shards >= 1);
  shards = std::min(shards, keys_max);
  shard_keys_max_ = keys_max / shards;
  shards_.reserve(shards);
  for (size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Shard& RateLimiter::ShardFor(uint64_t key) {
  return *shards_[Mix(key) % shards_.size()];
}

void RateLimiter::Refill(Bucket& bucket, int64_t now_micros) const {
  if (now_micros <= bucket.last_micros) return;  // Backwards or still: nothing refills.
  const double elapsed = static_cast<double>(now_micros) - static_cast<double>(bucket.last_micros);
  bucket.tokens = std::min(burst_, bucket.tokens + elapsed * rate_per_micro_);
  bucket.last_micros = now_micros;
}

void RateLimiter::Evict(Shard& shard, int64_t now_micros) const {
  OCX_ASSERT(!shard.lru.empty());
  bool dropped = false;
  auto it = shard.lru.end();
  for (size_t examined = 0; examined < kEvictionScanMax && it != shard.lru.begin(); ++examined) {
    --it;
    Bucket copy = *it;
    Refill(copy, now_micros);
    if (copy.tokens >= burst_ - kTokenEpsilon) {
      shard.index.erase(it->key);
      it = shard.lru.erase(it);
      dropped = true;
    }
  }
  if (!dropped) {
    shard.index.erase(shard.lru.back().key);
    shard.lru.pop_back();
  }
}

int64_t RateLimiter::Acquire(uint64_t key, int64_t now_micros) {
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto found = shard.index.find(key);
  Bucket* bucket = nullptr;
  if (found != shard.index.end()) {
    shard.lru.splice(shard.lru.begin(), shard.lru, found->second);
    bucket = &*found->second;
    Refill(*bucket, now_micros);
  } else {
    if (shard.index.size() >= shard_keys_max_) Evict(shard, now_micros);
    shard.lru.push_front(Bucket{key, burst_, now_micros});
    shard.index.emplace(key, shard.lru.begin());
    bucket = &shard.lru.front();
  }
  OCX_ASSERT(shard.index.size() <= shard_keys_max_);
  OCX_ASSERT(shard.index.size() == shard.lru.size());

  if (bucket->tokens >= 1 - kTokenEpsilon) {
    bucket->tokens = std::max(0.0, bucket->tokens - 1);
    return 0;
  }
  const double wait = std::ceil((1 - bucket->tokens) / rate_per_micro_);
  return static_cast<int64_t>(std::clamp(wait, 1.0, kWaitMicrosMax));
}

size_t RateLimiter::size() const {
  size_t total = 0;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    total += shard->index.size();
  }
  return total;
}

int64_t RetryAfterSeconds(int64_t micros) {
  constexpr int64_t kMicros = 1'000'000;
  return std::max<int64_t>(1, (micros + kMicros - 1) / kMicros);
}

}  // namespace ocx::api
