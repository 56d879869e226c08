// BubblewrapSandbox: runs each job under bubblewrap (all namespaces unshared, no
// capabilities, an unprivileged uid, a minimal read-only file system, a seccomp filter)
// inside a per-job cgroup (memory without swap, pids, cpu quota) that is killed as a whole
// on OOM, timeout or cancel and removed afterwards. docs/sandbox.md has the details.
//
// Thread-safe: Run() may be called from several threads at once, and several sandboxes may
// live in one process; the only mutable state is a process-wide atomic job counter that
// names the jobs' cgroups. It forks, so the calling program must not reap children
// it did not start (no SIGCHLD = SIG_IGN, no waitpid(-1)).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "src/sandbox/cgroup.h"
#include "src/sandbox/sandbox.h"

namespace ocx::sandbox {
namespace internal {
struct StartRequest;
struct StartedSandbox;
}  // namespace internal

// Where the ocx-job-start built with this library lies.
std::string DefaultJobStarterPath();

class BubblewrapSandbox final : public Sandbox {
 public:
  struct Options {
    std::string bwrap_path = "/usr/bin/bwrap";
    // When the sandbox runs as root, bubblewrap and the job run as this host uid/gid (never
    // as root, not even root of a user namespace). A dedicated uid, or one per concurrent
    // job, is better than the shared "nobody" default. Ignored when not root: jobs then run
    // as the caller's uid.
    uid_t job_host_uid = 65534;
    gid_t job_host_gid = 65534;
    // Where job cgroups go, as a path inside each hierarchy ("/ocx"); empty: below this
    // process's own cgroup (see internal::DetectCgroups).
    std::string cgroup_parent;
    // Without a cgroup there are no memory, pids or CPU limits and no CPU/memory accounting;
    // isolation, timeouts and cleanup still hold (the job's pid namespace dies with it).
    // Only for trying the sandbox out without root.
    bool require_cgroup = true;
    // ocx-job-start (a static binary built with ocx), which Prepare() puts in each prepared
    // sandbox to wait for its job. Empty or missing: Prepare() fails and every job starts
    // afresh. The default is the one built next to this library.
    std::string job_starter_path = DefaultJobStarterPath();
  };

  // Checks that bubblewrap is there, builds the seccomp filter and finds the cgroups.
  static absl::StatusOr<std::unique_ptr<BubblewrapSandbox>> Create(Options options);
  ~BubblewrapSandbox() override;

  absl::StatusOr<JobResult> Run(const JobSpec& spec) override;
  // Starts bubblewrap in a new cgroup (one slot's limits until the job's are known) with
  // ocx-job-start as its command, waiting on a socket for the job (job_starter.h). A job
  // handed to it starts in about the time of an execve instead of bubblewrap's whole set-up.
  // FailedPrecondition when there is no starter (job_starter_path).
  absl::StatusOr<std::unique_ptr<PreparedSandbox>> Prepare(const PrepareSpec& spec) override;

  // 1 or 2, or 0 when jobs run without a cgroup (require_cgroup = false and none usable).
  int cgroup_version() const { return cgroups_ ? cgroups_->version : 0; }
  // Why there is no cgroup, when cgroup_version() is 0.
  const absl::Status& cgroup_status() const { return cgroup_status_; }

 private:
  BubblewrapSandbox(Options options, std::string seccomp_bpf,
                    std::optional<internal::CgroupSystem> cgroups, absl::Status cgroup_status,
                    std::string starter, absl::Status starter_status)
      : options_(std::move(options)),
        seccomp_bpf_(std::move(seccomp_bpf)),
        cgroups_(std::move(cgroups)),
        cgroup_status_(std::move(cgroup_status)),
        starter_(std::move(starter)),
        starter_status_(std::move(starter_status)) {}
  // Forks the launcher, which becomes bubblewrap in the new cgroup.
  // As root: hands the (resolved) work directory tree to the job's host uid.
  absl::Status HandToJobUid(const std::string& work_dir) const;
  absl::StatusOr<std::unique_ptr<internal::StartedSandbox>> Start(
      const internal::StartRequest& request) const;

  const Options options_;
  const std::string seccomp_bpf_;  // BPF program bytes, built once
  const std::optional<internal::CgroupSystem> cgroups_;
  const absl::Status cgroup_status_;
  const std::string starter_;  // ocx-job-start's bytes; empty: none
  const absl::Status starter_status_;
};

}  // namespace ocx::sandbox
