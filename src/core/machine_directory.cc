#include "src/core/machine_directory.h"

#include <algorithm>

#include "src/base/assert.h"
#include "src/core/exchange.h"

namespace ocx::core {

const MachineRecord* MachineDirectoryView::Find(MachineId id) const {
  if (id == 0 || id > size_) return nullptr;
  const size_t index = static_cast<size_t>(id - 1);
  const auto& chunk = chunks_[index / kChunk];
  return (*chunk)[index % kChunk].get();
}

std::vector<std::shared_ptr<const MachineRecord>> MachineDirectoryView::After(
    MachineId after, size_t limit) const {
  std::vector<std::shared_ptr<const MachineRecord>> out;
  for (uint64_t index = after; index < size_ && out.size() < limit; ++index) {
    const auto& record = (*chunks_[index / kChunk])[index % kChunk];
    if (record) out.push_back(record);
  }
  return out;
}

MachineDirectory::MachineDirectory() : current_(std::make_shared<MachineDirectoryView>()) {}

MachineRecord MachineDirectory::RecordOf(const Exchange& exchange, MachineId id) {
  const Machine& m = exchange.machines().at(id);
  MachineRecord r;
  r.id = m.id;
  r.owner = m.owner;
  r.name = m.spec.name;
  r.public_key = m.spec.public_key;
  r.online = m.online;
  r.last_heartbeat = m.last_heartbeat;
  r.attributes = m.spec.attributes;
  r.capacity = m.capacity;
  r.offered = m.offered;
  r.leased = m.leased;
  r.best_ask.resize(m.capacity.size());
  for (size_t market = 0; market < r.best_ask.size(); ++market) {
    r.best_ask[market] = exchange.BestAsk(m, market);
  }
  r.active_leases = m.leases.size();
  r.leases_ended = m.leases_ended;
  r.leases_failed = m.leases_failed;
  r.reputation_micros = ReputationMicros(m);
  return r;
}

void MachineDirectory::Rebuild(const Exchange& exchange) {
  auto view = std::make_shared<MachineDirectoryView>();
  view->sequence_ = exchange.last_sequence();
  const auto& machines = exchange.machines();
  view->size_ = machines.empty() ? 0 : static_cast<size_t>(machines.rbegin()->first);
  const size_t chunk_count = (view->size_ + MachineDirectoryView::kChunk - 1) /
                             MachineDirectoryView::kChunk;
  std::vector<std::shared_ptr<MachineDirectoryView::Chunk>> chunks(chunk_count);
  for (auto& chunk : chunks) chunk = std::make_shared<MachineDirectoryView::Chunk>();
  for (const auto& [id, machine] : machines) {
    const size_t index = static_cast<size_t>(id - 1);
    (*chunks[index / MachineDirectoryView::kChunk])[index % MachineDirectoryView::kChunk] =
        std::make_shared<const MachineRecord>(RecordOf(exchange, id));
  }
  view->chunks_.assign(chunks.begin(), chunks.end());
  Publish(std::move(view));
}

void MachineDirectory::Update(const Exchange& exchange, const std::vector<MachineId>& changed) {
  // A batch that changed no machine leaves the view as it is: it is still exact.
  if (changed.empty()) return;
  const std::shared_ptr<const MachineDirectoryView> old = Current();
  auto view = std::make_shared<MachineDirectoryView>(*old);
  view->sequence_ = exchange.last_sequence();
  // Chunks copied in this update (writable); the others are still shared with `old`.
  std::map<size_t, std::shared_ptr<MachineDirectoryView::Chunk>> copied;
  for (const MachineId id : changed) {
    OCX_ASSERT(id > 0);
    const size_t index = static_cast<size_t>(id - 1);
    const size_t chunk_index = index / MachineDirectoryView::kChunk;
    view->size_ = std::max(view->size_, index + 1);
    while (view->chunks_.size() <= chunk_index) {
      view->chunks_.push_back(std::make_shared<const MachineDirectoryView::Chunk>());
    }
    auto& writable = copied[chunk_index];
    if (!writable) {
      writable = std::make_shared<MachineDirectoryView::Chunk>(*view->chunks_[chunk_index]);
      view->chunks_[chunk_index] = writable;
    }
    (*writable)[index % MachineDirectoryView::kChunk] =
        std::make_shared<const MachineRecord>(RecordOf(exchange, id));
  }
  Publish(std::move(view));
}

std::shared_ptr<const MachineDirectoryView> MachineDirectory::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

void MachineDirectory::Publish(std::shared_ptr<const MachineDirectoryView> view) {
  std::shared_ptr<const MachineDirectoryView> previous;
  {
    std::lock_guard lock(mu_);
    previous = std::move(current_);  // Freed outside the lock (it may be the last owner).
    current_ = std::move(view);
  }
}

}  // namespace ocx::core
