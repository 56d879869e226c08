// `ocx bench dispatch`: how long from a trade to the leased job's process starting in the
// sandbox on a local provider agent (docs/benchmarks.md, "`ocx bench dispatch`").
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ocx::bench {

struct DispatchBenchOptions {
  int leases = 200;      // Measured leases (one slot each, one after the other).
  int slots = 4;         // The agent machine's cpu slots.
  std::string data_dir;  // The exchange's and the agent's directories go below it.
  int warm_sandboxes = 1;  // The agent's AgentOptions::warm_sandboxes (0: every job afresh).
};

struct DispatchBenchResult {
  int leases = 0;
  // Trade (the buy that filled was sent) -> the job's first output reaches the agent (the
  // job's process is running in the sandbox).
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  // Trade -> the agent hands the job to the sandbox (before bubblewrap starts).
  double launch_p50_ms = 0, launch_p99_ms = 0;
  // Of that: the buyer's POST of the task after its trade returned.
  double task_post_p50_ms = 0;
  int prewarmed = 0;  // Leases whose job ran in a sandbox the agent had prepared.
  int retries = 0;  // Buys that found no offer (another buyer's doing; none here) and retried.
  double seconds = 0;
};

// Starts an exchange and an agent in this process (root: the real sandbox), a funded buyer,
// and runs `leases` leases each with the task {"command":["echo","running"]}.
absl::StatusOr<DispatchBenchResult> RunDispatchBench(const DispatchBenchOptions& options);

}  // namespace ocx::bench
