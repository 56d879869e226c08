// Small files: written whole (identities, tokens, registrations) and read with a bound.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::base {

// Writes `text` to `path` under a temporary name (`path`.tmp, created with `mode`), fsyncs it
// and renames it into place: a crash leaves the old file or the new one, never a mix.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text, mode_t mode);

// The whole file, read without trusting its size (a /proc or cgroup file says 0 or 4096; a
// file may grow while it is read): OutOfRange once more than `bytes_max` bytes were read,
// the errno's status ("open PATH: ...") when it cannot be opened or read.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path, size_t bytes_max);

}  // namespace ocx::base
