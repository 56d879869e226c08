#include "src/api/offers.h"

#include <mutex>
#include <utility>

namespace ocx::api {

OfferIndex::OfferIndex(const core::ExchangeConfig& config) {
  for (const core::MarketConfig& market : config.markets) {
    markets_.push_back(market.name);
    indexes_.push_back(std::make_unique<query::MachineIndex>());
  }
}

int OfferIndex::MarketIndex(const std::string& name) const {
  for (size_t i = 0; i < markets_.size(); ++i) {
    if (markets_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

OfferIndex::Changes OfferIndex::Collect(const core::Exchange& exchange) const {
  uint64_t since = 0;
  bool everything = false;
  {
    std::shared_lock lock(mu_);
    since = refreshed_sequence_;
    everything = !refreshed_once_;
  }
  Changes changes;
  changes.sequence = exchange.last_sequence();
  if (!everything && changes.sequence == since) return changes;
  for (const auto& [id, machine] : exchange.machines()) {
    if (!everything && machine.changed_sequence <= since) continue;
    Changes::Entry entry;
    entry.machine = id;
    entry.online = machine.online;
    if (machine.online) {
      entry.attributes = machine.spec.attributes;
      entry.attributes["reputation"] = query::Value::Number(core::ReputationMicros(machine));
      for (size_t m = 0; m < markets_.size(); ++m) {
        entry.best_ask.push_back(exchange.BestAsk(machine, m));
      }
    }
    changes.entries.push_back(std::move(entry));
  }
  return changes;
}

void OfferIndex::Apply(Changes changes) {
  std::unique_lock lock(mu_);
  if (refreshed_once_ && changes.sequence <= refreshed_sequence_) return;  // A later one won.
  for (Changes::Entry& entry : changes.entries) {
    for (size_t m = 0; m < indexes_.size(); ++m) {
      if (!entry.online) {
        indexes_[m]->Remove(entry.machine);
        continue;
      }
      query::Attributes attributes = entry.attributes;
      if (entry.best_ask[m] > 0) attributes["price"] = query::Value::Number(entry.best_ask[m]);
      indexes_[m]->Upsert(entry.machine, std::move(attributes));
    }
  }
  refreshed_sequence_ = changes.sequence;
  refreshed_once_ = true;
}

const query::MachineIndex* OfferIndex::Index(size_t market) const {
  return market < indexes_.size() ? indexes_[market].get() : nullptr;
}

}  // namespace ocx::api
