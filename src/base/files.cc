#include "src/base/files.h"

#include <fcntl.h>
#include <unistd.h>

namespace ocx::base {

absl::Status WriteFileAtomically(const std::string& path, const std::string& text, mode_t mode) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return absl::PermissionDeniedError("cannot create " + temporary);
  const bool written =
      ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
      ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

}  // namespace ocx::base
