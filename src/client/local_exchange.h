// LocalExchange: an `ocx exchange` running as a child process on loopback, on a port the OS
// chose, with its data in a directory of the caller's: what `ocx demo`, `ocx bench dispatch`
// and the end-to-end tests run the market on, exactly as it runs in production.
//
// Start forks and execs `binary exchange --data-dir D --port 0 --port-file F` (its output goes
// to D/../exchange.log), waits for the port file, and reads the operator token the exchange
// made. The destructor (or Stop) sends SIGTERM and reaps it; Kill sends SIGKILL.
// Thread-compatible.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ocx::client {

struct LocalExchangeOptions {
  std::string binary = "/proc/self/exe";  // The `ocx` executable.
  std::string data_dir;                   // The exchange's own data directory (created).
  std::string log_file;                   // Default: <data_dir>.log
  std::string log_level = "warn";
  std::vector<std::string> extra_args;    // More `ocx exchange` flags.
  int start_timeout_ms = 20'000;
};

class LocalExchange {
 public:
  static absl::StatusOr<std::unique_ptr<LocalExchange>> Start(LocalExchangeOptions options);
  ~LocalExchange();
  LocalExchange(const LocalExchange&) = delete;
  LocalExchange& operator=(const LocalExchange&) = delete;

  const std::string& url() const { return url_; }    // http://127.0.0.1:PORT
  int port() const { return port_; }
  const std::string& operator_token() const { return operator_token_; }
  const std::string& log_file() const { return options_.log_file; }
  pid_t pid() const { return pid_; }

  // SIGTERM and wait: the exchange shuts down cleanly. Idempotent. The exit status, or -1.
  int Stop();
  // SIGKILL and wait (crash tests).
  void Kill();

 private:
  explicit LocalExchange(LocalExchangeOptions options) : options_(std::move(options)) {}

  LocalExchangeOptions options_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
  std::string operator_token_;
};

}  // namespace ocx::client
