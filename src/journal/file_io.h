// Small POSIX file helpers for the journal and snapshots: whole writes and reads with EINTR
// and short counts handled, syncs of files and directories, and errno turned into
// absl::Status with the operation and path in the message. Internal to src/journal.
// Thread-safe: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"

namespace ocx::journal::internal {

using UniqueFd = base::UniqueFd;  // Owns a file descriptor; closes it on destruction.

absl::Status ErrnoError(int error_number, std::string_view operation, std::string_view path);

std::string JoinPath(std::string_view dir, std::string_view name);

// File names that carry a sequence: prefix, the sequence in 20 digits (so that names sort
// by sequence), suffix. "journal-00000000000000000042.log", "snapshot-...42.snap".
std::string SequenceFileName(std::string_view prefix, uint64_t sequence, std::string_view suffix);
// The sequence in such a name, or nothing when the name is not exactly of that form.
std::optional<uint64_t> ParseSequenceFileName(std::string_view name, std::string_view prefix,
                                              std::string_view suffix);

// Creates `dir` when it does not exist (one level), syncing its parent so that it stays.
absl::Status EnsureDirectory(const std::string& dir);
// The names in `dir` (not "." and "..").
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);
// The whole file; refuses files larger than `max_bytes` (a named bound chosen by the caller).
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, uint64_t max_bytes);

absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, int mode = 0644);
// write() until all of `data` is written; a failure is returned (never retried after).
absl::Status WriteFully(int fd, std::string_view data, const std::string& path);
// fdatasync(): the data and the metadata needed to read it back (the size), not mtime.
absl::Status SyncData(int fd, const std::string& path);
absl::Status SyncFile(int fd, const std::string& path);  // fsync()
// fsync() of a directory, which makes created, renamed and removed entries durable.
absl::Status SyncDirectory(const std::string& dir);
absl::Status TruncateFile(int fd, uint64_t size, const std::string& path);
absl::Status RemoveFile(const std::string& path);

}  // namespace ocx::journal::internal
