// The agent's task runner: runs a task (docs/formats/task.md; the spec is task_spec.h) in the
// sandbox with the lease's slots (inputs fetched and checked, logs streamed and kept,
// outputs collected without following links out of the job's directory) and builds the
// task result. Everything the job leaves behind is wiped when RunTask() returns.
//
// Thread-safety: the free functions keep no state. RunTask() blocks its caller for the
// whole task; several may run at once (one per lease) on different threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/protocol/task_spec.h"
#include "src/sandbox/sandbox.h"

namespace ocx::agent {

using protocol::TaskInput;
using protocol::TaskSpec;
using protocol::IsSafeRelativePath;
using protocol::kTaskPathBytesMax;
using protocol::ParseTaskSpec;
using protocol::TaskSpecToJson;


// The task result (docs/formats/task.md) is at most this long, dumped.
inline constexpr size_t kTaskResultBytesMax = 64 * 1024;
// Regular files collected below the outputs (more are left out, and the message says so).
// The result's own 64 KiB bound usually lists fewer: those that fit are listed.
inline constexpr size_t kTaskOutputFilesMax = 10'000;
// Directory entries looked at while collecting outputs, and how deep below an output.
inline constexpr size_t kTaskOutputEntriesVisitedMax = 100'000;
inline constexpr int kTaskOutputDepthMax = 64;
// The result's `message`, in bytes.
inline constexpr size_t kTaskMessageBytesMax = 1024;

// SHA-256 of a file's bytes as 64 lowercase hex digits. Does not follow a final symlink.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// The exchange's default bound on one blob (`blob_bytes_max`, docs/formats/config.md).
inline constexpr uint64_t kDefaultBlobBytesMax = uint64_t{64} << 20;
// At most this many names of left-out outputs are listed in a result's message (all count).
inline constexpr size_t kTaskMessageNamesMax = 3;

// How the agent moves blobs (the exchange's /v1/blobs; tests pass functions over a local
// directory). Both functions must be set. Called on RunTask()'s thread.
struct TaskBlobs {
  // Writes blob `sha256` to `dest_path`, a new file. The runner checks the digest and the
  // size itself afterwards.
  std::function<absl::Status(const std::string& sha256, const std::string& dest_path)> fetch;
  // Uploads the first `size` bytes of `fd`, a regular file the runner opened (without
  // following links) and checked; read them with pread from offset 0, so what is sent is the
  // file checked, whatever its path names by then. The runner keeps the descriptor. Returns
  // the blob's sha256 (lowercase hex). ResourceExhausted means the exchange refused the blob
  // for its size or the account's blob quota (HTTP 413): the runner then leaves that output
  // (or log) out of the result and says so in its message rather than failing the task.
  std::function<absl::StatusOr<std::string>(int fd, uint64_t size)> upload;
  // The exchange's bound on one blob. An output file larger than this is not uploaded: it
  // is left out of the result and named in its message. A log is cut to it (and marked
  // truncated), and the sandbox keeps no more of each stream. Positive.
  uint64_t blob_bytes_max = kDefaultBlobBytesMax;
};

struct TaskRunOptions {
  // The task gets work_root/lease-<id>/ (mode 0711): work/ is the job's /work, logs/ (0700,
  // outside the job's reach) holds its stdout and stderr files. work_root is made (0711)
  // when missing, its parent must exist; as root, every ancestor of work_root must be
  // searchable by the sandbox's job uid (mode o+x), as JobSpec::work_dir requires.
  std::string work_root;
  int slots = 1;
  // The machine's policy: a spec asking for network when not allowed gets status "error".
  bool network_allowed = false;
  // Live output (stream is "stdout" or "stderr"); raw bytes as the job wrote them, called
  // on RunTask()'s thread while the job runs. Optional.
  std::function<void(std::string_view stream, std::string_view chunk)> on_log;
  // Called right before the sandbox starts the job (not at all when nothing runs). Optional.
  std::function<void()> on_started;
  // The lease ended: the job is killed and the status is "cancelled". Optional, not owned.
  const sandbox::CancelToken* cancel = nullptr;
};

// A sandbox prepared before its task is known (Sandbox::Prepare), with the directory it is
// bound to: `dir`/work is the job's /work. PrepareWarmStart makes one; RunTask renames `dir`
// to the lease's directory and hands the job to the waiting sandbox, which skips the
// sandbox's start-up (about 10 ms here) on the way from the trade to the job running.
struct WarmStart {
  std::string dir;  // warm_root/<name>, later work_root/lease-<id>
  std::unique_ptr<sandbox::PreparedSandbox> prepared;
  bool used = false;  // set by RunTask when the job ran in it
};

// Makes warm_root/`name` (0711) with work/ (0700) in it and prepares a sandbox for it, whose
// /tmp may hold `tmp_bytes`. warm_root is made (0711) when missing; it must be on the file
// system of the work_root that RunTask will move the directory to, and reachable by the
// job's uid like work_root. The directory is wiped again on failure.
absl::StatusOr<WarmStart> PrepareWarmStart(sandbox::Sandbox& sandbox, const std::string& warm_root,
                                           const std::string& name, int64_t tmp_bytes);

// Runs one task to its end and returns the task result of docs/formats/task.md:
// - Always an object with every field (status, exit_code, term_signal, wall_ms, cpu_ms,
//   peak_memory_mib, stdout, stderr, outputs, missing_outputs, message), at most
//   kTaskResultBytesMax long with nlohmann's default dump(), every string valid UTF-8.
// - When no job ran (status "error", or "cancelled" before the start) exit_code is -1 and
//   stdout/stderr are null; the job never runs after any input problem. peak_memory_mib is
//   0 where the kernel does not report it.
// - A cancelled job's logs are uploaded, its outputs are not collected. A failed upload
//   makes the status "error" (exit_code etc. still say how the job ended), except a blob the
//   exchange refused for its size or quota: that output is left out (a log: null) and named
//   in the message.
// - Output files larger than blobs.blob_bytes_max are not uploaded: left out and named in
//   the message. Logs keep at most blobs.blob_bytes_max bytes (then `truncated`).
// - Output files whose names are not UTF-8, that lie deeper than kTaskOutputDepthMax, that
//   come after kTaskOutputFilesMax, or that do not fit in the result are left out and
//   counted in the message. Symbolic links (also as folders on the way) are never followed:
//   a spec output that is one is listed in missing_outputs.
// - A spec built in code must be one that ParseTaskSpec would give (checked that way).
// - The lease directory is always wiped before returning, unless it existed before (then
//   the status is "error" and the directory is left alone).
// Never throws.
// - `warm` (optional): a WarmStart from PrepareWarmStart, used in place of a new lease
//   directory and sandbox (not for a spec with network, which starts afresh). Its sandbox,
//   and its directory wherever it is, are gone when RunTask returns.
nlohmann::json RunTask(sandbox::Sandbox& sandbox, uint64_t lease, const TaskSpec& spec,
                       const TaskRunOptions& options, const TaskBlobs& blobs,
                       WarmStart* warm = nullptr);

}  // namespace ocx::agent
