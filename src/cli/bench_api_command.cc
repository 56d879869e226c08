// `ocx bench api`: orders per second over the HTTP API and the WebSocket order entry, with
// latency percentiles (docs/benchmarks.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "bench/api_workload.h"
#include "src/cli/commands.h"

namespace ocx::cli {
namespace {

int RunApiBenchCommand(bench::ApiBenchOptions options) {
  std::string made;
  if (options.url.empty() && options.data_dir.empty()) {
    char pattern[] = "/tmp/ocx-bench-api-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      std::perror("ocx bench api: cannot create a temporary directory");
      return 1;
    }
    made = options.data_dir = pattern;
  }
  if (!options.url.empty() && options.operator_token.empty()) {
    std::fprintf(stderr, "ocx bench api: --url needs --operator-token (to create accounts)\n");
    return 2;
  }
  const auto result = bench::RunApiBench(options);
  if (!made.empty()) std::filesystem::remove_all(made);
  if (!result.ok()) {
    std::fprintf(stderr, "ocx bench api: %s\n", result.status().ToString().c_str());
    return result.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf(
      "workload: %s orders over %s, %d keep-alive connections, one request in flight each, "
      "%s exchange, generator on this machine\n"
      "orders: %.0f orders/s (%llu in %.2f s); requests: %.0f/s; errors: %llu%s%s\n"
      "latency per request: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n"
      "cpu: %.1f us per request (user + system of this process: %s)\n",
      options.workload.c_str(), options.transport == "http" ? "HTTP" : "WebSocket",
      options.connections, options.url.empty() ? "an in-process" : "a remote",
      result->orders_per_second, static_cast<unsigned long long>(result->orders), result->seconds,
      result->requests_per_second, static_cast<unsigned long long>(result->errors),
      result->first_error.empty() ? "" : "; first: ", result->first_error.c_str(), result->p50_ms,
      result->p90_ms, result->p99_ms, result->p999_ms, result->max_ms, result->cpu_us_per_request,
      options.url.empty() ? "exchange and generator" : "the generator only");
  std::string by_thread;
  for (const auto& [name, micros] : result->cpu_us_per_request_by_thread) {
    if (micros < 0.05) continue;
    char part[64];
    std::snprintf(part, sizeof part, "%s%s %.1f", by_thread.empty() ? "" : ", ", name.c_str(),
                  micros);
    by_thread += part;
  }
  std::printf("cpu by thread: %s us per request\n", by_thread.c_str());
  return result->errors == 0 ? 0 : 1;
}

}  // namespace

void RegisterApiBench(CLI::App* bench, Registry& registry) {
  auto options = std::make_shared<bench::ApiBenchOptions>();
  CLI::App* command = bench->add_subcommand(
      "api", "Orders/s over the HTTP API or WebSocket order entry, with p50/p99 latency");
  command->footer(
      "Examples:\n"
      "  ocx bench api                        # in-process exchange, HTTP, ioc orders\n"
      "  ocx bench api --transport ws\n"
      "  ocx bench api --workload rest --connections 128 --seconds 10\n"
      "  ocx bench api --url http://127.0.0.1:8080 --operator-token \"$(cat ocx-data/operator.token)\"");
  command->add_option("--transport", options->transport, "http or ws")->capture_default_str();
  command->add_option("--workload", options->workload,
                      "ioc (one request per order) or rest (resting orders, each later cancelled)")
      ->capture_default_str();
  command->add_option("--connections", options->connections, "Keep-alive connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  command->add_option("--seconds", options->seconds, "Measured seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  command->add_option("--warmup", options->warmup_seconds, "Seconds before measuring")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  command->add_option("--io-threads", options->io_threads, "In-process exchange's I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  command->add_option("--url", options->url, "Benchmark a running exchange instead");
  command->add_option("--operator-token", options->operator_token,
                      "With --url: the operator's token, to create and fund accounts");
  command->add_option("--data-dir", options->data_dir,
                      "In-process exchange's data directory (default: a temporary one)");
  registry.Add(command, [options] { return RunApiBenchCommand(*options); });
}

}  // namespace ocx::cli
