// The shared string helpers (src/base/strings.h) under src/client's internal names.
#pragma once

#include "src/base/strings.h"

namespace ocx::client::internal {
using base::AppendPiece;
using base::AsciiLower;
using base::AsciiUpper;
using base::EqualsIgnoreCase;
using base::Cat;
}  // namespace ocx::client::internal
