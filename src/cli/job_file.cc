#include "src/cli/job_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "src/base/decimal.h"
#include "src/base/status.h"
#include "src/base/toml_report.h"

namespace ocx::cli {
namespace {

// Both formats are first read into this small tree of located values, so that the rules for
// the fields (types, ranges, unknown keys) are written once and worded the same for both.
struct Pos {
  int64_t line = 1;
  int64_t column = 1;
};

struct Member;  // A table's key and value: below, as a Node holds Members.

struct Node {
  enum class Kind { kString, kInteger, kFloat, kBool, kArray, kTable, kOther };
  Kind kind = Kind::kOther;
  Pos pos;
  std::string text;                   // kString
  int64_t integer = 0;                // kInteger
  bool boolean = false;               // kBool
  bool integer_out_of_range = false;  // A JSON integer beyond int64.
  std::vector<Node> items;            // kArray
  std::vector<Member> members;        // kTable, in file order
  std::vector<Pos> key_positions;     // kTable, one per member
};

// Not std::pair<std::string, Node>: a pair needs a complete Node, which the vector in Node
// does not have yet (GCC's library let that through; clang refuses it).
struct Member {
  std::string key;
  Node value;
};

class Reader {
 public:
  Reader(std::string_view source_name, bool json) : source_name_(source_name), json_(json) {}

  absl::Status Error(const Pos& pos, std::string_view message) const {
    return absl::InvalidArgumentError(std::string(source_name_) + ":" + std::to_string(pos.line) +
                                      ":" + std::to_string(pos.column) + ": " +
                                      std::string(message));
  }

  std::string TypeName(const Node& node) const {
    switch (node.kind) {
      case Node::Kind::kString:
        return "a string";
      case Node::Kind::kInteger:
        return "an integer";
      case Node::Kind::kFloat:
        return json_ ? "a fractional number" : "a float";
      case Node::Kind::kBool:
        return "a boolean";
      case Node::Kind::kArray:
        return "an array";
      case Node::Kind::kTable:
        return json_ ? "an object" : "a table";
      case Node::Kind::kOther:
        return json_ ? "null" : "a date or time";
    }
    return "something else";
  }

  absl::Status WrongType(const Node& node, const std::string& name, std::string_view want) const {
    return Error(node.pos, name + " must be " + std::string(want) + ", not " + TypeName(node));
  }

  absl::Status ReadString(const Node& node, const std::string& name, std::string* out) const {
    if (node.kind != Node::Kind::kString) return WrongType(node, name, "a string");
    *out = node.text;
    return absl::OkStatus();
  }

  absl::Status ReadInt(const Node& node, const std::string& name, int64_t min, int64_t max,
                       int64_t* out) const {
    if (node.kind != Node::Kind::kInteger) return WrongType(node, name, "an integer");
    if (node.integer_out_of_range || node.integer < min || node.integer > max) {
      return Error(node.pos, name + " must be an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max));
    }
    *out = node.integer;
    return absl::OkStatus();
  }

  absl::Status ReadStrings(const Node& node, const std::string& name, bool non_empty,
                           std::vector<std::string>* out) const {
    if (node.kind != Node::Kind::kArray) return WrongType(node, name, "an array of strings");
    out->clear();
    for (size_t i = 0; i < node.items.size(); ++i) {
      const Node& item = node.items[i];
      const std::string item_name = name + "[" + std::to_string(i) + "]";
      std::string text;
      OCX_RETURN_IF_ERROR(ReadString(item, item_name, &text));
      if (non_empty && text.empty()) return Error(item.pos, item_name + " must not be empty");
      out->push_back(std::move(text));
    }
    return absl::OkStatus();
  }

 private:
  std::string_view source_name_;
  bool json_;
};

absl::Status ApplyRoot(const Reader& reader, const Node& root, JobFile* job) {
  if (root.kind != Node::Kind::kTable) {
    return reader.WrongType(root, "a job file", "an object of fields");
  }
  std::set<std::string> seen;
  for (size_t m = 0; m < root.members.size(); ++m) {
    const std::string& key = root.members[m].key;
    const Node& node = root.members[m].value;
    const Pos& key_pos = root.key_positions[m];
    if (!seen.insert(key).second) return reader.Error(key_pos, "duplicate key '" + key + "'");
    if (key == "command") {
      OCX_RETURN_IF_ERROR(reader.ReadStrings(node, key, /*non_empty=*/false, &job->command));
      if (job->command.empty()) {
        return reader.Error(node.pos, "command must name a program: [\"prog\", \"arg\", ...]");
      }
      if (job->command[0].empty()) {
        return reader.Error(node.items[0].pos, "command[0] (the program) must not be empty");
      }
    } else if (key == "inputs") {
      OCX_RETURN_IF_ERROR(reader.ReadStrings(node, key, /*non_empty=*/true, &job->inputs));
    } else if (key == "outputs") {
      OCX_RETURN_IF_ERROR(reader.ReadStrings(node, key, /*non_empty=*/true, &job->outputs));
      for (size_t i = 0; i < job->outputs.size(); ++i) {
        if (!IsSafeOutputPath(job->outputs[i])) {
          return reader.Error(node.items[i].pos,
                              "outputs[" + std::to_string(i) +
                                  "] must be a relative path under the task's /work, without "
                                  "'..' or a leading '/', not \"" +
                                  job->outputs[i] + "\"");
        }
      }
    } else if (key == "slots") {
      OCX_RETURN_IF_ERROR(reader.ReadInt(node, key, 1, kJobSlotsMax, &job->slots));
    } else if (key == "tasks") {
      OCX_RETURN_IF_ERROR(reader.ReadInt(node, key, 1, kJobTasksMax, &job->tasks));
    } else if (key == "max_hours") {
      OCX_RETURN_IF_ERROR(reader.ReadInt(node, key, 1, kJobHoursMax, &job->max_hours));
    } else if (key == "timeout_s") {
      int64_t value = 0;
      OCX_RETURN_IF_ERROR(reader.ReadInt(node, key, 1, kJobTimeoutSecondsMax, &value));
      job->timeout_s = value;
    } else if (key == "market") {
      OCX_RETURN_IF_ERROR(reader.ReadString(node, key, &job->market));
      if (job->market.empty()) return reader.Error(node.pos, "market must not be empty");
    } else if (key == "max_price") {
      if (node.kind != Node::Kind::kString) {
        return reader.Error(node.pos,
                            "max_price must be a decimal string like \"0.05\" (exact "
                            "credits per slot-hour), not " +
                                reader.TypeName(node));
      }
      const base::ParsedMicros parsed = base::ParseMicros(node.text);
      if (!parsed.ok() || parsed.micros <= 0) {
        return reader.Error(node.pos,
                            "max_price must be a positive decimal with at most 6 "
                            "fractional digits, like \"0.05\", not \"" +
                                node.text + "\"");
      }
      job->max_price = node.text;
    } else if (key == "constraints") {
      OCX_RETURN_IF_ERROR(reader.ReadString(node, key, &job->constraints));
      if (job->constraints.size() > kJobConstraintsBytesMax) {
        return reader.Error(node.pos, "constraints are at most 4096 bytes");
      }
    } else if (key == "network") {
      if (node.kind != Node::Kind::kBool) return reader.WrongType(node, key, "a boolean");
      job->network = node.boolean;
    } else if (key == "env") {
      if (node.kind != Node::Kind::kTable) {
        return reader.WrongType(node, key, "a table of NAME = \"value\"");
      }
      std::map<std::string, std::string> env;
      for (size_t e = 0; e < node.members.size(); ++e) {
        const auto& [name, value] = node.members[e];
        if (!IsEnvName(name)) {
          return reader.Error(node.key_positions[e],
                              "env name '" + name + "' must match [A-Za-z_][A-Za-z0-9_]*");
        }
        if (env.contains(name)) {
          return reader.Error(node.key_positions[e], "duplicate env name '" + name + "'");
        }
        std::string text;
        OCX_RETURN_IF_ERROR(reader.ReadString(value, "env." + name, &text));
        env[name] = std::move(text);
      }
      job->env.assign(env.begin(), env.end());
    } else {
      return reader.Error(key_pos,
                          "unknown key '" + key +
                              "' (known: command, inputs, outputs, slots, tasks, market, "
                              "max_price, max_hours, constraints, network, env, timeout_s)");
    }
  }
  return absl::OkStatus();
}

// ---- TOML

Pos TomlPos(const toml::source_region& region) {
  return Pos{static_cast<int64_t>(region.begin.line), static_cast<int64_t>(region.begin.column)};
}

Node FromToml(const toml::node& node) {
  Node out;
  out.pos = TomlPos(node.source());
  if (const auto* s = node.as_string()) {
    out.kind = Node::Kind::kString;
    out.text = s->get();
  } else if (const auto* i = node.as_integer()) {
    out.kind = Node::Kind::kInteger;
    out.integer = i->get();
  } else if (node.as_floating_point() != nullptr) {
    out.kind = Node::Kind::kFloat;
  } else if (const auto* b = node.as_boolean()) {
    out.kind = Node::Kind::kBool;
    out.boolean = b->get();
  } else if (const auto* a = node.as_array()) {
    out.kind = Node::Kind::kArray;
    for (const toml::node& item : *a) out.items.push_back(FromToml(item));
  } else if (const auto* t = node.as_table()) {
    out.kind = Node::Kind::kTable;
    for (const auto& [key, value] : *t) {
      out.members.push_back(Member{std::string(key.str()), FromToml(value)});
      out.key_positions.push_back(TomlPos(key.source()));
    }
  }
  return out;
}

// ---- JSON: nlohmann checks the syntax (and reports its errors); Locator then walks the same,
// valid text to find where each value and key starts, which nlohmann does not keep, and keeps
// repeated keys so that they can be refused.

class Locator {
 public:
  explicit Locator(std::string_view text) : text_(text) {}

  // Builds the located tree of the text, which nlohmann already found to be valid JSON.
  Node Build() {
    SkipSpace();
    return Value();
  }

 private:
  Pos Here() const { return Pos{line_, static_cast<int64_t>(at_ - line_start_) + 1}; }

  void Advance() {
    if (at_ < text_.size() && text_[at_] == '\n') {
      ++line_;
      line_start_ = at_ + 1;
    }
    ++at_;
  }

  void SkipSpace() {
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) {
      Advance();
    }
  }

  // Consumes a string (at its opening quote) and returns it decoded.
  std::string String() {
    const size_t start = at_;
    Advance();
    while (at_ < text_.size() && text_[at_] != '"') {
      if (text_[at_] == '\\') Advance();
      Advance();
    }
    Advance();
    const nlohmann::json decoded =
        nlohmann::json::parse(text_.substr(start, at_ - start), nullptr, false);
    return decoded.is_string() ? decoded.get<std::string>() : std::string();
  }

  // Consumes the value at the current position.
  Node Value() {
    Node out;
    out.pos = Here();
    const char c = at_ < text_.size() ? text_[at_] : '\0';
    if (c == '{') {
      out.kind = Node::Kind::kTable;
      Advance();
      SkipSpace();
      while (at_ < text_.size() && text_[at_] != '}') {
        const Pos key_pos = Here();
        std::string key = String();
        SkipSpace();
        Advance();  // ':'
        SkipSpace();
        out.members.push_back(Member{std::move(key), Value()});
        out.key_positions.push_back(key_pos);
        SkipSpace();
        if (at_ < text_.size() && text_[at_] == ',') {
          Advance();
          SkipSpace();
        }
      }
      Advance();  // '}'
    } else if (c == '[') {
      out.kind = Node::Kind::kArray;
      Advance();
      SkipSpace();
      while (at_ < text_.size() && text_[at_] != ']') {
        out.items.push_back(Value());
        SkipSpace();
        if (at_ < text_.size() && text_[at_] == ',') {
          Advance();
          SkipSpace();
        }
      }
      Advance();  // ']'
    } else if (c == '"') {
      out.kind = Node::Kind::kString;
      out.text = String();
    } else {
      const size_t start = at_;
      while (at_ < text_.size() && text_[at_] != ',' && text_[at_] != '}' && text_[at_] != ']' &&
             text_[at_] != ' ' && text_[at_] != '\t' && text_[at_] != '\n' && text_[at_] != '\r') {
        Advance();
      }
      const nlohmann::json scalar =
          nlohmann::json::parse(text_.substr(start, at_ - start), nullptr, false);
      if (scalar.is_boolean()) {
        out.kind = Node::Kind::kBool;
        out.boolean = scalar.get<bool>();
      } else if (scalar.is_number_unsigned()) {
        out.kind = Node::Kind::kInteger;
        const uint64_t value = scalar.get<uint64_t>();
        out.integer_out_of_range = value > static_cast<uint64_t>(INT64_MAX);
        out.integer = out.integer_out_of_range ? INT64_MAX : static_cast<int64_t>(value);
      } else if (scalar.is_number_integer()) {
        out.kind = Node::Kind::kInteger;
        out.integer = scalar.get<int64_t>();
      } else if (scalar.is_number_float()) {
        // An integer literal beyond uint64 reads as a float: it is still an integer, too big.
        const std::string_view literal = text_.substr(start, at_ - start);
        const bool integral = literal.find_first_of(".eE") == std::string_view::npos;
        out.kind = integral ? Node::Kind::kInteger : Node::Kind::kFloat;
        out.integer_out_of_range = integral;
        out.integer = literal.starts_with('-') ? INT64_MIN : INT64_MAX;
      }
    }
    return out;
  }

  std::string_view text_;
  size_t at_ = 0;
  int64_t line_ = 1;
  size_t line_start_ = 0;
};

// Line and column of a byte offset, for nlohmann's syntax errors.
Pos PosOfOffset(std::string_view text, size_t offset) {
  Pos pos;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++pos.line;
      line_start = i + 1;
    }
  }
  pos.column = static_cast<int64_t>(std::min(offset, text.size()) - line_start) + 1;
  return pos;
}

// The offset of the first '[' or '{' of the valid JSON `text` that opens more than `depth_max`
// levels, or npos.
size_t FindNestedDeeperThan(std::string_view text, int depth_max) {
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (c == '[' || c == '{') {
      if (++depth > depth_max) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsSafeOutputPath(std::string_view path) {
  if (path.empty() || path.size() > 4096 || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (part.find('\0') != std::string_view::npos) return false;
    start = end + 1;
  }
  return true;
}

absl::StatusOr<JobFile> ParseJobToml(std::string_view text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(
        base::AtSource(error.source(), source_name, std::string(error.description())));
  }
  Node tree = FromToml(root);
  tree.pos = Pos{1, 1};
  JobFile job;
  OCX_RETURN_IF_ERROR(ApplyRoot(Reader(source_name, /*json=*/false), tree, &job));
  return job;
}

absl::StatusOr<JobFile> ParseJobJson(std::string_view text, std::string_view source_name) {
  try {
    const nlohmann::json checked = nlohmann::json::parse(text);
    if (checked.is_discarded()) return absl::InvalidArgumentError(std::string(source_name));
  } catch (const nlohmann::json::parse_error& error) {
    // nlohmann's byte is 1-based and points at the character it could not take.
    const Pos pos = PosOfOffset(text, error.byte > 0 ? error.byte - 1 : 0);
    std::string what = error.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: syntax error while
    // parsing value - invalid literal; last read: 'x'": keep what follows "parse error ...: ".
    if (const size_t colon = what.find(": "); colon != std::string::npos) {
      what = what.substr(colon + 2);
    }
    return absl::InvalidArgumentError(std::string(source_name) + ":" + std::to_string(pos.line) +
                                      ":" + std::to_string(pos.column) + ": " + what);
  } catch (const nlohmann::json::exception& error) {
    // Not a syntax error, and without a position: a number too large for a double
    // ("[json.exception.out_of_range.406] number overflow parsing '1e999'").
    std::string what = error.what();
    if (const size_t bracket = what.find("] "); bracket != std::string::npos) {
      what = what.substr(bracket + 2);
    }
    return absl::InvalidArgumentError(std::string(source_name) + ": " + what);
  }
  // The Locator recurses once per level: refuse deep nesting before it runs out of stack.
  if (const size_t deep = FindNestedDeeperThan(text, kJobFileDepthMax);
      deep != std::string_view::npos) {
    const Pos pos = PosOfOffset(text, deep);
    return absl::InvalidArgumentError(std::string(source_name) + ":" + std::to_string(pos.line) +
                                      ":" + std::to_string(pos.column) + ": nested deeper than " +
                                      std::to_string(kJobFileDepthMax) + " levels");
  }
  Locator locator(text);
  const Node tree = locator.Build();
  JobFile job;
  OCX_RETURN_IF_ERROR(ApplyRoot(Reader(source_name, /*json=*/true), tree, &job));
  return job;
}

absl::StatusOr<JobFile> LoadJobFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::InvalidArgumentError("cannot read the job file " + path + ": not a regular file");
  }
  const auto size = std::filesystem::file_size(path, error);
  if (error) return absl::InvalidArgumentError("cannot read the job file " + path);
  if (size > kJobFileBytesMax) {
    return absl::InvalidArgumentError("the job file " + path + " is larger than 1 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError("cannot read the job file " + path);
  std::stringstream text;
  text << in.rdbuf();
  const bool json = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  absl::StatusOr<JobFile> job =
      json ? ParseJobJson(text.str(), path) : ParseJobToml(text.str(), path);
  if (!job.ok()) return job.status();
  job->base_dir = std::filesystem::path(path).parent_path().string();
  return job;
}

absl::Status CheckJobComplete(const JobFile& job, std::string_view source_name) {
  const std::string where(source_name);
  if (job.command.empty()) {
    return absl::InvalidArgumentError(
        where + ": no command: set command = [\"prog\", \"arg\", ...] or give it after '--'");
  }
  if (job.command[0].empty()) {
    return absl::InvalidArgumentError(where + ": the command's program must not be empty");
  }
  if (job.max_price.empty()) {
    return absl::InvalidArgumentError(
        where + ": no max price: set max_price = \"0.05\" (credits per slot-hour) or --max-price");
  }
  const base::ParsedMicros price = base::ParseMicros(job.max_price);
  if (!price.ok() || price.micros <= 0) {
    return absl::InvalidArgumentError(where +
                                      ": the max price must be a positive decimal with at most 6 "
                                      "fractional digits, like 0.05, not '" +
                                      job.max_price + "'");
  }
  if (job.slots < 1 || job.slots > kJobSlotsMax) {
    return absl::InvalidArgumentError(where + ": slots must be from 1 to 1000000");
  }
  if (job.tasks < 1 || job.tasks > kJobTasksMax) {
    return absl::InvalidArgumentError(where + ": tasks must be from 1 to 1000");
  }
  if (job.max_hours < 1 || job.max_hours > kJobHoursMax) {
    return absl::InvalidArgumentError(where + ": max hours must be from 1 to 744");
  }
  if (job.timeout_s && (*job.timeout_s < 1 || *job.timeout_s > kJobTimeoutSecondsMax)) {
    return absl::InvalidArgumentError(where + ": the timeout must be from 1 to 604800 seconds");
  }
  if (job.market.empty()) return absl::InvalidArgumentError(where + ": the market is empty");
  for (const auto& [name, value] : job.env) {
    if (!IsEnvName(name)) {
      return absl::InvalidArgumentError(where + ": env name '" + name +
                                        "' must match [A-Za-z_][A-Za-z0-9_]*");
    }
  }
  for (const std::string& output : job.outputs) {
    if (!IsSafeOutputPath(output)) {
      return absl::InvalidArgumentError(where + ": output '" + output +
                                        "' must be a relative path without '..'");
    }
  }
  if (job.constraints.size() > kJobConstraintsBytesMax) {
    return absl::InvalidArgumentError(where + ": the constraints are longer than 4096 bytes");
  }
  return absl::OkStatus();
}

}  // namespace ocx::cli
