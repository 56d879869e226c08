#include "src/journal/file_journal.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/base/thread_name.h"
#include "src/journal/strings.h"

namespace ocx::journal {
namespace {

using internal::JoinPath;
using internal::UniqueFd;

// Creates (or, with `replace`, rewrites) the segment file for `first_sequence` holding just
// its header, and makes it durable: the header is synced, then the directory entry. Records
// are written only after this returns, so a torn header always means an empty segment.
absl::StatusOr<UniqueFd> CreateSegment(const std::string& dir, uint64_t first_sequence,
                                       bool replace) {
  const std::string path = JoinPath(dir, SegmentFileName(first_sequence));
  const int flags = O_WRONLY | O_APPEND | O_CREAT | (replace ? O_TRUNC : O_EXCL);
  OCX_ASSIGN_OR_RETURN(UniqueFd fd, internal::OpenFile(path, flags));
  OCX_RETURN_IF_ERROR(internal::WriteFully(fd.get(), EncodeSegmentHeader(first_sequence), path));
  OCX_RETURN_IF_ERROR(internal::SyncData(fd.get(), path));
  OCX_RETURN_IF_ERROR(internal::SyncDirectory(dir));
  return fd;
}

absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir) {
  OCX_ASSIGN_OR_RETURN(std::vector<std::string> names, internal::ListDirectory(dir));
  std::vector<uint64_t> segments;
  for (const std::string& name : names) {
    if (std::optional<uint64_t> first = ParseSegmentFileName(name)) segments.push_back(*first);
  }
  std::sort(segments.begin(), segments.end());
  return segments;
}

absl::Status CheckOptions(const FileJournalOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("journal: no directory given");
  if (options.first_sequence == 0) {
    return absl::InvalidArgumentError("journal: sequences start at 1 or later");
  }
  if (options.segment_bytes < kMinSegmentBytes || options.segment_bytes > kMaxSegmentRollBytes) {
    return absl::InvalidArgumentError(internal::Cat("journal: segment size must be in [",
                                                    kMinSegmentBytes, ", ", kMaxSegmentRollBytes,
                                                    "] bytes, not ", options.segment_bytes));
  }
  if (options.batch_bytes_max < kMinBatchBytesMax || options.batch_bytes_max > kMaxUnsyncedBytes) {
    return absl::InvalidArgumentError(internal::Cat("journal: batch bound must be in [",
                                                    kMinBatchBytesMax, ", ", kMaxUnsyncedBytes,
                                                    "] bytes, not ", options.batch_bytes_max));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RecoveryReport::ToString() const {
  if (segment.empty()) return "new journal";
  std::string text =
      internal::Cat(segments, " segment(s), newest ", segment, ", last sequence ", last_sequence);
  if (recreated_torn_header) {
    text += internal::Cat(
        "; the newest segment's header was torn (crash while creating it): "
        "recreated it, nothing was lost");
  }
  if (truncated.has_value()) {
    text += internal::Cat("; torn tail truncated at byte offset ", truncated->offset, ": ",
                          truncated->bytes, " bytes dropped (", truncated->reason, "; ",
                          truncated->intact_records,
                          " whole record(s) of the same unsynced write dropped with it)");
  }
  if (clean()) text += internal::Cat("; clean");
  return text;
}

absl::StatusOr<std::unique_ptr<FileJournal>> FileJournal::Open(FileJournalOptions options) {
  OCX_RETURN_IF_ERROR(CheckOptions(options));
  OCX_RETURN_IF_ERROR(internal::EnsureDirectory(options.dir));
  OCX_ASSIGN_OR_RETURN(std::vector<uint64_t> segments, ListSegments(options.dir));

  RecoveryReport report;
  report.segments = segments.size();
  UniqueFd fd;
  uint64_t segment_size = kSegmentHeaderBytes;
  uint64_t next_sequence;
  if (segments.empty()) {
    next_sequence = options.first_sequence;
    OCX_ASSIGN_OR_RETURN(fd, CreateSegment(options.dir, next_sequence, /*replace=*/false));
    segments.push_back(next_sequence);
  } else {
    const uint64_t first = segments.back();
    report.segment = JoinPath(options.dir, SegmentFileName(first));
    OCX_ASSIGN_OR_RETURN(std::string data,
                         internal::ReadWholeFile(report.segment, kMaxSegmentFileBytes));
    OCX_ASSIGN_OR_RETURN(SegmentScan scan,
                         ScanSegment(report.segment, data, first, SegmentRole::kNewest));
    if (scan.header_torn) {
      OCX_ASSIGN_OR_RETURN(fd, CreateSegment(options.dir, first, /*replace=*/true));
      report.recreated_torn_header = true;
      next_sequence = first;
    } else {
      OCX_ASSIGN_OR_RETURN(fd, internal::OpenFile(report.segment, O_WRONLY | O_APPEND));
      if (scan.torn.has_value()) {
        OCX_RETURN_IF_ERROR(internal::TruncateFile(fd.get(), scan.valid_bytes, report.segment));
        report.truncated = scan.torn;
      }
      // What we read may have been in the page cache only (the previous process died before
      // its sync): make it durable before treating it as such.
      OCX_RETURN_IF_ERROR(internal::SyncFile(fd.get(), report.segment));
      segment_size = scan.valid_bytes;
      next_sequence = scan.last_sequence + 1;
    }
  }
  report.last_sequence = next_sequence - 1;
  std::string segment_path = JoinPath(options.dir, SegmentFileName(segments.back()));
  std::unique_ptr<FileJournal> journal(
      new FileJournal(std::move(options), std::move(report), std::move(fd), std::move(segment_path),
                      segment_size, next_sequence, std::move(segments)));
  journal->writer_ = std::thread([j = journal.get()] {
    base::NameThisThread("ocx-journal");
    j->WriterLoop();
  });
  return journal;
}

FileJournal::FileJournal(FileJournalOptions options, RecoveryReport recovery, UniqueFd fd,
                         std::string segment_path, uint64_t segment_size, uint64_t next_sequence,
                         std::vector<uint64_t> segments)
    : options_(std::move(options)),
      recovery_(std::move(recovery)),
      fd_(std::move(fd)),
      segment_path_(std::move(segment_path)),
      segment_size_(segment_size),
      next_sequence_(next_sequence),
      durable_sequence_(next_sequence - 1),
      segments_(std::move(segments)) {
  pending_.reserve(options_.batch_bytes_max);
  writing_.reserve(options_.batch_bytes_max);
}

FileJournal::~FileJournal() { Close().IgnoreError(); }

absl::Status FileJournal::Append(const RecordView& record) {
  const size_t bytes = EncodedRecordBytes(record.payload.size());
  if (record.payload.size() > kMaxPayloadBytes || bytes > options_.batch_bytes_max) {
    return absl::InvalidArgumentError(internal::Cat(
        "journal: a payload of ", record.payload.size(), " bytes exceeds the bound of ",
        std::min(kMaxPayloadBytes, options_.batch_bytes_max - kRecordHeaderBytes)));
  }
  std::unique_lock<std::mutex> lock(mu_);
  OCX_ASSERT_MSG(record.sequence == next_sequence_.load(std::memory_order_relaxed),
                 "Append: the record's sequence must be next_sequence()");
  while (status_.ok() && !closing_ && pending_.size() + bytes > options_.batch_bytes_max) {
    ++space_waiters_;
    space_cv_.wait(lock);
    --space_waiters_;
  }
  if (!status_.ok()) return status_;
  if (closing_) return absl::FailedPreconditionError("journal: Append after Close");
  EncodeRecord(record, pending_records_, &pending_);
  ++pending_records_;
  next_sequence_.store(record.sequence + 1, std::memory_order_release);
  if (writer_waiting_) writer_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status FileJournal::WaitDurable(uint64_t sequence) {
  OCX_ASSERT_MSG(sequence < next_sequence(), "WaitDurable: the sequence was never appended");
  if (durable_sequence() >= sequence) return absl::OkStatus();
  std::unique_lock<std::mutex> lock(mu_);
  ++durable_waiters_;
  durable_cv_.wait(lock, [&] { return durable_sequence() >= sequence || !status_.ok(); });
  --durable_waiters_;
  if (durable_sequence() >= sequence) return absl::OkStatus();
  return status_;
}

absl::Status FileJournal::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

std::vector<uint64_t> FileJournal::segments() const {
  std::lock_guard<std::mutex> lock(segments_mu_);
  return segments_;
}

absl::Status FileJournal::DiscardThrough(uint64_t sequence) {
  {
    std::lock_guard<std::mutex> lock(segments_mu_);
    // Segment i holds sequences [segments_[i], segments_[i + 1] - 1]; the newest is kept.
    size_t discard = 0;
    while (discard + 1 < segments_.size() && segments_[discard + 1] - 1 <= sequence) ++discard;
    if (discard == 0) return absl::OkStatus();
    for (size_t i = 0; i < discard; ++i) {
      const std::string path = JoinPath(options_.dir, SegmentFileName(segments_.front()));
      OCX_RETURN_IF_ERROR(internal::RemoveFile(path));
      segments_.erase(segments_.begin());
    }
  }
  // Outside the lock: a segment roll on the writer thread need not wait for this sync.
  return internal::SyncDirectory(options_.dir);
}

absl::Status FileJournal::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    writer_cv_.notify_all();
    space_cv_.notify_all();
  }
  if (writer_.joinable()) writer_.join();
  fd_.Reset();  // Everything written was synced by the writer, or the journal has failed.
  std::lock_guard<std::mutex> lock(mu_);
  OCX_ASSERT(!status_.ok() || pending_.empty());
  return status_;
}

void FileJournal::Fail(const absl::Status& error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_.ok()) {
    status_ = absl::Status(
        error.code(),
        internal::Cat("journal stopped, durability lost; no further writes: ", error.message()));
  }
  space_cv_.notify_all();
  durable_cv_.notify_all();
}

void FileJournal::WriterLoop() {
  for (;;) {
    uint64_t batch_last;
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_waiting_ = true;
      writer_cv_.wait(lock, [&] { return !pending_.empty() || closing_; });
      writer_waiting_ = false;
      if (pending_.empty()) return;  // Closing, and everything is durable.
      OCX_ASSERT(writing_.empty());
      writing_.swap(pending_);
      pending_records_ = 0;
      batch_last = next_sequence_.load(std::memory_order_relaxed) - 1;
      if (space_waiters_ > 0) space_cv_.notify_all();
    }
    OCX_ASSERT(writing_.size() <= kMaxUnsyncedBytes);
    const auto write_started = std::chrono::steady_clock::now();
    absl::Status written = internal::WriteFully(fd_.get(), writing_, segment_path_);
    if (written.ok()) written = internal::SyncData(fd_.get(), segment_path_);
    if (!written.ok()) {
      Fail(written);
      return;
    }
    if (options_.on_batch_synced) {
      options_.on_batch_synced(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - write_started)
                                   .count(),
                               writing_.size());
    }
    segment_size_ += writing_.size();
    writing_.clear();
    batches_written_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      OCX_ASSERT(batch_last > durable_sequence_.load(std::memory_order_relaxed));
      durable_sequence_.store(batch_last, std::memory_order_release);
      if (durable_waiters_ > 0) durable_cv_.notify_all();
    }
    if (options_.on_durable) options_.on_durable(batch_last);
    if (segment_size_ >= options_.segment_bytes) {
      const absl::Status rolled = RollSegment(batch_last + 1);
      if (!rolled.ok()) {
        Fail(rolled);
        return;
      }
    }
  }
}

absl::Status FileJournal::RollSegment(uint64_t first_sequence) {
  OCX_ASSIGN_OR_RETURN(UniqueFd fd, CreateSegment(options_.dir, first_sequence, false));
  fd_ = std::move(fd);  // The old segment is sealed: all of it was synced.
  segment_path_ = JoinPath(options_.dir, SegmentFileName(first_sequence));
  segment_size_ = kSegmentHeaderBytes;
  std::lock_guard<std::mutex> lock(segments_mu_);
  segments_.push_back(first_sequence);
  return absl::OkStatus();
}

}  // namespace ocx::journal
