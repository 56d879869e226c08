// MachineDirectory: what readers see of the machines (GET /v1/machines, /v1/offers), as an
// immutable view published after each batch of commands, so that no read ever takes the
// lock the sequencer applies commands under, however many readers there are.
//
// A view is a persistent vector: machine ids are dense (1, 2, 3, ... and never removed), so
// records live in fixed-size chunks, each shared between views until one of its machines
// changes. Publishing a batch's changes copies the chunk pointers (machines / kChunk of them)
// and each touched chunk (kChunk pointers): cheap on the sequencer thread, whatever the number
// of machines. Readers diff two views by chunk and record pointer (OfferIndex does).
//
// Thread-safety: Rebuild/Update from one thread at a time (the sequencer thread); Current
// from any thread (a short mutex guards only the pointer swap).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/core/types.h"

namespace ocx::core {

class Exchange;

// One machine as readers see it.
struct MachineRecord {
  MachineId id = 0;
  AccountId owner = 0;
  std::string name;
  std::string public_key;
  bool online = false;
  Timestamp last_heartbeat = 0;
  std::map<std::string, AttributeValue> attributes;
  // Per market index, as the exchange's configuration lists the markets.
  std::vector<Quantity> capacity;
  std::vector<Quantity> offered;
  std::vector<Quantity> leased;
  std::vector<PriceMicros> best_ask;  // 0: no ask in that market.
  size_t active_leases = 0;
  int64_t leases_ended = 0;
  int64_t leases_failed = 0;
  int64_t reputation_micros = 0;
};

class MachineDirectoryView {
 public:
  static constexpr size_t kChunk = 256;
  using Chunk = std::array<std::shared_ptr<const MachineRecord>, kChunk>;

  // The last command reflected.
  uint64_t sequence() const { return sequence_; }
  size_t size() const { return size_; }
  // nullptr when no machine has this id.
  const MachineRecord* Find(MachineId id) const;
  // Up to `limit` records with ids after `after`, in id order.
  std::vector<std::shared_ptr<const MachineRecord>> After(MachineId after, size_t limit) const;
  const std::vector<std::shared_ptr<const Chunk>>& chunks() const { return chunks_; }

 private:
  friend class MachineDirectory;
  uint64_t sequence_ = 0;
  size_t size_ = 0;
  std::vector<std::shared_ptr<const Chunk>> chunks_;  // Chunk i: ids i*kChunk+1 ...
};

class MachineDirectory {
 public:
  MachineDirectory();
  // Every machine of `exchange` (at start, after recovery).
  void Rebuild(const Exchange& exchange);
  // The machines in `changed` (Exchange::TakeChangedMachines) as they are now.
  void Update(const Exchange& exchange, const std::vector<MachineId>& changed);
  std::shared_ptr<const MachineDirectoryView> Current() const;

  static MachineRecord RecordOf(const Exchange& exchange, MachineId id);

 private:
  void Publish(std::shared_ptr<const MachineDirectoryView> view);

  mutable std::mutex mu_;
  std::shared_ptr<const MachineDirectoryView> current_;  // Guarded by mu_.
};

}  // namespace ocx::core
