// Sequencer: the one thread that orders everything the exchange does (LMAX style).
//
// Commands arrive from any thread (API handlers, agent channels). The sequencer thread
// stamps each with the next sequence number and a timestamp from the Clock (never going
// backwards), applies it to the core::Exchange, registers the reply, and appends the
// command to the journal. The journal's writer thread syncs batches of records (group
// commit); once a command's record is durable, the sequencer's delivery thread runs
// on_durable and the reply, in sequence order, while the journal syncs the next batch. So:
// acknowledged means durable, the sequencer keeps applying while a batch syncs, and the
// journal keeps syncing while a batch is delivered.
//
// Recovery (Open): latest verified snapshot + replay of the journal after it; a torn
// journal tail is truncated by the journal; corruption refuses to start.
//
// If a journal append fails after its command was applied, the in-memory state is ahead of
// the journal: the sequencer stops for good (every later Submit fails) and never
// acknowledges that command. A restart recovers from the journal.
//
// Ownership: owns the Exchange, the journal and up to four threads (sequencer, delivery, the
// snapshot writer when snapshots are on, and the journal's writer through the journal).
// Thread-safety: Submit, Execute,
// Read and Stop may be called from any thread; Read runs under the state mutex, so it sees
// the state between two commands (possibly including commands not yet durable).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "src/base/clock.h"
#include "src/core/exchange.h"
#include "src/core/gateway.h"
#include "src/journal/file_journal.h"

namespace ocx::server {

using core::Acked;
using core::AckCallback;

struct SequencerOptions {
  core::ExchangeConfig config = core::ExchangeConfig::Default();
  std::string data_dir;                 // journal/ and snapshots/ live under it.
  const base::Clock* clock = nullptr;   // Required; must outlive the sequencer.
  // A snapshot after this many commands (0: never). The state is serialized on the sequencer
  // thread; a thread of its own waits until everything it captures is durable and writes the
  // file, so the sequencer goes on meanwhile (while one is being written, a newer one replaces
  // any that waits).
  uint64_t snapshot_every = 100'000;
  // Named bound on commands waiting for the sequencer thread; Submit blocks while full.
  size_t inbound_max = 65'536;
  // Named bound on commands applied but not yet delivered (durable or not): the sequencer
  // waits before applying more, so slow acknowledgements or a slow on_durable hook hold back
  // the exchange instead of queueing without end.
  size_t undelivered_max = 65'536;
  uint64_t journal_segment_bytes = journal::kDefaultSegmentBytes;
  // Called for every durable command, in sequence order, on the delivery thread, before its
  // AckCallback (the query store's projector hooks in here). Must be quick.
  std::function<void(const Acked&)> on_durable;
  // Passed to the journal (FileJournalOptions::on_batch_synced), for metrics.
  std::function<void(int64_t write_sync_nanos, size_t bytes)> on_journal_sync;
  // Called on the sequencer thread after each batch of commands is applied and before any
  // of them is journaled (so before any is acknowledged), with the state and the machines the
  // batch changed: the read views are published here (MachineDirectory), so a client that
  // got its answer reads its own writes. Must be quick; the state must not be kept.
  std::function<void(const core::Exchange&, const std::vector<core::MachineId>& changed)>
      after_batch;
  // Called on the snapshot thread after each snapshot file is written and durable, with its
  // sequence (`ocx exchange` prunes old snapshots and journal segments there).
  std::function<void(uint64_t sequence)> on_snapshot_written;
  // At most this many commands are applied between two after_batch calls (a bound on how
  // long an acknowledgement may wait for the rest of its batch).
  size_t batch_commands_max = 256;
};

struct SequencerRecovery {
  uint64_t snapshot_sequence = 0;   // 0: started without a snapshot.
  uint64_t replayed = 0;            // Journal records applied after it.
  uint64_t last_sequence = 0;
  std::string journal;              // The journal's own recovery report.
};

class Sequencer : public core::CommandGateway {
 public:
  static absl::StatusOr<std::unique_ptr<Sequencer>> Open(SequencerOptions options);
  ~Sequencer();  // Stop().
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  // Queues a command; `done` runs once it is durable (on the delivery thread, which delivers
  // every acknowledgement in order: keep it quick). Errors: InvalidArgument for text that is not
  // UTF-8 (nothing is applied), FailedPrecondition once stopped or failed.
  absl::Status Submit(core::CommandBody command, AckCallback done) override;
  // Submits and waits for the durable acknowledgement.
  absl::StatusOr<Acked> Execute(core::CommandBody command);
  // Runs `read` on the state under the state mutex.
  void Read(const std::function<void(const core::Exchange&)>& read) const override;
  // Drains what was submitted, waits until it is durable and delivered, stops the threads.
  // Idempotent.
  absl::Status Stop();

  const SequencerRecovery& recovery() const { return recovery_; }
  // The last command that is durable and has been passed to on_durable (everything up to it
  // has): what a reader that wants to see every acknowledged command waits for.
  uint64_t durable_sequence() const override {
    return delivered_sequence_.load(std::memory_order_acquire);
  }
  absl::Status status() const override;

 private:
  struct Pending {
    Acked acked;
    AckCallback done;
  };
  struct Inbound {
    core::CommandBody command;
    AckCallback done;
  };

  Sequencer(SequencerOptions options, std::unique_ptr<core::Exchange> exchange,
            SequencerRecovery recovery);
  void Loop();
  // Applies up to batch_commands_max commands from `batch` starting at `*next`, publishes the
  // views, then journals them.
  void ProcessBatch(std::deque<Inbound>& batch, size_t* next);
  // Runs a delivery callback; what it throws is logged as an incident, never let through.
  static void Deliver(const std::function<void()>& callback, const char* what);
  void OnDurable(uint64_t durable_sequence);  // The journal's writer thread.
  void DeliveryLoop();
  void Fail(const absl::Status& error);
  void MaybeSnapshot();
  void SnapshotLoop();  // The snapshot writer thread.

  const SequencerOptions options_;
  SequencerRecovery recovery_;
  std::unique_ptr<journal::FileJournal> journal_;

  std::atomic<uint64_t> delivered_sequence_{0};

  mutable std::mutex state_mu_;
  std::unique_ptr<core::Exchange> exchange_;  // Guarded by state_mu_ (written only by Loop).
  int64_t last_time_ = 0;                      // Sequencer thread only.
  uint64_t since_snapshot_ = 0;                // Sequencer thread only.

  mutable std::mutex inbound_mu_;
  std::condition_variable inbound_cv_;   // Work or stopping, for the loop.
  std::condition_variable space_cv_;     // Room in inbound_, for submitters.
  std::deque<Inbound> inbound_;          // Guarded by inbound_mu_.
  bool stopping_ = false;                // Guarded by inbound_mu_.
  absl::Status status_;                  // First failure; sticky. Guarded by inbound_mu_.
  std::atomic<bool> failed_{false};      // status_ is not OK (set with it, under inbound_mu_).

  std::mutex pending_mu_;
  std::condition_variable delivery_cv_;  // Durable commands to deliver, or stopping.
  std::condition_variable delivery_space_cv_;  // Room in pending_, for the sequencer loop.
  std::deque<Pending> pending_;          // Applied, not yet delivered, in sequence order. Guarded.
  uint64_t journal_durable_ = 0;         // The journal's last durable sequence. Guarded.
  bool delivery_stopping_ = false;       // Guarded by pending_mu_.
  bool stop_requested_ = false;          // Stop() began. Guarded by pending_mu_.
  // Commands applied and not yet delivered: in pending_ or being delivered. Changed under
  // pending_mu_; read without it by the sequencer, which waits (on delivery_space_cv_) only
  // at the bound.
  std::atomic<size_t> undelivered_{0};
  std::thread delivery_thread_;

  // A serialized state waiting to be written: the snapshot thread takes it.
  struct SnapshotToWrite {
    uint64_t sequence = 0;
    std::string body;
  };
  std::mutex snapshot_mu_;
  std::condition_variable snapshot_cv_;               // A snapshot to write, or stopping.
  std::optional<SnapshotToWrite> snapshot_to_write_;  // Guarded by snapshot_mu_.
  bool snapshot_stopping_ = false;                    // Guarded by snapshot_mu_.
  std::thread snapshot_thread_;                       // Only when snapshot_every > 0.

  std::mutex stop_mu_;
  bool stopped_ = false;  // Guarded by stop_mu_.
  std::thread thread_;
};

}  // namespace ocx::server
