// FileJournal: the Journal on local segment files (docs/formats/journal.md), with a
// group-commit writer thread and crash recovery at open.
//
// Group commit: Append encodes the record into the pending buffer and returns. The writer
// thread swaps the pending buffer with an empty one, issues one write() and one fdatasync()
// for everything it took, publishes the new durable watermark (durable_sequence(),
// WaitDurable, the DurableCallback) and goes back for the next buffer, which filled while it
// was syncing. No timer: a batch is whatever arrived during the previous sync, so batches
// grow with load and a lone record is synced at once. The pending buffer is bounded by
// batch_bytes_max (<= kMaxUnsyncedBytes, the format's promise that only the last write can
// be unsynced); Append blocks while it is full.
//
// Recovery at Open: the newest segment is read and validated (segment_scan.h). A torn tail
// is truncated and the cut reported in recovery(); a torn segment creation is redone;
// corruption refuses to open with DataLoss naming the file, byte offset and sequence. The
// newest segment is then fdatasync'ed, so everything it holds is durable before anything new
// is acknowledged. Older segments are checked by the reader when they are replayed.
//
// Ownership: the caller owns the FileJournal; it owns its writer thread and the file
// descriptor of the newest segment. Thread-safety: see Journal. Invariants (asserted):
// sequences appended are contiguous; durable_sequence() < next_sequence(); a write is never
// larger than kMaxUnsyncedBytes; after a failure nothing more is written.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "src/journal/file_io.h"
#include "src/journal/journal.h"
#include "src/journal/segment_scan.h"

namespace ocx::journal {

// Named bounds and defaults for FileJournalOptions.
inline constexpr uint64_t kDefaultSegmentBytes = uint64_t{64} << 20;
inline constexpr uint64_t kMinSegmentBytes = 256;
inline constexpr size_t kDefaultBatchBytesMax = size_t{1} << 20;
inline constexpr size_t kMinBatchBytesMax = 4096;

struct FileJournalOptions {
  std::string dir;              // Created (one level) when missing.
  uint64_t first_sequence = 1;  // Sequence of the first record of an empty journal.
  // A segment is rolled once a batch leaves it at least this big (so a segment can exceed
  // it by up to one batch). [kMinSegmentBytes, kMaxSegmentRollBytes].
  uint64_t segment_bytes = kDefaultSegmentBytes;
  // Bound on the pending buffer, hence on one write and one batch's bytes.
  // [kMinBatchBytesMax, kMaxUnsyncedBytes]. A record larger than this is refused, so below
  // kMaxRecordBytes it also lowers the largest payload accepted.
  size_t batch_bytes_max = kDefaultBatchBytesMax;
  DurableCallback on_durable;  // Optional.
  // Optional, for metrics: after each batch is synced, on the writer thread, with the time
  // its write() + fdatasync() took and the bytes written.
  std::function<void(int64_t write_sync_nanos, size_t bytes)> on_batch_synced;
};

// What recovery found and did at Open.
struct RecoveryReport {
  std::string segment;         // Path of the newest segment ("" for a new journal).
  uint64_t segments = 0;       // Segment files found.
  uint64_t last_sequence = 0;  // Of the newest intact record (first_sequence - 1 if none).
  bool recreated_torn_header = false;
  std::optional<TornTail> truncated;  // The torn tail cut off, if any.
  bool clean() const { return !recreated_torn_header && !truncated.has_value(); }
  std::string ToString() const;
};

class FileJournal final : public Journal {
 public:
  // Recovers (or creates) the journal in options.dir and starts the writer thread.
  static absl::StatusOr<std::unique_ptr<FileJournal>> Open(FileJournalOptions options);

  FileJournal(const FileJournal&) = delete;
  FileJournal& operator=(const FileJournal&) = delete;
  ~FileJournal() override;  // Close().

  uint64_t next_sequence() const override { return next_sequence_.load(std::memory_order_acquire); }
  absl::Status Append(const RecordView& record) override;
  uint64_t durable_sequence() const override {
    return durable_sequence_.load(std::memory_order_acquire);
  }
  absl::Status WaitDurable(uint64_t sequence) override;
  absl::Status status() const override;
  absl::Status DiscardThrough(uint64_t sequence) override;
  absl::Status Close() override;

  const RecoveryReport& recovery() const { return recovery_; }
  // First sequences of the segment files, oldest first.
  std::vector<uint64_t> segments() const;

  // Counters for benchmarks and tests. Written by the writer thread.
  uint64_t batches_written() const { return batches_written_.load(std::memory_order_relaxed); }

 private:
  FileJournal(FileJournalOptions options, RecoveryReport recovery, internal::UniqueFd fd,
              std::string segment_path, uint64_t segment_size, uint64_t next_sequence,
              std::vector<uint64_t> segments);

  void WriterLoop();
  // Writer thread: starts a new segment whose first record will be `first_sequence`.
  absl::Status RollSegment(uint64_t first_sequence);
  void Fail(const absl::Status& error);

  const FileJournalOptions options_;
  const RecoveryReport recovery_;

  // Writer-thread state: touched only by the writer thread once it runs (and by Close after
  // joining it).
  internal::UniqueFd fd_;
  std::string segment_path_;
  uint64_t segment_size_;
  std::string writing_;  // The batch being written; its capacity is reused.

  mutable std::mutex mu_;
  std::condition_variable writer_cv_;   // Pending data or closing, for the writer.
  std::condition_variable space_cv_;    // Room in pending_, for producers.
  std::condition_variable durable_cv_;  // durable_sequence_ advanced or failure.
  std::string pending_;                 // Encoded records not yet taken. Guarded by mu_.
  uint32_t pending_records_ = 0;        // Guarded by mu_.
  absl::Status status_;                 // First failure; sticky. Guarded by mu_.
  bool closing_ = false;                // Guarded by mu_.
  bool writer_waiting_ = false;         // The writer sleeps on writer_cv_. Guarded by mu_.
  int space_waiters_ = 0;               // Guarded by mu_.
  int durable_waiters_ = 0;             // Guarded by mu_.
  // Written under mu_; read lock-free.
  std::atomic<uint64_t> next_sequence_;
  std::atomic<uint64_t> durable_sequence_;
  std::atomic<uint64_t> batches_written_{0};

  mutable std::mutex segments_mu_;
  std::vector<uint64_t> segments_;  // First sequences, oldest first. Guarded by segments_mu_.

  std::mutex close_mu_;  // Serializes Close().
  std::thread writer_;
};

}  // namespace ocx::journal
