// The shared string helpers (src/base/strings.h) under src/journal's internal names.
#pragma once

#include "src/base/strings.h"

namespace ocx::journal::internal {
using base::AppendPiece;
using base::Cat;
}  // namespace ocx::journal::internal
