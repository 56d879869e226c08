#include "src/sandbox/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "src/base/assert.h"
#include "src/base/status.h"

namespace ocx::sandbox::internal {
namespace {

using Clock = std::chrono::steady_clock;

// How long KillAll() waits for a cgroup to empty and Remove() retries a busy rmdir. Killed
// processes leave within milliseconds; a process stuck in uninterruptible sleep (a hung
// NFS mount) can take longer, and that must surface as an error, not hang the agent.
constexpr std::chrono::seconds kKillDeadline{10};
constexpr std::chrono::seconds kRemoveDeadline{2};
constexpr std::chrono::seconds kFreezeDeadline{1};

// Waits between two looks at kernel state that offers no notification (v1 cgroup.procs,
// freezer.state): 1 ms, doubling up to 16 ms.
void Backoff(int round) {
  const long ms = 1L << std::min(round, 4);
  struct timespec ts {
    0, ms * 1'000'000L
  };
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

// mkdir -p for a path below an existing cgroup mount point.
absl::Status MakeDirs(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    OCX_RETURN_IF_ERROR(MakeDir(path.substr(0, slash)));
  }
  return MakeDir(path);
}

// mountinfo escapes spaces, tabs, newlines and backslashes as \ooo.
std::string UnescapeMountField(absl::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = field[i + j];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

struct CgroupMount {
  std::string root;        // the path inside the hierarchy that is mounted
  std::string mountpoint;  // where
};

struct Mounts {
  bool has_v2 = false;
  CgroupMount v2;
  std::map<std::string, CgroupMount> v1;  // controller -> mount
};

absl::StatusOr<Mounts> ReadMounts() {
  OCX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile("/proc/self/mountinfo"));
  Mounts mounts;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    absl::string_view fstype = dash[1];
    absl::string_view super_options = dash[3];
    CgroupMount mount{UnescapeMountField(fields[3]), UnescapeMountField(fields[4])};
    if (fstype == "cgroup2") {
      if (!mounts.has_v2) {
        mounts.has_v2 = true;
        mounts.v2 = mount;
      }
    } else if (fstype == "cgroup") {
      for (absl::string_view option : absl::StrSplit(super_options, ',')) {
        std::string controller(option);
        if (controller == "memory" || controller == "pids" || controller == "cpu" ||
            controller == "cpuacct" || controller == "freezer") {
          mounts.v1.emplace(controller, mount);
        }
      }
    }
  }
  return mounts;
}

struct ProcCgroups {
  bool has_v2 = false;
  std::string v2_path;
  std::map<std::string, std::string> v1;  // controller -> path
};

absl::StatusOr<ProcCgroups> ReadProcCgroups() {
  OCX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile("/proc/self/cgroup"));
  ProcCgroups out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (parts[0] == "0" && parts[1].empty()) {
      out.has_v2 = true;
      out.v2_path = std::string(parts[2]);
      continue;
    }
    for (absl::string_view controller : absl::StrSplit(parts[1], ',')) {
      out.v1.emplace(std::string(controller), std::string(parts[2]));
    }
  }
  return out;
}

// The host directory of cgroup `path` in a hierarchy mounted as `mount`.
absl::StatusOr<std::string> DirOf(const CgroupMount& mount, const std::string& path) {
  if (path == mount.root) return mount.mountpoint;
  if (mount.root == "/") return absl::StrCat(mount.mountpoint, path);
  if (absl::StartsWith(path, mount.root + "/")) {
    return absl::StrCat(mount.mountpoint, path.substr(mount.root.size()));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "cgroup ", path, " is not below the mounted part ", mount.root, " of its hierarchy"));
}

std::string JoinParent(const std::string& mountpoint, absl::string_view parent) {
  std::string out = mountpoint;
  for (absl::string_view part : absl::StrSplit(parent, '/', absl::SkipEmpty())) {
    absl::StrAppend(&out, "/", part);
  }
  return out;
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// The value of `key` in a "key value" per line file (memory.events, cpu.stat, ...).
std::optional<int64_t> KeyedValue(absl::string_view text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t value;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &value)) return value;
  }
  return std::nullopt;
}

absl::StatusOr<int64_t> ReadInt(const std::string& path) {
  OCX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  int64_t value;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &value)) {
    return absl::InternalError(absl::StrCat("unexpected content in ", path, ": ", text));
  }
  return value;
}

// Makes sure `dir`'s children get `controllers` (v2 cgroup.subtree_control).
absl::Status EnableV2Controllers(const std::string& dir,
                                 const std::vector<std::string>& controllers) {
  OCX_ASSIGN_OR_RETURN(std::string enabled, ReadSmallFile(dir + "/cgroup.subtree_control"));
  std::set<absl::string_view> have;
  for (absl::string_view c : absl::StrSplit(enabled, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    have.insert(c);
  }
  for (const std::string& controller : controllers) {
    if (have.count(controller) != 0) continue;
    absl::Status status = WriteControlFile(dir + "/cgroup.subtree_control", "+" + controller);
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat("cgroup v2: cannot hand the ", controller, " controller to the children of ",
                       dir, " (", status.message(),
                       "); a cgroup that holds processes cannot, see "
                       "docs/sandbox.md"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CgroupSystem> DetectCgroups(std::string_view parent_view) {
  const std::string parent(parent_view);
  OCX_ASSIGN_OR_RETURN(Mounts mounts, ReadMounts());
  OCX_ASSIGN_OR_RETURN(ProcCgroups own, ReadProcCgroups());
  CgroupSystem system;

  if (mounts.has_v2 && own.has_v2) {
    OCX_ASSIGN_OR_RETURN(std::string own_dir, DirOf(mounts.v2, own.v2_path));
    absl::StatusOr<std::string> available = ReadSmallFile(own_dir + "/cgroup.controllers");
    std::set<absl::string_view> controllers;
    if (available.ok()) {
      for (absl::string_view c :
           absl::StrSplit(*available, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
        controllers.insert(c);
      }
    }
    if (controllers.count("memory") && controllers.count("pids") && controllers.count("cpu")) {
      system.version = 2;
      if (!parent.empty()) {
        system.v2_parent = JoinParent(mounts.v2.mountpoint, parent);
      } else if (own_dir == mounts.v2.mountpoint) {
        system.v2_parent = own_dir + "/ocx";
      } else {
        // "No internal processes": a non-root v2 cgroup that hands controllers to children
        // must hold no process itself. Leave our cgroup to the jobs if we are alone in it.
        OCX_ASSIGN_OR_RETURN(std::string procs, ReadSmallFile(own_dir + "/cgroup.procs"));
        std::vector<absl::string_view> pids = absl::StrSplit(procs, '\n', absl::SkipEmpty());
        if (pids.size() != 1 || pids[0] != std::to_string(::getpid())) {
          return absl::FailedPreconditionError(absl::StrCat(
              "cgroup v2: this process's cgroup ", own_dir,
              " holds other processes, so it cannot hold job cgroups; run the agent in a "
              "cgroup of its own (systemd: Delegate=yes) or name a cgroup parent"));
        }
        OCX_RETURN_IF_ERROR(MakeDir(own_dir + "/ocx-agent"));
        OCX_RETURN_IF_ERROR(
            WriteControlFile(own_dir + "/ocx-agent/cgroup.procs", std::to_string(::getpid())));
        system.v2_parent = own_dir + "/ocx";
      }
      return system;
    }
  }

  const char* required[] = {"memory", "pids", "cpu", "cpuacct"};
  bool v1_ok = true;
  for (const char* controller : required) {
    if (!mounts.v1.count(controller) || !own.v1.count(controller)) v1_ok = false;
  }
  if (!v1_ok) {
    return absl::FailedPreconditionError(
        "no usable cgroup hierarchy: need cgroup v2 with the memory, pids and cpu "
        "controllers, or cgroup v1 with memory, pids, cpu and cpuacct mounted");
  }
  system.version = 1;
  for (const char* controller : {"memory", "pids", "cpu", "cpuacct", "freezer"}) {
    auto mount = mounts.v1.find(controller);
    auto path = own.v1.find(controller);
    if (mount == mounts.v1.end() || path == own.v1.end()) continue;  // freezer is optional
    if (!parent.empty()) {
      system.v1_parents[controller] = JoinParent(mount->second.mountpoint, parent);
    } else {
      OCX_ASSIGN_OR_RETURN(std::string own_dir, DirOf(mount->second, path->second));
      system.v1_parents[controller] = own_dir + "/ocx";
    }
  }
  return system;
}

absl::StatusOr<std::unique_ptr<JobCgroup>> JobCgroup::Create(const CgroupSystem& system,
                                                             std::string_view name,
                                                             const CgroupLimits& limits) {
  OCX_ASSERT(system.version == 1 || system.version == 2);
  OCX_ASSERT(!name.empty() && name.find('/') == absl::string_view::npos);
  std::unique_ptr<JobCgroup> cg(new JobCgroup());
  cg->version_ = system.version;

  if (system.version == 2) {
    std::vector<std::string> needed;
    if (limits.memory_bytes > 0) needed.push_back("memory");
    if (limits.pids_max > 0) needed.push_back("pids");
    if (limits.cpu_quota_micros > 0) needed.push_back("cpu");
    OCX_RETURN_IF_ERROR(MakeDirs(system.v2_parent));
    if (!needed.empty()) {
      OCX_RETURN_IF_ERROR(EnableV2Controllers(Dirname(system.v2_parent), needed));
      OCX_RETURN_IF_ERROR(EnableV2Controllers(system.v2_parent, needed));
    }
    std::string dir = absl::StrCat(system.v2_parent, "/", std::string(name));
    if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir " + dir);
    cg->dirs_.push_back(dir);
    OCX_RETURN_IF_ERROR(cg->SetLimits(limits));
    if (limits.memory_bytes > 0) {
      if (Exists(dir + "/memory.swap.max")) {
        OCX_RETURN_IF_ERROR(WriteControlFile(dir + "/memory.swap.max", "0"));
        cg->swap_limited_ = true;
      }
      // On OOM the kernel kills the whole cgroup, not just the biggest process.
      if (Exists(dir + "/memory.oom.group")) {
        OCX_RETURN_IF_ERROR(WriteControlFile(dir + "/memory.oom.group", "1"));
      }
    }
    // memory.events is pollable: POLLPRI when a counter in it changes.
    int fd = ::open((dir + "/memory.events").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) cg->oom_event_fd_.Reset(fd);
    return cg;
  }

  // v1: one directory per hierarchy; co-mounted controllers share one.
  auto make = [&](const char* controller, std::string* out) -> absl::Status {
    auto it = system.v1_parents.find(controller);
    if (it == system.v1_parents.end()) return absl::OkStatus();
    std::string dir = absl::StrCat(it->second, "/", std::string(name));
    if (std::find(cg->dirs_.begin(), cg->dirs_.end(), dir) == cg->dirs_.end()) {
      OCX_RETURN_IF_ERROR(MakeDirs(it->second));
      if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(errno, "mkdir " + dir);
      cg->dirs_.push_back(dir);
    }
    *out = dir;
    return absl::OkStatus();
  };
  OCX_RETURN_IF_ERROR(make("memory", &cg->memory_dir_));
  OCX_RETURN_IF_ERROR(make("pids", &cg->pids_dir_));
  OCX_RETURN_IF_ERROR(make("cpu", &cg->cpu_dir_));
  OCX_RETURN_IF_ERROR(make("cpuacct", &cg->cpuacct_dir_));
  OCX_RETURN_IF_ERROR(make("freezer", &cg->freezer_dir_));
  OCX_ASSERT(!cg->memory_dir_.empty() && !cg->pids_dir_.empty() && !cg->cpu_dir_.empty() &&
             !cg->cpuacct_dir_.empty());

  OCX_RETURN_IF_ERROR(cg->SetLimits(limits));
  if (limits.memory_bytes > 0) {
    cg->swap_limited_ = Exists(cg->memory_dir_ + "/memory.memsw.limit_in_bytes");
    // OOM notification: an eventfd registered through cgroup.event_control. Optional: the
    // interface is deprecated, and without it OOM is still seen once the job exits.
    int control = ::open((cg->memory_dir_ + "/memory.oom_control").c_str(), O_RDONLY | O_CLOEXEC);
    int event = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (control >= 0 && event >= 0 &&
        WriteControlFile(cg->memory_dir_ + "/cgroup.event_control",
                         absl::StrCat(event, " ", control))
            .ok()) {
      cg->oom_control_fd_.Reset(control);
      cg->oom_event_fd_.Reset(event);
    } else {
      if (control >= 0) ::close(control);
      if (event >= 0) ::close(event);
    }
  }
  return cg;
}

absl::Status JobCgroup::SetLimits(const CgroupLimits& limits) {
  if (version_ == 2) {
    const std::string& dir = dirs_.front();
    if (limits.memory_bytes > 0) {
      OCX_RETURN_IF_ERROR(
          WriteControlFile(dir + "/memory.max", std::to_string(limits.memory_bytes)));
    }
    if (limits.pids_max > 0) {
      OCX_RETURN_IF_ERROR(WriteControlFile(dir + "/pids.max", std::to_string(limits.pids_max)));
    }
    if (limits.cpu_quota_micros > 0) {
      OCX_RETURN_IF_ERROR(WriteControlFile(
          dir + "/cpu.max", absl::StrCat(limits.cpu_quota_micros, " ", limits.cpu_period_micros)));
    }
    return absl::OkStatus();
  }
  if (limits.memory_bytes > 0) {
    const std::string bytes = std::to_string(limits.memory_bytes);
    const std::string memory = memory_dir_ + "/memory.limit_in_bytes";
    // memsw = memory + swap; equal to the memory limit means no swap at all. The file is
    // missing when the kernel runs without swap accounting (swapaccount=0). The kernel keeps
    // memsw >= memory at every step: a lower limit goes to memory first, a higher one to
    // memsw first (the first write then fails, and is repeated after).
    const std::string memsw = memory_dir_ + "/memory.memsw.limit_in_bytes";
    if (!Exists(memsw)) {
      OCX_RETURN_IF_ERROR(WriteControlFile(memory, bytes));
    } else if (WriteControlFile(memory, bytes).ok()) {
      OCX_RETURN_IF_ERROR(WriteControlFile(memsw, bytes));
    } else {
      OCX_RETURN_IF_ERROR(WriteControlFile(memsw, bytes));
      OCX_RETURN_IF_ERROR(WriteControlFile(memory, bytes));
    }
  }
  if (limits.pids_max > 0) {
    OCX_RETURN_IF_ERROR(WriteControlFile(pids_dir_ + "/pids.max", std::to_string(limits.pids_max)));
  }
  if (limits.cpu_quota_micros > 0) {
    OCX_RETURN_IF_ERROR(WriteControlFile(cpu_dir_ + "/cpu.cfs_period_us",
                                         std::to_string(limits.cpu_period_micros)));
    OCX_RETURN_IF_ERROR(
        WriteControlFile(cpu_dir_ + "/cpu.cfs_quota_us", std::to_string(limits.cpu_quota_micros)));
  }
  return absl::OkStatus();
}

JobCgroup::~JobCgroup() {
  if (removed_) return;
  // An error path of Run(): make sure nothing is left running, then remove. Best effort.
  (void)KillAll();
  (void)Remove();
}

absl::Status JobCgroup::AddProcess(pid_t pid) {
  const std::string text = std::to_string(pid);
  for (const std::string& dir : dirs_) {
    OCX_RETURN_IF_ERROR(WriteControlFile(dir + "/cgroup.procs", text));
  }
  return absl::OkStatus();
}

bool JobCgroup::ConsumeOomEvent() {
  if (!oom_event_fd_.valid()) return false;
  if (version_ == 1) {
    // The v1 notification means the cgroup ran out of memory and the OOM killer runs. Its
    // oom_kill counter may not have moved yet, so the notification itself is the verdict.
    uint64_t count = 0;
    ssize_t n;
    do {
      n = ::read(oom_event_fd_.get(), &count, sizeof(count));
    } while (n < 0 && errno == EINTR);
    return n == sizeof(count) && count > 0;
  }
  // v2: POLLPRI means some counter in memory.events changed (also "high" or "max"); reading
  // the file through the same descriptor re-arms the notification.
  char buffer[1024];
  ssize_t n;
  do {
    n = ::pread(oom_event_fd_.get(), buffer, sizeof(buffer) - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  absl::string_view events(buffer, static_cast<size_t>(n));
  return KeyedValue(events, "oom").value_or(0) > 0 ||
         KeyedValue(events, "oom_kill").value_or(0) > 0 ||
         KeyedValue(events, "oom_group_kill").value_or(0) > 0;
}

absl::StatusOr<std::vector<pid_t>> JobCgroup::ListProcesses() const {
  std::set<pid_t> pids;
  for (const std::string& dir : dirs_) {
    absl::StatusOr<std::string> text = ReadSmallFile(dir + "/cgroup.procs");
    if (!text.ok()) {
      if (absl::IsNotFound(text.status())) continue;  // already removed
      return text.status();
    }
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      pid_t pid;
      if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.insert(pid);
    }
  }
  return std::vector<pid_t>(pids.begin(), pids.end());
}

absl::StatusOr<bool> JobCgroup::Empty() const {
  OCX_ASSIGN_OR_RETURN(std::vector<pid_t> pids, ListProcesses());
  return pids.empty();
}

absl::Status JobCgroup::Freeze(bool frozen) {
  const auto deadline = Clock::now() + kFreezeDeadline;
  if (version_ == 2) {
    const std::string dir = dirs_[0];
    OCX_RETURN_IF_ERROR(WriteControlFile(dir + "/cgroup.freeze", frozen ? "1" : "0"));
    if (!frozen) return absl::OkStatus();
    for (int round = 0; Clock::now() < deadline; ++round) {
      OCX_ASSIGN_OR_RETURN(std::string events, ReadSmallFile(dir + "/cgroup.events"));
      if (KeyedValue(events, "frozen").value_or(0) == 1) return absl::OkStatus();
      Backoff(round);
    }
    return absl::DeadlineExceededError("cgroup v2: freezing did not complete");
  }
  OCX_ASSERT(!freezer_dir_.empty());
  const std::string state = freezer_dir_ + "/freezer.state";
  OCX_RETURN_IF_ERROR(WriteControlFile(state, frozen ? "FROZEN" : "THAWED"));
  if (!frozen) return absl::OkStatus();
  for (int round = 0; Clock::now() < deadline; ++round) {
    OCX_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(state));
    if (absl::StripAsciiWhitespace(text) == "FROZEN") return absl::OkStatus();
    Backoff(round);
  }
  return absl::DeadlineExceededError("cgroup v1: freezing did not complete");
}

absl::Status JobCgroup::KillAll(KillOptions options) {
  const auto deadline = Clock::now() + kKillDeadline;
  const bool kill_file =
      options.use_cgroup_kill && version_ == 2 && Exists(dirs_[0] + "/cgroup.kill");
  const bool freezer = options.use_freezer && (version_ == 2 ? Exists(dirs_[0] + "/cgroup.freeze")
                                                             : !freezer_dir_.empty());
  for (int round = 0;; ++round) {
    OCX_ASSIGN_OR_RETURN(std::vector<pid_t> pids, ListProcesses());
    if (pids.empty()) return absl::OkStatus();
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("processes survive SIGKILL in cgroup ", dirs_[0], " (", pids.size(),
                       " left, first pid ", pids[0], "): stuck in uninterruptible sleep?"));
    }
    if (kill_file) {
      // Atomic: the kernel kills every process in the subtree, forks in flight included.
      OCX_RETURN_IF_ERROR(WriteControlFile(dirs_[0] + "/cgroup.kill", "1"));
    } else {
      // Freeze first so that nothing forks between listing and killing. Frozen processes
      // cannot race us, so their pids cannot be reused before kill() reaches them either.
      bool frozen = freezer && Freeze(true).ok();
      if (frozen) {
        OCX_ASSIGN_OR_RETURN(pids, ListProcesses());
      }
      for (pid_t pid : pids) ::kill(pid, SIGKILL);  // ESRCH: already gone
      if (freezer) OCX_RETURN_IF_ERROR(Freeze(false));
    }
    // SIGKILL is delivered at once, but exiting (freeing memory) takes a moment. v1 offers
    // no notification of an emptied cgroup, so look again shortly.
    Backoff(round);
  }
}

absl::StatusOr<CgroupStats> JobCgroup::ReadStats() const {
  CgroupStats stats;
  if (version_ == 2) {
    const std::string& dir = dirs_[0];
    OCX_ASSIGN_OR_RETURN(std::string cpu, ReadSmallFile(dir + "/cpu.stat"));
    stats.cpu_time = std::chrono::microseconds(KeyedValue(cpu, "usage_usec").value_or(0));
    if (Exists(dir + "/memory.peak")) {
      OCX_ASSIGN_OR_RETURN(stats.memory_peak_bytes, ReadInt(dir + "/memory.peak"));
    }
    if (Exists(dir + "/memory.events")) {
      OCX_ASSIGN_OR_RETURN(std::string events, ReadSmallFile(dir + "/memory.events"));
      stats.oom_killed = KeyedValue(events, "oom_kill").value_or(0) > 0 ||
                         KeyedValue(events, "oom_group_kill").value_or(0) > 0;
    }
    if (Exists(dir + "/pids.events")) {
      OCX_ASSIGN_OR_RETURN(std::string events, ReadSmallFile(dir + "/pids.events"));
      stats.pids_limit_hit = KeyedValue(events, "max").value_or(0) > 0;
    }
    return stats;
  }
  OCX_ASSIGN_OR_RETURN(int64_t usage_ns, ReadInt(cpuacct_dir_ + "/cpuacct.usage"));
  stats.cpu_time = std::chrono::nanoseconds(usage_ns);
  // memsw.max_usage covers memory + swap; with swap off both are the same.
  OCX_ASSIGN_OR_RETURN(stats.memory_peak_bytes,
                       ReadInt(memory_dir_ + "/memory.max_usage_in_bytes"));
  OCX_ASSIGN_OR_RETURN(std::string oom, ReadSmallFile(memory_dir_ + "/memory.oom_control"));
  std::optional<int64_t> oom_kills = KeyedValue(oom, "oom_kill");  // Linux 4.13+
  if (oom_kills.has_value()) {
    stats.oom_killed = *oom_kills > 0;
  } else {
    // Older kernels: the limit was hit and reclaim could not help.
    OCX_ASSIGN_OR_RETURN(int64_t failcnt, ReadInt(memory_dir_ + "/memory.failcnt"));
    stats.oom_killed = failcnt > 0 && KeyedValue(oom, "under_oom").value_or(0) > 0;
  }
  if (Exists(pids_dir_ + "/pids.events")) {
    OCX_ASSIGN_OR_RETURN(std::string events, ReadSmallFile(pids_dir_ + "/pids.events"));
    stats.pids_limit_hit = KeyedValue(events, "max").value_or(0) > 0;
  }
  return stats;
}

absl::Status JobCgroup::Remove() {
  // Close the v1 OOM registration first: it holds a reference to the memory cgroup.
  oom_event_fd_.Reset();
  oom_control_fd_.Reset();
  const auto deadline = Clock::now() + kRemoveDeadline;
  absl::Status status;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    for (int round = 0;; ++round) {
      if (::rmdir(it->c_str()) == 0 || errno == ENOENT) break;
      // EBUSY right after the last process left: the kernel is still tearing it down.
      if (errno != EBUSY || Clock::now() > deadline) {
        if (status.ok()) status = ErrnoStatus(errno, "rmdir " + *it);
        break;
      }
      Backoff(round);
    }
  }
  removed_ = true;
  return status;
}

}  // namespace ocx::sandbox::internal
