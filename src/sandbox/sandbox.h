// The sandbox seam: runs one untrusted job with limits and isolation, then reports what it
// used and how it ended. `Sandbox` is the interface (noun); `BubblewrapSandbox`
// (bubblewrap_sandbox.h) is the mechanism used today. See docs/sandbox.md for the threat
// model and exactly what is isolated how.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::sandbox {

// One `cpu` slot (RULEBOOK section 1): 1 standard vCPU, 2 GiB RAM, 10 GiB scratch disk.
inline constexpr int64_t kSlotMemoryBytes = int64_t{2} << 30;
inline constexpr int64_t kSlotScratchBytes = int64_t{10} << 30;
inline constexpr int64_t kSlotCpuQuotaMicros = 100'000;  // per kCpuPeriodMicros
inline constexpr int64_t kCpuPeriodMicros = 100'000;
// Processes and threads per slot when JobSpec::pids_max is left at 0.
inline constexpr int64_t kSlotPidsDefault = 512;

// Bounds on what a JobSpec may ask for (house style: everything from outside is bounded).
inline constexpr int kSlotsMax = 1024;
inline constexpr int64_t kMemoryBytesMin = int64_t{16} << 20;
inline constexpr int64_t kPidsMin = 8;  // bubblewrap itself takes two
// Also keeps a job's cgroup.procs listing (up to ~8 bytes a pid) under the 1 MiB that the
// sandbox reads of a control file.
inline constexpr int64_t kPidsMax = int64_t{1} << 16;
inline constexpr size_t kArgvEntriesMax = 4096;
inline constexpr size_t kEnvEntriesMax = 4096;
inline constexpr size_t kArgBytesMax = 128 * 1024;  // one argv entry or one env value

// The fixed paths and ids a job sees inside the sandbox.
inline constexpr std::string_view kJobWorkDir = "/work";
inline constexpr uid_t kJobUid = 1000;
inline constexpr gid_t kJobGid = 1000;
inline constexpr std::string_view kJobHostname = "ocx-job";

// Lets another thread (or a signal handler) stop a running job: the sandbox kills the
// job's whole process tree and Run() returns with `cancelled` set. Used for lease
// cancellation and for reclaim, when the provider takes its machine back.
// Thread-safe; Cancel() is async-signal-safe (one write(2) to an eventfd).
// Owned by the caller; it must outlive every Run() that refers to it.
class CancelToken {
 public:
  static absl::StatusOr<std::unique_ptr<CancelToken>> Create();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Readable (POLLIN) once Cancel() was called. For the sandbox's poll loop.
  int fd() const { return fd_; }

 private:
  explicit CancelToken(int fd) : fd_(fd) {}
  const int fd_;
  std::atomic<bool> cancelled_{false};
};

// Where one of a job's output streams goes. The job itself only ever holds a pipe: the
// sandbox reads it and forwards the bytes, so no host file or terminal descriptor reaches
// the job and the bytes kept are bounded by JobSpec::output_bytes_max.
// Both targets may be set; with neither, the stream is read and discarded.
struct OutputSink {
  std::string path;  // non-empty: created with mode 0600, or truncated
  // Called on Run()'s thread with each chunk, as the job writes it.
  std::function<void(std::string_view)> callback;

  static OutputSink Discard() { return {}; }
  static OutputSink File(std::string file_path) { return {std::move(file_path), nullptr}; }
  static OutputSink Callback(std::function<void(std::string_view)> fn) {
    return {"", std::move(fn)};
  }
};

// A sandbox started ahead of its job by Sandbox::Prepare(): namespaces, mounts, seccomp
// filter and cgroup are in place, and a small starter waits inside for the command, so a job
// handed to it (JobSpec::prepared) skips the sandbox's start-up. Owned by the caller; one
// job at most; destroying it unused kills it and removes its cgroup.
class PreparedSandbox {
 public:
  virtual ~PreparedSandbox() = default;
  // The host directory bound at /work, as given to Prepare().
  virtual const std::string& work_dir() const = 0;
};

// What a prepared sandbox is started with; the job's own limits come with its JobSpec.
struct PrepareSpec {
  // As JobSpec::work_dir (same checks): the job that uses the sandbox must name the same
  // directory. The caller may fill it (inputs) until the job runs.
  std::string work_dir;
  // Size of the job's /tmp (a tmpfs; its pages count against the job's memory limit too).
  // 0: one slot's memory.
  int64_t tmp_bytes = 0;
};

// What to run and with which limits. Fields left at 0 take the per-slot default.
struct JobSpec {
  // argv[0] is looked up inside the sandbox (an absolute path, or a name on the job's PATH).
  std::vector<std::string> argv;
  // The job's whole environment: nothing of the host's environment is passed on.
  // DefaultJobEnv() is a reasonable start.
  std::vector<std::pair<std::string, std::string>> env;
  // Absolute host path of an existing directory of the job's own (at least two levels deep,
  // not under /usr, /etc, /proc, ...: Run() refuses those), bound read-write at /work, where
  // the job starts. Every ancestor must be searchable by the job's host uid. When the sandbox
  // runs as root it hands this tree to the job's host uid (lchown, recursively). Wipe()
  // removes it afterwards; whether to keep outputs is the caller's call.
  std::string work_dir;
  int slots = 1;             // CPU quota: slots x 100 ms per 100 ms
  int64_t memory_bytes = 0;  // 0: slots x 2 GiB. RAM + swap (swap is off where possible)
  int64_t pids_max = 0;      // 0: slots x kSlotPidsDefault (at most kPidsMax). Processes, threads.
  std::chrono::milliseconds timeout{0};  // 0: none. Wall time from the start of the job.
  bool network = false;                  // false: own network namespace with only a loopback device
  OutputSink stdout_sink;
  OutputSink stderr_sink;
  uint64_t output_bytes_max = uint64_t{64} << 20;  // per stream; the rest is discarded
  const CancelToken* cancel = nullptr;             // optional, not owned
  // Optional, not owned: a sandbox from this Sandbox's Prepare() with the same work_dir, for
  // a job without network. Run() uses it up; if it died meanwhile, Run() starts afresh.
  PreparedSandbox* prepared = nullptr;
};

// How a job ended and what it used.
struct JobResult {
  // As bubblewrap reports it, in the shell's convention: 128 + N when the job's main
  // process died of signal N (so a job that calls exit(137) looks like SIGKILL, as in sh).
  int exit_code = -1;
  int term_signal = 0;  // N when exit_code is 128 + N (1..64), else 0
  bool oom_killed = false;
  bool timed_out = false;
  bool cancelled = false;
  bool pids_limit_hit = false;            // a fork or clone failed at pids_max
  std::chrono::nanoseconds wall_time{0};  // start of bubblewrap to the end of the job
  std::chrono::nanoseconds cpu_time{0};   // user + system of the whole tree
  int64_t memory_peak_bytes = 0;          // -1 when the kernel does not report it
  uint64_t stdout_bytes = 0;              // bytes the job wrote, kept or not
  uint64_t stderr_bytes = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;

  // How limits were enforced for this job.
  int cgroup_version = 0;     // 1, 2, or 0 when it ran without a cgroup (no limits!)
  bool swap_limited = false;  // memory limit covers swap (v2 swap.max=0, v1 memsw)
  bool prewarmed = false;     // ran in a sandbox from Prepare() (timing.spawn is then 0)

  // Where the time went, for start-up measurements (see docs/benchmarks.md).
  struct Timing {
    std::chrono::nanoseconds prepare{0};   // Run() called -> fork (cgroup, fds, args)
    std::chrono::nanoseconds spawn{0};     // fork -> bubblewrap exec'd, in its cgroup
    std::chrono::nanoseconds run{0};       // bubblewrap exec'd -> it exited
    std::chrono::nanoseconds teardown{0};  // exit -> tree gone, cgroup removed
  } timing;
};

// Runs jobs in isolation. Implementations are thread-safe: Run() may be called from several
// threads at once, one job per call.
class Sandbox {
 public:
  virtual ~Sandbox() = default;
  // Runs the job to its end and returns how it ended; an error Status means the sandbox
  // could not run it (bad spec, missing bubblewrap, cgroup trouble), never that the job
  // failed. When Run() returns, no process of the job is left on the machine.
  virtual absl::StatusOr<JobResult> Run(const JobSpec& spec) = 0;
  // Starts a sandbox for a job that is not known yet (see PreparedSandbox). Unimplemented
  // where the mechanism cannot; FailedPrecondition when this one cannot right now.
  virtual absl::StatusOr<std::unique_ptr<PreparedSandbox>> Prepare(const PrepareSpec& spec) {
    (void)spec;
    return absl::UnimplementedError("this sandbox starts every job afresh");
  }
};

// PATH, HOME=/work, TMPDIR=/tmp, LANG=C.UTF-8: an environment most programs expect.
std::vector<std::pair<std::string, std::string>> DefaultJobEnv();

// Checks a spec against the bounds above; InvalidArgument with a sentence when it is off.
absl::Status ValidateJobSpec(const JobSpec& spec);
absl::Status ValidatePrepareSpec(const PrepareSpec& spec);

// Removes `work_dir` and everything below it without following symbolic links, also what a
// job made unreadable (mode 000 directories). Refuses relative paths and "/". NotFound-safe:
// a directory that is already gone is OK. Run it only after Run() returned.
absl::Status Wipe(const std::string& work_dir);

}  // namespace ocx::sandbox
