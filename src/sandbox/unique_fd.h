// Small POSIX helpers for the sandbox: an owning file descriptor and EINTR-safe I/O.
#pragma once

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"

namespace ocx::sandbox::internal {

using UniqueFd = base::UniqueFd;  // Owns one file descriptor; closes it on destruction.

// absl::Status from errno, with what was being done: "open /x: Permission denied".
absl::Status ErrnoStatus(int error, absl::string_view what);

// write(2) of all of `data`, retrying on EINTR and short writes.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what);
// Reads a whole (small) file; used for cgroup and proc files. OutOfRange past `bytes_max`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t bytes_max = 1 << 20);
// Opens `path` for writing (no create, no truncate) and writes `data` in one write(2):
// the way cgroup control files want to be written.
absl::Status WriteControlFile(const std::string& path, absl::string_view data);

// A memfd holding `data`, positioned at offset 0. Close-on-exec.
absl::StatusOr<UniqueFd> MemfdWithData(const char* name, absl::string_view data);

}  // namespace ocx::sandbox::internal
