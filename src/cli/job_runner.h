// RunJob: the library behind `ocx run` (and `ocx demo`). It takes a parsed job file and drives
// one job on an exchange from start to bill:
//   1. uploads each local input once (HEAD, then PUT /v1/blobs/{sha256}, streamed from the
//      open file: no input is ever held whole in memory), with a progress bar when `out` is a
//      terminal; an input over kJobInputBytesMax is refused before anything is sent;
//   2. opens /v1/stream, authenticates and subscribes to `leases` BEFORE submitting, so no
//      message about the job can be missed; submits POST /v1/jobs (Idempotency-Key);
//   3. follows the job: job_task / task_assigned / task_log / task_finished / lease_ended /
//      job_ended messages, and GET /v1/jobs/{id} about every second as a fallback, so a lost
//      message cannot hang it; while tasks wait, says why every few seconds (best ask against
//      the max price, machines matching the constraints);
//   4. downloads each finished task's outputs and stdout/stderr into
//      <output_dir>/task-<i>/ (never outside: result paths with ".." or "/" are refused, and
//      so are symbolic links in the way), checking every blob's SHA-256;
//   5. waits for the job's leases to end (billing is final then) and builds the bill from the
//      leases (escrow at the start minus the refund = bill + fees), cross-checked against the
//      ledger's movements out of escrow for each lease.
// When *cancel becomes true it cancels the job (DELETE /v1/jobs/{id}), waits for the tasks to
// end (at most cancel_grace_ms for the killed tasks' results) and returns the bill so far.
//
// Thread-safety: RunJob uses its own connections; several may run at once. `cancel` may be set
// from any thread or a signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/base/unique_fd.h"
#include "src/cli/job_file.h"
#include "src/client/http_client.h"

namespace ocx::cli {

// Bounds on what a job brings along.
inline constexpr size_t kJobInputFilesMax = 10'000;                // As the task spec.
inline constexpr uint64_t kJobInputBytesMax = uint64_t{64} << 20;  // Per file: the blob limit.
// How long RunJob waits, once the job is over, for its leases to end and results to come.
inline constexpr int64_t kJobSettleMs = 60'000;

struct JobRunOptions {
  std::string exchange_url;  // http://127.0.0.1:PORT
  std::string token;         // The consumer's API token.
  JobFile job;               // Parsed spec (command, inputs, outputs, ...); CheckJobComplete'd.
  // Outputs land in <output_dir>/task-<i>/..., with stdout.log and stderr.log; empty:
  // ./ocx-out/job-<id>.
  std::string output_dir;
  bool show_progress = true;    // Upload progress bar (only when `out` is std::cout or std::cerr
                                // and that stream is a terminal).
  bool stream_logs = true;      // Print task_log lines prefixed "[task i] ".
  std::string idempotency_key;  // Empty: random.
  // Added for tests and the demo; the defaults suit people.
  int64_t poll_interval_ms = 1000;            // GET /v1/jobs/{id} fallback.
  int64_t waiting_report_interval_ms = 5000;  // "task 0 waits: ..." lines.
  int64_t cancel_grace_ms = 20'000;           // After a cancel: wait for killed tasks' results.
  bool verify_with_ledger = true;             // Cross-check each lease's cost with the ledger.
};

struct TaskBill {
  int index = 0;
  uint64_t lease = 0;  // 0: the task never got a machine.
  uint64_t machine = 0;
  std::string machine_name;
  std::string price;  // Per slot-hour.
  int64_t seconds = 0;
  std::string cost;    // Billed + buyer fee, from the lease (escrow at start - refund).
  std::string status;  // The result's status (succeeded, failed, ...), else lost/cancelled/...
  int exit_code = -1;
  // Added: what the ledger moved out of escrow for this lease ("" when not checked), and
  // the lease's state when the bill was made ("ended", or "active" if it did not end in time).
  std::string ledger_cost;
  std::string lease_status;
  int attempt = 1;
};

struct JobReport {
  uint64_t job = 0;
  std::string state;  // done, cancelled (or active when it could not be followed to the end).
  std::vector<TaskBill> tasks;  // One per lease (a retried task has several), or per task
                                // that never got one; by task index, then attempt.
  std::string total;
  bool all_succeeded = false;
  // Added: where outputs went, and whether every lease's cost matched the ledger.
  std::string output_dir;
  bool ledger_matches = true;
};

// Prints progress to `out` as it goes; returns when the job is over or *cancel becomes true
// (then it cancels the job with DELETE /v1/jobs/{id} and waits for the tasks to end).
// Errors: InvalidArgument for a bad job (unreadable input, refused spec or constraints:
// nothing was submitted), others for a failed run. `cancel` may be null.
absl::StatusOr<JobReport> RunJob(const JobRunOptions& options, std::ostream& out,
                                 const std::atomic<bool>* cancel);

// The bill as a table, and as JSON (`ocx run --json`).
void PrintBill(const JobReport& report, std::ostream& out);
nlohmann::json JobReportJson(const JobReport& report);

// ---- Helpers shared with the other consumer commands (consumer_command.cc).

// One input file as it will be placed in the task's /work.
struct InputFile {
  std::string local_path;
  std::string remote_path;
  uint64_t size = 0;
  bool executable = false;
};
// Expands the job's inputs (folders recursively) relative to job.base_dir. InvalidArgument
// for a missing path, a clash of two inputs on one remote path, too many or too large files.
absl::StatusOr<std::vector<InputFile>> PlanInputs(const JobFile& job);

// A local input opened for its upload: its size and SHA-256 as read from this open file,
// which is what PutInput sends (so a file changed after planning is sent as hashed, or not
// at all).
struct OpenedInput {
  std::string path;
  base::UniqueFd fd;
  uint64_t size = 0;
  std::string sha256;
};
// Opens and hashes one input. InvalidArgument naming the file when it cannot be read, is
// not a regular file, or is larger than `bytes_max` (the blob limit): nothing is sent then.
absl::StatusOr<OpenedInput> OpenInput(const std::string& path, uint64_t bytes_max);

// Makes sure the exchange holds the input's blob: HEAD /v1/blobs/{sha256}, and when it is
// not there PUT it, streamed from the open file. Returns whether it was sent. A refusal
// names the file: ResourceExhausted for one over the exchange's limit or the account's blob
// quota (HTTP 413).
absl::StatusOr<bool> PutInput(client::HttpClient& http, const OpenedInput& input);

// A JSON call: the answer's body (null when empty) for a 2xx; a refusal becomes the
// ExchangeClient's ApiError status, and `error_body`, when given, receives the refusal's
// whole body (for fields beyond code and message, such as a query error's "column").
absl::StatusOr<nlohmann::json> CallJson(
    client::HttpClient& http, std::string_view method, std::string_view target,
    const nlohmann::json* body = nullptr,
    const std::vector<std::pair<std::string, std::string>>& headers = {},
    nlohmann::json* error_body = nullptr);

// The query, a caret under the 1-based byte `column`, and the message:
//   region == eu
//             ^ column 11: expected a string
std::string CaretUnder(std::string_view query, int column, std::string_view message);

// The reason in an exchange's query error message ("The query is not valid, column 7: why"
// -> "why"), for CaretUnder; the whole message when it has no such part.
std::string QueryErrorReason(const std::string& message, int column);

// Writes `data` to <root>/<relative> creating folders, refusing a relative path that is not
// safe (IsSafeOutputPath) and any symbolic link on the way.
absl::Status WriteUnder(const std::string& root, const std::string& relative,
                        std::string_view data);

// Percent-encodes a query parameter value.
std::string UrlEncode(std::string_view text);

// The account a token belongs to (the stream's "authenticated" answer).
absl::StatusOr<uint64_t> WhoAmI(const std::string& exchange_url, const std::string& token);

}  // namespace ocx::cli
