// Where time comes from. The core never reads a clock: the sequencer reads this one and
// stamps each command, so tests can use a simulated clock and replays need none.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ocx::base {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in microseconds.
  virtual int64_t NowMicros() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to. Thread-safe.
class SimClock final : public Clock {
 public:
  explicit SimClock(int64_t start_micros = 1'700'000'000'000'000) : now_(start_micros) {}
  int64_t NowMicros() const override { return now_.load(std::memory_order_acquire); }
  void Advance(int64_t micros) { now_.fetch_add(micros, std::memory_order_acq_rel); }
  void Set(int64_t micros) { now_.store(micros, std::memory_order_release); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace ocx::base
