// The parts of the sandbox that need neither bubblewrap nor root: spec validation, Wipe()
// and the cancel token.
#include "src/sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ocx::sandbox {
namespace {

JobSpec GoodSpec() {
  JobSpec spec;
  spec.argv = {"/bin/true"};
  spec.env = DefaultJobEnv();
  spec.work_dir = "/tmp/somewhere";
  return spec;
}

TEST(ValidateJobSpecTest, AcceptsAPlainSpec) { EXPECT_TRUE(ValidateJobSpec(GoodSpec()).ok()); }

TEST(ValidateJobSpecTest, RejectsEmptyCommand) {
  JobSpec spec = GoodSpec();
  spec.argv.clear();
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.argv = {""};
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateJobSpecTest, RejectsNulInArgumentsAndEnvironment) {
  JobSpec spec = GoodSpec();
  spec.argv.push_back(std::string("a\0b", 3));
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
  spec = GoodSpec();
  spec.env.emplace_back("K", std::string("v\0w", 3));
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateJobSpecTest, RejectsBadEnvironmentNames) {
  for (const char* name : {"", "A=B"}) {
    JobSpec spec = GoodSpec();
    spec.env.emplace_back(name, "v");
    EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

TEST(ValidateJobSpecTest, RejectsRelativeWorkDir) {
  JobSpec spec = GoodSpec();
  spec.work_dir = "work";
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.work_dir = "";
  EXPECT_EQ(ValidateJobSpec(spec).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateJobSpecTest, RejectsLimitsOutOfBounds) {
  JobSpec spec = GoodSpec();
  spec.slots = 0;
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
  spec.slots = kSlotsMax + 1;
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
  spec = GoodSpec();
  spec.memory_bytes = kMemoryBytesMin - 1;
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
  spec = GoodSpec();
  spec.pids_max = kPidsMin - 1;
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
  spec.pids_max = kPidsMax + 1;
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
  spec = GoodSpec();
  spec.timeout = std::chrono::milliseconds(-1);
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
}

TEST(ValidateJobSpecTest, RejectsTooManyArguments) {
  JobSpec spec = GoodSpec();
  spec.argv.resize(kArgvEntriesMax + 1, "x");
  EXPECT_FALSE(ValidateJobSpec(spec).ok());
}

class WipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A tmpfs when there is one: these tests make many directories, and a busy disk's
    // journal makes that slow without testing anything more.
    std::string pattern = access("/dev/shm", W_OK) == 0 ? "/dev/shm/ocx-wipe-test-XXXXXX"
                                                        : "/tmp/ocx-wipe-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { (void)Wipe(dir_); }
  bool Exists(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
  }
  std::string dir_;
};

TEST_F(WipeTest, RemovesNestedTree) {
  ASSERT_EQ(mkdir((dir_ + "/a").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((dir_ + "/a/b").c_str(), 0755), 0);
  std::ofstream(dir_ + "/a/b/file") << "data";
  std::ofstream(dir_ + "/top") << "data";
  ASSERT_TRUE(Wipe(dir_).ok());
  EXPECT_FALSE(Exists(dir_));
}

TEST_F(WipeTest, RemovesDirectoriesWithoutPermissions) {
  ASSERT_EQ(mkdir((dir_ + "/locked").c_str(), 0755), 0);
  std::ofstream(dir_ + "/locked/file") << "data";
  ASSERT_EQ(chmod((dir_ + "/locked").c_str(), 0), 0);
  ASSERT_EQ(mkdir((dir_ + "/readonly").c_str(), 0755), 0);
  std::ofstream(dir_ + "/readonly/file") << "data";
  ASSERT_EQ(chmod((dir_ + "/readonly").c_str(), 0555), 0);
  absl::Status status = Wipe(dir_);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(Exists(dir_));
}

TEST_F(WipeTest, DoesNotFollowSymlinks) {
  char outside[] = "/tmp/ocx-wipe-outside-XXXXXX";
  ASSERT_NE(mkdtemp(outside), nullptr);
  const std::string precious = std::string(outside) + "/precious";
  std::ofstream(precious) << "keep";
  ASSERT_EQ(symlink(outside, (dir_ + "/dirlink").c_str()), 0);
  ASSERT_EQ(symlink(precious.c_str(), (dir_ + "/filelink").c_str()), 0);
  ASSERT_TRUE(Wipe(dir_).ok());
  EXPECT_FALSE(Exists(dir_));
  EXPECT_TRUE(Exists(precious));
  ASSERT_TRUE(Wipe(outside).ok());
}

TEST_F(WipeTest, HandlesVeryDeepTrees) {
  // Several times deeper than Wipe() descends before it moves subtrees up (32 levels).
  std::string path = dir_;
  int dir_fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir_fd, 0);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(mkdirat(dir_fd, "d", 0755), 0) << i;
    int next = openat(dir_fd, "d", O_RDONLY | O_DIRECTORY);
    close(dir_fd);
    ASSERT_GE(next, 0);
    dir_fd = next;
  }
  close(dir_fd);
  absl::Status status = Wipe(dir_);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_FALSE(Exists(dir_));
}

TEST_F(WipeTest, MissingDirectoryIsFine) {
  ASSERT_TRUE(Wipe(dir_).ok());
  EXPECT_TRUE(Wipe(dir_).ok());
}

TEST(WipeRefusesTest, RootRelativeAndFiles) {
  EXPECT_EQ(Wipe("/").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Wipe("//").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Wipe("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Wipe("relative").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Wipe("/etc/hostname").code(), absl::StatusCode::kInvalidArgument);
}

TEST(CancelTokenTest, BecomesReadableOnCancel) {
  auto token = CancelToken::Create();
  ASSERT_TRUE(token.ok());
  struct pollfd p {
    (*token)->fd(), POLLIN, 0
  };
  EXPECT_EQ(poll(&p, 1, 0), 0);
  EXPECT_FALSE((*token)->cancelled());
  (*token)->Cancel();
  (*token)->Cancel();  // twice is fine
  EXPECT_EQ(poll(&p, 1, 0), 1);
  EXPECT_TRUE((*token)->cancelled());
}

}  // namespace
}  // namespace ocx::sandbox
