#include "src/protocol/task_spec.h"

#include <algorithm>
#include <set>

#include "absl/status/status.h"
#include "src/base/json.h"
#include "src/base/sha256.h"

namespace ocx::protocol {
namespace {

using Json = nlohmann::json;

absl::Status Bad(const std::string& sentence) { return absl::InvalidArgumentError(sentence); }

bool IsEnvName(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  auto head = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!head(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

bool HasNul(const std::string& text) { return text.find('\0') != std::string::npos; }

}  // namespace

bool IsSafeRelativePath(std::string_view path) {
  if (path.empty() || path.size() > kTaskPathBytesMax || path.front() == '/') return false;
  if (path.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

absl::StatusOr<TaskSpec> ParseTaskSpec(std::string_view text) {
  if (text.size() > kTaskSpecBytesMax) {
    return Bad("The task spec is longer than " + std::to_string(kTaskSpecBytesMax) + " bytes.");
  }
  Json j;
  if (const base::JsonParseResult parsed = base::ParseJsonStrict(text, &j); !parsed.ok()) {
    return Bad("The task spec must be one JSON object: " + parsed.message);
  }
  if (!j.is_object()) return Bad("The task spec must be a JSON object.");
  static const std::set<std::string> kKnown = {"command", "env",     "inputs",
                                               "outputs", "network", "timeout_s"};
  for (const auto& [key, value] : j.items()) {
    if (!kKnown.contains(key)) return Bad("Unknown field '" + key + "' in the task spec.");
  }
  TaskSpec spec;
  const auto command = j.find("command");
  if (command == j.end() || !command->is_array() || command->empty()) {
    return Bad("'command' must be a non-empty array of strings.");
  }
  if (command->size() > kTaskArgsMax) {
    return Bad("'command' has more than " + std::to_string(kTaskArgsMax) + " arguments.");
  }
  for (const Json& arg : *command) {
    if (!arg.is_string() || HasNul(arg.get<std::string>())) {
      return Bad("'command' must be an array of strings without NUL bytes.");
    }
    spec.command.push_back(arg.get<std::string>());
  }
  if (spec.command.front().empty()) return Bad("'command' starts with an empty program name.");

  if (const auto env = j.find("env"); env != j.end()) {
    if (!env->is_object()) return Bad("'env' must be an object of strings.");
    if (env->size() > kTaskArgsMax) return Bad("'env' has too many variables.");
    for (const auto& [name, value] : env->items()) {
      if (!IsEnvName(name)) {
        return Bad("'env' name '" + name + "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*).");
      }
      if (!value.is_string() || HasNul(value.get<std::string>())) {
        return Bad("'env." + name + "' must be a string without NUL bytes.");
      }
      spec.env.emplace_back(name, value.get<std::string>());
    }
    std::sort(spec.env.begin(), spec.env.end());
  }

  std::set<std::string> paths;
  if (const auto inputs = j.find("inputs"); inputs != j.end()) {
    if (!inputs->is_array()) return Bad("'inputs' must be an array.");
    if (inputs->size() > kTaskInputsMax) return Bad("'inputs' has too many entries.");
    for (size_t i = 0; i < inputs->size(); ++i) {
      const Json& in = (*inputs)[i];
      const std::string where = "'inputs[" + std::to_string(i) + "]";
      if (!in.is_object()) return Bad(where + "' must be an object.");
      for (const auto& [key, value] : in.items()) {
        if (key != "path" && key != "sha256" && key != "size" && key != "executable") {
          return Bad("Unknown field '" + key + "' in " + where + "'.");
        }
      }
      TaskInput input;
      if (!in.contains("path") || !in["path"].is_string() ||
          !IsSafeRelativePath(in["path"].get<std::string>())) {
        return Bad(where + ".path' must be a relative path inside the work directory.");
      }
      input.path = in["path"].get<std::string>();
      if (!paths.insert(input.path).second) {
        return Bad(where + ".path' repeats the path '" + input.path + "'.");
      }
      if (!in.contains("sha256") || !in["sha256"].is_string() ||
          !base::IsSha256Hex(in["sha256"].get<std::string>())) {
        return Bad(where + ".sha256' must be 64 lowercase hex digits.");
      }
      input.sha256 = in["sha256"].get<std::string>();
      if (in.contains("size")) {
        if (!in["size"].is_number_integer() || in["size"].get<int64_t>() < 0) {
          return Bad(where + ".size' must be an integer >= 0.");
        }
        input.size = in["size"].get<int64_t>();
      }
      if (in.contains("executable")) {
        if (!in["executable"].is_boolean())
          return Bad(where + ".executable' must be true or false.");
        input.executable = in["executable"].get<bool>();
      }
      spec.inputs.push_back(std::move(input));
    }
  }
  // An input may not sit below another input's path (a file cannot be a folder too).
  for (const std::string& path : paths) {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      if (paths.contains(path.substr(0, slash))) {
        return Bad("Input '" + path + "' lies below input '" + path.substr(0, slash) + "'.");
      }
    }
  }

  if (const auto outputs = j.find("outputs"); outputs != j.end()) {
    if (!outputs->is_array()) return Bad("'outputs' must be an array of paths.");
    if (outputs->size() > kTaskOutputsMax) return Bad("'outputs' has too many entries.");
    std::set<std::string> seen;
    for (const Json& out : *outputs) {
      if (!out.is_string() || !IsSafeRelativePath(out.get<std::string>())) {
        return Bad("'outputs' entries must be relative paths inside the work directory.");
      }
      if (!seen.insert(out.get<std::string>()).second) {
        return Bad("'outputs' repeats '" + out.get<std::string>() + "'.");
      }
      spec.outputs.push_back(out.get<std::string>());
    }
  }
  if (const auto network = j.find("network"); network != j.end()) {
    if (!network->is_boolean()) return Bad("'network' must be true or false.");
    spec.network = network->get<bool>();
  }
  if (const auto timeout = j.find("timeout_s"); timeout != j.end()) {
    if (!timeout->is_number_integer() || timeout->get<int64_t>() < 1 ||
        timeout->get<int64_t>() > kTaskTimeoutSecondsMax) {
      return Bad("'timeout_s' must be an integer from 1 to " +
                 std::to_string(kTaskTimeoutSecondsMax) + ".");
    }
    spec.timeout_s = timeout->get<int64_t>();
  }
  return spec;
}

nlohmann::json TaskSpecToJson(const TaskSpec& spec) {
  Json out = Json::object();
  out["command"] = spec.command;
  if (!spec.env.empty()) {
    Json env = Json::object();
    for (const auto& [name, value] : spec.env) env[name] = value;
    out["env"] = env;
  }
  if (!spec.inputs.empty()) {
    Json inputs = Json::array();
    for (const TaskInput& in : spec.inputs) {
      Json entry{{"path", in.path}, {"sha256", in.sha256}};
      if (in.size) entry["size"] = *in.size;
      if (in.executable) entry["executable"] = true;
      inputs.push_back(std::move(entry));
    }
    out["inputs"] = inputs;
  }
  if (!spec.outputs.empty()) out["outputs"] = spec.outputs;
  if (spec.network) out["network"] = true;
  if (spec.timeout_s) out["timeout_s"] = *spec.timeout_s;
  return out;
}

}  // namespace ocx::protocol
