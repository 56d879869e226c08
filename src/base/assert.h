// OCX_ASSERT: the check for programmer errors (house style, kind 3).
// It stays on in release builds: a broken invariant in an exchange must stop the process
// before it can move money wrongly, never carry on silently.
#pragma once

namespace ocx::base {
[[noreturn]] void AssertFailed(const char* condition, const char* file, int line,
                               const char* message);
}  // namespace ocx::base

#define OCX_ASSERT(cond)                                                  \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0)) {                                   \
      ::ocx::base::AssertFailed(#cond, __FILE__, __LINE__, nullptr);      \
    }                                                                     \
  } while (0)

#define OCX_ASSERT_MSG(cond, msg)                                         \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0)) {                                   \
      ::ocx::base::AssertFailed(#cond, __FILE__, __LINE__, (msg));        \
    }                                                                     \
  } while (0)
