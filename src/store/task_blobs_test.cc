// The blobs a task spec or result names: good documents, documents that are not what the
// format says (never an exception, never a row from a bad entry), and the named bounds.
#include "src/store/task_blobs.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ocx::store {
namespace {

std::string Digest(char c) { return std::string(64, c); }

// {"inputs":[{"sha256":"<d>"}, ...]}
std::string SpecWithInputs(const std::vector<std::string>& digests) {
  std::string spec = R"({"command":["true"],"inputs":[)";
  for (size_t i = 0; i < digests.size(); ++i) {
    if (i > 0) spec += ",";
    spec += R"({"path":"in/)" + std::to_string(i) + R"(","sha256":")" + digests[i] + R"("})";
  }
  return spec + "]}";
}

TEST(TaskBlobsTest, SpecNamesItsInputsInOrder) {
  const std::string spec = SpecWithInputs({Digest('a'), Digest('b'), Digest('a')});
  EXPECT_EQ(BlobsOfTaskSpec(spec), (std::vector<NamedBlob>{{Digest('a'), BlobRole::kInput},
                                                           {Digest('b'), BlobRole::kInput},
                                                           {Digest('a'), BlobRole::kInput}}));
  EXPECT_TRUE(BlobsOfTaskSpec(R"({"command":["true"]})").empty());
}

TEST(TaskBlobsTest, ResultNamesStdoutStderrAndOutputs) {
  const std::string result = R"({"status":"succeeded","exit_code":0,)"
                             R"("stdout":{"sha256":")" +
                             Digest('1') +
                             R"(","size":3,"truncated":false},)"
                             R"("stderr":{"sha256":")" +
                             Digest('2') +
                             R"(","size":0,"truncated":false},)"
                             R"("outputs":[{"path":"out/a","sha256":")" +
                             Digest('3') +
                             R"(","size":1},)"
                             R"({"path":"out/b","sha256":")" +
                             Digest('4') + R"(","size":1}],"missing_outputs":[]})";
  EXPECT_EQ(BlobsOfTaskResult(result), (std::vector<NamedBlob>{{Digest('1'), BlobRole::kStdout},
                                                               {Digest('2'), BlobRole::kStderr},
                                                               {Digest('3'), BlobRole::kOutput},
                                                               {Digest('4'), BlobRole::kOutput}}));
  // A result without streams or outputs (an error before the job ran) names nothing.
  EXPECT_TRUE(BlobsOfTaskResult(R"({"status":"error","message":"no such blob"})").empty());
}

TEST(TaskBlobsTest, DocumentsThatAreNotObjectsNameNothing) {
  const std::string inputs = SpecWithInputs({Digest('a')});
  const std::string nested = std::string(200, '[') + std::string(200, ']');
  const std::vector<std::string> documents = {
      "",
      "not json",
      "null",
      "42",
      "\"" + Digest('a') + "\"",
      "[" + inputs + "]",
      inputs.substr(0, inputs.size() - 1),            // Cut short.
      inputs + " {}",                                 // Something after the value.
      std::string("{\"inputs\":[]}\0", 14) + inputs,  // A NUL byte.
      R"({"inputs":[],"inputs":[{"sha256":")" + Digest('a') + R"("}]})",  // Duplicate key.
      R"({"inputs":)" + nested + "}",                                     // Nested past the bound.
      "{\"inputs\":[{\"sha256\":\"" + Digest('a') + "\",\"path\":\"\xff\"}]}",  // Bad UTF-8.
  };
  for (const std::string& document : documents) {
    EXPECT_TRUE(BlobsOfTaskSpec(document).empty()) << document;
    EXPECT_TRUE(BlobsOfTaskResult(document).empty()) << document;
  }
}

TEST(TaskBlobsTest, FieldsOfTheWrongTypeAndBadDigestsAreSkipped) {
  const std::string good = Digest('c');
  std::string upper = Digest('a');
  upper[10] = 'A';
  const std::string spec = R"({"inputs":[1,"x",null,[],{},{"sha256":5},{"sha256":null},)"
                           R"({"sha256":")" +
                           upper + R"("},{"sha256":")" + good.substr(1) + R"("},{"sha256":")" +
                           good + R"(0"},{"sha256":"g)" + good.substr(1) + R"("},{"sha256":")" +
                           good + R"("}]})";
  EXPECT_EQ(BlobsOfTaskSpec(spec), (std::vector<NamedBlob>{{good, BlobRole::kInput}}));
  for (const char* inputs : {"5", "\"x\"", "{}", "null", "true"}) {
    EXPECT_TRUE(BlobsOfTaskSpec(std::string(R"({"inputs":)") + inputs + "}").empty()) << inputs;
  }
  const std::string result = R"({"stdout":")" + good + R"(","stderr":{"sha256":[")" + good +
                             R"("]},"outputs":{"sha256":")" + good + R"("}})";
  EXPECT_TRUE(BlobsOfTaskResult(result).empty());
  const std::string partial =
      R"({"stdout":7,"stderr":{"sha256":")" + good + R"("},"outputs":[{"sha256":1}]})";
  EXPECT_EQ(BlobsOfTaskResult(partial), (std::vector<NamedBlob>{{good, BlobRole::kStderr}}));
}

TEST(TaskBlobsTest, MoreEntriesThanTheFormatAllowsNameNothing) {
  std::vector<std::string> digests(kTaskSpecInputsMax, Digest('d'));
  EXPECT_EQ(BlobsOfTaskSpec(SpecWithInputs(digests)).size(), kTaskSpecInputsMax);
  digests.push_back(Digest('e'));
  EXPECT_TRUE(BlobsOfTaskSpec(SpecWithInputs(digests)).empty());

  auto result_with_outputs = [](size_t n) {
    std::string result = R"({"stdout":{"sha256":")" + Digest('1') + R"("},"outputs":[)";
    for (size_t i = 0; i < n; ++i) {
      result += std::string(i > 0 ? "," : "") + R"({"sha256":")" + Digest('2') + R"("})";
    }
    return result + "]}";
  };
  EXPECT_EQ(BlobsOfTaskResult(result_with_outputs(kTaskResultOutputsMax)).size(),
            kTaskResultOutputsMax + 1);
  EXPECT_TRUE(BlobsOfTaskResult(result_with_outputs(kTaskResultOutputsMax + 1)).empty());
}

TEST(TaskBlobsTest, RoleNamesAreStable) {
  EXPECT_EQ(BlobRoleName(BlobRole::kInput), "input");
  EXPECT_EQ(BlobRoleName(BlobRole::kStdout), "stdout");
  EXPECT_EQ(BlobRoleName(BlobRole::kStderr), "stderr");
  EXPECT_EQ(BlobRoleName(BlobRole::kOutput), "output");
}

}  // namespace
}  // namespace ocx::store
