// `ocx exchange`: runs the exchange server (src/server/exchange_server.h) until SIGTERM or
// SIGINT, then stops it gracefully. Configuration: a TOML file (docs/formats/config.md) and
// flags, the flags winning.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"
#include "src/base/clock.h"
#include "src/cli/commands.h"
#include "src/server/exchange_server.h"

namespace ocx::cli {
namespace {

struct ExchangeFlags {
  std::string config_file;
  std::optional<std::string> listen;
  std::optional<int> port;
  std::optional<std::string> data_dir;
  std::optional<int> io_threads;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> log_level;
  std::optional<std::string> web_dir;
  std::string port_file;
  bool print_config = false;
};

// One JSON object per line; messages are ours and never hold secrets (tokens are not logged).
void SetUpLogging(const api::ServerConfig& config) {
  std::shared_ptr<spdlog::logger> logger;
  if (config.log_file.empty()) {
    logger = spdlog::stderr_logger_mt("ocx");
  } else {
    logger = spdlog::basic_logger_mt("ocx", config.log_file);
  }
  logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","msg":"%v"})",
                      spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(config.log_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int RunExchange(const ExchangeFlags& flags) {
  if (flags.print_config) {
    std::fputs(api::ExampleServerConfigToml().c_str(), stdout);
    return 0;
  }
  api::ServerConfig config;
  if (!flags.config_file.empty()) {
    auto loaded = api::LoadServerConfig(flags.config_file);
    if (!loaded.ok()) {
      std::fprintf(stderr, "ocx exchange: %s\n", std::string(loaded.status().message()).c_str());
      return 2;
    }
    config = *loaded;
  }
  if (flags.listen) config.listen_address = *flags.listen;
  if (flags.port) {
    if (*flags.port < 0 || *flags.port > 65535) {
      std::fprintf(stderr, "ocx exchange: --port must be 0 to 65535\n");
      return 2;
    }
    config.port = static_cast<uint16_t>(*flags.port);
  }
  if (flags.data_dir) config.data_dir = *flags.data_dir;
  if (flags.io_threads) config.io_threads = *flags.io_threads;
  if (flags.tls_cert) config.tls_cert_file = *flags.tls_cert;
  if (flags.tls_key) config.tls_key_file = *flags.tls_key;
  if (flags.log_level) config.log_level = *flags.log_level;
  if (flags.web_dir) config.web_dir = *flags.web_dir;
  if (const absl::Status valid = api::ValidateServerConfig(config); !valid.ok()) {
    std::fprintf(stderr, "ocx exchange: %s\n", std::string(valid.message()).c_str());
    return 2;
  }
  SetUpLogging(config);

  // Signals are taken synchronously by this thread (sigwait); every thread started after
  // this inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  base::SystemClock clock;
  server::ExchangeServerOptions options;
  options.config = config;
  options.clock = &clock;
  auto server = server::ExchangeServer::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    std::fprintf(stderr, "ocx exchange: %s\n", server.status().ToString().c_str());
    return 1;
  }
  if (!flags.port_file.empty()) {
    const std::string temp = flags.port_file + ".tmp";
    std::ofstream(temp) << (*server)->port() << "\n";
    std::rename(temp.c_str(), flags.port_file.c_str());
  }
  std::printf("ocx exchange listening on %s\noperator token: %s\n", (*server)->url().c_str(),
              (*server)->operator_token_path().c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {}: stopping", received);
  const absl::Status stopped = (*server)->Stop();
  if (!stopped.ok()) {
    spdlog::error("stopped with an error: {}", stopped.ToString());
    return 1;
  }
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace

void RegisterExchange(CLI::App& app, Registry& registry) {
  auto flags = std::make_shared<ExchangeFlags>();
  CLI::App* exchange = app.add_subcommand(
      "exchange", "Run the exchange server: HTTP/WebSocket API, order books, ledger, leases");
  exchange->footer(
      "Examples:\n"
      "  ocx exchange --data-dir ./ocx-data --port 8080\n"
      "  ocx exchange --config exchange.toml\n"
      "  ocx exchange --print-config > exchange.toml\n"
      "The operator's API token is written to <data-dir>/operator.token (again when it is "
      "replaced).");
  exchange->add_option("--config", flags->config_file, "TOML configuration file")
      ->check(CLI::ExistingFile);
  exchange->add_option("--listen", flags->listen, "Address to listen on (default 127.0.0.1)");
  exchange->add_option("--port", flags->port, "Port (0: any free port; default 8080)");
  exchange->add_option("--data-dir", flags->data_dir,
                       "Journal, snapshots, SQLite store and blobs (default ./ocx-data)");
  exchange->add_option("--io-threads", flags->io_threads, "HTTP I/O threads (default 2)");
  exchange->add_option("--tls-cert", flags->tls_cert, "PEM certificate chain (enables TLS)");
  exchange->add_option("--tls-key", flags->tls_key, "PEM private key");
  exchange->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error, off");
  exchange->add_option("--web-dir", flags->web_dir,
                       "The built dashboard served at / (default: this checkout's web/dist)");
  exchange->add_option("--port-file", flags->port_file,
                       "Write the port listened on to this file once listening");
  exchange->add_flag("--print-config", flags->print_config,
                     "Print an example configuration file with every default, and exit");
  registry.Add(exchange, [flags] { return RunExchange(*flags); });
}

}  // namespace ocx::cli
