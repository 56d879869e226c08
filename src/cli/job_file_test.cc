#include "src/cli/job_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "gtest/gtest.h"
#include "src/base/sha256.h"
#include "src/base/testing/temp_dir.h"
#include "src/cli/job_runner.h"
#include "src/client/fake_servers.h"
#include "src/client/url.h"

namespace ocx::cli {
namespace {

// The error's message, "" when it parsed.
template <typename T>
std::string ErrorOf(const absl::StatusOr<T>& parsed) {
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(JobFileTest, TomlWithEveryField) {
  const auto job = ParseJobToml(R"(
command = ["sh", "-c", "wc -l data/in.txt > out/count.txt"]
inputs = ["data/in.txt", "tools"]
outputs = ["out"]
slots = 2
tasks = 3
market = "cpu"
max_price = "0.05"
max_hours = 4
constraints = 'region == "eu"'
network = true
timeout_s = 600

[env]
MODE = "fast"
ALPHA = "1"
)",
                                "job.toml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->command,
            (std::vector<std::string>{"sh", "-c", "wc -l data/in.txt > out/count.txt"}));
  EXPECT_EQ(job->inputs, (std::vector<std::string>{"data/in.txt", "tools"}));
  EXPECT_EQ(job->outputs, (std::vector<std::string>{"out"}));
  EXPECT_EQ(job->slots, 2);
  EXPECT_EQ(job->tasks, 3);
  EXPECT_EQ(job->market, "cpu");
  EXPECT_EQ(job->max_price, "0.05");
  EXPECT_EQ(job->max_hours, 4);
  EXPECT_EQ(job->constraints, "region == \"eu\"");
  EXPECT_TRUE(job->network);
  ASSERT_TRUE(job->timeout_s.has_value());
  EXPECT_EQ(*job->timeout_s, 600);
  // Sorted by name.
  EXPECT_EQ(job->env,
            (std::vector<std::pair<std::string, std::string>>{{"ALPHA", "1"}, {"MODE", "fast"}}));
  EXPECT_TRUE(CheckJobComplete(*job, "job.toml").ok());
}

TEST(JobFileTest, DefaultsApplyToWhatIsNotGiven) {
  const auto job = ParseJobToml("command = [\"true\"]\nmax_price = \"1\"\n", "job.toml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->slots, 1);
  EXPECT_EQ(job->tasks, 1);
  EXPECT_EQ(job->market, "cpu");
  EXPECT_EQ(job->max_hours, 1);
  EXPECT_FALSE(job->network);
  EXPECT_FALSE(job->timeout_s.has_value());
  EXPECT_TRUE(job->inputs.empty());
  EXPECT_TRUE(job->outputs.empty());
  EXPECT_TRUE(job->env.empty());
  EXPECT_TRUE(job->constraints.empty());
}

TEST(JobFileTest, JsonWithEveryField) {
  const auto job = ParseJobJson(R"({
  "command": ["python3", "train.py"],
  "inputs": ["train.py"],
  "outputs": ["model.bin"],
  "slots": 4, "tasks": 2, "market": "cpu", "max_price": "0.08", "max_hours": 2,
  "constraints": "cpu.factor >= 1", "network": false, "timeout_s": 30,
  "env": {"SEED": "7"}
})",
                                "job.json");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->command, (std::vector<std::string>{"python3", "train.py"}));
  EXPECT_EQ(job->slots, 4);
  EXPECT_EQ(job->tasks, 2);
  EXPECT_EQ(job->max_price, "0.08");
  EXPECT_EQ(job->max_hours, 2);
  EXPECT_EQ(job->constraints, "cpu.factor >= 1");
  EXPECT_EQ(*job->timeout_s, 30);
  EXPECT_EQ(job->env, (std::vector<std::pair<std::string, std::string>>{{"SEED", "7"}}));
}

TEST(JobFileTest, TomlUnknownKeyIsAnErrorAtItsPosition) {
  const auto job = ParseJobToml("command = [\"true\"]\nslot = 2\n", "job.toml");
  EXPECT_EQ(ErrorOf(job).substr(0, 35), "job.toml:2:1: unknown key 'slot' (k");
}

TEST(JobFileTest, JsonUnknownKeyIsAnErrorAtItsPosition) {
  const auto job = ParseJobJson("{\n  \"command\": [\"true\"],\n  \"slot\": 2\n}", "job.json");
  EXPECT_EQ(ErrorOf(job).substr(0, 33), "job.json:3:3: unknown key 'slot' ");
}

TEST(JobFileTest, TomlWrongTypesAreErrorsAtTheValue) {
  EXPECT_EQ(ErrorOf(ParseJobToml("slots = \"2\"\n", "j.toml")),
            "j.toml:1:9: slots must be an integer, not a string");
  EXPECT_EQ(ErrorOf(ParseJobToml("command = \"echo hi\"\n", "j.toml")),
            "j.toml:1:11: command must be an array of strings, not a string");
  EXPECT_EQ(ErrorOf(ParseJobToml("command = [\"echo\", 1]\n", "j.toml")),
            "j.toml:1:20: command[1] must be a string, not an integer");
  EXPECT_EQ(ErrorOf(ParseJobToml("network = 1\n", "j.toml")),
            "j.toml:1:11: network must be a boolean, not an integer");
  EXPECT_EQ(ErrorOf(ParseJobToml("env = [\"A=1\"]\n", "j.toml")),
            "j.toml:1:7: env must be a table of NAME = \"value\", not an array");
  EXPECT_EQ(ErrorOf(ParseJobToml("[env]\nA = 1\n", "j.toml")),
            "j.toml:2:5: env.A must be a string, not an integer");
}

TEST(JobFileTest, JsonWrongTypesAreErrorsAtTheValue) {
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"tasks\": \"3\"}", "j.json")),
            "j.json:1:11: tasks must be an integer, not a string");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"command\": [\"a\",\n  null]}", "j.json")),
            "j.json:2:3: command[1] must be a string, not null");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"slots\": 1.5}", "j.json")),
            "j.json:1:11: slots must be an integer, not a fractional number");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"env\": {\"A\": true}}", "j.json")),
            "j.json:1:15: env.A must be a string, not a boolean");
  EXPECT_EQ(ErrorOf(ParseJobJson("[1, 2]", "j.json")),
            "j.json:1:1: a job file must be an object of fields, not an array");
}

TEST(JobFileTest, MaxPriceMustBeADecimalString) {
  EXPECT_EQ(ErrorOf(ParseJobToml("max_price = 0.05\n", "j.toml")),
            "j.toml:1:13: max_price must be a decimal string like \"0.05\" (exact credits per "
            "slot-hour), not a float");
  EXPECT_EQ(ErrorOf(ParseJobToml("max_price = \"0.0000001\"\n", "j.toml")),
            "j.toml:1:13: max_price must be a positive decimal with at most 6 fractional digits, "
            "like \"0.05\", not \"0.0000001\"");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"max_price\": \"-1\"}", "j.json")),
            "j.json:1:15: max_price must be a positive decimal with at most 6 fractional digits, "
            "like \"0.05\", not \"-1\"");
}

TEST(JobFileTest, RangesAreChecked) {
  EXPECT_EQ(ErrorOf(ParseJobToml("tasks = 0\n", "j.toml")),
            "j.toml:1:9: tasks must be an integer from 1 to 1000");
  EXPECT_EQ(ErrorOf(ParseJobToml("max_hours = 745\n", "j.toml")),
            "j.toml:1:13: max_hours must be an integer from 1 to 744");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"slots\": 99999999999999999999}", "j.json")),
            "j.json:1:11: slots must be an integer from 1 to 1000000");
  EXPECT_EQ(ErrorOf(ParseJobToml("timeout_s = 0\n", "j.toml")),
            "j.toml:1:13: timeout_s must be an integer from 1 to 604800");
}

TEST(JobFileTest, OutputsMustStayUnderWork) {
  EXPECT_EQ(ErrorOf(ParseJobToml("outputs = [\"ok\", \"../etc\"]\n", "j.toml")),
            "j.toml:1:18: outputs[1] must be a relative path under the task's /work, without "
            "'..' or a leading '/', not \"../etc\"");
  EXPECT_FALSE(ParseJobToml("outputs = [\"/abs\"]\n", "j.toml").ok());
  EXPECT_FALSE(ParseJobToml("outputs = [\"a//b\"]\n", "j.toml").ok());
  EXPECT_TRUE(ParseJobToml("outputs = [\"out/a.txt\", \"b\"]\n", "j.toml").ok());
}

TEST(JobFileTest, EnvNamesAreChecked) {
  EXPECT_EQ(ErrorOf(ParseJobToml("[env]\n\"1BAD\" = \"x\"\n", "j.toml")),
            "j.toml:2:1: env name '1BAD' must match [A-Za-z_][A-Za-z0-9_]*");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"env\": {\"A-B\": \"x\"}}", "j.json")),
            "j.json:1:10: env name 'A-B' must match [A-Za-z_][A-Za-z0-9_]*");
}

TEST(JobFileTest, EmptyCommandIsAnError) {
  EXPECT_EQ(ErrorOf(ParseJobToml("command = []\n", "j.toml")),
            "j.toml:1:11: command must name a program: [\"prog\", \"arg\", ...]");
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"command\": [\"\"]}", "j.json")),
            "j.json:1:14: command[0] (the program) must not be empty");
}

TEST(JobFileTest, MissingCommandOrPriceIsReportedByCheckJobComplete) {
  auto job = ParseJobToml("max_price = \"0.05\"\n", "job.toml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(CheckJobComplete(*job, "job.toml").message(),
            "job.toml: no command: set command = [\"prog\", \"arg\", ...] or give it after '--'");
  job = ParseJobToml("command = [\"true\"]\n", "job.toml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(CheckJobComplete(*job, "job.toml").message(),
            "job.toml: no max price: set max_price = \"0.05\" (credits per slot-hour) or "
            "--max-price");
  job->max_price = "0.05";  // As --max-price would.
  EXPECT_TRUE(CheckJobComplete(*job, "job.toml").ok());
  job->max_price = "abc";
  EXPECT_FALSE(CheckJobComplete(*job, "job.toml").ok());
}

TEST(JobFileTest, DuplicateKeysAreErrors) {
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"tasks\": 1,\n \"tasks\": [2]}", "j.json")),
            "j.json:2:2: duplicate key 'tasks'");
  // TOML refuses them itself, with its own wording.
  const std::string toml = ErrorOf(ParseJobToml("tasks = 1\ntasks = 2\n", "j.toml"));
  EXPECT_EQ(toml.substr(0, 11), "j.toml:2:9:") << toml;
}

TEST(JobFileTest, SyntaxErrorsNameTheirPosition) {
  const std::string toml = ErrorOf(ParseJobToml("command = [\"a\"\n", "j.toml"));
  EXPECT_EQ(toml.substr(0, 7), "j.toml:") << toml;
  const std::string json = ErrorOf(ParseJobJson("{\n  \"command\": [\"a\",]\n}", "j.json"));
  EXPECT_EQ(json.substr(0, 12), "j.json:2:19:") << json;
}

TEST(JobFileTest, JsonNumberTooLargeForADoubleIsAnError) {
  // Found by fuzz/job_file_fuzz.cc: nlohmann throws out_of_range, not parse_error, for it,
  // and the exception ended the process.
  EXPECT_EQ(ErrorOf(ParseJobJson("{\"slots\": 1e999}", "j.json")),
            "j.json: number overflow parsing '1e999'");
  EXPECT_EQ(ErrorOf(ParseJobJson("[-2E2222222222]", "j.json")),
            "j.json: number overflow parsing '-2E2222222222'");
}

TEST(JobFileTest, JsonNestedTooDeeplyIsAnErrorAtTheBracket) {
  // A job file may be 1 MiB: 600,000 nested arrays ran the JSON locator out of stack.
  const std::string deep =
      "{\"x\":\n" + std::string(300'000, '[') + std::string(300'000, ']') + "}";
  EXPECT_EQ(ErrorOf(ParseJobJson(deep, "j.json")), "j.json:2:64: nested deeper than 64 levels");
  // Brackets inside strings do not count.
  const std::string in_string = "{\"command\": [\"" + std::string(100, '[') + "\\\"{\"]}";
  EXPECT_EQ(ErrorOf(ParseJobJson(in_string, "j.json")), "");
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(ErrorOf(ParseJobJson(at_limit, "j.json")),
            "j.json:1:1: a job file must be an object of fields, not an array");
}

TEST(JobFileTest, LoadJobFilePicksTheFormatByExtensionAndKeepsItsFolder) {
  base::testing::TempDir dir;
  {
    std::ofstream(dir.File("job.json")) << R"({"command": ["true"], "max_price": "0.05"})";
    std::ofstream(dir.File("job.toml")) << "command = [\"true\"]\nmax_price = \"0.05\"\n";
  }
  for (const char* name : {"job.json", "job.toml"}) {
    const auto job = LoadJobFile(dir.File(name));
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->command, std::vector<std::string>{"true"});
    EXPECT_EQ(job->base_dir, dir.path());
  }
  const auto missing = LoadJobFile(dir.File("nope.toml"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobFileTest, SafeOutputPaths) {
  EXPECT_TRUE(IsSafeOutputPath("a"));
  EXPECT_TRUE(IsSafeOutputPath("a/b.txt"));
  EXPECT_FALSE(IsSafeOutputPath(""));
  EXPECT_FALSE(IsSafeOutputPath("/a"));
  EXPECT_FALSE(IsSafeOutputPath("a/../b"));
  EXPECT_FALSE(IsSafeOutputPath(".."));
  EXPECT_FALSE(IsSafeOutputPath("./a"));
  EXPECT_FALSE(IsSafeOutputPath("a/"));
}

// ---- The helpers of job_runner.h that turn a job file into inputs and bring results back.

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(JobRunnerHelpersTest, PlanInputsKeepsRelativePathsAndWalksFolders) {
  base::testing::TempDir dir;
  std::filesystem::create_directories(dir.File("data/sub"));
  std::ofstream(dir.File("data/a.txt")) << "a";
  std::ofstream(dir.File("data/sub/b.txt")) << "bb";
  std::ofstream(dir.File("tool.sh")) << "#!/bin/sh\n";
  ASSERT_EQ(::chmod(dir.File("tool.sh").c_str(), 0755), 0);
  JobFile job;
  job.base_dir = dir.path();
  job.inputs = {"data", "./tool.sh", dir.File("data/sub/b.txt")};
  const auto files = PlanInputs(job);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ((*files)[0].remote_path, "data/a.txt");
  EXPECT_EQ((*files)[0].size, 1u);
  EXPECT_EQ((*files)[1].remote_path, "data/sub/b.txt");
  EXPECT_EQ((*files)[2].remote_path, "tool.sh");
  EXPECT_TRUE((*files)[2].executable);
  EXPECT_FALSE((*files)[0].executable);
  EXPECT_EQ((*files)[3].remote_path, "b.txt");  // Absolute: its last component.
}

TEST(JobRunnerHelpersTest, PlanInputsRefusesMissingFilesAndClashes) {
  base::testing::TempDir dir;
  std::filesystem::create_directories(dir.File("x"));
  std::ofstream(dir.File("x/a.txt")) << "1";
  std::ofstream(dir.File("a.txt")) << "2";
  JobFile job;
  job.base_dir = dir.path();
  job.inputs = {"missing.bin"};
  EXPECT_EQ(PlanInputs(job).status().code(), absl::StatusCode::kInvalidArgument);
  job.inputs = {"a.txt", dir.File("x") + "/../a.txt"};  // Both land on /work/a.txt.
  const auto clash = PlanInputs(job);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(clash.status().message().find("would both be /work/a.txt"), std::string::npos)
      << clash.status();
}

TEST(JobRunnerHelpersTest, WriteUnderCreatesFoldersAndStaysInside) {
  base::testing::TempDir dir;
  const std::string root = dir.File("out/task-0");
  ASSERT_TRUE(WriteUnder(root, "a/b/c.txt", "hello").ok());
  EXPECT_EQ(Slurp(root + "/a/b/c.txt"), "hello");
  ASSERT_TRUE(WriteUnder(root, "a/b/c.txt", "again").ok());  // Replaced.
  EXPECT_EQ(Slurp(root + "/a/b/c.txt"), "again");
  for (const char* bad : {"../escape.txt", "/etc/passwd", "a/../../x", "", "a//b", "./a"}) {
    EXPECT_EQ(WriteUnder(root, bad, "x").code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.File("out/escape.txt")));
}

TEST(JobRunnerHelpersTest, WriteUnderRefusesSymbolicLinksOnTheWay) {
  base::testing::TempDir dir;
  const std::string root = dir.File("out");
  std::filesystem::create_directories(root);
  std::filesystem::create_directories(dir.File("elsewhere"));
  std::filesystem::create_directory_symlink(dir.File("elsewhere"), root + "/link");
  EXPECT_EQ(WriteUnder(root, "link/file.txt", "x").code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::create_symlink(dir.File("elsewhere/target"), root + "/file-link");
  EXPECT_EQ(WriteUnder(root, "file-link", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_empty(dir.File("elsewhere")));
}

TEST(JobRunnerHelpersTest, CaretUnderPointsAtTheColumn) {
  EXPECT_EQ(CaretUnder("region == eu", 11, "expected a string"),
            "  region == eu\n            ^ column 11: expected a string");
  // Columns are bytes; the caret counts characters ("é" is two bytes).
  EXPECT_EQ(CaretUnder("name == \"\xC3\xA9\" &&", 14, "unexpected end"),
            "  name == \"\xC3\xA9\" &&\n              ^ column 14: unexpected end");
  // One past the end.
  EXPECT_EQ(CaretUnder("a ==", 5, "expected a value"),
            "  a ==\n      ^ column 5: expected a value");
}

TEST(JobRunnerHelpersTest, QueryErrorReasonKeepsWhatFollowsTheColumn) {
  EXPECT_EQ(QueryErrorReason("The query is not valid, column 7: expected a value", 7),
            "expected a value");
  EXPECT_EQ(QueryErrorReason("something else", 7), "something else");
}

TEST(JobRunnerHelpersTest, UrlEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UrlEncode("region == \"eu\" && a.b-c_d~"),
            "region%20%3D%3D%20%22eu%22%20%26%26%20a.b-c_d~");
}

TEST(JobRunnerHelpersTest, PlanInputsRefusesAFileOverTheBlobLimitNamingIt) {
  base::testing::TempDir dir;
  const std::string big = dir.File("big.bin");
  std::ofstream(big).close();
  ASSERT_EQ(::truncate(big.c_str(), static_cast<off_t>(kJobInputBytesMax + 1)), 0);  // Sparse.
  JobFile job;
  job.base_dir = dir.path();
  job.inputs = {"big.bin"};
  const auto planned = PlanInputs(job);
  ASSERT_EQ(planned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(planned.status().message(),
            "the input " + big +
                " is 67108865 bytes (64.0 MiB), more than a blob may hold (67108864 bytes)");
}

TEST(JobRunnerHelpersTest, OpenInputHashesTheOpenFileAndRefusesOneOverTheLimit) {
  base::testing::TempDir dir;
  std::ofstream(dir.File("abc")) << "abc";
  const auto opened = OpenInput(dir.File("abc"), 3);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->size, 3u);
  EXPECT_EQ(opened->sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Grown past the limit since it was planned: refused on the open file, before any upload.
  const auto over = OpenInput(dir.File("abc"), 2);
  ASSERT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(over.status().message(), "the input " + dir.File("abc") +
                                         " is 3 bytes (3 B), more than a blob may hold (2 bytes)");
  EXPECT_EQ(OpenInput(dir.File("missing"), 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenInput(dir.path(), 10).status().code(), absl::StatusCode::kInvalidArgument);
}

// The exchange's blob endpoints, enough for PutInput: HEAD finds what was PUT before.
class FakeBlobEndpoint {
 public:
  FakeBlobEndpoint() : server_([this](const client::FakeRequest& r) { return Answer(r); }) {}

  std::unique_ptr<client::HttpClient> Connect() {
    auto endpoint = client::ParseUrl(server_.url());
    EXPECT_TRUE(endpoint.ok());
    auto http = client::HttpClient::Connect(*endpoint);
    EXPECT_TRUE(http.ok()) << http.status();
    return http.ok() ? std::move(*http) : nullptr;
  }
  std::map<std::string, std::string> blobs() {
    std::lock_guard lock(mu_);
    return blobs_;
  }
  int puts() {
    std::lock_guard lock(mu_);
    return puts_;
  }
  void RefuseWith(client::FakeResponse refusal) {
    std::lock_guard lock(mu_);
    refusal_ = std::move(refusal);
  }

 private:
  client::FakeResponse Answer(const client::FakeRequest& request) {
    std::lock_guard lock(mu_);
    const std::string digest = request.target.substr(std::string("/v1/blobs/").size());
    if (request.method == "HEAD") return {blobs_.contains(digest) ? 200 : 404, "", {}};
    ++puts_;
    if (refusal_) return *refusal_;
    if (base::Sha256Hex(request.body) != digest) return {400, "", {}};
    blobs_[digest] = request.body;
    return {201, "{\"sha256\":\"" + digest + "\"}", {}};
  }

  std::mutex mu_;
  std::map<std::string, std::string> blobs_;     // Guarded by mu_.
  int puts_ = 0;                                 // Guarded by mu_.
  std::optional<client::FakeResponse> refusal_;  // Guarded by mu_.
  client::FakeHttpServer server_;                // Last: stopped first.
};

TEST(JobRunnerHelpersTest, PutInputSendsTheFileOnceAndExactly) {
  base::testing::TempDir dir;
  std::string bytes(3 << 20, '\0');  // Several chunks of the upload.
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 1000);
  std::ofstream(dir.File("in.bin"), std::ios::binary) << bytes;
  FakeBlobEndpoint exchange;
  auto http = exchange.Connect();
  ASSERT_NE(http, nullptr);
  const auto opened = OpenInput(dir.File("in.bin"), kJobInputBytesMax);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->sha256, base::Sha256Hex(bytes));
  const auto first = PutInput(*http, *opened);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  ASSERT_EQ(exchange.blobs().count(opened->sha256), 1u);
  EXPECT_TRUE(exchange.blobs()[opened->sha256] == bytes) << "the exchange got other bytes";
  // Already there: HEAD says so, nothing is sent again.
  const auto second = PutInput(*http, *opened);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second);
  EXPECT_EQ(exchange.puts(), 1);
}

TEST(JobRunnerHelpersTest, PutInputRefusedForQuotaNamesTheFile) {
  base::testing::TempDir dir;
  std::ofstream(dir.File("in.txt")) << "data";
  FakeBlobEndpoint exchange;
  exchange.RefuseWith(
      {413, R"({"error":{"code":"blob_quota_exceeded","message":"Over the quota."}})", {}});
  auto http = exchange.Connect();
  ASSERT_NE(http, nullptr);
  const auto opened = OpenInput(dir.File("in.txt"), kJobInputBytesMax);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const auto put = PutInput(*http, *opened);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(put.status().message(), "the exchange refused the input " + dir.File("in.txt") +
                                        ": Over the quota (blob_quota_exceeded)");
}

}  // namespace
}  // namespace ocx::cli
