// BubblewrapSandbox against the real thing: bubblewrap, seccomp and (as root) cgroups.
// Jobs run sandbox_probe (testdata/), copied into each test's work directory, which tries
// what a hostile job would try. Tests whose name ends in _NeedsCgroup skip without root and
// a usable cgroup hierarchy; _NeedsRoot ones skip without root.
#include "src/sandbox/bubblewrap_sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "src/base/testing/build_paths.h"

namespace ocx::sandbox {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Host pids of processes whose environment holds `needle`: how a test sees, independently
// of the sandbox's own bookkeeping, whether anything of a job is still alive.
std::vector<pid_t> ProcessesWithEnv(const std::string& needle) {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (struct dirent* entry = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::string environ = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/environ"));
    for (absl::string_view var : absl::StrSplit(environ, '\0')) {
      if (var == needle) {
        found.push_back(pid);
        break;
      }
    }
  }
  closedir(proc);
  return found;
}

// A TCP listener on 127.0.0.1, port chosen by the kernel.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<struct sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
};

// Every test runs twice: with each job started afresh (Cold), and handed to a sandbox
// prepared ahead (Prepared, BubblewrapSandbox::Prepare), which must isolate and limit it
// exactly as well. Jobs with network always start afresh.
class BubblewrapSandboxTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    BubblewrapSandbox::Options options;
    options.require_cgroup = false;  // use cgroups where we can; tests that need them skip
    auto sandbox = BubblewrapSandbox::Create(options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = std::move(*sandbox);

    char dir[] = "/tmp/ocx-sandbox-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    work_dir_ = dir;
    const std::string probe = work_dir_ + "/probe";
    std::ifstream src(base::testing::SandboxProbe(), std::ios::binary);
    ASSERT_TRUE(src) << "missing " << base::testing::SandboxProbe();
    std::ofstream dst(probe, std::ios::binary);
    dst << src.rdbuf();
    dst.close();
    ASSERT_EQ(chmod(probe.c_str(), 0755), 0);

    std::random_device random;
    marker_ = absl::StrCat("OCX_PROBE_MARKER=", random(), "-", random(), "-", getpid());
  }

  void TearDown() override {
    if (sandbox_ == nullptr) return;
    // After every job: nothing of it is left, and Wipe() removes what it wrote.
    EXPECT_TRUE(ProcessesWithEnv(marker_).empty()) << "a process of the job survived Run()";
    EXPECT_TRUE(Wipe(work_dir_).ok());
    struct stat st;
    EXPECT_NE(lstat(work_dir_.c_str(), &st), 0) << work_dir_ << " still exists after Wipe";
  }

  bool HasCgroups() const { return sandbox_->cgroup_version() != 0; }
  std::string NoCgroupReason() const {
    return absl::StrCat("needs root and a usable cgroup hierarchy (v1 or v2): ",
                        sandbox_->cgroup_status().ToString());
  }

  // A spec that runs the probe with `args`, capturing its output in out_ and err_.
  JobSpec ProbeSpec(std::vector<std::string> args) {
    JobSpec spec;
    spec.argv = {"/work/probe"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = DefaultJobEnv();
    auto [key, value] = std::pair<std::string, std::string>(absl::StrSplit(marker_, '='));
    spec.env.emplace_back(key, value);
    spec.work_dir = work_dir_;
    spec.timeout = std::chrono::seconds(30);  // a safety net; tests set their own
    spec.stdout_sink = OutputSink::Callback([this](std::string_view s) { out_.append(s); });
    spec.stderr_sink = OutputSink::Callback([this](std::string_view s) { err_.append(s); });
    return spec;
  }

  bool Prepared() const { return GetParam(); }

  JobResult MustRun(const JobSpec& spec) {
    std::unique_ptr<PreparedSandbox> prepared;
    JobSpec job = spec;
    if (Prepared() && !spec.network) {
      absl::StatusOr<std::unique_ptr<PreparedSandbox>> made =
          sandbox_->Prepare({.work_dir = spec.work_dir});
      EXPECT_TRUE(made.ok()) << made.status();
      if (!made.ok()) return JobResult{};
      prepared = std::move(*made);
      job.prepared = prepared.get();
    }
    absl::StatusOr<JobResult> result = sandbox_->Run(job);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return JobResult{};
    EXPECT_EQ(result->prewarmed, job.prepared != nullptr);
    return *result;
  }

  std::unique_ptr<BubblewrapSandbox> sandbox_;
  std::string work_dir_;
  std::string marker_;
  std::string out_, err_;
};

TEST_P(BubblewrapSandboxTest, ReportsExitCodeAndOutput) {
  JobResult result = MustRun(ProbeSpec({"exit", "7"}));
  EXPECT_EQ(result.exit_code, 7);
  EXPECT_EQ(result.term_signal, 0);
  EXPECT_FALSE(result.oom_killed);
  EXPECT_FALSE(result.timed_out);

  JobSpec shell = ProbeSpec({});
  shell.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"};
  result = MustRun(shell);
  EXPECT_EQ(result.exit_code, 3) << err_;
  EXPECT_EQ(out_, "out\n");
  EXPECT_EQ(err_, "err\n");
  EXPECT_EQ(result.stdout_bytes, 4u);
}

TEST_P(BubblewrapSandboxTest, ReportsDeathBySignal) {
  JobResult result = MustRun(ProbeSpec({"kill-self", std::to_string(SIGTERM)}));
  EXPECT_EQ(result.term_signal, SIGTERM);
  EXPECT_EQ(result.exit_code, 128 + SIGTERM);
}

TEST_P(BubblewrapSandboxTest, JobRunsAsUnprivilegedUid) {
  JobResult result = MustRun(ProbeSpec({"id"}));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(out_, "uid=1000 gid=1000 euid=1000\n");
}

TEST_P(BubblewrapSandboxTest, JobFilesBelongToUnprivilegedHostUid_NeedsRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (the job's host uid is the caller's otherwise)";
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/sh", "-c", "echo x > /work/made-by-job"};
  ASSERT_EQ(MustRun(spec).exit_code, 0) << err_;
  struct stat st;
  ASSERT_EQ(stat((work_dir_ + "/made-by-job").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
}

TEST_P(BubblewrapSandboxTest, EnvironmentIsExactlyTheSpec) {
  setenv("OCX_HOST_SECRET", "must-not-leak", 1);
  JobSpec spec = ProbeSpec({"env"});
  spec.env.emplace_back("JOB_VAR", "a value with spaces = and equals");
  JobResult result = MustRun(spec);
  unsetenv("OCX_HOST_SECRET");
  EXPECT_EQ(result.exit_code, 0);
  std::vector<std::string> lines = absl::StrSplit(out_, '\n', absl::SkipEmpty());
  std::vector<std::string> expected;
  for (const auto& [key, value] : spec.env) expected.push_back(key + "=" + value);
  expected.push_back("PWD=/work");  // set by bubblewrap's --chdir
  std::sort(lines.begin(), lines.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(lines, expected);
}

TEST_P(BubblewrapSandboxTest, NoHostDescriptorLeaksIntoJob) {
  // A descriptor the host forgot to mark close-on-exec.
  int leaky = open("/etc/hostname", O_RDONLY);
  ASSERT_GE(leaky, 0);
  JobResult result = MustRun(ProbeSpec({"fds"}));
  close(leaky);
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, CannotReadHostFilesOutsideWorkDir) {
  const std::string repo_file = std::string(base::testing::SourceDir()) + "/CMakeLists.txt";
  JobResult result =
      MustRun(ProbeSpec({"read", "/etc/shadow", "/root", "/home", "/etc/hostname", "/etc/ssh",
                         repo_file, base::testing::SandboxProbe(), "/sys/fs/cgroup",
                         "/proc/1/root/etc/shadow", "/var/log", "/run"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, EtcIsGeneratedWithoutHostUsers) {
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/cat", "/etc/passwd", "/etc/group", "/etc/hosts"};
  ASSERT_EQ(MustRun(spec).exit_code, 0) << err_;
  EXPECT_NE(out_.find("ocx:x:1000:1000:"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("daemon"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("root:x:0:0:root:/root:/bin/bash"), std::string::npos) << out_;
}

TEST_P(BubblewrapSandboxTest, OnlyWorkAndTmpAreWritable) {
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/sh", "-c",
               "touch /work/a && touch /tmp/b && "
               "! touch /usr/c 2>/dev/null && ! touch /etc/d 2>/dev/null && "
               "! touch /e 2>/dev/null && ! touch /etc/passwd 2>/dev/null && echo held"};
  JobResult result = MustRun(spec);
  EXPECT_EQ(result.exit_code, 0) << err_;
  EXPECT_EQ(out_, "held\n");
}

TEST_P(BubblewrapSandboxTest, NetworkIsOffByDefault) {
  Listener listener;
  JobResult result = MustRun(ProbeSpec({"connect", std::to_string(listener.port())}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, GrantedNetworkReachesHostLoopback) {
  Listener listener;
  JobSpec spec = ProbeSpec({"connect", std::to_string(listener.port())});
  spec.network = true;
  JobResult result = MustRun(spec);
  EXPECT_EQ(result.exit_code, 1) << "expected the connection to succeed: " << out_;
  EXPECT_NE(out_.find("connected"), std::string::npos) << out_;
}

TEST_P(BubblewrapSandboxTest, TiocstiInjectionIsDenied) {
  JobResult result = MustRun(ProbeSpec({"tiocsti"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, UserNamespaceCannotBeCreated) {
  JobResult result = MustRun(ProbeSpec({"userns"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
  // And with the stock tool, when util-linux is installed.
  if (access("/usr/bin/unshare", X_OK) == 0) {
    out_.clear();
    JobSpec spec = ProbeSpec({});
    spec.argv = {"/usr/bin/unshare", "-U", "/bin/true"};
    EXPECT_NE(MustRun(spec).exit_code, 0);
  }
}

TEST_P(BubblewrapSandboxTest, PtraceOfAnotherProcessIsDenied) {
  JobResult result = MustRun(ProbeSpec({"ptrace"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, MountingIsDenied) {
  JobResult result = MustRun(ProbeSpec({"mount"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, KernelInterfacesAreDenied) {
  JobResult result = MustRun(ProbeSpec({"kernel"}));
  EXPECT_EQ(result.exit_code, 0) << out_;
}

TEST_P(BubblewrapSandboxTest, ForeignSyscallAbiKillsTheJob) {
  JobResult result = MustRun(ProbeSpec({"int80"}));
  EXPECT_EQ(result.term_signal, SIGSYS) << out_;
  out_.clear();
  result = MustRun(ProbeSpec({"x32"}));
  EXPECT_EQ(result.term_signal, SIGSYS) << out_;
}

TEST_P(BubblewrapSandboxTest, MemoryBombIsOomKilled_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  JobSpec spec = ProbeSpec({"membomb", "512"});
  spec.memory_bytes = int64_t{64} << 20;
  JobResult result = MustRun(spec);
  EXPECT_TRUE(result.oom_killed) << out_;
  EXPECT_EQ(result.term_signal, SIGKILL);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(out_.find("allocated"), std::string::npos) << out_;
  EXPECT_TRUE(result.swap_limited) << "swap could not be turned off for the job";
  EXPECT_GT(result.memory_peak_bytes, int64_t{32} << 20);
  EXPECT_LE(result.memory_peak_bytes, int64_t{64} << 20);
}

TEST_P(BubblewrapSandboxTest, OomEndsTheWholeJobNotJustTheBiggestProcess_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  // The bomb is a child; its parent would sleep on for 1000 s after it. (On v1 the kernel
  // kills only the bomb; the sandbox must end the rest.)
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/sh", "-c", "/work/probe membomb 512; echo survived; sleep 1000"};
  spec.memory_bytes = int64_t{64} << 20;
  spec.timeout = std::chrono::seconds(60);
  JobResult result = MustRun(spec);
  EXPECT_TRUE(result.oom_killed);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.term_signal, SIGKILL);
}

TEST_P(BubblewrapSandboxTest, ForkBombHitsPidsLimitAndHostSurvives_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  JobSpec spec = ProbeSpec({"forkbomb"});
  spec.pids_max = 64;
  spec.timeout = milliseconds(1500);
  JobResult result = MustRun(spec);
  EXPECT_TRUE(result.pids_limit_hit);
  EXPECT_TRUE(result.timed_out);
  // The host can still start processes, and the next job runs normally.
  out_.clear();
  EXPECT_EQ(MustRun(ProbeSpec({"exit", "0"})).exit_code, 0);
}

TEST_P(BubblewrapSandboxTest, CpuHogGetsAtMostOneCpuPerSlot_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  JobSpec spec = ProbeSpec({"cpuhog", "4", "1.5"});
  spec.slots = 1;
  JobResult result = MustRun(spec);
  ASSERT_EQ(result.exit_code, 0) << out_ << err_;
  const double wall = std::chrono::duration<double>(result.wall_time).count();
  const double cpu = std::chrono::duration<double>(result.cpu_time).count();
  // One slot is 100 ms of CPU per 100 ms: four spinning threads get one CPU's worth. A
  // generous margin for the last quota period and bubblewrap's own start-up.
  EXPECT_LE(cpu, wall * 1.2 + 0.1) << "cpu " << cpu << " s in " << wall << " s wall";
  EXPECT_GT(cpu, 0.2) << "the hog did not run at all?";
}

TEST_P(BubblewrapSandboxTest, TimeoutKillsJobAndItsDaemonizedChild) {
  JobSpec spec = ProbeSpec({"daemonize"});
  spec.timeout = milliseconds(1000);
  JobResult result = MustRun(spec);
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.term_signal, SIGKILL);
  EXPECT_NE(out_.find("daemon"), std::string::npos) << out_;
  EXPECT_GE(result.wall_time, milliseconds(1000));
  // TearDown checks that neither the job nor its daemon is alive.
}

TEST_P(BubblewrapSandboxTest, CancelKillsTheJob) {
  auto token = CancelToken::Create();
  ASSERT_TRUE(token.ok());
  JobSpec spec = ProbeSpec({"ready-sleep"});
  spec.cancel = token->get();
  // Cancel as soon as the job says it runs: from the output callback, no sleeping.
  spec.stdout_sink = OutputSink::Callback([&](std::string_view s) {
    out_.append(s);
    if (out_.find("ready") != std::string::npos) (*token)->Cancel();
  });
  JobResult result = MustRun(spec);
  EXPECT_TRUE(result.cancelled);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.term_signal, SIGKILL);
}

TEST_P(BubblewrapSandboxTest, OutputBeyondTheBoundIsCountedNotKept) {
  JobSpec spec = ProbeSpec({"spew", "300000"});
  spec.output_bytes_max = 100000;
  JobResult result = MustRun(spec);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.stdout_bytes, 300000u);
  EXPECT_TRUE(result.stdout_truncated);
  EXPECT_EQ(out_.size(), 100000u);
}

TEST_P(BubblewrapSandboxTest, OutputGoesToFiles) {
  char dir[] = "/tmp/ocx-sandbox-out-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string out_path = std::string(dir) + "/stdout",
                    err_path = std::string(dir) + "/stderr";
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/sh", "-c", "echo to-file; echo to-err >&2"};
  spec.stdout_sink = OutputSink::File(out_path);
  spec.stderr_sink = OutputSink::File(err_path);
  EXPECT_EQ(MustRun(spec).exit_code, 0);
  EXPECT_EQ(ReadFileOrEmpty(out_path), "to-file\n");
  EXPECT_EQ(ReadFileOrEmpty(err_path), "to-err\n");
  EXPECT_TRUE(Wipe(dir).ok());
}

TEST_P(BubblewrapSandboxTest, WipeRemovesWhatTheJobLeftButNotLinkTargets) {
  char target_dir[] = "/tmp/ocx-sandbox-target-XXXXXX";
  ASSERT_NE(mkdtemp(target_dir), nullptr);
  const std::string target = std::string(target_dir) + "/precious";
  std::ofstream(target) << "keep me";
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/bin/sh", "-c",
               absl::StrCat("mkdir -p a/b/c && echo x > a/b/c/f && ln -s ", target,
                            " a/link && ln -s ", target_dir,
                            " a/dirlink && mkdir locked && touch locked/f && chmod 000 locked "
                            "&& chmod 555 a")};
  ASSERT_EQ(MustRun(spec).exit_code, 0) << err_;
  ASSERT_TRUE(Wipe(work_dir_).ok());
  struct stat st;
  EXPECT_NE(lstat(work_dir_.c_str(), &st), 0);
  EXPECT_EQ(ReadFileOrEmpty(target), "keep me");
  EXPECT_TRUE(Wipe(target_dir).ok());
}

TEST_P(BubblewrapSandboxTest, CgroupIsRemovedAfterRun_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  ASSERT_EQ(MustRun(ProbeSpec({"exit", "0"})).exit_code, 0);
  // Job cgroups are named job-<agent pid>-<n>: none of ours may be left in any hierarchy.
  const std::string prefix = absl::StrCat("job-", getpid(), "-");
  std::vector<std::string> stack = {"/sys/fs/cgroup"};
  while (!stack.empty()) {
    std::string dir = stack.back();
    stack.pop_back();
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    while (struct dirent* entry = readdir(d)) {
      if (entry->d_type != DT_DIR || entry->d_name[0] == '.') continue;
      std::string name = entry->d_name;
      EXPECT_NE(name.rfind(prefix, 0), 0u) << "left behind: " << dir << "/" << name;
      if (std::count(dir.begin(), dir.end(), '/') < 8) stack.push_back(dir + "/" + name);
    }
    closedir(d);
  }
}

TEST_P(BubblewrapSandboxTest, MissingCommandFailsInsideTheSandbox) {
  JobSpec spec = ProbeSpec({});
  spec.argv = {"/work/no-such-program"};
  JobResult result = MustRun(spec);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(err_.find("no-such-program"), std::string::npos) << err_;
}

TEST_P(BubblewrapSandboxTest, BadSpecIsRejectedBeforeAnythingRuns) {
  JobSpec spec = ProbeSpec({});
  spec.argv.clear();
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = ProbeSpec({"exit", "0"});
  spec.work_dir = "relative/dir";
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.work_dir = work_dir_ + "/does-not-exist";
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
  // Never a system or shared directory, however it is spelled.
  for (const char* dir : {"/", "/tmp", "/etc", "/usr/lib", "/tmp/../etc", "/home"}) {
    spec.work_dir = dir;
    EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument) << dir;
  }
  spec = ProbeSpec({"exit", "0"});
  spec.memory_bytes = 1024;
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(BubblewrapSandboxTest, JobsRunConcurrentlyFromSeveralThreads) {
  constexpr int kThreads = 4;
  std::vector<absl::StatusOr<JobResult>> results(kThreads, absl::UnknownError("not run"));
  std::vector<JobSpec> specs;
  for (int i = 0; i < kThreads; ++i) {
    specs.push_back(ProbeSpec({"exit", std::to_string(10 + i)}));
    specs.back().stdout_sink = OutputSink::Discard();
    specs.back().stderr_sink = OutputSink::Discard();
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = sandbox_->Run(specs[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->exit_code, 10 + i);
  }
}

// What is particular to prepared sandboxes (the suite above covers what they share).
class PreparedSandboxTest : public BubblewrapSandboxTest {};

// Children of this test process: a prepared sandbox's bubblewrap is one while it waits.
std::vector<pid_t> OwnChildren() {
  std::vector<pid_t> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (struct dirent* entry = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so after the last ')'.
    std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    if (fields.size() > 1 && std::atoi(fields[1].c_str()) == getpid()) found.push_back(pid);
  }
  closedir(proc);
  return found;
}

TEST_P(PreparedSandboxTest, UnusedPreparedSandboxLeavesNothingBehind) {
  ASSERT_TRUE(OwnChildren().empty());
  auto prepared = sandbox_->Prepare({.work_dir = work_dir_});
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(OwnChildren().size(), 1u) << "bubblewrap waits, as a child of the caller";
  prepared->reset();
  EXPECT_TRUE(OwnChildren().empty()) << "destroying it unused must kill it";
}

TEST_P(PreparedSandboxTest, BadPrepareSpecIsRefusedBeforeAnythingStarts) {
  EXPECT_EQ(sandbox_->Prepare({.work_dir = "relative/dir"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sandbox_->Prepare({.work_dir = "/etc"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sandbox_->Prepare({.work_dir = work_dir_, .tmp_bytes = 1024}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(OwnChildren().empty());
}

TEST_P(PreparedSandboxTest, PreparedSandboxServesOneJobInItsOwnDirectoryWithoutNetwork) {
  auto prepared = sandbox_->Prepare({.work_dir = work_dir_});
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ((*prepared)->work_dir(), work_dir_);
  JobSpec spec = ProbeSpec({"exit", "5"});
  spec.prepared = prepared->get();
  spec.network = true;
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec.network = false;
  char other[] = "/tmp/ocx-sandbox-other-XXXXXX";
  ASSERT_NE(mkdtemp(other), nullptr);
  spec.work_dir = other;
  absl::StatusOr<JobResult> wrong_dir = sandbox_->Run(spec);
  EXPECT_EQ(wrong_dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_dir.status().message().find("not the directory"), std::string::npos);
  rmdir(other);
  // Refused calls do not use it up; the right one does, once.
  spec.work_dir = work_dir_;
  absl::StatusOr<JobResult> result = sandbox_->Run(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->prewarmed);
  EXPECT_EQ(result->exit_code, 5);
  EXPECT_EQ(result->timing.spawn.count(), 0);
  EXPECT_EQ(sandbox_->Run(spec).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(OwnChildren().empty());
}

TEST_P(PreparedSandboxTest, DeadPreparedSandboxMeansAFreshStart) {
  auto prepared = sandbox_->Prepare({.work_dir = work_dir_});
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  for (pid_t child : OwnChildren()) kill(child, SIGKILL);
  // Not reaped here: the sandbox owns its child; it must notice the death by itself.
  usleep(50 * 1000);
  JobSpec spec = ProbeSpec({"exit", "6"});
  spec.prepared = prepared->get();
  absl::StatusOr<JobResult> result = sandbox_->Run(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->prewarmed);
  EXPECT_EQ(result->exit_code, 6);
}

TEST_P(BubblewrapSandboxTest, PreparedSandboxTakesTheJobsLargerLimits_NeedsCgroup) {
  if (!HasCgroups()) GTEST_SKIP() << NoCgroupReason();
  // A prepared sandbox waits with one slot's 2 GiB; this job may use 3 GiB and takes 2.25.
  JobSpec spec = ProbeSpec({"membomb", "2304"});
  spec.memory_bytes = int64_t{3} << 30;
  spec.timeout = std::chrono::seconds(60);
  JobResult result = MustRun(spec);
  EXPECT_EQ(result.exit_code, 0) << out_ << err_;
  EXPECT_FALSE(result.oom_killed);
  EXPECT_GT(result.memory_peak_bytes, int64_t{2} << 30);
}

INSTANTIATE_TEST_SUITE_P(ColdAndPrepared, BubblewrapSandboxTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Prepared" : "Cold";
                         });

INSTANTIATE_TEST_SUITE_P(Prepared, PreparedSandboxTest, ::testing::Values(true));

TEST(BubblewrapSandboxCreateTest, WithoutTheStarterEveryJobStartsAfresh) {
  BubblewrapSandbox::Options options;
  options.require_cgroup = false;
  options.job_starter_path = "/nonexistent/ocx-job-start";
  auto sandbox = BubblewrapSandbox::Create(options);
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  char dir[] = "/tmp/ocx-sandbox-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto prepared = (*sandbox)->Prepare({.work_dir = dir});
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(prepared.status().message().find("/nonexistent/ocx-job-start"), std::string::npos)
      << prepared.status();
  JobSpec spec;
  spec.argv = {"/bin/true"};
  spec.env = DefaultJobEnv();
  spec.work_dir = dir;
  absl::StatusOr<JobResult> result = (*sandbox)->Run(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_FALSE(result->prewarmed);
  EXPECT_TRUE(Wipe(dir).ok());
}

TEST(BubblewrapSandboxCreateTest, MissingBubblewrapIsAClearError) {
  BubblewrapSandbox::Options options;
  options.bwrap_path = "/nonexistent/bwrap";
  auto sandbox = BubblewrapSandbox::Create(options);
  EXPECT_EQ(sandbox.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(sandbox.status().message().find("apt-get install bubblewrap"), std::string::npos);
}

}  // namespace
}  // namespace ocx::sandbox
