// OfferIndex: discovery over the exchange's machines for GET /v1/offers (docs/api.md,
// docs/formats/query.md). One query::MachineIndex per market holds every online machine's
// attributes plus `reputation` and `price`, its lowest ask in that market (absent when it has
// none).
//
// It follows the machine directory lazily: Refresh(view) diffs the view against the last one
// it applied, chunk by chunk and record by record (the directory shares what did not change),
// so a search sees every acknowledged command without ever touching the sequencer, and a
// refresh costs what changed, not the number of machines.
//
// Thread-safe: Refresh takes the lock exclusively (only when the view moved), searches share
// it.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "src/core/machine_directory.h"
#include "src/core/types.h"
#include "src/query/index.h"

namespace ocx::api {

class OfferIndex {
 public:
  explicit OfferIndex(const core::ExchangeConfig& config);

  // Brings the indexes up to `view` (a no-op when it is the view applied last).
  void Refresh(const std::shared_ptr<const core::MachineDirectoryView>& view);

  // nullptr for an unknown market.
  const query::MachineIndex* Index(size_t market) const;
  int MarketIndex(const std::string& name) const;
  std::shared_mutex& mutex() const { return mu_; }

 private:
  void Apply(const core::MachineRecord* before, const core::MachineRecord* after);

  std::vector<std::string> markets_;
  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<query::MachineIndex>> indexes_;  // Per market. Guarded by mu_.
  std::shared_ptr<const core::MachineDirectoryView> applied_;   // Guarded by mu_.
};

}  // namespace ocx::api
