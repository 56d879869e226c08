// Journal: the exchange's command log and its source of truth (state = latest snapshot +
// replay of the journal after it). The sequencer thread stamps each command with a sequence
// number and a timestamp and appends it; a caller is acknowledged only once the record is
// durable. Implementations group many appends into one durable write (group commit).
//
// Implementations: FileJournal (local segment files, CRC32C per record, fdatasync); later a
// replicated one. docs/formats/journal.md specifies the file format.
//
// Thread-safety: every method may be called from any thread. Sequences must arrive in order,
// so in practice one producer (the sequencer) appends; others may wait or read the
// watermark. Errors: a failed write or sync stops the journal for good (house style: never
// carry on after lost durability); every later call reports that first error.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "src/journal/record_format.h"

namespace ocx::journal {

// Called with the highest durable sequence after each group commit, on the journal's writer
// thread, in increasing order. It must be quick and must not wait on the journal (for
// example by calling Append when the queue may be full): the next batch waits for it.
using DurableCallback = std::function<void(uint64_t durable_sequence)>;

class Journal {
 public:
  virtual ~Journal() = default;

  // The sequence the next Append must carry.
  virtual uint64_t next_sequence() const = 0;

  // Queues `record` for the next group commit and returns without waiting for the disk, so
  // the sequencer keeps working while a batch syncs. Blocks only while the bounded queue is
  // full (backpressure). record.sequence must equal next_sequence() (asserted: a wrong
  // sequence is a programmer error). Errors: InvalidArgument for a payload over
  // kMaxPayloadBytes (or the implementation's batch bound), FailedPrecondition after Close,
  // the first write error after a failure.
  virtual absl::Status Append(const RecordView& record) = 0;

  // Every record with a sequence <= this is durable. Lock-free; never decreases.
  virtual uint64_t durable_sequence() const = 0;

  // Blocks until `sequence` (already appended) is durable: OK, or the error that stopped the
  // journal before it became durable.
  virtual absl::Status WaitDurable(uint64_t sequence) = 0;

  // OK, or the first write or sync error, forever.
  virtual absl::Status status() const = 0;

  // Records with sequence <= `sequence` are covered by a durable snapshot: the journal may
  // discard them (FileJournal deletes whole segments). Never discards the newest segment.
  virtual absl::Status DiscardThrough(uint64_t sequence) = 0;

  // Makes every appended record durable and stops the writer. Later Appends fail. Returns
  // status(). Idempotent.
  virtual absl::Status Close() = 0;
};

}  // namespace ocx::journal
