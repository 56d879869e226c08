#include "src/journal/prune.h"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "src/base/status.h"
#include "src/journal/file_io.h"
#include "src/journal/record_format.h"
#include "src/journal/snapshot.h"

namespace ocx::journal {
namespace {

// The files of `dir` whose names carry a sequence (per `parse`), sorted by it.
template <typename Parse>
absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> ListBySequence(
    const std::string& dir, Parse parse) {
  OCX_ASSIGN_OR_RETURN(const std::vector<std::string> names, internal::ListDirectory(dir));
  std::vector<std::pair<uint64_t, std::string>> files;
  for (const std::string& name : names) {
    if (const std::optional<uint64_t> sequence = parse(name)) files.emplace_back(*sequence, name);
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::Status Delete(const std::string& path, PruneReport* report) {
  struct stat info;
  const uint64_t size = ::stat(path.c_str(), &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
  OCX_RETURN_IF_ERROR(internal::RemoveFile(path));
  ++report->files_deleted;
  report->bytes_deleted += size;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PruneReport> PruneSegments(const std::string& dir, uint64_t keep_from_sequence) {
  OCX_ASSIGN_OR_RETURN(const auto segments, ListBySequence(dir, ParseSegmentFileName));
  PruneReport report;
  // Segment i holds [first_i, first_{i+1}); the newest one is open for writing.
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    if (segments[i + 1].first > keep_from_sequence) break;
    OCX_RETURN_IF_ERROR(Delete(internal::JoinPath(dir, segments[i].second), &report));
  }
  if (report.files_deleted > 0) OCX_RETURN_IF_ERROR(internal::SyncDirectory(dir));
  return report;
}

absl::StatusOr<std::vector<uint64_t>> PruneSnapshots(const std::string& dir, size_t keep,
                                                     uint64_t also_keep_at_or_below,
                                                     PruneReport* report) {
  OCX_ASSIGN_OR_RETURN(const auto snapshots, ListBySequence(dir, ParseSnapshotFileName));
  OCX_ASSIGN_OR_RETURN(const std::vector<std::string> names, internal::ListDirectory(dir));
  bool deleted = false;
  for (const std::string& name : names) {
    // A write interrupted by a crash (WriteSnapshot renames from "<name>.tmp").
    if (name.ends_with(".tmp")) {
      OCX_RETURN_IF_ERROR(Delete(internal::JoinPath(dir, name), report));
      deleted = true;
    }
  }
  std::vector<uint64_t> kept;
  const size_t drop = snapshots.size() > keep ? snapshots.size() - keep : 0;
  // The newest snapshot at or below the bound, if there is one.
  size_t also_kept = snapshots.size();
  for (size_t i = 0; i < snapshots.size(); ++i) {
    if (snapshots[i].first <= also_keep_at_or_below) also_kept = i;
  }
  for (size_t i = 0; i < snapshots.size(); ++i) {
    if (i < drop && i != also_kept) {
      OCX_RETURN_IF_ERROR(Delete(internal::JoinPath(dir, snapshots[i].second), report));
      deleted = true;
    } else {
      kept.push_back(snapshots[i].first);
    }
  }
  if (deleted) OCX_RETURN_IF_ERROR(internal::SyncDirectory(dir));
  return kept;
}

absl::StatusOr<uint64_t> FirstJournalSequence(const std::string& dir) {
  OCX_ASSIGN_OR_RETURN(const auto segments, ListBySequence(dir, ParseSegmentFileName));
  return segments.empty() ? 0 : segments.front().first;
}

}  // namespace ocx::journal
