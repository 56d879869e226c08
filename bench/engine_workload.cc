#include "bench/engine_workload.h"

#include <algorithm>
#include <chrono>

#include "src/base/assert.h"
#include "src/base/rng.h"

namespace ocx::bench {
namespace {

using engine::Command;
using engine::CommandOp;
using engine::OrderId;
using engine::OrderType;
using engine::PriceMicros;
using engine::Quantity;
using engine::Side;
using engine::TimeInForce;

// Builds the stream by driving a real book, so that cancels and replaces name orders that
// are actually resting and prices follow the moving touch.
class StreamBuilder {
 public:
  explicit StreamBuilder(const MixedStreamOptions& options)
      : options_(options), rng_(options.seed), book_(Config(options)) {}

  Workload Build() {
    Workload workload;
    Prefill(&workload.prefill);
    workload.measured.reserve(options_.commands);
    for (size_t i = 0; i < options_.commands; ++i) {
      workload.measured.push_back(Next(&workload));
      Emit(workload.measured.back());
    }
    return workload;
  }

 private:
  static engine::BookConfig Config(const MixedStreamOptions& options) {
    engine::BookConfig config;
    config.tick_micros = options.tick_micros;
    return config;
  }

  void Prefill(std::vector<Command>* out) {
    // Levels at mid -/+ 1..levels_per_side ticks, one to three orders each.
    for (size_t level = 1; level <= options_.levels_per_side; ++level) {
      for (Side side : {Side::kBuy, Side::kSell}) {
        const PriceMicros offset = static_cast<PriceMicros>(level) * options_.tick_micros;
        const PriceMicros price =
            side == Side::kBuy ? options_.mid_micros - offset : options_.mid_micros + offset;
        const int64_t orders = rng_.Between(1, 3);
        for (int64_t k = 0; k < orders; ++k) {
          out->push_back(Limit(side, price, rng_.Between(1, 100), TimeInForce::kGtc));
          Emit(out->back());
        }
      }
    }
  }

  Command Next(Workload* workload) {
    now_ += rng_.Between(1, 1000);  // Microseconds between commands.
    const bool book_too_big = book_.resting_orders() > options_.target_resting_orders;
    const uint64_t roll = rng_.Below(100);
    // The mix (percent): passive 55 while the book is below its target size and 30 above
    // it, cancel the rest up to 70 (15 or 40), replace 12, crossing limit 10, market 5,
    // fok 3. The switch keeps the book near its target size, so the stream can run for any
    // length without the book draining or growing.
    const uint64_t passive_share = book_too_big ? 30 : 55;
    if (roll < passive_share) {
      ++workload->new_passive;
      return Passive();
    }
    if (roll < 70) {
      if (Command c; PickLive(&c.cancel_id)) {
        ++workload->cancels;
        c.op = CommandOp::kCancel;
        c.time = now_;
        return c;
      }
      ++workload->new_passive;
      return Passive();
    }
    if (roll < 82) {
      if (Command c; PickLive(&c.replace.id)) {
        ++workload->replaces;
        c.op = CommandOp::kReplace;
        c.time = now_;
        engine::OrderView view;
        OCX_ASSERT(book_.Find(c.replace.id, &view));
        if (rng_.Percent(50) && view.remaining > view.lot) {
          // Quantity down at the same price: keeps priority.
          c.replace.quantity = view.remaining - view.lot;
        } else {
          // Price move of 1..5 ticks either way: loses priority, may trade at once.
          const PriceMicros moved =
              view.price + rng_.Between(-5, 5) * options_.tick_micros;
          c.replace.price = std::max(moved, options_.tick_micros);
        }
        return c;
      }
      ++workload->new_passive;
      return Passive();
    }
    const Side side = rng_.Percent(50) ? Side::kBuy : Side::kSell;
    if (roll < 92) {
      ++workload->new_crossing;
      const PriceMicros price = Through(side, rng_.Between(0, 3));
      return Limit(side, price, rng_.Between(1, 50),
                   rng_.Percent(50) ? TimeInForce::kIoc : TimeInForce::kGtc);
    }
    if (roll < 97) {
      ++workload->new_market;
      Command c = Limit(side, 0, rng_.Between(1, 30), TimeInForce::kIoc);
      c.order.type = OrderType::kMarket;
      return c;
    }
    ++workload->new_fok;
    return Limit(side, Through(side, rng_.Between(0, 2)), rng_.Between(1, 50),
                 TimeInForce::kFok);
  }

  // A resting order behind its own side's touch: 70% within 10 ticks, 30% up to 999.
  Command Passive() {
    const Side side = rng_.Percent(50) ? Side::kBuy : Side::kSell;
    PriceMicros touch = book_.BestPrice(side);
    if (touch == 0) touch = options_.mid_micros;
    const int64_t ticks = rng_.Percent(70) ? rng_.Between(0, 9) : rng_.Between(10, 999);
    const PriceMicros offset = ticks * options_.tick_micros;
    const PriceMicros price =
        side == Side::kBuy ? std::max(touch - offset, options_.tick_micros) : touch + offset;
    const TimeInForce tif = rng_.Percent(5) ? TimeInForce::kGtd : TimeInForce::kGtc;
    return Limit(side, price, rng_.Between(1, 100), tif);
  }

  // A price `ticks` through the opposite touch (or the mid when that side is empty).
  PriceMicros Through(Side side, int64_t ticks) {
    PriceMicros touch = book_.BestPrice(engine::Opposite(side));
    if (touch == 0) touch = options_.mid_micros;
    const PriceMicros offset = ticks * options_.tick_micros;
    return side == Side::kBuy ? touch + offset : std::max(touch - offset, options_.tick_micros);
  }

  Command Limit(Side side, PriceMicros price, Quantity quantity, TimeInForce tif) {
    Command c;
    c.op = CommandOp::kNew;
    c.time = now_;
    engine::NewOrder& order = c.order;
    order.id = next_id_++;
    order.account = static_cast<engine::AccountId>(rng_.Below(options_.accounts) + 1);
    order.side = side;
    order.type = OrderType::kLimit;
    order.tif = tif;
    order.price = price;
    order.quantity = quantity;
    if (side == Side::kBuy && rng_.Percent(10)) {
      order.lot = rng_.Percent(50) ? 2 : 4;
      order.quantity = (quantity + order.lot - 1) / order.lot * order.lot;
    }
    if (tif == TimeInForce::kGtd) order.expiry = now_ + rng_.Between(1'000'000, 60'000'000);
    return c;
  }

  bool PickLive(OrderId* id) {
    for (int attempt = 0; attempt < 8 && !live_.empty(); ++attempt) {
      const size_t i = rng_.Below(live_.size());
      if (book_.Contains(live_[i])) {
        *id = live_[i];
        return true;
      }
      live_[i] = live_.back();
      live_.pop_back();
    }
    return false;
  }

  void Emit(const Command& command) {
    events_.clear();
    engine::Apply(book_, command, &events_);
    if (command.op == CommandOp::kNew && book_.Contains(command.order.id)) {
      live_.push_back(command.order.id);
    }
  }

  MixedStreamOptions options_;
  base::Rng rng_;
  engine::OrderBook book_;
  std::vector<engine::Event> events_;
  std::vector<OrderId> live_;
  OrderId next_id_ = 1;
  engine::Timestamp now_ = 0;
};

using Clock = std::chrono::steady_clock;

void ApplyAll(engine::OrderBook& book, const std::vector<Command>& commands,
              std::vector<engine::Event>* events) {
  for (const Command& command : commands) {
    events->clear();
    engine::Apply(book, command, events);
  }
}

}  // namespace

Workload GenerateMixedStream(const MixedStreamOptions& options) {
  return StreamBuilder(options).Build();
}

Workload WorkloadFromCommands(std::vector<engine::Command> commands) {
  Workload workload;
  workload.measured = std::move(commands);
  return workload;
}

RunResult RunThroughput(const Workload& workload, const engine::BookConfig& config) {
  engine::OrderBook book(config);
  std::vector<engine::Event> events;
  events.reserve(4096);
  ApplyAll(book, workload.prefill, &events);

  RunResult result;
  uint64_t event_count = 0, trades = 0;
  const auto start = Clock::now();
  for (const Command& command : workload.measured) {
    events.clear();
    engine::Apply(book, command, &events);
    event_count += events.size();
    for (const engine::Event& event : events) trades += event.type == engine::EventType::kTrade;
  }
  const auto stop = Clock::now();
  result.seconds = std::chrono::duration<double>(stop - start).count();
  result.commands_per_second = static_cast<double>(workload.measured.size()) / result.seconds;
  result.events = event_count;
  result.trades = trades;

  // Book size along the run, from a separate untimed pass.
  engine::OrderBook sampled(config);
  ApplyAll(sampled, workload.prefill, &events);
  double levels = 0, orders = 0;
  size_t samples = 0;
  const size_t stride = std::max<size_t>(1, workload.measured.size() / 1000);
  for (size_t i = 0; i < workload.measured.size(); ++i) {
    events.clear();
    engine::Apply(sampled, workload.measured[i], &events);
    if (i % stride == 0) {
      levels += static_cast<double>(sampled.levels(engine::Side::kBuy) +
                                    sampled.levels(engine::Side::kSell));
      orders += static_cast<double>(sampled.resting_orders());
      ++samples;
    }
  }
  if (samples > 0) {
    result.mean_levels = levels / static_cast<double>(samples);
    result.mean_resting_orders = orders / static_cast<double>(samples);
  }
  return result;
}

LatencyResult RunLatency(const Workload& workload, const engine::BookConfig& config) {
  engine::OrderBook book(config);
  std::vector<engine::Event> events;
  events.reserve(4096);
  ApplyAll(book, workload.prefill, &events);

  std::vector<uint32_t> nanos(workload.measured.size());
  double total = 0;
  for (size_t i = 0; i < workload.measured.size(); ++i) {
    events.clear();
    const auto start = Clock::now();
    engine::Apply(book, workload.measured[i], &events);
    const auto stop = Clock::now();
    const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count();
    nanos[i] = static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX));
    total += static_cast<double>(ns);
  }
  LatencyResult result;
  if (nanos.empty()) return result;
  auto percentile = [&nanos](double p) {
    const size_t k = std::min(nanos.size() - 1, static_cast<size_t>(p * nanos.size()));
    std::nth_element(nanos.begin(), nanos.begin() + static_cast<ptrdiff_t>(k), nanos.end());
    return static_cast<double>(nanos[k]);
  };
  result.mean_ns = total / static_cast<double>(nanos.size());
  result.p50_ns = percentile(0.50);
  result.p99_ns = percentile(0.99);
  result.p999_ns = percentile(0.999);
  result.max_ns = static_cast<double>(*std::max_element(nanos.begin(), nanos.end()));

  // What a pair of clock reads costs by itself (it is inside every figure above).
  constexpr int kProbes = 100'000;
  std::vector<uint32_t> overhead(kProbes);
  for (int i = 0; i < kProbes; ++i) {
    const auto a = Clock::now();
    const auto b = Clock::now();
    overhead[i] = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
  }
  std::nth_element(overhead.begin(), overhead.begin() + kProbes / 2, overhead.end());
  result.clock_overhead_ns = overhead[kProbes / 2];
  return result;
}

}  // namespace ocx::bench
