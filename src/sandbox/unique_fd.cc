#include "src/sandbox/unique_fd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ocx::sandbox::internal {

absl::Status ErrnoStatus(int error, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EINVAL:
      return absl::InvalidArgumentError(message);
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
      return absl::ResourceExhaustedError(message);
    case EBUSY:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t bytes_max) {
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  UniqueFd fd(raw);
  std::string out;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > bytes_max) {
      return absl::OutOfRangeError(absl::StrCat(path, " is larger than ", bytes_max, " bytes"));
    }
  }
  return out;
}

absl::Status WriteControlFile(const std::string& path, absl::string_view data) {
  int raw;
  do {
    raw = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  UniqueFd fd(raw);
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("write '", data, "' to ", path));
  if (static_cast<size_t>(n) != data.size()) {
    return absl::InternalError(absl::StrCat("short write to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> MemfdWithData(const char* name, absl::string_view data) {
  int raw = ::memfd_create(name, MFD_CLOEXEC);
  if (raw < 0) return ErrnoStatus(errno, absl::StrCat("memfd_create ", name));
  UniqueFd fd(raw);
  if (absl::Status s = WriteAll(fd.get(), data, absl::StrCat("write memfd ", name)); !s.ok()) {
    return s;
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) {
    return ErrnoStatus(errno, absl::StrCat("lseek memfd ", name));
  }
  return fd;
}

}  // namespace ocx::sandbox::internal
