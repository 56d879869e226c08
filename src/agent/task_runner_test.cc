// The task runner against real components: ParseTaskSpec on documents, and RunTask with a
// real BubblewrapSandbox and a blob store that is a real directory of files named by their
// digest. The RunTask tests need root (as the agent runs) and skip without it.
#include "src/agent/task_runner.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"
#include "src/sandbox/bubblewrap_sandbox.h"

namespace ocx::agent {
namespace {

using nlohmann::json;

// Known SHA-256 digests, computed elsewhere (sha256sum).
constexpr char kSha256Empty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kSha256Abc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kSha256HelloNewline[] =
    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> DirEntries(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (struct dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  return names;
}

// ---- IsSafeRelativePath, Sha256OfFile --------------------------------------------------

TEST(IsSafeRelativePathTest, AcceptsPlainRelativePaths) {
  for (const char* path : {"a", "a/b", "data/in.bin", ".hidden", "a/..b", "...", "a b/c"}) {
    EXPECT_TRUE(IsSafeRelativePath(path)) << path;
  }
  EXPECT_TRUE(IsSafeRelativePath(std::string(4096, 'a')));
}

TEST(IsSafeRelativePathTest, RefusesEscapesAndOddComponents) {
  for (const char* path : {"", "/", "/etc/passwd", "..", "../x", "a/../b", "a/..", ".", "./a",
                           "a/.", "a/./b", "a//b", "a/", "//a"}) {
    EXPECT_FALSE(IsSafeRelativePath(path)) << path;
  }
  EXPECT_FALSE(IsSafeRelativePath(std::string(4097, 'a')));
  EXPECT_FALSE(IsSafeRelativePath(std::string("a\0b", 3)));
}

TEST(Sha256OfFileTest, MatchesKnownDigests) {
  base::testing::TempDir dir("ocx_task_sha");
  WriteFile(dir.File("empty"), "");
  WriteFile(dir.File("abc"), "abc");
  EXPECT_EQ(Sha256OfFile(dir.File("empty")).value_or(""), kSha256Empty);
  EXPECT_EQ(Sha256OfFile(dir.File("abc")).value_or(""), kSha256Abc);
  EXPECT_FALSE(Sha256OfFile(dir.File("absent")).ok());
}

TEST(Sha256OfFileTest, DoesNotFollowASymlink) {
  base::testing::TempDir dir("ocx_task_sha");
  WriteFile(dir.File("abc"), "abc");
  ASSERT_EQ(::symlink(dir.File("abc").c_str(), dir.File("link").c_str()), 0);
  EXPECT_FALSE(Sha256OfFile(dir.File("link")).ok());
}

// ---- ParseTaskSpec -------------------------------------------------------------------

constexpr char kExampleSpec[] = R"({
  "command": ["sh", "-c", "sha256sum data/in.bin > out/sum.txt"],
  "env": {"MODE": "fast", "A_1": "x"},
  "inputs": [{"path": "data/in.bin",
              "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
              "size": 6, "executable": false},
             {"path": "bin/tool",
              "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
              "executable": true}],
  "outputs": ["out", "report.txt"],
  "network": true,
  "timeout_s": 600
})";

TEST(ParseTaskSpecTest, ParsesTheDocumentedExample) {
  absl::StatusOr<TaskSpec> spec = ParseTaskSpec(kExampleSpec);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->command,
            (std::vector<std::string>{"sh", "-c", "sha256sum data/in.bin > out/sum.txt"}));
  EXPECT_EQ(spec->env,
            (std::vector<std::pair<std::string, std::string>>{{"A_1", "x"}, {"MODE", "fast"}}));
  ASSERT_EQ(spec->inputs.size(), 2u);
  EXPECT_EQ(spec->inputs[0].path, "data/in.bin");
  EXPECT_EQ(spec->inputs[0].sha256, kSha256HelloNewline);
  EXPECT_EQ(spec->inputs[0].size, 6);
  EXPECT_FALSE(spec->inputs[0].executable);
  EXPECT_EQ(spec->inputs[1].size, std::nullopt);
  EXPECT_TRUE(spec->inputs[1].executable);
  EXPECT_EQ(spec->outputs, (std::vector<std::string>{"out", "report.txt"}));
  EXPECT_TRUE(spec->network);
  EXPECT_EQ(spec->timeout_s, 600);
}

TEST(ParseTaskSpecTest, RoundTripsThroughJson) {
  for (const char* text :
       {static_cast<const char*>(kExampleSpec), R"({"command": ["true"]})",
        R"({"command": ["x"], "timeout_s": 1, "inputs": [{"path": "a",
            "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size": 0}]})",
        R"({"command": ["x"], "timeout_s": 604800, "env": {}, "outputs": []})"}) {
    SCOPED_TRACE(text);
    absl::StatusOr<TaskSpec> spec = ParseTaskSpec(text);
    ASSERT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<TaskSpec> again = ParseTaskSpec(TaskSpecToJson(*spec).dump());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, *spec);
  }
}

TEST(ParseTaskSpecTest, MinimalSpecTakesDefaults) {
  absl::StatusOr<TaskSpec> spec = ParseTaskSpec(R"({"command": ["true"]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->env.empty());
  EXPECT_TRUE(spec->inputs.empty());
  EXPECT_TRUE(spec->outputs.empty());
  EXPECT_FALSE(spec->network);
  EXPECT_EQ(spec->timeout_s, std::nullopt);
}

// One bad document and a piece of the message that names what is wrong with it.
struct BadSpec {
  std::string json;
  std::string names;
};

std::string InputWithPath(const std::string& path) {
  return absl::StrCat(R"({"command": ["x"], "inputs": [{"path": ")", path, R"(", "sha256": ")",
                      kSha256Abc, R"("}]})");
}

TEST(ParseTaskSpecTest, RefusesBadDocumentsNamingTheField) {
  const std::string sha = kSha256Abc;
  const std::vector<BadSpec> cases = {
      {"", "JSON object"},
      {"{", "JSON object"},
      {R"(["x"])", "JSON object"},
      {R"({"command": ["x"]} trailing)", "JSON object"},
      {"{}", "'command'"},
      {R"({"command": []})", "'command'"},
      {R"({"command": "sh -c x"})", "'command'"},
      {R"({"command": ["sh", 1]})", "'command'"},
      {R"({"command": ["sh", null]})", "'command'"},
      {R"({"command": [""]})", "'command'"},
      {R"({"command": ["a\u0000b"]})", "'command'"},
      {R"({"command": ["x"], "extra": 1})", "'extra'"},
      {R"({"command": ["x"], "env": ["A"]})", "'env'"},
      {R"({"command": ["x"], "env": {"1A": "x"}})", "'1A'"},
      {R"({"command": ["x"], "env": {"A-B": "x"}})", "'A-B'"},
      {R"({"command": ["x"], "env": {"": "x"}})", "'env'"},
      {R"({"command": ["x"], "env": {"A": 1}})", "'env.A'"},
      {R"({"command": ["x"], "env": {"A": "a\u0000"}})", "'env.A'"},
      {R"({"command": ["x"], "inputs": {}})", "'inputs'"},
      {R"({"command": ["x"], "inputs": ["a"]})", "inputs[0]"},
      {R"({"command": ["x"], "inputs": [{"sha256": ")" + sha + R"("}]})", "inputs[0]"},
      {R"({"command": ["x"], "inputs": [{"path": "a"}]})", "inputs[0]"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": "abc"}]})", "inputs[0].sha256"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + std::string(64, 'A') +
           R"("}]})",
       "inputs[0].sha256"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + std::string(63, 'a') + "g" +
           R"("}]})",
       "inputs[0].sha256"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha + R"(", "size": -1}]})",
       "inputs[0].size"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha + R"(", "size": 1.5}]})",
       "inputs[0].size"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha +
           R"(", "size": 18446744073709551615}]})",
       "inputs[0].size"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha +
           R"(", "executable": "yes"}]})",
       "inputs[0].executable"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha + R"(", "mode": 493}]})",
       "'mode'"},
      {InputWithPath("../x"), "inputs[0].path"},
      {InputWithPath("/etc/passwd"), "inputs[0].path"},
      {InputWithPath("a//b"), "inputs[0].path"},
      {InputWithPath("./a"), "inputs[0].path"},
      {InputWithPath("a/"), "inputs[0].path"},
      {InputWithPath(""), "inputs[0].path"},
      {InputWithPath("a/../../b"), "inputs[0].path"},
      {InputWithPath(std::string(4097, 'a')), "inputs[0].path"},
      {R"({"command": ["x"], "inputs": [{"path": "a", "sha256": ")" + sha +
           R"("}, {"path": "a", "sha256": ")" + sha + R"("}]})",
       "inputs[1].path"},
      {R"({"command": ["x"], "inputs": [{"path": "a/b", "sha256": ")" + sha +
           R"("}, {"path": "a", "sha256": ")" + sha + R"("}]})",
       "'a/b'"},
      {R"({"command": ["x"], "outputs": "out"})", "'outputs'"},
      {R"({"command": ["x"], "outputs": [1]})", "'outputs'"},
      {R"({"command": ["x"], "outputs": ["ok", "../up"]})", "'outputs'"},
      {R"({"command": ["x"], "outputs": ["out", "out"]})", "'outputs'"},
      {R"({"command": ["x"], "network": "yes"})", "'network'"},
      {R"({"command": ["x"], "network": 1})", "'network'"},
      {R"({"command": ["x"], "timeout_s": 0})", "'timeout_s'"},
      {R"({"command": ["x"], "timeout_s": -5})", "'timeout_s'"},
      {R"({"command": ["x"], "timeout_s": 604801})", "'timeout_s'"},
      {R"({"command": ["x"], "timeout_s": 1.5})", "'timeout_s'"},
      {R"({"command": ["x"], "timeout_s": "60"})", "'timeout_s'"},
      {R"({"command": ["x"], "timeout_s": 99999999999999999999})", "'timeout_s'"},
  };
  for (const BadSpec& bad : cases) {
    SCOPED_TRACE(bad.json.substr(0, 200));
    absl::StatusOr<TaskSpec> spec = ParseTaskSpec(bad.json);
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(bad.names), std::string::npos)
        << spec.status().message();
  }
}

TEST(ParseTaskSpecTest, RefusesTooLargeDocuments) {
  // Valid JSON, just too long: padding inside an argument.
  const std::string text =
      absl::StrCat(R"({"command": ["x", ")", std::string(protocol::kTaskSpecBytesMax, 'a'), R"("]})");
  absl::StatusOr<TaskSpec> spec = ParseTaskSpec(text);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("65536"), std::string::npos) << spec.status().message();
}

TEST(ParseTaskSpecTest, RefusesTooManyOutputs) {
  json doc = {{"command", {"x"}}};
  json outputs = json::array();
  for (int i = 0; i <= static_cast<int>(protocol::kTaskOutputsMax); ++i) outputs.push_back(absl::StrCat(i));
  doc["outputs"] = outputs;
  absl::StatusOr<TaskSpec> spec = ParseTaskSpec(doc.dump());
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("'outputs'"), std::string::npos)
      << spec.status().message();
}

// ---- RunTask ---------------------------------------------------------------------------

// A blob store that is a directory of files named by their digest, like the exchange's.
class DirBlobStore {
 public:
  explicit DirBlobStore(std::string dir) : dir_(std::move(dir)) {}

  // Stores `content`; returns its digest.
  std::string Put(std::string_view content) {
    const std::string tmp = dir_ + "/.incoming";
    WriteFile(tmp, content);
    absl::StatusOr<std::string> sha256 = Sha256OfFile(tmp);
    EXPECT_TRUE(sha256.ok()) << sha256.status();
    EXPECT_EQ(::rename(tmp.c_str(), (dir_ + "/" + *sha256).c_str()), 0);
    return *sha256;
  }
  // Stores `content` under a name that is not its digest (a corrupt store).
  void PutAs(std::string_view content, const std::string& sha256) {
    WriteFile(dir_ + "/" + sha256, content);
  }
  bool Has(const std::string& sha256) const { return Exists(dir_ + "/" + sha256); }
  std::string Get(const std::string& sha256) const { return ReadFile(dir_ + "/" + sha256); }

  TaskBlobs Blobs() {
    TaskBlobs blobs;
    blobs.fetch = [this](const std::string& sha256, const std::string& dest) -> absl::Status {
      ++fetches;
      const std::string src = dir_ + "/" + sha256;
      if (!Exists(src)) return absl::NotFoundError(absl::StrCat("no blob ", sha256));
      WriteFile(dest, ReadFile(src));
      return absl::OkStatus();
    };
    blobs.upload = [this](int fd, uint64_t size) -> absl::StatusOr<std::string> {
      ++uploads;
      if (before_upload) before_upload();
      // What the exchange would receive: `size` bytes of the descriptor, from offset 0.
      struct stat st;
      EXPECT_EQ(::fstat(fd, &st), 0);
      EXPECT_TRUE(S_ISREG(st.st_mode));
      std::string bytes(size, '\0');
      EXPECT_EQ(::pread(fd, bytes.data(), size, 0), static_cast<ssize_t>(size));
      uploaded.push_back(bytes);
      if (refuse && refuse(bytes)) {
        return absl::ResourceExhaustedError(
            "blob_quota_exceeded: The account's blobs would exceed its quota. (HTTP 413)");
      }
      const std::string tmp = dir_ + "/.incoming";
      WriteFile(tmp, bytes);
      absl::StatusOr<std::string> sha256 = Sha256OfFile(tmp);
      if (!sha256.ok()) return sha256.status();
      EXPECT_EQ(::rename(tmp.c_str(), (dir_ + "/" + *sha256).c_str()), 0);
      return *sha256;
    };
    return blobs;
  }

  int fetches = 0;
  int uploads = 0;
  std::vector<std::string> uploaded;  // The bytes of each upload, in order.
  // Called at the start of each upload (a test's hook), and whether to refuse its bytes as
  // the exchange refuses a blob over the account's quota.
  std::function<void()> before_upload;
  std::function<bool(const std::string& bytes)> refuse;

 private:
  std::string dir_;
};

// Every RunTask test runs twice: with a new lease directory and sandbox (Cold), and with a
// warm start prepared beforehand (Warm), as the agent does; the results must not differ.
class RunTaskTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP()
          << "needs root: the agent runs as root and hands each job to an unprivileged uid";
    }
    sandbox::BubblewrapSandbox::Options sandbox_options;
    sandbox_options.require_cgroup = false;  // limits where the machine has cgroups
    auto sandbox = sandbox::BubblewrapSandbox::Create(sandbox_options);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = std::move(*sandbox);

    // The job's host uid must be able to pass through every ancestor of its directory.
    ASSERT_EQ(::chmod(temp_.path().c_str(), 0711), 0);
    ASSERT_EQ(::mkdir(temp_.File("blobs").c_str(), 0700), 0);
    store_ = std::make_unique<DirBlobStore>(temp_.File("blobs"));
    options_.work_root = temp_.File("jobs");
    options_.on_log = [this](std::string_view stream, std::string_view chunk) {
      std::lock_guard<std::mutex> lock(mu_);
      (stream == "stdout" ? streamed_out_ : streamed_err_).append(chunk);
    };
    options_.on_started = [this]() { ++started_; };
  }

  void TearDown() override {
    if (sandbox_ == nullptr) return;
    // After every task, whatever happened: nothing is left in the work root.
    EXPECT_TRUE(DirEntries(options_.work_root).empty())
        << "left behind in " << options_.work_root << ": " << DirEntries(options_.work_root)[0];
    EXPECT_TRUE(DirEntries(warm_root_).empty())
        << "left behind in " << warm_root_ << ": " << DirEntries(warm_root_)[0];
  }

  bool Warm() const { return GetParam(); }

  json Run(const TaskSpec& spec, uint64_t lease = 1) {
    std::optional<WarmStart> warm;
    if (Warm()) {
      absl::StatusOr<WarmStart> prepared =
          PrepareWarmStart(*sandbox_, warm_root_, "warm-" + std::to_string(lease), 0);
      EXPECT_TRUE(prepared.ok()) << prepared.status();
      if (prepared.ok()) warm = *std::move(prepared);
    }
    const int started_before = started_;
    TaskBlobs blobs = store_->Blobs();
    blobs.blob_bytes_max = blob_bytes_max_;
    json result =
        RunTask(*sandbox_, lease, spec, options_, blobs, warm.has_value() ? &*warm : nullptr);
    if (warm.has_value()) {
      EXPECT_EQ(warm->prepared, nullptr) << "RunTask must use up the warm start";
      // Used exactly when a job ran (and so needed no network).
      EXPECT_EQ(warm->used, started_ > started_before) << result.dump();
    }
    // Every result is a complete document of at most 64 KiB.
    for (const char* key :
         {"status", "exit_code", "term_signal", "wall_ms", "cpu_ms", "peak_memory_mib", "stdout",
          "stderr", "outputs", "missing_outputs", "message"}) {
      EXPECT_TRUE(result.contains(key)) << key << " missing in " << result.dump();
    }
    EXPECT_LE(result.dump().size(), kTaskResultBytesMax);
    return result;
  }

  static TaskSpec Shell(std::string script) {
    TaskSpec spec;
    spec.command = {"/bin/sh", "-c", std::move(script)};
    spec.timeout_s = 60;  // a safety net
    return spec;
  }

  std::string BlobOf(const json& blob) { return store_->Get(blob.at("sha256").get<std::string>()); }

  base::testing::TempDir temp_{"ocx_task_test"};
  const std::string warm_root_ = temp_.File("warm");
  std::unique_ptr<sandbox::BubblewrapSandbox> sandbox_;
  std::unique_ptr<DirBlobStore> store_;
  TaskRunOptions options_;
  uint64_t blob_bytes_max_ = kDefaultBlobBytesMax;
  std::mutex mu_;
  std::string streamed_out_;  // Guarded by mu_.
  std::string streamed_err_;  // Guarded by mu_.
  int started_ = 0;
};

TEST_P(RunTaskTest, InputsArePlacedAndReadableByTheJob) {
  const std::string hello = store_->Put("hello\n");
  ASSERT_EQ(hello, kSha256HelloNewline);
  const std::string abc = store_->Put("abc");
  TaskSpec spec =
      Shell("sha256sum data/in.bin; cat deep/er/x.txt; echo; stat -c '%a %U' data/in.bin deep/er");
  spec.inputs = {{"data/in.bin", hello, 6, false}, {"deep/er/x.txt", abc, std::nullopt, false}};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_EQ(result["exit_code"], 0);
  EXPECT_EQ(BlobOf(result["stdout"]), absl::StrCat(hello, "  data/in.bin\nabc\n644 ocx\n755 ocx\n"))
      << BlobOf(result["stderr"]);
  EXPECT_EQ(started_, 1);
}

TEST_P(RunTaskTest, ExecutableInputRuns) {
  const std::string script = store_->Put("#!/bin/sh\necho \"hello from $0 $1\"\n");
  TaskSpec spec;
  spec.command = {"./bin/hello.sh", "world"};
  spec.inputs = {{"bin/hello.sh", script, std::nullopt, true}};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_EQ(BlobOf(result["stdout"]), "hello from ./bin/hello.sh world\n");
}

TEST_P(RunTaskTest, OutputFilesAndFoldersComeBackWithTheirDigests) {
  TaskSpec spec = Shell(
      "mkdir -p out/sub out/empty && printf 'A\\n' > out/a.txt && printf 'B\\n' > "
      "out/sub/b.txt && printf 'hello\\n' > report.txt && printf 'not asked for' > other");
  spec.outputs = {"report.txt", "out", "nothere", "out/sub/b.txt"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 3u) << result.dump();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"out/a.txt", "A\n"}, {"out/sub/b.txt", "B\n"}, {"report.txt", "hello\n"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const json& output = result["outputs"][i];
    EXPECT_EQ(output["path"], expected[i].first);
    EXPECT_EQ(output["size"], expected[i].second.size());
    EXPECT_EQ(BlobOf(output), expected[i].second);
  }
  EXPECT_EQ(result["outputs"][2]["sha256"], kSha256HelloNewline);
  EXPECT_EQ(result["missing_outputs"], json::array({"nothere"}));
}

TEST_P(RunTaskTest, StdoutAndStderrAreKeptAndStreamed) {
  json result = Run(Shell("echo out; echo err >&2; echo more"));
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_EQ(BlobOf(result["stdout"]), "out\nmore\n");
  EXPECT_EQ(result["stdout"]["size"], 9);
  EXPECT_EQ(result["stdout"]["truncated"], false);
  EXPECT_EQ(BlobOf(result["stderr"]), "err\n");
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(streamed_out_, "out\nmore\n");
  EXPECT_EQ(streamed_err_, "err\n");
}

TEST_P(RunTaskTest, SpecEnvironmentIsAddedToTheDefaults) {
  TaskSpec spec = Shell("echo \"$MODE $HOME $TMPDIR\"");
  spec.env = {{"HOME", "/work/home"}, {"MODE", "fast"}};
  json result = Run(spec);
  EXPECT_EQ(BlobOf(result["stdout"]), "fast /work/home /tmp\n");
}

TEST_P(RunTaskTest, NonZeroExitIsFailed) {
  json result = Run(Shell("exit 3"));
  EXPECT_EQ(result["status"], "failed");
  EXPECT_EQ(result["exit_code"], 3);
  EXPECT_EQ(result["term_signal"], 0);
  EXPECT_EQ(result["message"], "exit code 3");
}

TEST_P(RunTaskTest, DeathBySignalIsFailed) {
  json result = Run(Shell("kill -9 $$"));
  EXPECT_EQ(result["status"], "failed");
  EXPECT_EQ(result["term_signal"], 9);
  EXPECT_EQ(result["message"], "killed by signal 9");
}

TEST_P(RunTaskTest, TimeoutIsTimedOut) {
  TaskSpec spec = Shell("echo started; exec sleep 60");
  spec.timeout_s = 1;
  spec.outputs = {"nothing"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "timed_out") << result.dump();
  EXPECT_EQ(BlobOf(result["stdout"]), "started\n");
  EXPECT_EQ(result["missing_outputs"], json::array({"nothing"}));
}

TEST_P(RunTaskTest, CancelFromAnotherThreadIsCancelled) {
  auto token = sandbox::CancelToken::Create();
  ASSERT_TRUE(token.ok()) << token.status();
  options_.cancel = token->get();
  std::mutex mu;
  std::condition_variable ready_cv;
  bool ready = false;  // Guarded by mu.
  options_.on_log = [&](std::string_view stream, std::string_view chunk) {
    if (stream == "stdout" && chunk.find("ready") != std::string_view::npos) {
      std::lock_guard<std::mutex> lock(mu);
      ready = true;
      ready_cv.notify_all();
    }
  };
  std::thread canceller([&]() {
    std::unique_lock<std::mutex> lock(mu);
    ready_cv.wait(lock, [&]() { return ready; });
    (*token)->Cancel();
  });
  TaskSpec spec = Shell("echo x > out.txt; echo ready; exec sleep 60");
  spec.outputs = {"out.txt"};
  json result = Run(spec);
  canceller.join();
  EXPECT_EQ(result["status"], "cancelled") << result.dump();
  EXPECT_EQ(BlobOf(result["stdout"]), "ready\n");
  EXPECT_TRUE(result["outputs"].empty());
}

TEST_P(RunTaskTest, CancelBeforeTheStartRunsNothing) {
  auto token = sandbox::CancelToken::Create();
  ASSERT_TRUE(token.ok()) << token.status();
  (*token)->Cancel();
  options_.cancel = token->get();
  json result = Run(Shell("echo should not run"));
  EXPECT_EQ(result["status"], "cancelled");
  EXPECT_EQ(started_, 0);
  EXPECT_TRUE(result["stdout"].is_null());
}

TEST_P(RunTaskTest, InputNotMatchingItsDigestIsErrorAndNothingRuns) {
  const std::string good = store_->Put("good");
  store_->PutAs("evil", good);  // the store hands out other bytes under that name
  TaskSpec spec = Shell("echo ran");
  spec.inputs = {{"in", good, std::nullopt, false}};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(result["message"].get<std::string>().find("does not match its digest"),
            std::string::npos)
      << result["message"];
  EXPECT_EQ(started_, 0);
  EXPECT_EQ(result["exit_code"], -1);
  EXPECT_TRUE(result["stdout"].is_null());
  EXPECT_EQ(store_->uploads, 0);
}

TEST_P(RunTaskTest, InputOfTheWrongSizeIsError) {
  const std::string abc = store_->Put("abc");
  TaskSpec spec = Shell("echo ran");
  spec.inputs = {{"in", abc, 4, false}};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(result["message"].get<std::string>().find("is 3 bytes, but the spec says 4"),
            std::string::npos)
      << result["message"];
  EXPECT_EQ(started_, 0);
}

TEST_P(RunTaskTest, MissingBlobIsError) {
  TaskSpec spec = Shell("echo ran");
  spec.inputs = {{"a", store_->Put("a"), std::nullopt, false},
                 {"b", kSha256Empty, std::nullopt, false}};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(result["message"].get<std::string>().find("fetching input 'b'"), std::string::npos)
      << result["message"];
  EXPECT_EQ(store_->fetches, 2);
  EXPECT_EQ(started_, 0);
}

TEST_P(RunTaskTest, SymlinkOutputsAreNotFollowed) {
  TaskSpec spec = Shell(
      "ln -s /etc/passwd pw && mkdir out && ln -s /etc/passwd out/link && echo real > out/real "
      "&& ln -s /etc d && ln -s /etc out/etc && mkfifo out/fifo");
  spec.outputs = {"pw", "out", "d/passwd", "d"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 1u) << result.dump();
  EXPECT_EQ(result["outputs"][0]["path"], "out/real");
  EXPECT_EQ(result["missing_outputs"], json::array({"pw", "d/passwd", "d"}));
  // The host's /etc/passwd went nowhere.
  absl::StatusOr<std::string> passwd = Sha256OfFile("/etc/passwd");
  ASSERT_TRUE(passwd.ok()) << passwd.status();
  EXPECT_FALSE(store_->Has(*passwd));
}

TEST_P(RunTaskTest, NetworkWhenThePolicyForbidsItIsError) {
  TaskSpec spec = Shell("echo ran");
  spec.network = true;
  json result = Run(spec);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(result["message"].get<std::string>().find("network"), std::string::npos);
  EXPECT_EQ(started_, 0);
}

TEST_P(RunTaskTest, ExistingLeaseDirectoryIsLeftAlone) {
  const std::string lease_dir = options_.work_root + "/lease-7";
  ASSERT_EQ(::mkdir(options_.work_root.c_str(), 0711), 0);
  ASSERT_EQ(::mkdir(lease_dir.c_str(), 0700), 0);
  WriteFile(lease_dir + "/keep", "x");
  json result = Run(Shell("echo ran"), 7);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(result["message"].get<std::string>().find("already exists"), std::string::npos);
  EXPECT_TRUE(Exists(lease_dir + "/keep"));
  EXPECT_EQ(started_, 0);
  EXPECT_TRUE(sandbox::Wipe(lease_dir).ok());
}

TEST_P(RunTaskTest, ResultStaysWithinItsSizeLimit) {
  // 1,500 files with 100-byte names: more than 64 KiB of result; the rest is left out.
  TaskSpec spec = Shell(
      "mkdir out && cd out && i=0; while [ $i -lt 1500 ]; do "
      ": > \"$(printf 'f%099d' $i)\"; i=$((i+1)); done");
  spec.outputs = {"out"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << BlobOf(result["stderr"]);
  const size_t listed = result["outputs"].size();
  EXPECT_GT(listed, 100u);
  EXPECT_LT(listed, 1500u);
  EXPECT_EQ(static_cast<size_t>(store_->uploads), listed + 2);  // + stdout, stderr
  EXPECT_NE(result["message"].get<std::string>().find(absl::StrCat(1500 - listed, " output files")),
            std::string::npos)
      << result["message"];
  EXPECT_EQ(result["outputs"][0]["path"], "out/f" + std::string(99, '0'));
}

TEST_P(RunTaskTest, OutputNamesThatAreNotUtf8AreLeftOut) {
  TaskSpec spec = Shell("mkdir out && echo x > \"$(printf 'out/bad\\377')\" && echo y > out/ok");
  spec.outputs = {"out"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 1u);
  EXPECT_EQ(result["outputs"][0]["path"], "out/ok");
  EXPECT_NE(result["message"].get<std::string>().find("1 output files were left out"),
            std::string::npos)
      << result["message"];
}

TEST_P(RunTaskTest, SpecBuiltInCodeIsCheckedLikeAParsedOne) {
  TaskSpec unsafe = Shell("echo ran");
  unsafe.outputs = {"../escape"};
  TaskSpec unsorted = Shell("echo ran");
  unsorted.env = {{"B", "1"}, {"A", "2"}};
  TaskSpec not_utf8 = Shell("echo \xff");
  TaskSpec bad_digest = Shell("echo ran");
  bad_digest.inputs = {{"in", "ABC", std::nullopt, false}};
  for (const TaskSpec* spec : {&unsafe, &unsorted, &not_utf8, &bad_digest}) {
    json result = Run(*spec);
    EXPECT_EQ(result["status"], "error");
    EXPECT_EQ(result["message"].get<std::string>().rfind("bad task spec", 0), 0u)
        << result["message"];
  }
  EXPECT_EQ(started_, 0);
  EXPECT_FALSE(Exists(options_.work_root));
}

TEST_P(RunTaskTest, FailedUploadIsError) {
  TaskBlobs blobs = store_->Blobs();
  blobs.upload = [](int, uint64_t) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("the exchange is away");
  };
  json result = RunTask(*sandbox_, 1, Shell("echo hi"), options_, blobs);
  EXPECT_EQ(result["status"], "error");
  EXPECT_EQ(result["exit_code"], 0);  // the job ran; its result could not be delivered
  EXPECT_NE(result["message"].get<std::string>().find("uploading the job's stdout failed"),
            std::string::npos)
      << result["message"];
}

TEST_P(RunTaskTest, OddErrorTextIsMadeSafeForTheResult) {
  TaskBlobs blobs = store_->Blobs();
  blobs.fetch = [](const std::string&, const std::string&) {
    return absl::InternalError(std::string("bad\xff\n") + std::string(5000, 'x'));
  };
  TaskSpec spec = Shell("echo ran");
  spec.inputs = {{"in", kSha256Empty, std::nullopt, false}};
  json result = RunTask(*sandbox_, 1, spec, options_, blobs);
  EXPECT_EQ(result["status"], "error");
  const std::string message = result["message"].get<std::string>();
  EXPECT_LE(message.size(), kTaskMessageBytesMax);
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_NE(message.find("bad? "), std::string::npos) << message;
  EXPECT_NO_THROW(result.dump());
}

TEST_P(RunTaskTest, WorkRootTheJobCannotReachIsError) {
  // As root, the job's uid must pass through every ancestor of its directory.
  const std::string closed = temp_.File("closed");
  ASSERT_EQ(::mkdir(closed.c_str(), 0700), 0);
  options_.work_root = closed + "/jobs";
  json result = Run(Shell("echo ran"));
  EXPECT_EQ(result["status"], "error") << result.dump();
  EXPECT_NE(result["message"].get<std::string>().find("cannot pass through " + closed),
            std::string::npos)
      << result["message"];
}

TEST_P(RunTaskTest, UnwritableLeftoversAreWipedToo) {
  // The job locks its own files away; the lease directory still goes (checked in TearDown).
  json result = Run(Shell("mkdir -p a/b && echo x > a/b/c && chmod 000 a/b/c a/b a"));
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
}

TEST_P(RunTaskTest, OutputOverTheBlobLimitIsLeftOutAndNamed) {
  blob_bytes_max_ = 100;
  TaskSpec spec = Shell(
      "printf small > small.txt && head -c 101 /dev/zero > big.bin && "
      "mkdir out && head -c 100 /dev/zero > out/exact.bin && head -c 5000 /dev/zero > out/huge");
  spec.outputs = {"small.txt", "big.bin", "out"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 2u) << result.dump();
  EXPECT_EQ(result["outputs"][0]["path"], "out/exact.bin");  // At the limit: kept.
  EXPECT_EQ(result["outputs"][1]["path"], "small.txt");
  EXPECT_EQ(BlobOf(result["outputs"][1]), "small");
  EXPECT_TRUE(result["missing_outputs"].empty());
  EXPECT_NE(result["message"].get<std::string>().find(
                "2 output files larger than a blob may be (100 bytes) were left out: "
                "'big.bin', 'out/huge'"),
            std::string::npos)
      << result["message"];
  EXPECT_EQ(store_->uploads, 4);  // stdout, stderr and the two that fit; never the others.
}

TEST_P(RunTaskTest, LogsAreCutToTheBlobLimit) {
  blob_bytes_max_ = 100;
  json result = Run(Shell("i=0; while [ $i -lt 30 ]; do echo 123456789; i=$((i+1)); done"));
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_EQ(result["stdout"]["size"], 100);
  EXPECT_EQ(result["stdout"]["truncated"], true);
  std::string expected;
  for (int i = 0; i < 10; ++i) expected += "123456789\n";
  EXPECT_EQ(BlobOf(result["stdout"]), expected);
  EXPECT_EQ(result["stderr"]["truncated"], false);
}

TEST_P(RunTaskTest, OutputTheExchangeRefusesIsLeftOutWithItsReason) {
  store_->refuse = [](const std::string& bytes) { return bytes == "refuse me"; };
  TaskSpec spec = Shell("printf 'refuse me' > a.txt && printf keep > b.txt");
  spec.outputs = {"a.txt", "b.txt"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 1u) << result.dump();
  EXPECT_EQ(result["outputs"][0]["path"], "b.txt");
  const std::string message = result["message"].get<std::string>();
  EXPECT_NE(message.find("1 output files were refused by the exchange (blob_quota_exceeded"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("and left out: 'a.txt'"), std::string::npos) << message;
}

TEST_P(RunTaskTest, RefusedLogsAreNullAndSaid) {
  store_->refuse = [](const std::string&) { return true; };
  TaskSpec spec = Shell("echo out; echo err >&2; echo x > o.txt");
  spec.outputs = {"o.txt"};
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  EXPECT_TRUE(result["stdout"].is_null());
  EXPECT_TRUE(result["stderr"].is_null());
  EXPECT_TRUE(result["outputs"].empty());
  const std::string message = result["message"].get<std::string>();
  EXPECT_NE(message.find("the job's stdout was not kept: the exchange refused it"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("the job's stderr was not kept"), std::string::npos) << message;
  EXPECT_NE(message.find("'o.txt'"), std::string::npos) << message;
}

TEST_P(RunTaskTest, UploadedBytesAreThoseOfTheFileOpenedAndChecked) {
  // While an output is being uploaded, its path is made to name another file: what is sent
  // is still the file the runner opened and checked.
  TaskSpec spec = Shell("printf payload > out.txt");
  spec.outputs = {"out.txt"};
  const std::string path = options_.work_root + "/lease-1/work/out.txt";
  store_->before_upload = [&] {
    if (store_->uploads != 3) return;  // stdout, stderr, then out.txt
    const std::string other = options_.work_root + "/lease-1/other";
    WriteFile(other, "swapped in");
    ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);
  };
  json result = Run(spec);
  EXPECT_EQ(result["status"], "succeeded") << result.dump();
  ASSERT_EQ(result["outputs"].size(), 1u) << result.dump();
  EXPECT_EQ(BlobOf(result["outputs"][0]), "payload");
  EXPECT_EQ(result["outputs"][0]["size"], 7);
  ASSERT_EQ(store_->uploaded.size(), 3u);
  EXPECT_EQ(store_->uploaded[2], "payload");
}

INSTANTIATE_TEST_SUITE_P(ColdAndWarm, RunTaskTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Warm" : "Cold";
                         });

}  // namespace
}  // namespace ocx::agent
