#include "src/journal/file_io.h"

#include <cstdio>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/journal/strings.h"

namespace ocx::journal::internal {

absl::Status ErrnoError(int error_number, std::string_view operation, std::string_view path) {
  return absl::ErrnoToStatus(error_number, internal::Cat(operation, " ", path));
}

std::string SequenceFileName(std::string_view prefix, uint64_t sequence, std::string_view suffix) {
  char digits[32];
  std::snprintf(digits, sizeof(digits), "%020llu", static_cast<unsigned long long>(sequence));
  return internal::Cat(prefix, digits, suffix);
}

std::optional<uint64_t> ParseSequenceFileName(std::string_view name, std::string_view prefix,
                                              std::string_view suffix) {
  constexpr size_t kDigits = 20;
  if (name.size() != prefix.size() + kDigits + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : name.substr(prefix.size(), kDigits)) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return internal::Cat(dir, name);
  return internal::Cat(dir, "/", name);
}

namespace {
std::string ParentOf(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const size_t slash = trimmed.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return trimmed.substr(0, slash);
}
}  // namespace

absl::Status EnsureDirectory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return SyncDirectory(ParentOf(dir));
  if (errno != EEXIST) return ErrnoError(errno, "mkdir", dir);
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0) return ErrnoError(errno, "stat", dir);
  if (!S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(internal::Cat(dir, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return ErrnoError(errno, "opendir", dir);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(handle);
    if (entry == nullptr) break;
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int error_number = errno;
  ::closedir(handle);
  if (error_number != 0) return ErrnoError(error_number, "readdir", dir);
  return names;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, uint64_t max_bytes) {
  absl::StatusOr<UniqueFd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  struct stat info;
  if (::fstat(fd->get(), &info) != 0) return ErrnoError(errno, "fstat", path);
  const auto size = static_cast<uint64_t>(info.st_size);
  if (size > max_bytes) {
    return absl::FailedPreconditionError(
        internal::Cat(path, " is ", size, " bytes, more than the bound of ", max_bytes, " bytes"));
  }
  std::string data(size, '\0');
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd->get(), data.data() + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read", path);
    }
    if (n == 0) break;  // The file shrank under us; return what is there.
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

absl::StatusOr<UniqueFd> OpenFile(const std::string& path, int flags, int mode) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return UniqueFd(fd);
}

absl::Status WriteFully(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncData(int fd, const std::string& path) {
  // Never retried: after a failed sync the kernel may have dropped the dirty pages.
  if (::fdatasync(fd) != 0) return ErrnoError(errno, "fdatasync", path);
  return absl::OkStatus();
}

absl::Status SyncFile(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return ErrnoError(errno, "fsync", path);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  absl::StatusOr<UniqueFd> fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  return SyncFile(fd->get(), dir);
}

absl::Status TruncateFile(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return ErrnoError(errno, "ftruncate", path);
  return absl::OkStatus();
}

absl::Status RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return ErrnoError(errno, "unlink", path);
  return absl::OkStatus();
}

}  // namespace ocx::journal::internal
