// Helpers shared by the fuzz harnesses (docs/fuzzing.md).
//
// A harness checks properties with OCX_ASSERT (src/base/assert.h): a failure prints the
// condition and aborts, which libFuzzer reports as a crash and CTest as a failed test.
// Harnesses that must go through files share one scratch folder per process, made on first use
// and removed at exit, and overwrite the same file on every input (no per-input mkdir/rmdir).
// Not thread-safe: libFuzzer runs one input at a time.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "src/base/assert.h"

namespace ocx::fuzz {

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

inline const std::string& ScratchDir();

namespace internal {
inline std::string MakeScratchDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ocx-fuzz-XXXXXX";
  OCX_ASSERT_MSG(::mkdtemp(pattern.data()) != nullptr, "cannot make the scratch folder");
  return pattern;
}
inline void RemoveScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(ScratchDir(), ignored);
}
}  // namespace internal

// The process's scratch folder: $TMPDIR (or /tmp)/ocx-fuzz-XXXXXX, removed with everything in
// it when the process exits normally. scripts/fuzz.sh points TMPDIR at /dev/shm (no disk).
inline const std::string& ScratchDir() {
  static const std::string dir = internal::MakeScratchDir();
  // Registered once `dir` is constructed, so it runs before `dir` is destroyed.
  static const bool remove_at_exit = std::atexit(internal::RemoveScratchDir) == 0;
  OCX_ASSERT(remove_at_exit);
  return dir;
}

// Replaces the content of the file at `path` with `bytes` (no sync: the harness only reads it
// back). Writes over the old content and then cuts the file to size instead of opening with
// O_TRUNC: ext4 flushes a file truncated to zero and rewritten when it is closed
// (auto_da_alloc), which made every input wait for the disk.
inline void WriteScratchFile(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  OCX_ASSERT_MSG(fd >= 0, "cannot open the scratch file");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n =
        ::pwrite(fd, bytes.data() + written, bytes.size() - written, static_cast<off_t>(written));
    OCX_ASSERT_MSG(n > 0, "cannot write the scratch file");
    written += static_cast<size_t>(n);
  }
  OCX_ASSERT(::ftruncate(fd, static_cast<off_t>(bytes.size())) == 0);
  OCX_ASSERT(::close(fd) == 0);
}

}  // namespace ocx::fuzz
