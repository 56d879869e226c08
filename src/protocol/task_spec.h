// The task spec (docs/formats/task.md): what a consumer runs on one lease. Parsed and
// validated by the exchange when the buyer attaches it (the canonical form is journaled) and
// again by the agent before it runs anything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace ocx::protocol {

inline constexpr size_t kTaskSpecBytesMax = 64 * 1024;
inline constexpr size_t kTaskArgsMax = 4096;
inline constexpr size_t kTaskInputsMax = 10'000;
inline constexpr size_t kTaskOutputsMax = 1'000;
inline constexpr size_t kTaskPathBytesMax = 4096;
inline constexpr int64_t kTaskTimeoutSecondsMax = 7 * 24 * 3600;

struct TaskInput {
  std::string path;  // Relative to the job's work directory.
  std::string sha256;
  std::optional<int64_t> size;
  bool executable = false;
  bool operator==(const TaskInput&) const = default;
};

struct TaskSpec {
  std::vector<std::string> command;
  std::vector<std::pair<std::string, std::string>> env;  // Sorted by name, names unique.
  std::vector<TaskInput> inputs;
  std::vector<std::string> outputs;
  bool network = false;
  std::optional<int64_t> timeout_s;
  bool operator==(const TaskSpec&) const = default;
};

// Parses and checks a spec; InvalidArgument with one sentence naming the field otherwise.
absl::StatusOr<TaskSpec> ParseTaskSpec(std::string_view json);
// The canonical JSON form (fields in a fixed order); ParseTaskSpec reads it back equal.
nlohmann::json TaskSpecToJson(const TaskSpec& spec);
// A relative path inside the work directory: no "..", no leading "/", no empty or "."
// component, no NUL, at most kTaskPathBytesMax bytes.
bool IsSafeRelativePath(std::string_view path);

}  // namespace ocx::protocol
