// OfferIndex: discovery over the exchange's machines for GET /v1/offers (docs/api.md,
// docs/formats/query.md). One query::MachineIndex per market holds every online machine's
// attributes plus `price`, its lowest ask in that market (absent when it has none).
//
// It follows the core lazily: Refresh(exchange), called under the sequencer's Read, copies
// only the machines whose Machine::changed_sequence moved since the last refresh (all of them
// the first time), so a search sees every command acknowledged before it without the
// sequencer ever pushing to it.
//
// Thread-safe: Refresh/Apply take the lock exclusively, Search/Explain share it.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "src/core/exchange.h"
#include "src/query/index.h"

namespace ocx::api {

class OfferIndex {
 public:
  explicit OfferIndex(const core::ExchangeConfig& config);

  // What changed since the last refresh, read from the core (cheap: runs under Read).
  struct Changes {
    uint64_t sequence = 0;
    struct Entry {
      core::MachineId machine = 0;
      bool online = false;
      query::Attributes attributes;
      std::vector<core::PriceMicros> best_ask;  // Per market index; 0: none.
    };
    std::vector<Entry> entries;
  };
  Changes Collect(const core::Exchange& exchange) const;
  // Applies what Collect found (outside the sequencer's Read).
  void Apply(Changes changes);

  // nullptr for an unknown market.
  const query::MachineIndex* Index(size_t market) const;
  int MarketIndex(const std::string& name) const;
  std::shared_mutex& mutex() const { return mu_; }

 private:
  std::vector<std::string> markets_;
  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<query::MachineIndex>> indexes_;  // Per market. Guarded by mu_.
  uint64_t refreshed_sequence_ = 0;                            // Guarded by mu_.
  bool refreshed_once_ = false;                                // Guarded by mu_.
};

}  // namespace ocx::api
