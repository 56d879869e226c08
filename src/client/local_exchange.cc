#include "src/client/local_exchange.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace ocx::client {

absl::StatusOr<std::unique_ptr<LocalExchange>> LocalExchange::Start(LocalExchangeOptions options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("LocalExchange needs a data_dir");
  if (options.log_file.empty()) options.log_file = options.data_dir + ".log";
  std::error_code ignored;
  std::filesystem::create_directories(options.data_dir, ignored);
  const std::string port_file = options.data_dir + "/exchange.port";
  std::filesystem::remove(port_file, ignored);

  std::vector<std::string> args = {"ocx",      "exchange",   "--data-dir", options.data_dir,
                                   "--port",   "0",          "--port-file", port_file,
                                   "--log-level", options.log_level};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  auto exchange = std::unique_ptr<LocalExchange>(new LocalExchange(std::move(options)));
  const pid_t child = ::fork();
  if (child < 0) return absl::InternalError("fork failed");
  if (child == 0) {
    const int log = ::open(exchange->options_.log_file.c_str(),
                           O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::execv(exchange->options_.binary.c_str(), argv.data());
    ::_exit(127);
  }
  exchange->pid_ = child;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(exchange->options_.start_timeout_ms);
  while (exchange->port_ == 0) {
    int port = 0;
    std::ifstream in(port_file);
    if (in >> port && port > 0) {
      exchange->port_ = port;
      break;
    }
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) {
      exchange->pid_ = -1;
      return absl::UnavailableError("the exchange exited at start-up; see its log in " +
                                    exchange->options_.log_file);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError("the exchange did not start in time; see its log in " +
                                         exchange->options_.log_file);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  exchange->url_ = "http://127.0.0.1:" + std::to_string(exchange->port_);
  std::ifstream(exchange->options_.data_dir + "/operator.token") >> exchange->operator_token_;
  if (exchange->operator_token_.empty()) {
    return absl::InternalError("the exchange started without an operator token in " +
                               exchange->options_.data_dir);
  }
  return exchange;
}

LocalExchange::~LocalExchange() { Stop(); }

int LocalExchange::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void LocalExchange::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace ocx::client
