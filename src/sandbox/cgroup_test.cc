// JobCgroup against the real cgroup file systems. Needs root; the v2 tests also run on a
// v1 (hybrid) machine, using the controller-less unified hierarchy for the kill paths.
#include "src/sandbox/cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace ocx::sandbox::internal {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A process tree to put in a cgroup: a child that waits for a byte, then forks `n`
// grandchildren (which sleep forever), reports, and sleeps itself.
class ProcessTree {
 public:
  explicit ProcessTree(int n) {
    if (pipe(go_) != 0 || pipe(done_) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      char c;
      if (read(go_[0], &c, 1) != 1) _exit(1);
      for (int i = 0; i < n; ++i) {
        if (fork() == 0) {
          for (;;) pause();
        }
      }
      if (write(done_[1], "k", 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(go_[0]);
    close(done_[1]);
  }
  ~ProcessTree() {
    close(go_[1]);
    close(done_[0]);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Lets the child fork; returns once all grandchildren exist.
  bool Start() {
    if (write(go_[1], "g", 1) != 1) return false;
    char c;
    return read(done_[0], &c, 1) == 1;
  }
  // Reaps the (killed) child; true when SIGKILL ended it.
  bool ReapKilled() {
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return false;
    pid_ = -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_;
  int go_[2], done_[2];
};

class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    parent_ = absl::StrCat("/ocx-cgroup-test-", getpid());
  }
  void TearDown() override {
    for (const std::string& dir : parents_to_remove_) rmdir(dir.c_str());
  }
  std::string parent_;
  std::vector<std::string> parents_to_remove_;
};

TEST_F(CgroupTest, DetectsAHierarchy) {
  auto system = DetectCgroups(parent_);
  ASSERT_TRUE(system.ok()) << system.status();
  struct statfs fs;
  ASSERT_EQ(statfs("/sys/fs/cgroup", &fs), 0);
  // cgroup2fs at /sys/fs/cgroup: a unified system. Otherwise this must have found v1 (v2
  // on hybrid systems has no controllers).
  if (fs.f_type == 0x63677270 /* CGROUP2_SUPER_MAGIC */) {
    EXPECT_EQ(system->version, 2);
  } else {
    EXPECT_EQ(system->version, 1);
    EXPECT_EQ(system->v1_parents.count("memory"), 1u);
    EXPECT_EQ(system->v1_parents.count("pids"), 1u);
    EXPECT_EQ(system->v1_parents.count("cpu"), 1u);
    EXPECT_EQ(system->v1_parents.count("cpuacct"), 1u);
  }
}

// The full cycle on whatever this machine offers: limits written, a process tree put in,
// killed as a whole, accounted, removed.
TEST_F(CgroupTest, LimitsKillAndRemoveOnThisMachine) {
  auto system = DetectCgroups(parent_);
  ASSERT_TRUE(system.ok()) << system.status();
  CgroupLimits limits;
  limits.memory_bytes = int64_t{256} << 20;
  limits.pids_max = 100;
  limits.cpu_quota_micros = 50'000;
  auto cg = JobCgroup::Create(*system, "job-test", limits);
  ASSERT_TRUE(cg.ok()) << cg.status();
  if (system->version == 1) {
    for (const auto& [controller, dir] : system->v1_parents) parents_to_remove_.push_back(dir);
    const std::string memory = system->v1_parents.at("memory") + "/job-test";
    EXPECT_EQ(Read(memory + "/memory.limit_in_bytes"), "268435456");
    if ((*cg)->swap_limited()) {
      EXPECT_EQ(Read(memory + "/memory.memsw.limit_in_bytes"), "268435456");
    }
    EXPECT_EQ(Read(system->v1_parents.at("pids") + "/job-test/pids.max"), "100");
    EXPECT_EQ(Read(system->v1_parents.at("cpu") + "/job-test/cpu.cfs_quota_us"), "50000");
    EXPECT_EQ(Read(system->v1_parents.at("cpu") + "/job-test/cpu.cfs_period_us"), "100000");
  } else {
    parents_to_remove_.push_back(system->v2_parent);
    const std::string dir = system->v2_parent + "/job-test";
    EXPECT_EQ(Read(dir + "/memory.max"), "268435456");
    EXPECT_EQ(Read(dir + "/pids.max"), "100");
    EXPECT_EQ(Read(dir + "/cpu.max"), "50000 100000");
  }

  ProcessTree tree(5);
  ASSERT_TRUE((*cg)->AddProcess(tree.pid()).ok());
  ASSERT_TRUE(tree.Start());
  EXPECT_FALSE(*(*cg)->Empty());
  ASSERT_TRUE((*cg)->KillAll().ok());
  EXPECT_TRUE(*(*cg)->Empty());
  EXPECT_TRUE(tree.ReapKilled());
  auto stats = (*cg)->ReadStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_FALSE(stats->oom_killed);
  EXPECT_FALSE(stats->pids_limit_hit);
  EXPECT_GT(stats->memory_peak_bytes, 0);
  std::vector<std::string> dirs = (*cg)->dirs();
  ASSERT_TRUE((*cg)->Remove().ok());
  for (const std::string& dir : dirs) EXPECT_FALSE(IsDir(dir)) << dir;
}

TEST_F(CgroupTest, V1KillWithoutFreezer) {
  auto system = DetectCgroups(parent_);
  ASSERT_TRUE(system.ok()) << system.status();
  if (system->version != 1) GTEST_SKIP() << "needs cgroup v1";
  for (const auto& [controller, dir] : system->v1_parents) parents_to_remove_.push_back(dir);
  auto cg = JobCgroup::Create(*system, "job-nofreezer", CgroupLimits{});
  ASSERT_TRUE(cg.ok()) << cg.status();
  ProcessTree tree(8);
  ASSERT_TRUE((*cg)->AddProcess(tree.pid()).ok());
  ASSERT_TRUE(tree.Start());
  KillOptions options;
  options.use_freezer = false;
  ASSERT_TRUE((*cg)->KillAll(options).ok());
  EXPECT_TRUE(*(*cg)->Empty());
  EXPECT_TRUE(tree.ReapKilled());
  EXPECT_TRUE((*cg)->Remove().ok());
}

// cgroup v2 mechanics (cgroup.kill, cgroup.freeze, cpu.stat, rmdir) on the unified
// hierarchy, with or without controllers: on a hybrid machine it has none, so no limits.
class CgroupV2Test : public CgroupTest, public ::testing::WithParamInterface<KillOptions> {
 protected:
  void SetUp() override {
    CgroupTest::SetUp();
    if (IsSkipped()) return;
    for (const char* mount : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
      struct statfs fs;
      if (statfs(mount, &fs) == 0 && fs.f_type == 0x63677270) {
        system_.version = 2;
        system_.v2_parent = absl::StrCat(mount, parent_);
        break;
      }
    }
    if (system_.version != 2) GTEST_SKIP() << "needs a cgroup v2 mount";
    parents_to_remove_.push_back(system_.v2_parent);
  }
  CgroupSystem system_;
};

TEST_P(CgroupV2Test, KillEmptiesTheCgroup) {
  auto cg = JobCgroup::Create(system_, "job-v2", CgroupLimits{});
  ASSERT_TRUE(cg.ok()) << cg.status();
  ProcessTree tree(8);
  ASSERT_TRUE((*cg)->AddProcess(tree.pid()).ok());
  ASSERT_TRUE(tree.Start());
  EXPECT_FALSE(*(*cg)->Empty());
  ASSERT_TRUE((*cg)->KillAll(GetParam()).ok());
  EXPECT_TRUE(*(*cg)->Empty());
  EXPECT_TRUE(tree.ReapKilled());
  auto stats = (*cg)->ReadStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  std::string dir = (*cg)->dirs()[0];
  ASSERT_TRUE((*cg)->Remove().ok());
  EXPECT_FALSE(IsDir(dir));
}

INSTANTIATE_TEST_SUITE_P(KillMechanisms, CgroupV2Test,
                         ::testing::Values(KillOptions{true, true}, KillOptions{false, true},
                                           KillOptions{false, false}),
                         [](const ::testing::TestParamInfo<KillOptions>& info) {
                           return std::string(info.param.use_cgroup_kill ? "CgroupKill"
                                              : info.param.use_freezer   ? "FreezeThenKill"
                                                                         : "KillLoop");
                         });

TEST_F(CgroupTest, DestructorKillsAndRemoves) {
  auto system = DetectCgroups(parent_);
  ASSERT_TRUE(system.ok()) << system.status();
  if (system->version == 1) {
    for (const auto& [controller, dir] : system->v1_parents) parents_to_remove_.push_back(dir);
  } else {
    parents_to_remove_.push_back(system->v2_parent);
  }
  ProcessTree tree(3);
  std::vector<std::string> dirs;
  {
    auto cg = JobCgroup::Create(*system, "job-dtor", CgroupLimits{});
    ASSERT_TRUE(cg.ok()) << cg.status();
    ASSERT_TRUE((*cg)->AddProcess(tree.pid()).ok());
    ASSERT_TRUE(tree.Start());
    dirs = (*cg)->dirs();
  }
  EXPECT_TRUE(tree.ReapKilled());
  for (const std::string& dir : dirs) EXPECT_FALSE(IsDir(dir)) << dir;
}

}  // namespace
}  // namespace ocx::sandbox::internal
