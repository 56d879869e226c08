// Market data and event fan-out: what the WebSocket streams and the book endpoint show.
//
// MarketData follows the exchange through its durable events only (the sequencer's
// on_durable hook, in sequence order), so nothing it publishes can be undone by a crash:
// - an aggregated order book per market (price level -> resting quantity), built from the
//   engine events (accepted, trade, cancelled, replaced, expired) and seeded at start from
//   the recovered state;
// - the last trade per market;
// - the routing of events to channels: `book:M`, `trades:M` (public), `orders` and `leases`
//   (private, per account), and each machine's agent channel.
//
// Subscribers are StreamSinks (the WebSocket sessions). A subscription to `book:M` first
// receives a snapshot, then every update after it: both are built under the same mutex that
// Publish holds, so no update is lost or doubled between them.
//
// Thread-safety: every method may be called from any thread; one mutex (mu_) guards all.
// Publish runs on the sequencer's delivery thread and must stay quick: messages are built only
// for channels that have subscribers, and a sink's Deliver never blocks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/core/events.h"
#include "src/core/types.h"

namespace ocx::core {
class Exchange;
}

namespace ocx::api {

// A receiver of stream messages (a WebSocket session). Deliver must not block: a sink
// queues the message and drops the connection itself when its queue is over its bound.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void Deliver(std::shared_ptr<const std::string> message) = 0;
  // The token that opened this private subscription was replaced (TokenRotated): the sink is
  // already unsubscribed from the channel and should end its session. Called with the
  // publisher's lock held: post, do not call back into MarketData.
  virtual void Revoke() {}
};

struct Level {
  core::PriceMicros price = 0;
  core::Quantity quantity = 0;
};

struct BookDepth {
  uint64_t sequence = 0;    // The last command reflected.
  std::vector<Level> bids;  // Best (highest) first.
  std::vector<Level> asks;  // Best (lowest) first.
};

struct LastTrade {
  core::PriceMicros price = 0;
  core::Quantity quantity = 0;
  core::Timestamp time = 0;
  uint64_t sequence = 0;
};

struct LeaseRoute {
  core::AccountId buyer = 0;
  core::AccountId seller = 0;
  core::MachineId machine = 0;
};

// A task document (spec or result, docs/formats/task.md) as JSON: the API validated it before
// it was journaled; one that does not parse (from a hand-made journal, say) is passed on as a
// string rather than dropped.
nlohmann::json TaskDocumentJson(const std::string& text);
// The task spec a machine receives: a job's task (job != 0) also gets OCX_JOB_ID and
// OCX_TASK_INDEX in its environment.
std::string TaskSpecForMachine(const std::string& spec, core::JobId job, int32_t task_index);

class MarketData {
 public:
  // Channel names of private and agent channels.
  static std::string OrdersChannel(core::AccountId account);
  static std::string LeasesChannel(core::AccountId account);
  static std::string MachineChannel(core::MachineId machine);

  // Seeds books and lease routes from the recovered state (before any Publish).
  void Load(const core::Exchange& exchange);
  // Applies one durable command's events and delivers the resulting messages.
  void Publish(uint64_t sequence, core::Timestamp time, const std::vector<core::CoreEvent>& events);

  // Subscribes `sink` (kept weakly: a gone sink is dropped). For book channels the snapshot
  // is delivered before this returns. False for an unknown public channel name.
  bool Subscribe(const std::string& channel, const std::shared_ptr<StreamSink>& sink);
  void Unsubscribe(const std::string& channel, const StreamSink* sink);
  void UnsubscribeAll(const StreamSink* sink);
  // True for book:M and trades:M of a configured market.
  bool IsPublicChannel(const std::string& channel) const;

  std::optional<BookDepth> Depth(const std::string& market, size_t levels) const;
  std::optional<LastTrade> Last(const std::string& market) const;
  std::optional<LeaseRoute> Route(core::LeaseId lease) const;
  // Active leases of a machine (for the agent's welcome message).
  std::vector<core::LeaseStarted> ActiveLeases(core::MachineId machine) const;
  // The task spec (docs/formats/task.md) of a lease whose task has not finished, if any.
  std::optional<std::string> OpenTaskSpec(core::LeaseId lease) const;
  // Delivers `message` on the private leases channel of the lease's buyer (live task logs,
  // which are not journaled). False when the lease is not active or not on `machine`.
  bool SendToBuyer(core::LeaseId lease, core::MachineId machine, const std::string& message);
  uint64_t sequence() const;

 private:
  struct Book {
    std::map<core::PriceMicros, core::Quantity, std::greater<>> bids;
    std::map<core::PriceMicros, core::Quantity> asks;
    std::optional<LastTrade> last;
  };
  struct LiveOrder {
    std::string market;
    engine::Side side = engine::Side::kBuy;
    core::PriceMicros price = 0;
    core::Quantity remaining = 0;
  };
  using Subscribers = std::vector<std::weak_ptr<StreamSink>>;

  void AddLevel(Book& book, engine::Side side, core::PriceMicros price, core::Quantity delta);
  void Send(const std::string& channel, const std::string& message);
  // Revokes every subscriber of `channel` and drops the channel.
  void RevokeChannel(const std::string& channel);
  bool HasSubscribers(const std::string& channel) const;
  std::string SnapshotMessage(const std::string& market, const Book& book) const;

  mutable std::mutex mu_;
  uint64_t sequence_ = 0;              // Guarded by mu_.
  std::map<std::string, Book> books_;  // Guarded by mu_.
  // Orders that may rest, while they have quantity (a bound: the books' own bounds).
  std::unordered_map<core::OrderId, LiveOrder> orders_;           // Guarded by mu_.
  std::unordered_map<core::LeaseId, core::LeaseStarted> leases_;  // Active. Guarded by mu_.
  std::unordered_map<core::LeaseId, std::string> task_specs_;     // Open tasks. Guarded by mu_.
  std::unordered_map<core::JobId, core::AccountId> job_owners_;  // Active jobs. Guarded by mu_.
  std::unordered_map<std::string, Subscribers> subscribers_;      // Guarded by mu_.
};

}  // namespace ocx::api
