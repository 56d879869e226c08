// errno to absl::Status, the one implementation: "what: strerror" with the code errno maps to
// (ENOENT NotFound, EACCES PermissionDenied, ENOSPC ResourceExhausted, ...).
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace ocx::base {

// "what: <strerror(error)>".
absl::Status ErrnoStatus(int error, std::string_view what);
// "operation path: <strerror(error)>".
absl::Status ErrnoStatus(int error, std::string_view operation, std::string_view path);

}  // namespace ocx::base
