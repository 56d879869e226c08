// Small files written whole: identities, tokens, registrations.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace ocx::base {

// Writes `text` to `path` under a temporary name (`path`.tmp, created with `mode`), fsyncs it
// and renames it into place: a crash leaves the old file or the new one, never a mix.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text, mode_t mode);

}  // namespace ocx::base
