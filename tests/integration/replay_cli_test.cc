// Runs the `ocx` binary the way a user does and checks its output and exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "src/base/testing/build_paths.h"

namespace {

struct Result {
  int exit_code = -1;
  std::string out, err;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ocx-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `ocx ARGS` through the shell with stdout and stderr captured to files.
  Result Ocx(const std::string& args, const std::string& stdin_path = "/dev/null") {
    const std::string command = std::string(ocx::base::testing::OcxBinary()) + " " + args + " >" +
                                (dir_ / "out").string() + " 2>" + (dir_ / "err").string() + " <" +
                                stdin_path;
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadFile(dir_ / "out");
    result.err = ReadFile(dir_ / "err");
    return result;
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

  std::filesystem::path dir_;
};

TEST_F(CliTest, ReplayOfTheBundledExampleMatchesItsCheckedOutput) {
  // examples/replay/basic.expected.jsonl was worked out by hand from RULEBOOK section 2.
  const std::string source = ocx::base::testing::SourceDir();
  const Result r = Ocx("replay " + source + "/examples/replay/basic.jsonl");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, ReadFile(source + "/examples/replay/basic.expected.jsonl"));
  EXPECT_EQ(r.err, "line 15: not valid JSON\n");
}

TEST_F(CliTest, ReplayReadsStandardInput) {
  const std::string file =
      Write("in.jsonl", R"({"op":"new","id":1,"account":"a","side":"sell","price":"0.5","qty":3})"
                        "\n"
                        R"({"op":"new","id":2,"account":"b","side":"buy","type":"market","qty":2})"
                        "\n");
  const Result r = Ocx("replay -", file);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"({"type":"trade","taker":2,"maker":1,"price":"0.5","qty":2})"),
            std::string::npos)
      << r.out;
}

TEST_F(CliTest, ReplayHonoursTheTickOption) {
  const std::string file =
      Write("tick.jsonl", R"({"op":"new","id":1,"account":"a","side":"buy","price":"0.05","qty":1})"
                          "\n");
  EXPECT_NE(Ocx("replay --tick 0.01 " + file).out.find("\"accepted\""), std::string::npos);
  EXPECT_NE(Ocx("replay --tick 0.1 " + file).out.find("\"off_tick\""), std::string::npos);
}

TEST_F(CliTest, UnreadableReplayFileIsExitCode2) {
  const Result r = Ocx("replay " + (dir_ / "missing.jsonl").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliTest, BadTickIsExitCode2) {
  const std::string file = Write("empty.jsonl", "");
  for (const char* tick : {"0", "-0.01", "abc", "0.0000001"}) {
    const Result r = Ocx(std::string("replay --tick ") + tick + " " + file);
    EXPECT_EQ(r.exit_code, 2) << tick;
    EXPECT_NE(r.err.find("--tick"), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, UsageErrorsAreExitCode2) {
  EXPECT_EQ(Ocx("").exit_code, 2);
  EXPECT_EQ(Ocx("frobnicate").exit_code, 2);
  EXPECT_EQ(Ocx("replay").exit_code, 2);
  EXPECT_EQ(Ocx("bench engine --commands 0").exit_code, 2);
  EXPECT_EQ(Ocx("bench engine --repeat x").exit_code, 2);
}

TEST_F(CliTest, HelpShowsExamples) {
  const Result r = Ocx("replay --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Examples:"), std::string::npos);
}

// ---- Words the command line does not know: named, with the nearest command when one is close.

TEST_F(CliTest, UnknownCommandIsNamedWithTheNearestCommand) {
  const Result r = Ocx("offer");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "ocx: unknown command 'offer'. Did you mean 'offers'?\n");
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(CliTest, UnknownCommandFollowedByHelpIsAnErrorNotTheHelp) {
  const Result r = Ocx("home --help");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'home'"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(CliTest, UnknownCommandFarFromEveryCommandSuggestsNone) {
  const Result r = Ocx("zzzzqqq");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "ocx: unknown command 'zzzzqqq'.\n"
            "Run 'ocx --help' for the list of commands.\n");
}

TEST_F(CliTest, UnknownNestedCommandIsNamedWithItsNearestSibling) {
  const Result provider = Ocx("provider discvoer");
  EXPECT_EQ(provider.exit_code, 2);
  EXPECT_EQ(provider.err, "ocx provider: unknown command 'discvoer'. Did you mean 'discover'?\n");
  const Result bench = Ocx("bench engien");
  EXPECT_EQ(bench.exit_code, 2);
  EXPECT_NE(bench.err.find("Did you mean 'engine'?"), std::string::npos) << bench.err;
  const Result job = Ocx("job shwo 3");
  EXPECT_EQ(job.exit_code, 2);
  EXPECT_NE(job.err.find("unknown command 'shwo'. Did you mean 'show'?"), std::string::npos)
      << job.err;
  const Result order = Ocx("order lsit --help");
  EXPECT_EQ(order.exit_code, 2);
  EXPECT_NE(order.err.find("Did you mean 'list'?"), std::string::npos) << order.err;
  EXPECT_TRUE(order.out.empty()) << order.out;
}

TEST_F(CliTest, UnknownNestedCommandFarFromEverySiblingPointsAtItsHelp) {
  const Result r = Ocx("provider zzzzqqq");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "ocx provider: unknown command 'zzzzqqq'.\n"
            "Run 'ocx provider --help' for the list of commands.\n");
}

TEST_F(CliTest, MissingCommandNamesTheChoices) {
  const Result provider = Ocx("provider");
  EXPECT_EQ(provider.exit_code, 2);
  EXPECT_NE(provider.err.find("ocx provider: missing command, one of: run, discover."),
            std::string::npos)
      << provider.err;
  const Result top = Ocx("");
  EXPECT_EQ(top.exit_code, 2);
  EXPECT_NE(top.err.find("ocx: missing command, one of: "), std::string::npos) << top.err;
  EXPECT_NE(top.err.find("offers"), std::string::npos) << top.err;
}

TEST_F(CliTest, UnknownOptionIsNamed) {
  for (const char* args : {"--bogus", "provider --bogus", "--bogus offers x", "replay --bogus -"}) {
    const Result r = Ocx(args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("--bogus"), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("unknown command"), std::string::npos) << args << ": " << r.err;
  }
}

TEST_F(CliTest, HelpAndVersionStillExitZero) {
  for (const char* args : {"--help", "replay --help", "provider --help", "job show --help"}) {
    const Result r = Ocx(args);
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << args << ": " << r.out;
    EXPECT_TRUE(r.err.empty()) << args << ": " << r.err;
  }
  const Result version = Ocx("--version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "0.1.0\n");
}

TEST_F(CliTest, EngineBenchRunsAndReportsItsFigures) {
  // A smoke run: the figures themselves are measured by `ocx bench engine`, not asserted here.
  const Result r = Ocx("bench engine --commands 20000 --repeat 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* field : {"throughput:", "M commands/s", "p50", "p99", "p99.9", "price levels"}) {
    EXPECT_NE(r.out.find(field), std::string::npos) << field << " missing from:\n" << r.out;
  }
}

TEST_F(CliTest, EngineBenchTimesAReplayFile) {
  const std::string source = ocx::base::testing::SourceDir();
  const Result r =
      Ocx("bench engine --repeat 1 --input " + source + "/examples/replay/basic.jsonl");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("replay file"), std::string::npos) << r.out;
  EXPECT_EQ(Ocx("bench engine --input " + (dir_ / "nope").string()).exit_code, 2);
}

}  // namespace
