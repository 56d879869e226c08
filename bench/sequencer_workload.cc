#include "bench/sequencer_workload.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "src/base/rng.h"
#include "src/server/sequencer.h"

namespace ocx::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Each producer trades as its own consumer against one provider: limit buys and sells
// around a price (many cross), and cancels of its most recently acknowledged buy (some of
// which have traded already and are refused as unknown).
core::CommandBody NextCommand(base::Rng& rng, int producer, uint64_t n, core::OrderId last_buy) {
  const core::AccountId consumer = static_cast<core::AccountId>(3 + producer);
  if (rng.Percent(20) && last_buy != 0) return core::CancelOrder{consumer, last_buy};
  core::PlaceOrder c;
  c.market = "cpu";
  c.client_order_id = std::to_string(producer) + "-" + std::to_string(n);
  c.side = rng.Percent(50) ? engine::Side::kBuy : engine::Side::kSell;
  c.actor = c.side == engine::Side::kBuy ? consumer : 2;
  c.machine = c.side == engine::Side::kSell ? 1 : 0;
  c.price = rng.Between(990, 1010) * 100;
  c.quantity = rng.Between(1, 4);
  c.max_hours = 1;
  c.tif = rng.Percent(70) ? engine::TimeInForce::kGtc : engine::TimeInForce::kIoc;
  return c;
}

}  // namespace

absl::StatusOr<SequencerBenchResult> RunSequencerBench(const SequencerBenchOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(options.data_dir, ec) &&
      !std::filesystem::is_empty(options.data_dir, ec)) {
    return absl::FailedPreconditionError("the bench needs an empty directory: " + options.data_dir);
  }
  base::SystemClock clock;
  server::SequencerOptions sequencer_options;
  sequencer_options.data_dir = options.data_dir;
  sequencer_options.clock = &clock;
  sequencer_options.snapshot_every = 0;
  absl::StatusOr<std::unique_ptr<server::Sequencer>> sequencer =
      server::Sequencer::Open(sequencer_options);
  if (!sequencer.ok()) return sequencer.status();
  server::Sequencer& s = **sequencer;

  // Setup: an operator, a provider with one very large machine, a funded consumer per producer.
  std::vector<core::CommandBody> setup = {core::CreateAccount{0, "op", core::Role::kOperator, {}},
                                          core::CreateAccount{0, "prov", core::Role::kProvider, {}}};
  core::RegisterMachine machine;
  machine.actor = 2;
  machine.spec.name = "bench";
  machine.spec.capacity["cpu"] = 1'000'000;
  setup.push_back(machine);
  for (int p = 0; p < options.producers; ++p) {
    setup.push_back(core::CreateAccount{0, "c" + std::to_string(p), core::Role::kConsumer, {}});
    setup.push_back(core::Deposit{1, static_cast<core::AccountId>(3 + p), 900'000'000'000'000});
  }
  for (const core::CommandBody& command : setup) {
    absl::StatusOr<server::Acked> acked = s.Execute(command);
    if (!acked.ok()) return acked.status();
    if (!acked->output.result.accepted) {
      return absl::InternalError("bench setup refused: " + std::string(acked->output.result.code()));
    }
  }

  const size_t per_producer = options.commands / static_cast<size_t>(options.producers);
  std::vector<std::vector<uint32_t>> latencies_us(static_cast<size_t>(options.producers));
  // The latest buy each producer's consumer got acknowledged (written by the ack callback).
  std::vector<std::atomic<core::OrderId>> last_buy(static_cast<size_t>(options.producers));
  std::vector<std::atomic<size_t>> producer_acked(static_cast<size_t>(options.producers));
  std::atomic<size_t> acked_count{0};
  std::atomic<size_t> trades{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < options.producers; ++p) {
    latencies_us[static_cast<size_t>(p)].assign(per_producer, 0);
    threads.emplace_back([&, p] {
      base::Rng rng(options.seed * 1000 + static_cast<uint64_t>(p));
      std::vector<uint32_t>& mine = latencies_us[static_cast<size_t>(p)];
      std::atomic<core::OrderId>& my_last_buy = last_buy[static_cast<size_t>(p)];
      std::atomic<size_t>& my_acked = producer_acked[static_cast<size_t>(p)];
      for (size_t i = 0; i < per_producer; ++i) {
        while (i - my_acked.load(std::memory_order_acquire) >= options.window) {
          std::this_thread::yield();  // A client waiting for a reply.
        }
        core::CommandBody command =
            NextCommand(rng, p, i, my_last_buy.load(std::memory_order_relaxed));
        const bool is_buy = std::holds_alternative<core::PlaceOrder>(command) &&
                            std::get<core::PlaceOrder>(command).side == engine::Side::kBuy;
        const auto submitted = Clock::now();
        const absl::Status status = s.Submit(std::move(command), [&, i, submitted, is_buy](
                                                                     const server::Acked& acked) {
          const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                              Clock::now() - submitted).count();
          mine[i] = static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX));
          if (is_buy && acked.output.result.order != 0) {
            my_last_buy.store(acked.output.result.order, std::memory_order_relaxed);
          }
          for (const core::CoreEvent& e : acked.output.events) {
            if (const auto* o = std::get_if<core::OrderEvent>(&e)) {
              trades.fetch_add(o->event.type == engine::EventType::kTrade,
                               std::memory_order_relaxed);
            }
          }
          acked_count.fetch_add(1, std::memory_order_release);
          my_acked.fetch_add(1, std::memory_order_release);
        });
        if (!status.ok()) return;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Status stopped = s.Stop();  // Waits until the last command is durable.
  const auto stop = Clock::now();
  if (!stopped.ok()) return stopped;

  SequencerBenchResult result;
  result.commands = acked_count.load(std::memory_order_acquire);
  result.seconds = std::chrono::duration<double>(stop - start).count();
  result.commands_per_second = static_cast<double>(result.commands) / result.seconds;
  result.trades = trades.load();
  std::vector<uint32_t> all;
  for (const auto& v : latencies_us) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto at = [&all](double q) {
    return all.empty() ? 0.0
                       : all[std::min(all.size() - 1, static_cast<size_t>(q * all.size()))] / 1000.0;
  };
  result.p50_ms = at(0.50);
  result.p99_ms = at(0.99);
  result.p999_ms = at(0.999);
  result.max_ms = all.empty() ? 0.0 : all.back() / 1000.0;
  for (const auto& entry : std::filesystem::directory_iterator(options.data_dir + "/journal", ec)) {
    result.journal_bytes += entry.file_size();
  }
  return result;
}

}  // namespace ocx::bench
