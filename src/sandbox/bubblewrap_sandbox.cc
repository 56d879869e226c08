#include "src/sandbox/bubblewrap_sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/base/assert.h"
#include "src/base/status.h"
#include "src/sandbox/job_starter.h"
#include "src/sandbox/seccomp_filter.h"
#include "src/sandbox/unique_fd.h"

namespace ocx::sandbox {

using internal::CgroupLimits;
using internal::ErrnoStatus;
using internal::JobCgroup;
using internal::MemfdWithData;
using internal::UniqueFd;

namespace {

using Clock = std::chrono::steady_clock;

// Descriptor numbers in the launcher when it execs bubblewrap. Everything else is closed.
constexpr int kArgsFd = 3;        // bwrap --args: the options, NUL-separated
constexpr int kSeccompFd = 4;     // bwrap --seccomp
constexpr int kJsonStatusFd = 5;  // bwrap --json-status-fd: tells us the sandbox's init pid
constexpr int kEtcFdFirst = 6;    // bwrap --ro-bind-data, one per generated /etc file
struct EtcFile {
  const char* path;
  const char* content;
};
constexpr std::array<EtcFile, 4> kEtcFiles = {{
    {"/etc/passwd",
     "root:x:0:0:root:/root:/usr/sbin/nologin\n"
     "ocx:x:1000:1000:ocx job:/work:/bin/sh\n"
     "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
    {"/etc/group", "root:x:0:\nocx:x:1000:\nnogroup:x:65534:\n"},
    {"/etc/hosts", "127.0.0.1\tlocalhost ocx-job\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
    {"/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"},
}};
constexpr int kFirstUnusedFd = kEtcFdFirst + static_cast<int>(kEtcFiles.size());
// Only in a prepared sandbox (Prepare): ocx-job-start's bytes, which bubblewrap copies to
// kStarterPath, and the socket on which the starter waits for its job (job_starter.h).
constexpr int kStarterFd = kFirstUnusedFd;
constexpr int kCommandFd = kFirstUnusedFd + 1;
constexpr int kPreparedFdCount = kFirstUnusedFd + 2;
constexpr const char* kStarterPath = "/.ocx-start";
// Bound on the starter file read at Create() (it is a static binary of about 1 MiB).
constexpr size_t kStarterBytesMax = size_t{16} << 20;
// Above every fixed number: where the launcher parks descriptors while it renumbers them.
constexpr int kParkFdMin = 64;

// Read per wake-up from a job's output pipe.
constexpr size_t kOutputChunkBytes = 64 * 1024;
// After the job is gone, how long to wait for its pipes to report EOF. Only a descriptor
// copy held by a concurrently forking thread can delay it, and only for a moment.
constexpr std::chrono::seconds kDrainDeadline{5};
// How long Prepare() waits for ocx-job-start to run.
constexpr std::chrono::seconds kStarterReadyDeadline{10};
// How long the sandbox's init may take to finish after the cgroup was killed.
constexpr std::chrono::seconds kInitExitDeadline{10};

// Where the launcher failed, reported to the parent through the error pipe.
enum class LaunchStep : int {
  kSetsid = 1,
  kFds,
  kWaitGo,
  kRlimit,
  kSetgroups,
  kSetgid,
  kSetuid,
  kDeathSignal,
  kNoNewPrivs,
  kExec,
};

const char* LaunchStepName(LaunchStep step) {
  switch (step) {
    case LaunchStep::kSetsid:
      return "setsid";
    case LaunchStep::kFds:
      return "set up descriptors";
    case LaunchStep::kWaitGo:
      return "wait for the cgroup";
    case LaunchStep::kRlimit:
      return "setrlimit";
    case LaunchStep::kSetgroups:
      return "setgroups";
    case LaunchStep::kSetgid:
      return "setresgid";
    case LaunchStep::kSetuid:
      return "setresuid";
    case LaunchStep::kDeathSignal:
      return "PR_SET_PDEATHSIG";
    case LaunchStep::kNoNewPrivs:
      return "PR_SET_NO_NEW_PRIVS";
    case LaunchStep::kExec:
      return "exec bubblewrap";
  }
  return "?";
}

struct LaunchError {
  int step;
  int error;
};

// Everything the launcher needs, prepared before fork(): after fork() in a threaded program
// only async-signal-safe calls are allowed, so no allocation, no locks, no logging.
struct LaunchPlan {
  const char* bwrap_path;
  char* const* argv;
  char* const* envp;
  // Source descriptors for fds 0..fd_count-1, in order.
  std::array<int, kPreparedFdCount> fds;
  int fd_count;  // kFirstUnusedFd, or kPreparedFdCount for a prepared sandbox
  int go_fd;     // read end: one byte once the parent put us in the cgroup
  int error_fd;  // write end, close-on-exec: a LaunchError if we fail
  pid_t parent;
  bool drop_to_uid;
  uid_t uid;
  gid_t gid;
};

[[noreturn]] void LaunchFail(int error_fd, LaunchStep step) {
  LaunchError report{static_cast<int>(step), errno};
  ssize_t n;
  do {
    n = ::write(error_fd, &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ::_exit(127);
}

int CloseFrom(unsigned first, unsigned last) {
  return static_cast<int>(::syscall(SYS_close_range, first, last, 0));
}

// The child between fork() and exec of bubblewrap.
[[noreturn]] void Launch(const LaunchPlan& plan) {
  int error_fd = plan.error_fd;
  // Own session and process group: terminal signals for the agent do not reach the job,
  // and the job cannot signal the agent's group.
  if (::setsid() < 0) LaunchFail(error_fd, LaunchStep::kSetsid);

  // Default dispositions and an empty mask: an agent that ignores SIGPIPE must not pass
  // that on (ignored signals survive exec).
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Park every descriptor we need above the fixed numbers, then renumber. (A source may
  // itself sit on a target number, e.g. when the agent runs with stdin closed.)
  const int fd_count = plan.fd_count;
  std::array<int, kPreparedFdCount> parked;
  for (size_t i = 0; i < static_cast<size_t>(fd_count); ++i) {
    parked[i] = ::fcntl(plan.fds[i], F_DUPFD_CLOEXEC, kParkFdMin);
    if (parked[i] < 0) LaunchFail(error_fd, LaunchStep::kFds);
  }
  int go_fd = ::fcntl(plan.go_fd, F_DUPFD_CLOEXEC, kParkFdMin);
  int parked_error_fd = ::fcntl(error_fd, F_DUPFD_CLOEXEC, kParkFdMin);
  if (go_fd < 0 || parked_error_fd < 0) LaunchFail(error_fd, LaunchStep::kFds);
  error_fd = parked_error_fd;
  for (size_t i = 0; i < static_cast<size_t>(fd_count); ++i) {
    if (::dup2(parked[i], static_cast<int>(i)) < 0) LaunchFail(error_fd, LaunchStep::kFds);
  }
  // Close everything else except the two pipes: no descriptor of the host reaches the job.
  const int keep_low = std::min(go_fd, error_fd), keep_high = std::max(go_fd, error_fd);
  int rc = CloseFrom(static_cast<unsigned>(fd_count), static_cast<unsigned>(keep_low - 1));
  if (rc == 0 && keep_high > keep_low + 1) {
    rc = CloseFrom(static_cast<unsigned>(keep_low + 1), static_cast<unsigned>(keep_high - 1));
  }
  if (rc == 0) rc = CloseFrom(static_cast<unsigned>(keep_high + 1), ~0U);
  if (rc != 0) {
    if (errno != ENOSYS) LaunchFail(error_fd, LaunchStep::kFds);
    // Linux < 5.9: close one by one.
    struct rlimit nofile;
    int max_fd = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (1u << 20)
                     ? static_cast<int>(nofile.rlim_cur)
                     : (1 << 20);
    for (int fd = fd_count; fd < max_fd; ++fd) {
      if (fd != go_fd && fd != error_fd) ::close(fd);
    }
  }

  // Wait until the parent has moved us into the job's cgroup, so that bubblewrap and all
  // it starts are limited and accounted from their first instruction.
  char go = 0;
  ssize_t n;
  do {
    n = ::read(go_fd, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) LaunchFail(error_fd, LaunchStep::kWaitGo);
  ::close(go_fd);

  // No core files: they would land in /work (or in a host core handler).
  struct rlimit no_core {
    0, 0
  };
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) LaunchFail(error_fd, LaunchStep::kRlimit);

  if (plan.drop_to_uid) {
    // Raw system calls: glibc's wrappers synchronize credentials across threads, which is
    // neither needed nor safe in a child of a threaded program.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) LaunchFail(error_fd, LaunchStep::kSetgroups);
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) {
      LaunchFail(error_fd, LaunchStep::kSetgid);
    }
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      LaunchFail(error_fd, LaunchStep::kSetuid);
    }
  }
  // After the uid change, which clears it: if the agent dies, so does the sandbox.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) LaunchFail(error_fd, LaunchStep::kDeathSignal);
  if (::getppid() != plan.parent) ::_exit(127);  // the parent is already gone
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    LaunchFail(error_fd, LaunchStep::kNoNewPrivs);
  }
  ::execve(plan.bwrap_path, plan.argv, plan.envp);
  LaunchFail(error_fd, LaunchStep::kExec);
}

}  // namespace

namespace internal {

// What one bubblewrap is started with: a job's own command (a cold start, Run), or
// ocx-job-start waiting for a job that is not known yet (Prepare).
struct StartRequest {
  std::string work_dir;  // resolved by CheckWorkDir
  bool network = false;
  int64_t tmp_bytes = 0;
  CgroupLimits limits;
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  bool starter = false;
};

}  // namespace internal

namespace {

using internal::StartRequest;

// bubblewrap's options, NUL-separated for `--args`. They travel through a memfd rather than
// the command line, so the job does not see host paths in its /proc/1/cmdline.
std::string BwrapOptions(const StartRequest& request) {
  std::string out;
  auto add = [&out](std::string_view arg) {
    out.append(arg);
    out.push_back('\0');
  };
  // Every namespace; user and cgroup named explicitly so that bubblewrap fails rather than
  // silently skips them. --disable-userns: no further user namespaces inside.
  for (const char* arg : {"--unshare-all", "--unshare-user", "--unshare-cgroup"}) add(arg);
  if (request.network) add("--share-net");
  for (const char* arg :
       {"--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL"}) {
    add(arg);
  }
  add("--uid");
  add(std::to_string(kJobUid));
  add("--gid");
  add(std::to_string(kJobGid));
  add("--hostname");
  add(kJobHostname);

  // The file system: /usr read-only and the merged-/usr links (or directories) next to it.
  add("--ro-bind");
  add("/usr");
  add("/usr");
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (::lstat(top, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[256];
      ssize_t n = ::readlink(top, target, sizeof(target) - 1);
      if (n <= 0) continue;
      add("--symlink");
      add(std::string_view(target, static_cast<size_t>(n)));
      add(top);
    } else if (S_ISDIR(st.st_mode)) {
      add("--ro-bind");
      add(top);
      add(top);
    }
  }
  for (const char* arg : {"--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size"}) {
    add(arg);
  }
  add(std::to_string(request.tmp_bytes));
  add("--tmpfs");
  add("/tmp");
  // A generated /etc: no host users, groups or host names; plus what the dynamic loader
  // and Debian's alternatives need.
  add("--dir");
  add("/etc");
  for (size_t i = 0; i < kEtcFiles.size(); ++i) {
    add("--perms");
    add("0444");
    add("--ro-bind-data");
    add(std::to_string(kEtcFdFirst + static_cast<int>(i)));
    add(kEtcFiles[i].path);
  }
  std::vector<const char*> etc_binds = {"/etc/ld.so.cache", "/etc/alternatives"};
  if (request.network) {
    for (const char* path : {"/etc/resolv.conf", "/etc/ssl/certs", "/etc/gai.conf"}) {
      etc_binds.push_back(path);
    }
  }
  for (const char* path : etc_binds) {
    add("--ro-bind-try");
    add(path);
    add(path);
  }
  add("--bind");
  add(request.work_dir);
  add(kJobWorkDir);
  if (request.starter) {
    add("--perms");
    add("0555");
    add("--ro-bind-data");
    add(std::to_string(kStarterFd));
    add(kStarterPath);
  }
  // Last: the root itself read-only (the mounts above stay as they are).
  for (const char* arg : {"--remount-ro", "/", "--chdir"}) add(arg);
  add(kJobWorkDir);
  add("--clearenv");
  for (const auto& [key, value] : request.env) {
    add("--setenv");
    add(key);
    add(value);
  }
  add("--seccomp");
  add(std::to_string(kSeccompFd));
  add("--json-status-fd");
  add(std::to_string(kJsonStatusFd));
  return out;
}

// The work directory, resolved. It becomes the job's (and, as root, is handed to the job's
// uid), so a mistake here must not give away a system directory or a shared one like /tmp.
absl::StatusOr<std::string> CheckWorkDir(const std::string& path) {
  char resolved[PATH_MAX];
  struct stat st;
  if (::realpath(path.c_str(), resolved) == nullptr || ::stat(resolved, &st) != 0 ||
      !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("work_dir ", path, " is not an existing directory"));
  }
  const std::string real(resolved);
  const bool too_high = std::count(real.begin(), real.end(), '/') < 2;
  bool system = false;
  for (const char* top : {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                          "/proc", "/sys", "/dev", "/boot", "/run"}) {
    const std::string prefix = std::string(top) + "/";
    if (real == top || real.rfind(prefix, 0) == 0) system = true;
  }
  if (too_high || system) {
    return absl::InvalidArgumentError(
        absl::StrCat("work_dir ", path, " (", real,
                     ") is a top-level or system directory; give each job a directory of its own"));
  }
  return real;
}

// Hands the caller's work tree to the job's host uid. Bounded depth: the tree is the
// caller's (inputs it fetched), not the job's.
absl::Status ChownTree(int dir_fd, const char* name, uid_t uid, gid_t gid, int depth) {
  constexpr int kChownDepthMax = 128;
  if (depth > kChownDepthMax) {
    return absl::InvalidArgumentError("work_dir is nested deeper than 128 directories");
  }
  if (::fchownat(dir_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chown ", name));
  }
  struct stat st;
  if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
  int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", name));
  UniqueFd child(fd);
  int dup_fd = ::fcntl(child.get(), F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, "dup");
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return ErrnoStatus(errno, "fdopendir");
  }
  absl::Status status;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view entry_name = entry->d_name;
    if (entry_name == "." || entry_name == "..") continue;
    status = ChownTree(child.get(), entry->d_name, uid, gid, depth + 1);
    if (!status.ok()) break;
  }
  ::closedir(dir);
  return status;
}

// Forwards one job output stream to its sink, keeping at most `bytes_max` of it.
class OutputPump {
 public:
  OutputPump(const OutputSink& sink, uint64_t bytes_max) : sink_(sink), bytes_max_(bytes_max) {}

  absl::Status Open() {
    if (sink_.path.empty()) return absl::OkStatus();
    int fd =
        ::open(sink_.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open output file ", sink_.path));
    file_.Reset(fd);
    return absl::OkStatus();
  }

  // Reads what is there. Returns false at EOF (or on a read error, which ends the stream).
  bool ReadSome(int fd) {
    for (;;) {
      ssize_t n = ::read(fd, buffer_.data(), buffer_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN;
      }
      if (n == 0) return false;
      Forward(std::string_view(buffer_.data(), static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < buffer_.size()) return true;
    }
  }

  uint64_t total() const { return total_; }
  bool truncated() const { return total_ > bytes_max_; }
  const absl::Status& write_status() const { return write_status_; }

 private:
  void Forward(std::string_view data) {
    const uint64_t kept =
        total_ >= bytes_max_ ? 0 : std::min<uint64_t>(bytes_max_ - total_, data.size());
    total_ += data.size();
    if (kept == 0) return;
    data = data.substr(0, kept);
    if (file_.valid() && write_status_.ok()) {
      write_status_ = internal::WriteAll(file_.get(), absl::string_view(data.data(), data.size()),
                                         "write " + sink_.path);
    }
    if (sink_.callback) sink_.callback(data);
  }

  const OutputSink& sink_;
  const uint64_t bytes_max_;
  UniqueFd file_;
  uint64_t total_ = 0;
  absl::Status write_status_;
  std::array<char, kOutputChunkBytes> buffer_;
};

absl::Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return absl::OkStatus();
}

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Waits (bounded) until the process behind `pidfd` has exited.
bool WaitPidfd(int pidfd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return false;
    struct pollfd p {
      pidfd, POLLIN, 0
    };
    int rc = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
}

// The sandbox init's host pid, from bubblewrap's first JSON status line:
// { "child-pid": 1234, ... }. 0 when bubblewrap exited before it started one.
pid_t ReadChildPid(int fd) {
  std::string line;
  char buffer[512];
  while (line.size() < 4096 && line.find('\n') == std::string::npos) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buffer, static_cast<size_t>(n));
  }
  size_t key = line.find("\"child-pid\":");
  if (key == std::string::npos) return 0;
  size_t start = line.find_first_of("0123456789", key);
  if (start == std::string::npos) return 0;
  size_t end = line.find_first_not_of("0123456789", start);
  pid_t pid = 0;
  if (!absl::SimpleAtoi(line.substr(start, end - start), &pid)) return 0;
  return pid;
}

// The cgroup limits of a job: its own, or its slots' defaults.
CgroupLimits JobLimits(const JobSpec& spec) {
  CgroupLimits limits;
  limits.memory_bytes = spec.memory_bytes > 0 ? spec.memory_bytes : spec.slots * kSlotMemoryBytes;
  limits.pids_max =
      spec.pids_max > 0 ? spec.pids_max : std::min(spec.slots * kSlotPidsDefault, kPidsMax);
  limits.cpu_quota_micros = spec.slots * kSlotCpuQuotaMicros;
  limits.cpu_period_micros = kCpuPeriodMicros;
  return limits;
}

// The job's message for ocx-job-start (job_starter.h); empty when it is over the bound.
std::string StarterMessage(const JobSpec& spec) {
  std::string strings;
  for (const std::string& arg : spec.argv) strings.append(arg).push_back('\0');
  for (const auto& [key, value] : spec.env) {
    strings.append(key).append("=").append(value).push_back('\0');
  }
  if (strings.size() > kJobStarterBytesMax) return {};
  const JobStarterHeader header{kJobStarterMagic, static_cast<uint32_t>(spec.argv.size()),
                                static_cast<uint32_t>(spec.env.size()),
                                static_cast<uint32_t>(strings.size())};
  std::string message(reinterpret_cast<const char*>(&header), sizeof(header));
  return message + strings;
}

absl::Status SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "send the job to the prepared sandbox");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// True while the process behind `pidfd` runs.
bool Alive(int pidfd) {
  struct pollfd p {
    pidfd, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

namespace internal {

// One bubblewrap, started in its cgroup: what Run() supervises. Destroying it before the
// job was reaped kills the whole sandbox.
struct StartedSandbox {
  pid_t pid = -1;  // bubblewrap (the launcher became it); -1 once reaped
  UniqueFd pidfd, init_pidfd, out_r, err_r;
  // bubblewrap's JSON status: read for the init's pid, then kept open until the end, because
  // bubblewrap writes the exit status there too (and would die of SIGPIPE otherwise).
  UniqueFd status_r;
  UniqueFd command;  // prepared only: the starter's socket, until the job is sent
  std::unique_ptr<JobCgroup> cgroup;
  Clock::time_point t_fork, t_exec;

  StartedSandbox() = default;
  StartedSandbox(const StartedSandbox&) = delete;
  StartedSandbox& operator=(const StartedSandbox&) = delete;
  ~StartedSandbox() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);  // its init follows (parent-death signal), and with it the pid namespace
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (init_pidfd.valid()) (void)WaitPidfd(init_pidfd.get(), kInitExitDeadline);
    // ~JobCgroup then kills what is left and removes it.
  }
};

}  // namespace internal

namespace {

// Runs a started sandbox's job to its end: forwards its output, and enforces the timeout,
// cancellation and OOM; then makes sure nothing of it is left and fills in `result`.
absl::Status Supervise(internal::StartedSandbox& started, const JobSpec& spec, OutputPump& out_pump,
                       OutputPump& err_pump, JobResult& result) {
  result.cgroup_version = started.cgroup != nullptr ? started.cgroup->version() : 0;
  result.swap_limited = started.cgroup != nullptr && started.cgroup->swap_limited();
  const bool has_deadline = spec.timeout.count() > 0;
  const auto deadline = started.t_exec + spec.timeout;
  bool out_open = true, err_open = true;
  bool kill_requested = false;
  auto kill_job = [&]() {
    kill_requested = true;
    if (started.cgroup != nullptr) {
      absl::Status s = started.cgroup->KillAll();
      if (s.ok()) return;
    }
    // No cgroup (or it failed): killing bubblewrap's monitor kills its init (parent-death
    // signal), and the init's death kills its whole pid namespace.
    ::kill(started.pid, SIGKILL);
  };

  // Supervise: forward output, and watch the exit, the clock, the cancel token and OOM.
  for (;;) {
    std::array<struct pollfd, 5> fds;
    size_t count = 0;
    fds[count++] = {started.pidfd.get(), POLLIN, 0};
    const size_t out_index = out_open ? count++ : SIZE_MAX;
    if (out_open) fds[out_index] = {started.out_r.get(), POLLIN, 0};
    const size_t err_index = err_open ? count++ : SIZE_MAX;
    if (err_open) fds[err_index] = {started.err_r.get(), POLLIN, 0};
    const size_t cancel_index = spec.cancel != nullptr && !kill_requested ? count++ : SIZE_MAX;
    if (cancel_index != SIZE_MAX) fds[cancel_index] = {spec.cancel->fd(), POLLIN, 0};
    const size_t oom_index =
        started.cgroup != nullptr && started.cgroup->oom_fd() >= 0 && !kill_requested ? count++
                                                                                      : SIZE_MAX;
    if (oom_index != SIZE_MAX) {
      fds[oom_index] = {started.cgroup->oom_fd(), started.cgroup->oom_poll_events(), 0};
    }
    int timeout_ms = -1;
    if (has_deadline && !kill_requested) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
    }
    int ready = ::poll(fds.data(), count, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll");
    }
    if (out_index != SIZE_MAX && fds[out_index].revents != 0) {
      out_open = out_pump.ReadSome(started.out_r.get());
    }
    if (err_index != SIZE_MAX && fds[err_index].revents != 0) {
      err_open = err_pump.ReadSome(started.err_r.get());
    }
    if (fds[0].revents != 0) break;  // bubblewrap exited
    if (cancel_index != SIZE_MAX && fds[cancel_index].revents != 0) {
      result.cancelled = true;
      kill_job();
      continue;
    }
    if (oom_index != SIZE_MAX && fds[oom_index].revents != 0) {
      if (started.cgroup->ConsumeOomEvent()) {
        // v1 kills one process (v2 the whole cgroup); the job as a whole is over.
        result.oom_killed = true;
        kill_job();
      }
      continue;
    }
    if (has_deadline && !kill_requested && Clock::now() >= deadline) {
      result.timed_out = true;
      kill_job();
    }
  }

  struct rusage usage;
  int wait_status = 0;
  while (::wait4(started.pid, &wait_status, 0, &usage) < 0) {
    if (errno != EINTR) return ErrnoStatus(errno, "wait4");
  }
  started.pid = -1;  // reaped
  const auto t_exit = Clock::now();

  // Whatever ended the job: nothing of it may outlive Run().
  absl::Status teardown;
  if (started.cgroup != nullptr) teardown = started.cgroup->KillAll();
  if (started.init_pidfd.valid() && !WaitPidfd(started.init_pidfd.get(), kInitExitDeadline) &&
      teardown.ok()) {
    teardown = absl::DeadlineExceededError("the sandbox's init did not exit");
  }
  // With every writer gone the pipes reach EOF; the deadline only guards against a copy of
  // a write end held for a moment by another thread's fork.
  const auto drain_deadline = Clock::now() + kDrainDeadline;
  while ((out_open || err_open) && Clock::now() < drain_deadline) {
    std::array<struct pollfd, 2> fds;
    size_t count = 0;
    if (out_open) fds[count++] = {started.out_r.get(), POLLIN, 0};
    if (err_open) fds[count++] = {started.err_r.get(), POLLIN, 0};
    int ready = ::poll(fds.data(), count, 100);
    if (ready < 0 && errno != EINTR) break;
    for (size_t i = 0; i < count && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == started.out_r.get()) out_open = out_pump.ReadSome(started.out_r.get());
      if (fds[i].fd == started.err_r.get()) err_open = err_pump.ReadSome(started.err_r.get());
    }
  }

  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.exit_code = 128 + WTERMSIG(wait_status);
  }
  if (result.exit_code > 128 && result.exit_code <= 128 + 64) {
    result.term_signal = result.exit_code - 128;
  }
  result.wall_time = t_exit - started.t_exec;
  if (started.cgroup != nullptr) {
    absl::StatusOr<internal::CgroupStats> stats = started.cgroup->ReadStats();
    if (stats.ok()) {
      result.cpu_time = stats->cpu_time;
      result.memory_peak_bytes = stats->memory_peak_bytes;
      result.oom_killed = result.oom_killed || stats->oom_killed;
      result.pids_limit_hit = stats->pids_limit_hit;
    } else if (teardown.ok()) {
      teardown = stats.status();
    }
    if (absl::Status s = started.cgroup->Remove(); !s.ok() && teardown.ok()) teardown = s;
  } else {
    // Without a cgroup: what wait4 saw of the tree, and the largest single process.
    auto to_ns = [](const struct timeval& tv) {
      return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
    };
    result.cpu_time = to_ns(usage.ru_utime) + to_ns(usage.ru_stime);
    result.memory_peak_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  }
  if (!teardown.ok()) {
    return absl::Status(teardown.code(), absl::StrCat("sandbox teardown: ", teardown.message()));
  }
  OCX_RETURN_IF_ERROR(out_pump.write_status());
  OCX_RETURN_IF_ERROR(err_pump.write_status());
  result.stdout_bytes = out_pump.total();
  result.stderr_bytes = err_pump.total();
  result.stdout_truncated = out_pump.truncated();
  result.stderr_truncated = err_pump.truncated();
  result.timing.run = t_exit - started.t_exec;
  result.timing.teardown = Clock::now() - t_exit;
  return absl::OkStatus();
}

// A bubblewrap started by Prepare(), waiting in ocx-job-start.
class BubblewrapPrepared final : public PreparedSandbox {
 public:
  BubblewrapPrepared(const BubblewrapSandbox* owner, std::string work_dir, dev_t dev, ino_t ino,
                     std::unique_ptr<internal::StartedSandbox> started)
      : owner_(owner),
        work_dir_(std::move(work_dir)),
        dev_(dev),
        ino_(ino),
        started_(std::move(started)) {}
  const std::string& work_dir() const override { return work_dir_; }

  const BubblewrapSandbox* owner_;
  const std::string work_dir_;
  const dev_t dev_;
  const ino_t ino_;
  std::unique_ptr<internal::StartedSandbox> started_;  // null once used
};

// Waits until ocx-job-start reports that it runs; bubblewrap's own words when it failed.
absl::Status AwaitStarter(const internal::StartedSandbox& started) {
  struct pollfd p {
    started.command.get(), POLLIN, 0
  };
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(kStarterReadyDeadline.count() * 1000));
  } while (ready < 0 && errno == EINTR);
  char byte = 0;
  if (ready == 1 && ::recv(started.command.get(), &byte, 1, MSG_DONTWAIT) == 1 &&
      byte == kJobStarterReady) {
    return absl::OkStatus();
  }
  if (ready == 0) return absl::DeadlineExceededError("the prepared sandbox did not start in time");
  char said[1024];
  const ssize_t n = ::read(started.err_r.get(), said, sizeof(said));  // non-blocking
  return absl::InternalError(absl::StrCat(
      "the prepared sandbox did not start",
      n > 0 ? absl::StrCat(
                  ": ", absl::StripAsciiWhitespace(absl::string_view(said, static_cast<size_t>(n))))
            : ""));
}

}  // namespace

std::string DefaultJobStarterPath() { return OCX_DEFAULT_JOB_STARTER_PATH; }

absl::Status BubblewrapSandbox::HandToJobUid(const std::string& work_dir) const {
  if (::geteuid() != 0) return absl::OkStatus();  // the job runs as the caller's uid
  return ChownTree(AT_FDCWD, work_dir.c_str(), options_.job_host_uid, options_.job_host_gid, 0);
}

absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> BubblewrapSandbox::Create(Options options) {
  if (::access(options.bwrap_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("bubblewrap not found at ", options.bwrap_path, " (", std::strerror(errno),
                     "); install it: apt-get install bubblewrap"));
  }
  OCX_ASSIGN_OR_RETURN(std::string bpf, BuildSeccompBpf());
  absl::StatusOr<internal::CgroupSystem> cgroups = internal::DetectCgroups(options.cgroup_parent);
  absl::Status cgroup_status = cgroups.status();
  if (cgroups.ok() && ::geteuid() != 0) {
    // Probe once: the hierarchies exist but may not be ours to write (no delegation).
    const std::string probe =
        cgroups->version == 2 ? cgroups->v2_parent : cgroups->v1_parents.begin()->second;
    std::string dir = probe;
    while (::access(dir.c_str(), F_OK) != 0 && dir.size() > 1) dir = dir.substr(0, dir.rfind('/'));
    if (::access(dir.c_str(), W_OK) != 0) {
      cgroup_status = absl::PermissionDeniedError(
          absl::StrCat("cannot create cgroups under ", probe,
                       " as a non-root user; run as root or delegate a cgroup"));
    }
  }
  std::optional<internal::CgroupSystem> usable;
  if (cgroup_status.ok()) {
    usable = *std::move(cgroups);
  } else if (options.require_cgroup) {
    return absl::Status(
        cgroup_status.code(),
        absl::StrCat("sandbox needs a cgroup for its limits: ", cgroup_status.message()));
  }
  // The starter is optional: without it every job starts afresh (Prepare() says why).
  std::string starter;
  absl::Status starter_status;
  if (options.job_starter_path.empty()) {
    starter_status = absl::FailedPreconditionError("no job starter configured");
  } else {
    absl::StatusOr<std::string> bytes =
        internal::ReadSmallFile(options.job_starter_path, kStarterBytesMax);
    if (bytes.ok() && !bytes->empty()) {
      starter = *std::move(bytes);
    } else {
      starter_status = absl::FailedPreconditionError(absl::StrCat(
          "cannot read the job starter ", options.job_starter_path, ": ",
          bytes.ok() ? "empty file" : bytes.status().message(), "; jobs start afresh"));
    }
  }
  return std::unique_ptr<BubblewrapSandbox>(new BubblewrapSandbox(
      std::move(options), std::move(bpf), std::move(usable), std::move(cgroup_status),
      std::move(starter), std::move(starter_status)));
}

BubblewrapSandbox::~BubblewrapSandbox() = default;

absl::StatusOr<std::unique_ptr<internal::StartedSandbox>> BubblewrapSandbox::Start(
    const StartRequest& request) const {
  auto started = std::make_unique<internal::StartedSandbox>();
  if (cgroups_.has_value()) {
    // Process-wide, not per sandbox: several sandboxes in one process (the demo's three
    // providers, tests) share the cgroup parent, and their jobs' names must not collide.
    static std::atomic<uint64_t> jobs_in_process{0};
    const std::string name =
        absl::StrCat("job-", ::getpid(), "-", jobs_in_process.fetch_add(1) + 1);
    OCX_ASSIGN_OR_RETURN(started->cgroup, JobCgroup::Create(*cgroups_, name, request.limits));
  }

  // Descriptors for the launcher, all close-on-exec here.
  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) return ErrnoStatus(errno, "open /dev/null");
  UniqueFd out_w, err_w, status_w, go_r, go_w, fail_r, fail_w, command_r;
  OCX_RETURN_IF_ERROR(MakePipe(&started->out_r, &out_w));
  OCX_RETURN_IF_ERROR(MakePipe(&started->err_r, &err_w));
  OCX_RETURN_IF_ERROR(MakePipe(&started->status_r, &status_w));
  // Sockets, not pipes: sending to a launcher (or starter) that already died must not raise
  // SIGPIPE.
  for (auto [read_end, write_end] :
       {std::pair{&go_r, &go_w}, std::pair{&command_r, &started->command}}) {
    if (write_end == &started->command && !request.starter) continue;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      return ErrnoStatus(errno, "socketpair");
    }
    read_end->Reset(pair[0]);
    write_end->Reset(pair[1]);
  }
  OCX_RETURN_IF_ERROR(MakePipe(&fail_r, &fail_w));
  OCX_ASSIGN_OR_RETURN(UniqueFd args_fd, MemfdWithData("ocx-bwrap-args", BwrapOptions(request)));
  OCX_ASSIGN_OR_RETURN(UniqueFd seccomp_fd, MemfdWithData("ocx-seccomp", seccomp_bpf_));
  std::array<UniqueFd, kEtcFiles.size()> etc_fds;
  for (size_t i = 0; i < kEtcFiles.size(); ++i) {
    OCX_ASSIGN_OR_RETURN(etc_fds[i], MemfdWithData("ocx-etc", kEtcFiles[i].content));
  }
  UniqueFd starter_fd;
  if (request.starter) {
    OCX_ASSIGN_OR_RETURN(starter_fd, MemfdWithData("ocx-job-start", starter_));
  }

  // bwrap's own command line: the options come from kArgsFd; only the job's argv is visible.
  std::vector<std::string> argv_strings = {"bwrap", "--args", std::to_string(kArgsFd), "--"};
  argv_strings.insert(argv_strings.end(), request.argv.begin(), request.argv.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};  // bubblewrap gets no environment; the job's comes via --setenv

  LaunchPlan plan;
  plan.bwrap_path = options_.bwrap_path.c_str();
  plan.argv = argv.data();
  plan.envp = envp;
  plan.fds = {dev_null.get(), out_w.get(),      err_w.get(),
              args_fd.get(),  seccomp_fd.get(), status_w.get()};
  for (size_t i = 0; i < kEtcFiles.size(); ++i) {
    plan.fds[static_cast<size_t>(kEtcFdFirst) + i] = etc_fds[i].get();
  }
  plan.fd_count = kFirstUnusedFd;
  if (request.starter) {
    plan.fds[kStarterFd] = starter_fd.get();
    plan.fds[kCommandFd] = command_r.get();
    plan.fd_count = kPreparedFdCount;
  }
  plan.go_fd = go_r.get();
  plan.error_fd = fail_w.get();
  plan.parent = ::getpid();
  plan.drop_to_uid = ::geteuid() == 0;
  plan.uid = options_.job_host_uid;
  plan.gid = options_.job_host_gid;

  started->t_fork = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) Launch(plan);  // never returns
  started->pid = pid;          // from here on, an early return kills it (~StartedSandbox)

  // Parent. Drop our copies of the launcher's ends, so EOFs mean what they should.
  for (UniqueFd* fd : {&dev_null, &out_w, &err_w, &status_w, &go_r, &fail_w, &args_fd, &seccomp_fd,
                       &starter_fd, &command_r}) {
    fd->Reset();
  }
  for (UniqueFd& fd : etc_fds) fd.Reset();

  if (started->cgroup != nullptr) OCX_RETURN_IF_ERROR(started->cgroup->AddProcess(pid));
  started->pidfd.Reset(PidfdOpen(pid));
  if (!started->pidfd.valid()) return ErrnoStatus(errno, "pidfd_open");
  const char go = 1;
  ssize_t sent;
  do {
    sent = ::send(go_w.get(), &go, 1, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != 1) return ErrnoStatus(errno, "start the sandbox launcher");
  go_w.Reset();
  // EOF on the error pipe: exec succeeded (close-on-exec). Otherwise the launcher says why.
  LaunchError launch_error{0, 0};
  ssize_t n;
  do {
    n = ::read(fail_r.get(), &launch_error, sizeof(launch_error));
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    return ErrnoStatus(launch_error.error,
                       absl::StrCat("sandbox launcher: ",
                                    LaunchStepName(static_cast<LaunchStep>(launch_error.step))));
  }
  started->t_exec = Clock::now();

  // The sandbox's init. Its exit, which the kernel delays until every process in its pid
  // namespace is gone, is our proof that nothing of the job survives (also without cgroup).
  if (pid_t init_pid = ReadChildPid(started->status_r.get()); init_pid > 0) {
    started->init_pidfd.Reset(PidfdOpen(init_pid));  // ESRCH: already gone, fine
  }
  for (UniqueFd* fd : {&started->out_r, &started->err_r}) {
    ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
  }
  return started;
}

absl::StatusOr<std::unique_ptr<PreparedSandbox>> BubblewrapSandbox::Prepare(
    const PrepareSpec& spec) {
  if (starter_.empty()) return starter_status_;
  OCX_RETURN_IF_ERROR(ValidatePrepareSpec(spec));
  StartRequest request;
  OCX_ASSIGN_OR_RETURN(request.work_dir, CheckWorkDir(spec.work_dir));
  // bubblewrap's --chdir /work already needs the job's uid to own the directory.
  OCX_RETURN_IF_ERROR(HandToJobUid(request.work_dir));
  struct stat st;
  if (::stat(request.work_dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, "stat " + request.work_dir);
  }
  request.tmp_bytes = spec.tmp_bytes > 0 ? spec.tmp_bytes : kSlotMemoryBytes;
  // One slot's limits while it waits; Run() sets the job's before the job starts.
  request.limits = JobLimits(JobSpec{});
  request.argv = {std::string(kStarterPath), std::to_string(kCommandFd)};
  request.starter = true;
  OCX_ASSIGN_OR_RETURN(std::unique_ptr<internal::StartedSandbox> started, Start(request));
  // Wait for the starter's ready byte: bubblewrap reports its child's pid before the mounts
  // are done, and a job handed over before then would wait for them.
  OCX_RETURN_IF_ERROR(AwaitStarter(*started));
  return std::make_unique<BubblewrapPrepared>(this, spec.work_dir, st.st_dev, st.st_ino,
                                              std::move(started));
}

absl::StatusOr<JobResult> BubblewrapSandbox::Run(const JobSpec& spec) {
  const auto t_start = Clock::now();
  OCX_RETURN_IF_ERROR(ValidateJobSpec(spec));
  StartRequest request;
  request.network = spec.network;
  request.limits = JobLimits(spec);
  request.tmp_bytes = request.limits.memory_bytes;
  OCX_ASSIGN_OR_RETURN(request.work_dir, CheckWorkDir(spec.work_dir));

  std::unique_ptr<internal::StartedSandbox> started;
  if (spec.prepared != nullptr) {
    auto* prepared = dynamic_cast<BubblewrapPrepared*>(spec.prepared);
    if (prepared == nullptr || prepared->owner_ != this) {
      return absl::InvalidArgumentError("the prepared sandbox comes from another sandbox");
    }
    if (prepared->started_ == nullptr) {
      return absl::InvalidArgumentError("the prepared sandbox was used already");
    }
    if (spec.network) {
      return absl::InvalidArgumentError(
          "a prepared sandbox has no network; a job with network starts afresh");
    }
    struct stat st;
    if (::stat(request.work_dir.c_str(), &st) != 0 || st.st_dev != prepared->dev_ ||
        st.st_ino != prepared->ino_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "work_dir ", spec.work_dir, " is not the directory the sandbox was prepared with (",
          prepared->work_dir(), ")"));
    }
    started = std::move(prepared->started_);
  }
  OCX_RETURN_IF_ERROR(HandToJobUid(request.work_dir));

  OutputPump out_pump(spec.stdout_sink, spec.output_bytes_max);
  OutputPump err_pump(spec.stderr_sink, spec.output_bytes_max);
  OCX_RETURN_IF_ERROR(out_pump.Open());
  OCX_RETURN_IF_ERROR(err_pump.Open());

  JobResult result;
  std::chrono::nanoseconds cpu_before_job{0};
  if (started != nullptr) {
    // The prepared sandbox gets the job's limits, then the job. If it died meanwhile (or
    // the job is too big for the starter), nothing of the job ran: start afresh below.
    const std::string message = StarterMessage(spec);
    bool handed_over = false;
    if (!message.empty() && Alive(started->pidfd.get())) {
      if (started->cgroup != nullptr) {
        OCX_RETURN_IF_ERROR(started->cgroup->SetLimits(request.limits));
        // The starter's own start-up is not the job's: bill from here.
        if (auto stats = started->cgroup->ReadStats(); stats.ok()) {
          cpu_before_job = stats->cpu_time;
        }
      }
      handed_over = SendAll(started->command.get(), message).ok();
    }
    started->command.Reset();
    if (handed_over) {
      result.prewarmed = true;
      started->t_fork = started->t_exec = Clock::now();
    } else {
      started.reset();
    }
  }
  if (started == nullptr) {
    request.argv = spec.argv;
    request.env = spec.env;
    OCX_ASSIGN_OR_RETURN(started, Start(request));
  }
  OCX_RETURN_IF_ERROR(Supervise(*started, spec, out_pump, err_pump, result));
  if (result.prewarmed) {
    result.cpu_time = std::max(result.cpu_time - cpu_before_job, std::chrono::nanoseconds{0});
  }
  result.timing.prepare = started->t_fork - t_start;
  result.timing.spawn = started->t_exec - started->t_fork;
  return result;
}

}  // namespace ocx::sandbox
