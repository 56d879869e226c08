#include "src/api/offer_index.h"

#include <mutex>
#include <utility>

namespace ocx::api {
namespace {

// Whether what discovery shows of a machine differs between two records.
bool SameForDiscovery(const core::MachineRecord& a, const core::MachineRecord& b) {
  return a.online == b.online && a.attributes == b.attributes && a.best_ask == b.best_ask &&
         a.reputation_micros == b.reputation_micros;
}

}  // namespace

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

void OfferIndex::Apply(const core::MachineRecord* before, const core::MachineRecord* after) {
  if (after == nullptr) return;
  if (before != nullptr && SameForDiscovery(*before, *after)) return;
  for (size_t m = 0; m < indexes_.size(); ++m) {
    if (!after->online) {
      indexes_[m]->Remove(after->id);
      continue;
    }
    query::Attributes attributes = after->attributes;
    attributes["reputation"] = query::Value::Number(after->reputation_micros);
    if (m < after->best_ask.size() && after->best_ask[m] > 0) {
      attributes["price"] = query::Value::Number(after->best_ask[m]);
    }
    indexes_[m]->Upsert(after->id, std::move(attributes));
  }
}

void OfferIndex::Refresh(const std::shared_ptr<const core::MachineDirectoryView>& view) {
  {
    std::shared_lock lock(mu_);
    if (applied_ == view) return;
  }
  std::unique_lock lock(mu_);
  if (applied_ == view) return;  // Another reader refreshed meanwhile.
  if (applied_ != nullptr && applied_->sequence() > view->sequence()) return;  // A later one won.
  const auto& now = view->chunks();
  for (size_t c = 0; c < now.size(); ++c) {
    const core::MachineDirectoryView::Chunk* old_chunk =
        applied_ != nullptr && c < applied_->chunks().size() ? applied_->chunks()[c].get()
                                                             : nullptr;
    if (old_chunk == now[c].get()) continue;  // Shared: nothing in it changed.
    for (size_t i = 0; i < core::MachineDirectoryView::kChunk; ++i) {
      const core::MachineRecord* after = (*now[c])[i].get();
      const core::MachineRecord* before = old_chunk ? (*old_chunk)[i].get() : nullptr;
      if (before != after) Apply(before, after);
    }
  }
  applied_ = view;
}

const query::MachineIndex* OfferIndex::Index(size_t market) const {
  return market < indexes_.size() ? indexes_[market].get() : nullptr;
}

}  // namespace ocx::api
