// Per-job control groups: the limits (memory with swap off, pids, cpu quota), the accounting
// (CPU time, peak memory, OOM kills, pids-limit hits) and the kill switch for a job's whole
// process tree. Works on cgroup v2 (unified) and on v1 (one hierarchy per controller, as on
// hybrid systems). Internal to src/sandbox; see docs/sandbox.md for the v1/v2 differences.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/sandbox/unique_fd.h"

namespace ocx::sandbox::internal {

// Where job cgroups go on this machine. Found once by DetectCgroups().
struct CgroupSystem {
  int version = 0;  // 1 or 2
  // v2: the directory that holds one child cgroup per job.
  std::string v2_parent;
  // v1: controller name ("memory", "pids", "cpu", "cpuacct", "freezer") -> the directory in
  // that controller's hierarchy that holds one child per job. Co-mounted controllers
  // ("cpu,cpuacct") map to the same directory. "freezer" is optional.
  std::map<std::string, std::string> v1_parents;
};

// Finds the cgroup hierarchies from /proc/self/mountinfo and /proc/self/cgroup and picks
// v2 when the unified hierarchy offers memory, pids and cpu, else v1 when the memory, pids,
// cpu and cpuacct hierarchies are mounted. Job cgroups go under `parent` (a path inside each
// hierarchy, e.g. "/ocx") when it is not empty, else under "<this process's cgroup>/ocx".
// On v2 the latter needs this process's cgroup to have no other process, because v2 keeps
// processes out of cgroups that hand controllers down: the process then moves itself into
// "<its cgroup>/ocx-agent" (the pattern systemd's Delegate=yes asks for); with other
// processes there it fails and asks for a `parent`.
// FailedPrecondition when neither version is usable.
absl::StatusOr<CgroupSystem> DetectCgroups(std::string_view parent);

struct CgroupLimits {
  int64_t memory_bytes = 0;      // 0: no limit. RAM; swap is limited to 0 where possible.
  int64_t pids_max = 0;          // 0: no limit
  int64_t cpu_quota_micros = 0;  // per cpu_period_micros; 0: no limit
  int64_t cpu_period_micros = 100'000;
};

struct CgroupStats {
  std::chrono::nanoseconds cpu_time{0};
  int64_t memory_peak_bytes = -1;  // -1: not reported by this kernel
  bool oom_killed = false;
  bool pids_limit_hit = false;
};

// For tests: which kill mechanism KillAll() may use.
struct KillOptions {
  bool use_cgroup_kill = true;  // v2 cgroup.kill (Linux 5.14+)
  bool use_freezer = true;      // v2 cgroup.freeze, v1 freezer controller
};

// One job's cgroup (one directory per hierarchy on v1). Owned by the Run() that made it;
// not thread-safe. The destructor kills what is left in it and removes it (best effort);
// call KillAll() and Remove() to see errors.
class JobCgroup {
 public:
  static absl::StatusOr<std::unique_ptr<JobCgroup>> Create(const CgroupSystem& system,
                                                           std::string_view name,
                                                           const CgroupLimits& limits);
  ~JobCgroup();
  JobCgroup(const JobCgroup&) = delete;
  JobCgroup& operator=(const JobCgroup&) = delete;

  int version() const { return version_; }
  bool swap_limited() const { return swap_limited_; }
  // The job's directories, one per hierarchy.
  const std::vector<std::string>& dirs() const { return dirs_; }

  // Changes the limits of a live cgroup (a prepared sandbox gets its job's limits). Limits
  // left at 0 are left as they are; the controllers must be those Create() enabled.
  absl::Status SetLimits(const CgroupLimits& limits);

  // Moves process `pid` (and so everything it starts later) into the cgroup.
  absl::Status AddProcess(pid_t pid);

  // A descriptor that polls ready (`oom_poll_events()`) when the kernel OOM-kills in this
  // cgroup, or -1 when the kernel offers no such notification.
  int oom_fd() const { return oom_event_fd_.valid() ? oom_event_fd_.get() : -1; }
  short oom_poll_events() const { return version_ == 2 ? POLLPRI : POLLIN; }
  // Consumes a notification on oom_fd() and says whether it means the job ran out of
  // memory (the job is then over). Harmless to call spuriously.
  bool ConsumeOomEvent();

  // True when no process is left in the cgroup.
  absl::StatusOr<bool> Empty() const;
  // Kills every process in the cgroup, atomically where the kernel can (v2 cgroup.kill, or
  // under the freezer so nothing forks meanwhile), and returns when none is left.
  absl::Status KillAll(KillOptions options = {});
  absl::StatusOr<CgroupStats> ReadStats() const;
  // Removes the (empty) cgroup directories.
  absl::Status Remove();

 private:
  JobCgroup() = default;
  absl::StatusOr<std::vector<pid_t>> ListProcesses() const;
  absl::Status Freeze(bool frozen);

  int version_ = 0;
  std::vector<std::string> dirs_;  // distinct directories; v2: exactly one
  std::string memory_dir_, pids_dir_, cpu_dir_, cpuacct_dir_, freezer_dir_;  // v1 (may alias)
  bool swap_limited_ = false;
  bool removed_ = false;
  UniqueFd oom_event_fd_;    // v1: eventfd; v2: memory.events
  UniqueFd oom_control_fd_;  // v1: memory.oom_control, kept open for the eventfd
};

}  // namespace ocx::sandbox::internal
