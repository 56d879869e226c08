#include "src/base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "src/base/errno_status.h"
#include "src/base/unique_fd.h"

namespace ocx::base {

absl::Status WriteFileAtomically(const std::string& path, const std::string& text, mode_t mode) {
  const std::string temporary = path + ".tmp";
  UniqueFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoStatus(errno, "create", temporary);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", temporary);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", temporary);
  fd.Reset();
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename to " + path, temporary);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileBounded(const std::string& path, size_t bytes_max) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  std::string out;
  char buffer[16 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > bytes_max) {
      return absl::OutOfRangeError(path + " is larger than " + std::to_string(bytes_max) +
                                   " bytes");
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace ocx::base
