// RateLimiter: token buckets keyed by a uint64_t (an account id, a hash of a client IP), for
// the server's 429 answers.
//
// Each key has a bucket of at most `burst` tokens that refills at `rate_per_second`; a
// request takes one token. A key seen for the first time starts with a full bucket. Time is
// an argument (microseconds, any epoch), never read from a clock, so tests and simulations
// are deterministic. Time that goes backwards adds no tokens (the bucket keeps its latest
// time), so a clock step back cannot be used to earn a fresh burst.
//
// Memory is bounded by `keys_max` buckets (a named bound: keys come from outside, e.g. one
// per client IP). The keys are spread over shards, each with its own mutex, LRU list and
// share of keys_max. When a new key arrives at a full shard, up to kEvictionScanMax of its
// least recently used buckets are examined and those that have refilled to `burst` (idle
// keys) are dropped: forgetting a full bucket changes nothing, since a new one starts full.
// Only when none of them is full does the least recently used bucket go (that key then
// gets a fresh burst: the price of the bound). The scan is bounded so that a flood of new
// keys costs O(1) per request, not O(keys_max).
//
// Thread-safe: Acquire may be called from any thread; calls for keys in different shards do
// not contend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace ocx::api {

class RateLimiter {
 public:
  static constexpr size_t kShardsDefault = 16;
  // How many least recently used buckets a full shard examines for idle ones.
  static constexpr size_t kEvictionScanMax = 32;

  // rate_per_second > 0 tokens refill per second up to `burst` (>= 1); at most keys_max (>= 1)
  // buckets are kept. `shards` (>= 1) is the number of independently locked parts; it is
  // lowered to keys_max when larger, and each shard keeps at most keys_max / shards buckets.
  // Arguments out of range are programmer errors (asserted): configuration is validated
  // before it gets here.
  RateLimiter(double rate_per_second, double burst, size_t keys_max,
              size_t shards = kShardsDefault);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;
  ~RateLimiter();

  // Takes one token for `key` at `now_micros`. Returns 0 when allowed, otherwise how many
  // microseconds (>= 1) until a token will be there (the caller answers 429 with a
  // Retry-After of that, rounded up to whole seconds). A refused call takes nothing.
  int64_t Acquire(uint64_t key, int64_t now_micros);

  // The number of buckets kept now (<= keys_max()).
  size_t size() const;
  size_t keys_max() const { return shard_keys_max_ * shards_.size(); }

 private:
  struct Bucket {
    uint64_t key;
    double tokens;
    int64_t last_micros;  // The latest time seen for this key; tokens are as of then.
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Bucket> lru;  // Most recently used first. Guarded by mu.
    absl::flat_hash_map<uint64_t, std::list<Bucket>::iterator> index;  // Guarded by mu.
  };

  Shard& ShardFor(uint64_t key);
  // Brings `bucket` to `now_micros`: adds what has refilled since its time, if time moved on.
  void Refill(Bucket& bucket, int64_t now_micros) const;
  // Makes room for one more bucket in a full shard. Requires shard.mu held.
  void Evict(Shard& shard, int64_t now_micros) const;

  const double rate_per_micro_;
  const double burst_;
  size_t shard_keys_max_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Retry-After (whole seconds, at least 1) for a wait of `micros` returned by Acquire.
int64_t RetryAfterSeconds(int64_t micros);

}  // namespace ocx::api
