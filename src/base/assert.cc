#include "src/base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace ocx::base {

void AssertFailed(const char* condition, const char* file, int line, const char* message) {
  std::fprintf(stderr, "ocx: assertion failed at %s:%d: %s%s%s\n", file, line, condition,
               message != nullptr ? " -- " : "", message != nullptr ? message : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace ocx::base
