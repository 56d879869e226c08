#include "src/sandbox/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "src/base/assert.h"
#include "src/sandbox/unique_fd.h"

namespace ocx::sandbox {

using internal::ErrnoStatus;
using internal::UniqueFd;

absl::StatusOr<std::unique_ptr<CancelToken>> CancelToken::Create() {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, "eventfd");
  return std::unique_ptr<CancelToken>(new CancelToken(fd));
}

CancelToken::~CancelToken() { ::close(fd_); }

void CancelToken::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(fd_, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // EAGAIN means the counter is already huge, i.e. readable: fine.
}

std::vector<std::pair<std::string, std::string>> DefaultJobEnv() {
  return {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", std::string(kJobWorkDir)},
      {"TMPDIR", "/tmp"},
      {"LANG", "C.UTF-8"},
  };
}

namespace {

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

absl::Status CheckWorkDirPath(const std::string& work_dir) {
  if (work_dir.empty() || work_dir[0] != '/' || HasNul(work_dir)) {
    return absl::InvalidArgumentError(
        absl::StrCat("work_dir must be an absolute path, not '", work_dir, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckMemoryBytes(const char* what, int64_t bytes) {
  if (bytes != 0 && bytes < kMemoryBytesMin) {
    return absl::InvalidArgumentError(absl::StrCat(what, " must be at least ",
                                                   kMemoryBytesMin >> 20, " MiB, not ", bytes,
                                                   " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePrepareSpec(const PrepareSpec& spec) {
  if (absl::Status s = CheckWorkDirPath(spec.work_dir); !s.ok()) return s;
  return CheckMemoryBytes("tmp_bytes", spec.tmp_bytes);
}

absl::Status ValidateJobSpec(const JobSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("the job has no command (argv is empty)");
  }
  if (spec.argv.size() > kArgvEntriesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("argv has ", spec.argv.size(), " entries; at most ", kArgvEntriesMax));
  }
  for (const std::string& arg : spec.argv) {
    if (arg.size() > kArgBytesMax || HasNul(arg)) {
      return absl::InvalidArgumentError(
          absl::StrCat("an argv entry is longer than ", kArgBytesMax, " bytes or holds a NUL"));
    }
  }
  if (spec.env.size() > kEnvEntriesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("env has ", spec.env.size(), " entries; at most ", kEnvEntriesMax));
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos || HasNul(key) ||
        key.size() > kArgBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad environment variable name '", key, "' (empty, or holds '=' or NUL)"));
    }
    if (value.size() > kArgBytesMax || HasNul(value)) {
      return absl::InvalidArgumentError(absl::StrCat("the value of ", key, " is longer than ",
                                                     kArgBytesMax, " bytes or holds a NUL"));
    }
  }
  if (absl::Status s = CheckWorkDirPath(spec.work_dir); !s.ok()) return s;
  if (spec.slots < 1 || spec.slots > kSlotsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("slots must be 1..", kSlotsMax, ", not ", spec.slots));
  }
  if (absl::Status s = CheckMemoryBytes("memory", spec.memory_bytes); !s.ok()) return s;
  if (spec.pids_max != 0 && (spec.pids_max < kPidsMin || spec.pids_max > kPidsMax)) {
    return absl::InvalidArgumentError(
        absl::StrCat("pids_max must be ", kPidsMin, "..", kPidsMax, ", not ", spec.pids_max));
  }
  if (spec.timeout.count() < 0) {
    return absl::InvalidArgumentError("timeout must not be negative");
  }
  return absl::OkStatus();
}

// ---- Wipe ----------------------------------------------------------------------------

namespace {

// Deeper directories are moved up to the top of the tree and removed from there, so that a
// job's 100,000-deep chain of directories costs neither stack nor file descriptors.
constexpr int kWipeDepthMax = 32;

struct WipeState {
  int root_fd;
  uint64_t relocated = 0;  // names handed out for moved-up directories
};

// Opens directory `name` under `dir_fd`, making it searchable first when a job took our
// permissions away (only matters when not root).
absl::StatusOr<UniqueFd> OpenDirForWipe(int dir_fd, const char* name) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno == EINTR) {
      --attempt;
      continue;
    }
    if (errno != EACCES || attempt == 1) return ErrnoStatus(errno, absl::StrCat("open ", name));
    if (::fchmodat(dir_fd, name, 0700, 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("chmod ", name));
    }
  }
  return absl::InternalError("unreachable");
}

// Empties the directory open at `dir_fd`. Sets *saw_entries when it found anything.
absl::Status EmptyDir(WipeState& state, int dir_fd, int depth, bool* saw_entries) {
  // A directory the job made unwritable (mode 0555) cannot have entries removed, unless
  // we are root; give ourselves write access (we own it or we are root).
  ::fchmod(dir_fd, 0700);
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, "dup");
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return ErrnoStatus(errno, "fdopendir");
  }
  // The duplicate shares its offset with dir_fd, which an earlier pass left at the end.
  ::rewinddir(dir);
  absl::Status status;
  for (;;) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) status = ErrnoStatus(errno, "readdir");
      break;
    }
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    *saw_entries = true;
    struct stat st;
    if (::fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      status = ErrnoStatus(errno, absl::StrCat("stat ", std::string(name)));
      break;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(dir_fd, entry->d_name, 0) != 0 && errno != ENOENT) {
        status = ErrnoStatus(errno, absl::StrCat("unlink ", std::string(name)));
        break;
      }
      continue;
    }
    if (depth >= kWipeDepthMax) {
      // Move it to the top; the caller's next pass over the root removes it.
      std::string new_name;
      int rc;
      do {
        new_name = absl::StrCat(".ocx-wipe-", state.relocated++);
        rc = ::renameat2(dir_fd, entry->d_name, state.root_fd, new_name.c_str(), RENAME_NOREPLACE);
      } while (rc != 0 && errno == EEXIST);
      if (rc != 0) {
        status = ErrnoStatus(errno, absl::StrCat("rename ", std::string(name)));
        break;
      }
      continue;
    }
    absl::StatusOr<UniqueFd> child = OpenDirForWipe(dir_fd, entry->d_name);
    if (!child.ok()) {
      status = child.status();
      break;
    }
    bool child_saw = false;
    do {
      child_saw = false;
      status = EmptyDir(state, child->get(), depth + 1, &child_saw);
    } while (status.ok() && child_saw);
    if (!status.ok()) break;
    if (::unlinkat(dir_fd, entry->d_name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
      status = ErrnoStatus(errno, absl::StrCat("rmdir ", std::string(name)));
      break;
    }
  }
  ::closedir(dir);
  return status;
}

}  // namespace

absl::Status Wipe(const std::string& work_dir) {
  if (work_dir.empty() || work_dir[0] != '/' ||
      work_dir.find_first_not_of('/') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to wipe '", work_dir, "': not an absolute path below /"));
  }
  struct stat st;
  if (::lstat(work_dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, absl::StrCat("stat ", work_dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to wipe '", work_dir, "': not a directory"));
  }
  absl::StatusOr<UniqueFd> root = OpenDirForWipe(AT_FDCWD, work_dir.c_str());
  if (!root.ok()) return root.status();
  WipeState state{root->get()};
  bool saw_entries;
  do {
    saw_entries = false;
    absl::Status status = EmptyDir(state, root->get(), 0, &saw_entries);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("wipe ", work_dir, ": ", status.message()));
    }
  } while (saw_entries);
  root->Reset();
  if (::rmdir(work_dir.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rmdir ", work_dir));
  }
  return absl::OkStatus();
}

}  // namespace ocx::sandbox
