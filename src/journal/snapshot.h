// Snapshot files: the exchange state as of a sequence number, so that recovery replays only
// the journal after it (docs/formats/snapshot.md). The body is opaque bytes: the core
// serializes its state into it and says how with body_version.
//
// A snapshot is written atomically: to "snapshot-<sequence>.snap.tmp", fsync'ed, renamed to
// "snapshot-<sequence>.snap", then the directory is fsync'ed. A reader therefore sees a
// complete file or none, but still verifies magic, version, lengths and both CRC32Cs, since
// disks rot. FindLatestSnapshot returns the newest snapshot that verifies and lists the newer
// ones it had to reject.
// Thread-safe: free functions with no shared state; two writers of the same sequence in one
// directory race on the temporary file and must not run at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::journal {

inline constexpr std::string_view kSnapshotMagic{"OCXSNAP\n", 8};
inline constexpr uint16_t kSnapshotFormatVersion = 1;
inline constexpr size_t kSnapshotHeaderBytes = 40;
// Named bound on a body the reader will load into memory.
inline constexpr uint64_t kMaxSnapshotBodyBytes = uint64_t{16} << 30;

struct Snapshot {
  uint64_t sequence = 0;      // The state after applying every record <= sequence.
  uint16_t body_version = 0;  // The core's serialization version of `body`.
  std::string body;
};

// "snapshot-00000000000000000042.snap": the sequence, 20 digits, so that names sort.
std::string SnapshotFileName(uint64_t sequence);
std::optional<uint64_t> ParseSnapshotFileName(std::string_view name);

// The file's bytes: header then body.
std::string EncodeSnapshot(uint64_t sequence, uint16_t body_version, std::string_view body);

// Writes the snapshot atomically into `dir` (created when missing) and makes it durable.
// Returns the final path.
absl::StatusOr<std::string> WriteSnapshot(const std::string& dir, uint64_t sequence,
                                          uint16_t body_version, std::string_view body);

// Loads and verifies one snapshot file. DataLoss when it does not verify (the message says
// why), FailedPrecondition for an unsupported format version.
absl::StatusOr<Snapshot> ReadSnapshot(const std::string& path);

struct LatestSnapshot {
  std::optional<Snapshot> snapshot;   // None when no snapshot verifies.
  std::string path;                   // Of `snapshot`.
  std::vector<std::string> rejected;  // Newer snapshot files that failed, with the reason.
};

// The newest snapshot in `dir` that verifies. Temporary files are ignored. Errors only for a
// directory that cannot be listed; a missing directory has no snapshot.
absl::StatusOr<LatestSnapshot> FindLatestSnapshot(const std::string& dir);

}  // namespace ocx::journal
