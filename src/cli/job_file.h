// Job spec files for `ocx run job.toml` / `ocx run job.json` (docs/formats/job-file.md): what
// to run, on how many machines, with which local inputs, and at what price at most. The file is
// the consumer's side of a job; job_runner.h turns it into inputs uploaded as blobs and a
// `POST /v1/jobs` request (docs/formats/job.md).
//
// Parsing is strict: unknown keys and mistyped values are errors that name the file, the line
// and the column ("job.toml:3:1: unknown key 'slot'"), so a typo never silently falls back to a
// default. Values are range-checked here (the exchange checks them again).
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::cli {

// Bounds of the exchange (docs/formats/job.md, docs/formats/task.md), checked early so that a
// bad file fails before any upload.
inline constexpr int64_t kJobTasksMax = 1000;
inline constexpr int64_t kJobSlotsMax = 1'000'000;
inline constexpr int64_t kJobHoursMax = 744;
inline constexpr int64_t kJobTimeoutSecondsMax = 7 * 24 * 3600;
inline constexpr size_t kJobConstraintsBytesMax = 4096;
inline constexpr size_t kJobFileBytesMax = 1 << 20;
inline constexpr int kJobFileDepthMax = 64;  // Nested JSON arrays and objects.

struct JobFile {
  std::vector<std::string> command;  // argv; empty: not given (then required from flags).
  // Local files or folders (folders recursively). A relative path keeps its place under the
  // task's /work ("data/in.bin" -> /work/data/in.bin); an absolute one (or one with "..")
  // lands under its last component. Read relative to `base_dir`.
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;  // Relative paths under /work brought back.
  int64_t slots = 1;                 // Per task (one machine).
  int64_t tasks = 1;
  std::string market = "cpu";
  std::string max_price;  // Decimal credits per slot-hour; empty: not given.
  int64_t max_hours = 1;
  std::string constraints;  // Discovery query (docs/formats/query.md); empty: any machine.
  bool network = false;
  std::vector<std::pair<std::string, std::string>> env;  // Sorted by name, names unique.
  std::optional<int64_t> timeout_s;
  // The directory relative inputs are read from: the job file's own directory, "" for the
  // current one (flags).
  std::string base_dir;
};

// Parse a job file's text. `source_name` prefixes every error ("job.toml:3:1: ...").
absl::StatusOr<JobFile> ParseJobToml(std::string_view text, std::string_view source_name);
absl::StatusOr<JobFile> ParseJobJson(std::string_view text, std::string_view source_name);

// Reads `path` (at most kJobFileBytesMax) and parses it by its extension: ".json" is JSON,
// anything else TOML. base_dir is set to the file's directory.
absl::StatusOr<JobFile> LoadJobFile(const std::string& path);

// Checks what a runnable job needs beyond a well-formed file (after flags were applied):
// a command, a max price that is a positive decimal with at most 6 digits, env names. The
// error names `source_name` ("job.toml: no command: ...").
absl::Status CheckJobComplete(const JobFile& job, std::string_view source_name);

// Validators shared with the flags of `ocx run`.
bool IsEnvName(std::string_view name);
bool IsSafeOutputPath(std::string_view path);  // Relative, no "..", no empty or "." part.

}  // namespace ocx::cli
