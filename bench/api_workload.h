// `ocx bench api`: orders placed per second over the exchange's HTTP API (keep-alive
// connections) or its WebSocket order entry, with latency percentiles. The load generator
// is our own (Boost.Beast, asynchronous, one thread), so generator and server share this
// machine as the target says ("generator included").
//
// Without a URL the benchmark starts an exchange in this process on a temporary directory
// (real journal with fsync, real SQLite store, real HTTP on loopback), creates one consumer
// account per connection through the API, funds it, and drives it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ocx::bench {

struct ApiBenchOptions {
  std::string url;          // Empty: start an exchange in-process.
  std::string operator_token;  // With --url: used to create and fund the accounts.
  std::string data_dir;     // In-process exchange's directory (empty: a temporary one).
  std::string transport = "http";  // http | ws
  // ioc: limit buys that find nothing to trade (accepted, held, journaled, cancelled unfilled,
  //      released): one request per order, the book stays empty.
  // rest: gtc limit buys that rest; each connection cancels its oldest past 50 resting, so
  //      in steady state every order is followed by one cancel (also timed).
  std::string workload = "ioc";
  int connections = 64;
  double seconds = 5;
  double warmup_seconds = 1;
  int io_threads = 2;  // Of the in-process exchange.
};

struct ApiBenchResult {
  uint64_t orders = 0;    // Orders acknowledged (2xx / order_placed) in the measured window.
  uint64_t requests = 0;  // All requests answered in the window (orders + cancels).
  uint64_t errors = 0;    // Answers that were not a success.
  std::string first_error;
  double seconds = 0;
  double orders_per_second = 0;
  double requests_per_second = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;  // Per request.
  // CPU time (user + system) of this whole process, exchange and generator together, per
  // request answered, from the first request (warm-up included) to the last. It moves much
  // less from run to run than the rate, which follows the disk's sync time.
  double cpu_us_per_request = 0;
  // The same by thread name (ocx-io, ocx-store, ocx-generator, ...; threads of one name
  // summed), from the kernel's per-thread run time, largest first.
  std::vector<std::pair<std::string, double>> cpu_us_per_request_by_thread;
};

absl::StatusOr<ApiBenchResult> RunApiBench(const ApiBenchOptions& options);

}  // namespace ocx::bench
