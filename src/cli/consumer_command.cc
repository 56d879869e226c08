// The consumer's commands (docs/cli.md): `ocx run` (a job from start to bill, job_runner.h),
// `ocx jobs`, `ocx job show|cancel`, `ocx logs`, `ocx book`, `ocx order place|list|show|cancel`,
// `ocx account`, `ocx statement` and `ocx offers`.
//
// Every command takes --exchange URL (default: $OCX_EXCHANGE, else http://127.0.0.1:8080),
// --token-file FILE (default: $OCX_TOKEN) and --json. Errors are one sentence on stderr; the
// exit code is 2 for bad input (usage, a bad file, a request the exchange refused as
// malformed) and 1 for a command that ran and failed.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "src/base/decimal.h"
#include "src/cli/commands.h"
#include "src/cli/job_file.h"
#include "src/cli/job_runner.h"
#include "src/client/exchange_client.h"
#include "src/client/url.h"
#include "src/client/websocket_client.h"

namespace ocx::cli {
namespace {

using Json = nlohmann::json;

constexpr const char* kDefaultExchange = "http://127.0.0.1:8080";
constexpr size_t kListPagesMax = 1000;  // Bound on pages a list command follows.

// ---- Options every consumer command shares.

struct Common {
  std::string exchange;
  std::string token_file;
  bool json = false;
};

void AddCommon(CLI::App* command, Common* common) {
  command->add_option("--exchange", common->exchange,
                      "The exchange's URL (default: $OCX_EXCHANGE, else http://127.0.0.1:8080)");
  command->add_option("--token-file", common->token_file,
                      "File holding your account's API token (default: $OCX_TOKEN)");
  command->add_flag("--json", common->json, "Print JSON for scripts instead of tables");
}

std::string ExchangeUrl(const Common& common) {
  if (!common.exchange.empty()) return common.exchange;
  if (const char* env = std::getenv("OCX_EXCHANGE"); env != nullptr && env[0] != '\0') return env;
  return kDefaultExchange;
}

// The token from --token-file, else $OCX_TOKEN. InvalidArgument when `required` and none.
absl::StatusOr<std::string> Token(const Common& common, bool required = true) {
  std::string token;
  if (!common.token_file.empty()) {
    std::ifstream in(common.token_file);
    if (!in || !std::getline(in, token)) {
      return absl::InvalidArgumentError("cannot read the API token from " + common.token_file);
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  } else if (const char* env = std::getenv("OCX_TOKEN"); env != nullptr && env[0] != '\0') {
    token = env;
  }
  if (token.empty() && required) {
    return absl::InvalidArgumentError(
        "this command needs your account's API token: --token-file FILE or OCX_TOKEN");
  }
  return token;
}

// The exit code for a failure, after printing it as one line: 2 for bad input, 1 otherwise.
int Fail(const std::string& command, const absl::Status& status) {
  std::string message(status.message());
  if (const auto api = client::GetApiError(status)) {
    message = api->message.empty() ? api->code : api->message;
    if (!message.empty() && message.back() == '.') message.pop_back();
    message += " (" + api->code + ")";
  }
  std::fprintf(stderr, "ocx %s: %s\n", command.c_str(), message.c_str());
  const auto api = client::GetApiError(status);
  if (status.code() == absl::StatusCode::kInvalidArgument && (!api || api->http_status == 400)) {
    return 2;
  }
  return 1;
}

int FailText(const std::string& command, const std::string& message, int code = 2) {
  std::fprintf(stderr, "ocx %s: %s\n", command.c_str(), message.c_str());
  return code;
}

// An HTTP client for the exchange with the token (when there is one).
absl::StatusOr<std::unique_ptr<client::HttpClient>> Connect(const Common& common,
                                                            const std::string& token) {
  auto endpoint = client::ParseUrl(ExchangeUrl(common));
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError("--exchange: " + std::string(endpoint.status().message()));
  }
  client::HttpClientOptions options;
  options.bearer_token = token;
  auto http = client::HttpClient::Connect(*endpoint, options);
  if (!http.ok()) {
    return absl::UnavailableError("cannot reach the exchange at " + ExchangeUrl(common) + ": " +
                                  std::string(http.status().message()));
  }
  return std::move(*http);
}

// ---- Output helpers.

const Json& At(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A JSON value as table text: strings bare, null as "-".
std::string Cell(const Json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Time(const Json& micros) {
  if (!micros.is_number_integer()) return "-";
  if (micros.get<int64_t>() >= int64_t{253'402'300'800} * 1'000'000) return "now";  // Year 10000.
  const time_t seconds = static_cast<time_t>(micros.get<int64_t>() / 1'000'000);
  struct tm utc {};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%SZ", &utc);
  return text;
}

void PrintJson(const Json& value) {
  std::printf("%s\n", value.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
}

// Columns left-aligned, two spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size() - 1; }
  void Print() const {
    std::vector<size_t> widths;
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size(); ++i) {
        if (widths.size() <= i) widths.push_back(0);
        widths[i] = std::max(widths[i], row[i].size());
      }
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
      std::printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Every item of a paginated list (docs/api.md: items, next_after), at most kListPagesMax pages.
absl::StatusOr<std::vector<Json>> ListAll(client::HttpClient& http, const std::string& target) {
  std::vector<Json> items;
  std::string after;
  const char separator = target.find('?') == std::string::npos ? '?' : '&';
  for (size_t page = 0; page < kListPagesMax; ++page) {
    std::string url = target + separator + "limit=1000";
    if (!after.empty()) url += "&after=" + after;
    auto got = CallJson(http, "GET", url);
    if (!got.ok()) return got.status();
    const Json& list = At(*got, "items");
    if (list.is_array()) items.insert(items.end(), list.begin(), list.end());
    const Json& next = At(*got, "next_after");
    if (!next.is_number_unsigned() && !next.is_number_integer()) break;
    after = Cell(next);
  }
  return items;
}

// "2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01 12:00", or microseconds since the epoch.
bool ParseTime(const std::string& text, int64_t* micros) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    if (text.size() > 18) return false;
    *micros = std::stoll(text);
    return true;
  }
  struct tm utc {};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  char tail[8] = {0};
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%*[T ]%2d:%2d:%2d%7s", &year, &month, &day,
                            &hour, &minute, &second, tail);
  if (n < 3 || (n > 3 && n < 5)) return false;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  if (tail[0] != '\0' && std::string(tail) != "Z") return false;
  utc.tm_year = year - 1900;
  utc.tm_mon = month - 1;
  utc.tm_mday = day;
  utc.tm_hour = hour;
  utc.tm_min = minute;
  utc.tm_sec = second;
  *micros = static_cast<int64_t>(timegm(&utc)) * 1'000'000;
  return true;
}

// ---------------------------------------------------------------- ocx run

struct RunFlags {
  Common common;
  std::string job_file;
  std::vector<std::string> command;
  int64_t slots = 0, tasks = 0, max_hours = 0, timeout_s = 0;
  std::string market, max_price, where, out_dir, key;
  std::vector<std::string> inputs, outputs, env;
  bool network = false, no_logs = false;
  CLI::App* app = nullptr;
};

std::atomic<bool> g_cancel{false};
std::atomic<int64_t> g_first_interrupt_ms{0};
// A signal that arrives this soon after the first is the same interrupt delivered twice (e.g.
// `timeout` forwards it to the child and to its whole process group), not a second Ctrl-C.
constexpr int64_t kInterruptDebounceMs = 250;
static_assert(std::atomic<int64_t>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the interrupt handler's atomics must be lock-free to be async-signal-safe");

// Async-signal-safe: atomics, clock_gettime, write and _exit only.
void OnInterrupt(int) {
  struct timespec now {};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t now_ms = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000 + 1;
  int64_t first = 0;
  if (g_first_interrupt_ms.compare_exchange_strong(first, now_ms)) {
    g_cancel.store(true);
    return;
  }
  if (now_ms - first >= kInterruptDebounceMs) {
    static const char kMessage[] =
        "\nocx run: interrupted again; quitting now (the job goes on "
        "until it ends or 'ocx job cancel')\n";
    const ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    (void)ignored;
    ::_exit(130);
  }
}

int RunRun(RunFlags& flags) {
  const std::string name = "run";
  JobFile job;
  std::string source = "the command line";
  if (!flags.job_file.empty()) {
    auto loaded = LoadJobFile(flags.job_file);
    if (!loaded.ok()) return FailText(name, std::string(loaded.status().message()));
    job = *loaded;
    source = flags.job_file;
  }
  CLI::App& app = *flags.app;
  // Flags override the file; --input, --output and --env add to it.
  if (!flags.command.empty()) job.command = flags.command;
  if (app.count("--slots") > 0) job.slots = flags.slots;
  if (app.count("--tasks") > 0) job.tasks = flags.tasks;
  if (app.count("--max-hours") > 0) job.max_hours = flags.max_hours;
  if (app.count("--timeout") > 0) job.timeout_s = flags.timeout_s;
  if (app.count("--market") > 0) job.market = flags.market;
  if (app.count("--max-price") > 0) job.max_price = flags.max_price;
  if (app.count("--where") > 0) job.constraints = flags.where;
  if (flags.network) job.network = true;
  for (const std::string& input : flags.inputs) job.inputs.push_back(input);
  for (const std::string& output : flags.outputs) {
    if (!IsSafeOutputPath(output)) {
      return FailText(name, "--output '" + output +
                                "' must be a relative path under the task's /work, without '..'");
    }
    job.outputs.push_back(output);
  }
  std::map<std::string, std::string> env(job.env.begin(), job.env.end());
  for (const std::string& pair : flags.env) {
    const size_t equals = pair.find('=');
    if (equals == std::string::npos || !IsEnvName(pair.substr(0, equals))) {
      return FailText(
          name, "--env takes NAME=VALUE with NAME like [A-Za-z_][A-Za-z0-9_]*, not '" + pair + "'");
    }
    env[pair.substr(0, equals)] = pair.substr(equals + 1);
  }
  job.env.assign(env.begin(), env.end());
  if (job.command.empty() && flags.job_file.empty()) {
    return FailText(name,
                    "nothing to run: give a job file (job.toml) or a command after '--', e.g. "
                    "ocx run --max-price 0.05 -- echo hello");
  }
  if (absl::Status complete = CheckJobComplete(job, source); !complete.ok()) {
    return FailText(name, std::string(complete.message()));
  }
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());

  JobRunOptions options;
  options.exchange_url = ExchangeUrl(flags.common);
  if (auto endpoint = client::ParseUrl(options.exchange_url); !endpoint.ok()) {
    return FailText(name, "--exchange: " + std::string(endpoint.status().message()));
  }
  options.token = *token;
  options.job = job;
  options.output_dir = flags.out_dir;
  options.idempotency_key = flags.key;
  options.stream_logs = !flags.no_logs;
  std::ostream& out = flags.common.json ? std::cerr : std::cout;

  // Ctrl-C (or SIGTERM) cancels the job cleanly; a second Ctrl-C quits at once.
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  auto report = RunJob(options, out, &g_cancel);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (!report.ok()) return Fail(name, report.status());
  if (flags.common.json) {
    PrintJson(JobReportJson(*report));
  } else {
    PrintBill(*report, std::cout);
  }
  return report->all_succeeded ? 0 : 1;
}

void RegisterRun(CLI::App& app, Registry& registry) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run = app.add_subcommand("run",
                                     "Run a job on the exchange: inputs up, outputs back, "
                                     "a bill at the end");
  flags->app = run;
  AddCommon(run, &flags->common);
  // A job file is a first argument ending in .toml or .json; the rest is the command. CLI11
  // tries the positionals in order and skips one whose check fails.
  auto command_option = std::make_shared<CLI::Option*>(nullptr);
  run->add_option("job_file", flags->job_file,
                  "A job file (.toml or .json; docs/formats/job-file.md)")
      ->check(CLI::Validator(
          [command_option](std::string& text) -> std::string {
            if (*command_option != nullptr && (*command_option)->count() > 0) return "command";
            const bool file = (text.size() > 5 && text.ends_with(".toml")) ||
                              (text.size() > 5 && text.ends_with(".json"));
            return file ? "" : "not a job file";
          },
          "", ""));
  *command_option =
      run->add_option("command", flags->command, "The command to run, after '--' (argv)");
  run->validate_positionals();
  run->add_option("--slots", flags->slots, "Slots per task, on one machine (default 1)")
      ->check(CLI::Range(int64_t{1}, kJobSlotsMax));
  run->add_option("--tasks", flags->tasks, "How many copies of the task run (default 1)")
      ->check(CLI::Range(int64_t{1}, kJobTasksMax));
  run->add_option("--market", flags->market, "The market whose slots it buys (default cpu)");
  run->add_option("--max-price", flags->max_price,
                  "The most you pay per slot-hour, in credits (e.g. 0.05)");
  run->add_option("--max-hours", flags->max_hours, "The longest each task's lease runs (default 1)")
      ->check(CLI::Range(int64_t{1}, kJobHoursMax));
  run->add_option("--where", flags->where,
                  "Constraints: a discovery query the machine must match (docs/formats/query.md)");
  run->add_option("--input", flags->inputs,
                  "A local file or folder placed in the task's /work (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--output", flags->outputs,
                  "A path under /work brought back to --out-dir (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--env", flags->env, "NAME=VALUE in the task's environment (repeatable)")
      ->allow_extra_args(false);
  run->add_flag("--net", flags->network, "Give the task the network (if the machine allows)");
  run->add_option("--timeout", flags->timeout_s, "Kill the task after this many seconds")
      ->check(CLI::Range(int64_t{1}, kJobTimeoutSecondsMax));
  run->add_option("--out-dir", flags->out_dir,
                  "Where outputs and logs land, per task (default ./ocx-out/job-<id>)");
  run->add_option("--key", flags->key,
                  "Idempotency key: the same key again follows the same job (default: random)");
  run->add_flag("--no-logs", flags->no_logs, "Do not print the tasks' live output");
  run->footer(
      "Examples:\n"
      "  ocx run --max-price 0.05 -- echo hello\n"
      "  ocx run --tasks 4 --slots 2 --max-price 0.08 --input data/ --output out/ \\\n"
      "      --where 'region == \"eu\"' -- sh -c 'wc -l data/* > out/count.txt'\n"
      "  ocx run job.toml                    # a job file (docs/cli.md); flags override it\n"
      "  ocx run job.toml --tasks 8 --json   # the bill as JSON on stdout\n"
      "Ctrl-C cancels the job (orders withdrawn, tasks stopped) and prints the bill;\n"
      "a second Ctrl-C quits at once. Exit code 0 when every task succeeded, 1 otherwise,\n"
      "2 for bad input.");
  registry.Add(run, [flags] { return RunRun(*flags); });
}

// ---------------------------------------------------------------- jobs, job show|cancel

struct IdFlags {
  Common common;
  uint64_t id = 0;
  int64_t limit = 20;
  std::string status;
};

void PrintJobSummaryTable(const std::vector<Json>& jobs) {
  Table table({"job", "state", "tasks", "slots", "market", "max_price", "submitted", "key"});
  for (const Json& job : jobs) {
    table.Add({Cell(At(job, "id")), Cell(At(job, "state")), Cell(At(job, "tasks_count")),
               Cell(At(job, "slots_per_task")), Cell(At(job, "market")), Cell(At(job, "max_price")),
               Time(At(job, "submitted_time")), Cell(At(job, "client_job_id"))});
  }
  table.Print();
}

int RunJobs(const IdFlags& flags) {
  const std::string name = "jobs";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto jobs = ListAll(**http, "/v1/jobs");
  if (!jobs.ok()) return Fail(name, jobs.status());
  // The most recent `limit`, newest last.
  std::vector<Json> shown = *jobs;
  if (flags.limit > 0 && shown.size() > static_cast<size_t>(flags.limit)) {
    shown.erase(shown.begin(), shown.end() - flags.limit);
  }
  if (flags.common.json) {
    PrintJson(Json(shown));
    return 0;
  }
  if (shown.empty()) {
    std::printf("No jobs yet. Start one with: ocx run --max-price 0.05 -- echo hello\n");
    return 0;
  }
  PrintJobSummaryTable(shown);
  return 0;
}

int RunJobShow(const IdFlags& flags) {
  const std::string name = "job show";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(**http, "GET", "/v1/jobs/" + std::to_string(flags.id));
  if (!got.ok()) return Fail(name, got.status());
  const Json& job = At(*got, "job");
  if (flags.common.json) {
    PrintJson(job);
    return 0;
  }
  std::printf("job %s: %s\n", Cell(At(job, "id")).c_str(), Cell(At(job, "state")).c_str());
  std::printf("  market %s, %s tasks of %s slots, max price %s per slot-hour, max %s hours\n",
              Cell(At(job, "market")).c_str(), Cell(At(job, "tasks_count")).c_str(),
              Cell(At(job, "slots_per_task")).c_str(), Cell(At(job, "max_price")).c_str(),
              Cell(At(job, "max_hours")).c_str());
  if (At(job, "constraints").is_string() && !At(job, "constraints").get<std::string>().empty()) {
    std::printf("  where %s\n", At(job, "constraints").get<std::string>().c_str());
  }
  std::printf("  command %s\n", Cell(At(At(job, "task_spec"), "command")).c_str());
  std::printf("  submitted %s", Time(At(job, "submitted_time")).c_str());
  if (!At(job, "end_time").is_null()) std::printf(", ended %s", Time(At(job, "end_time")).c_str());
  std::printf("\n\n");
  Table table({"task", "state", "attempts", "order", "lease", "machine"});
  const Json& tasks = At(job, "tasks");
  if (tasks.is_array()) {
    for (const Json& t : tasks) {
      auto zero_dash = [](const Json& v) { return v == 0 ? std::string("-") : Cell(v); };
      table.Add({Cell(At(t, "index")), Cell(At(t, "state")), Cell(At(t, "attempts")),
                 zero_dash(At(t, "order")), zero_dash(At(t, "lease")),
                 zero_dash(At(t, "machine"))});
    }
  }
  table.Print();
  return 0;
}

int RunJobCancel(const IdFlags& flags) {
  const std::string name = "job cancel";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(**http, "DELETE", "/v1/jobs/" + std::to_string(flags.id));
  if (!got.ok()) return Fail(name, got.status());
  if (flags.common.json) {
    PrintJson(*got);
  } else {
    std::printf("job %llu cancelled: waiting orders withdrawn, running tasks stopped\n",
                static_cast<unsigned long long>(flags.id));
  }
  return 0;
}

// ---------------------------------------------------------------- logs

// Prints `data` line by line with the prefix to `stream` (stdout or stderr).
void PrintPrefixed(FILE* stream, const std::string& prefix, const std::string& data) {
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::fprintf(stream, "%s%.*s\n", prefix.c_str(), static_cast<int>(end - start),
                 data.data() + start);
    start = end + 1;
  }
  std::fflush(stream);
}

// Prints a finished task's stored stdout (to stdout) and stderr (to stderr).
absl::Status PrintStoredLogs(client::HttpClient& http, int index, uint64_t lease, bool json,
                             Json* json_out) {
  auto task = CallJson(http, "GET", "/v1/leases/" + std::to_string(lease) + "/task");
  if (!task.ok()) return task.status();
  const Json& result = At(At(*task, "task"), "result");
  if (!result.is_object()) return absl::OkStatus();
  Json entry{{"task", index}, {"lease", lease}, {"status", At(result, "status")}};
  for (const char* stream : {"stdout", "stderr"}) {
    const Json& blob = At(result, stream);
    const std::string digest = Cell(At(blob, "sha256"));
    if (digest.size() != 64) continue;
    auto got = http.Get("/v1/blobs/" + digest);
    if (!got.ok()) return got.status();
    if (got->status != 200) {
      return client::ApiErrorToStatus(client::ParseApiError(got->status, got->body));
    }
    if (json) {
      entry[stream] = got->body;
    } else {
      PrintPrefixed(std::string(stream) == "stdout" ? stdout : stderr,
                    "[task " + std::to_string(index) + "] ", got->body);
    }
  }
  if (json_out != nullptr) json_out->push_back(std::move(entry));
  return absl::OkStatus();
}

int RunLogs(const IdFlags& flags) {
  const std::string name = "logs";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  const std::string job_path = "/v1/jobs/" + std::to_string(flags.id);
  // Following a running job: subscribe before reading its state, so nothing falls between.
  std::unique_ptr<client::WebSocketClient> ws;
  auto first = CallJson(**http, "GET", job_path);
  if (!first.ok()) return Fail(name, first.status());
  const bool running = Cell(At(At(*first, "job"), "state")) == "active";
  if (running && !flags.common.json) {
    auto endpoint = client::ParseUrl(ExchangeUrl(flags.common));
    if (!endpoint.ok()) return Fail(name, endpoint.status());
    auto connected = client::WebSocketClient::Connect(*endpoint, "/v1/stream");
    if (!connected.ok()) return Fail(name, connected.status());
    ws = std::move(*connected);
    (void)ws->Send(Json{{"op", "auth"}, {"token", *token}}.dump());
    (void)ws->Send(Json{{"op", "subscribe"}, {"channel", "leases"}}.dump());
    while (true) {
      auto text = ws->Receive(10'000);
      if (!text.ok()) return Fail(name, text.status());
      const Json message = Json::parse(*text, nullptr, false);
      if (Cell(At(message, "type")) == "subscribed") break;
      if (Cell(At(message, "type")) == "error") {
        return FailText(
            name, "the exchange refused the stream: " + Cell(At(At(message, "error"), "message")),
            1);
      }
    }
  }
  auto got = CallJson(**http, "GET", job_path);
  if (!got.ok()) return Fail(name, got.status());
  const Json job = At(*got, "job");
  std::map<uint64_t, int> lease_task;
  std::set<uint64_t> printed;
  Json json_out = Json::array();
  auto print_finished = [&](const Json& tasks) -> absl::Status {
    if (!tasks.is_array()) return absl::OkStatus();
    for (const Json& t : tasks) {
      const uint64_t lease =
          At(t, "lease").is_number_unsigned() ? At(t, "lease").get<uint64_t>() : 0;
      const int index = At(t, "index").is_number_integer() ? At(t, "index").get<int>() : 0;
      if (lease == 0) continue;
      lease_task[lease] = index;
      const std::string state = Cell(At(t, "state"));
      if (printed.contains(lease) || (state != "finished" && state != "cancelled")) continue;
      if (running && state == "cancelled") continue;  // Its result may still come live.
      printed.insert(lease);
      absl::Status status = PrintStoredLogs(**http, index, lease, flags.common.json, &json_out);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  };
  if (absl::Status s = print_finished(At(job, "tasks")); !s.ok()) return Fail(name, s);
  if (ws == nullptr) {
    if (flags.common.json) PrintJson(json_out);
    return 0;
  }
  // Live: task_log lines of this job's leases until it ends.
  std::fprintf(stderr, "ocx logs: following job %llu (Ctrl-C stops following)\n",
               static_cast<unsigned long long>(flags.id));
  if (const Json& tasks = At(job, "tasks"); tasks.is_array()) {
    for (const Json& t : tasks) {
      if (Cell(At(t, "state")) != "running") continue;
      std::fprintf(stderr,
                   "ocx logs: task %s was already running: its earlier output is in its stored "
                   "logs once it ends ('ocx logs %llu' again)\n",
                   Cell(At(t, "index")).c_str(), static_cast<unsigned long long>(flags.id));
    }
  }
  std::map<std::pair<uint64_t, std::string>, std::string> partial;
  while (true) {
    auto text = ws->Receive(1'000);
    if (!text.ok()) {
      if (absl::IsDeadlineExceeded(text.status())) {
        auto again = CallJson(**http, "GET", job_path);
        if (again.ok()) {
          if (absl::Status s = print_finished(At(At(*again, "job"), "tasks")); !s.ok()) {
            return Fail(name, s);
          }
          if (Cell(At(At(*again, "job"), "state")) != "active") break;
        }
        continue;
      }
      return Fail(name, text.status());
    }
    const Json message = Json::parse(*text, nullptr, false);
    const std::string type = Cell(At(message, "type"));
    const uint64_t lease =
        At(message, "lease").is_number_unsigned() ? At(message, "lease").get<uint64_t>() : 0;
    if ((type == "task_assigned" || type == "job_task") && At(message, "job") == flags.id &&
        lease != 0) {
      lease_task[lease] =
          At(message, "task_index").is_number_integer() ? At(message, "task_index").get<int>() : 0;
    } else if (type == "task_log" && lease_task.contains(lease)) {
      const std::string stream = Cell(At(message, "stream"));
      std::string& buffer = partial[{lease, stream}];
      buffer += Cell(At(message, "data"));
      const size_t last = buffer.rfind('\n');
      if (last != std::string::npos) {
        PrintPrefixed(stream == "stderr" ? stderr : stdout,
                      "[task " + std::to_string(lease_task[lease]) + "] ", buffer.substr(0, last));
        buffer.erase(0, last + 1);
      }
    } else if (type == "task_finished" && lease_task.contains(lease)) {
      printed.insert(lease);  // Its output came live.
      for (const char* stream : {"stdout", "stderr"}) {
        std::string& buffer = partial[{lease, stream}];
        if (!buffer.empty()) {
          PrintPrefixed(std::string(stream) == "stderr" ? stderr : stdout,
                        "[task " + std::to_string(lease_task[lease]) + "] ", buffer);
        }
        buffer.clear();
      }
    } else if (type == "job_ended" && At(message, "job") == flags.id) {
      break;
    }
  }
  return 0;
}

// ---------------------------------------------------------------- book

struct BookFlags {
  Common common;
  std::string market;
  int64_t depth = 10;
};

int RunBook(const BookFlags& flags) {
  const std::string name = "book";
  auto token = Token(flags.common, /*required=*/false);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(
      **http, "GET",
      "/v1/markets/" + UrlEncode(flags.market) + "/book?depth=" + std::to_string(flags.depth));
  if (!got.ok()) return Fail(name, got.status());
  if (flags.common.json) {
    PrintJson(*got);
    return 0;
  }
  const Json& bids = At(*got, "bids");
  const Json& asks = At(*got, "asks");
  std::printf("%s order book (sequence %s), price per slot-hour\n", flags.market.c_str(),
              Cell(At(*got, "sequence")).c_str());
  Table table({"side", "price", "slots"});
  if (asks.is_array()) {
    for (auto it = asks.rbegin(); it != asks.rend(); ++it) {
      if (it->is_array() && it->size() == 2) table.Add({"ask", Cell((*it)[0]), Cell((*it)[1])});
    }
  }
  if (asks.empty()) table.Add({"ask", "-", "(none)"});
  std::string spread = "-";
  if (asks.is_array() && bids.is_array() && !asks.empty() && !bids.empty()) {
    const auto ask = base::ParseMicros(Cell(asks[0][0]));
    const auto bid = base::ParseMicros(Cell(bids[0][0]));
    if (ask.ok() && bid.ok()) spread = base::FormatMicros(ask.micros - bid.micros);
  }
  table.Add({"-----", "spread " + spread, ""});
  if (bids.is_array()) {
    for (const Json& level : bids) {
      if (level.is_array() && level.size() == 2) table.Add({"bid", Cell(level[0]), Cell(level[1])});
    }
  }
  if (bids.empty()) table.Add({"bid", "-", "(none)"});
  table.Print();
  return 0;
}

// ---------------------------------------------------------------- order place|list|show|cancel

struct OrderFlags {
  Common common;
  std::string side, market = "cpu", price, type, tif, constraints, key, status;
  int64_t quantity = 0, lot = 0, max_hours = 0, expiry = 0;
  uint64_t machine = 0, id = 0;
  CLI::App* app = nullptr;
};

void PrintOrders(const std::vector<Json>& orders) {
  Table table(
      {"order", "side", "market", "price", "quantity", "filled", "remaining", "status", "created"});
  for (const Json& o : orders) {
    table.Add({Cell(At(o, "id")), Cell(At(o, "side")), Cell(At(o, "market")), Cell(At(o, "price")),
               Cell(At(o, "quantity")), Cell(At(o, "filled")), Cell(At(o, "remaining")),
               Cell(At(o, "status")), Time(At(o, "created_time"))});
  }
  table.Print();
}

int RunOrderPlace(const OrderFlags& flags) {
  const std::string name = "order place";
  if (flags.side != "buy" && flags.side != "sell") {
    return FailText(name, "the side is buy or sell, not '" + flags.side + "'");
  }
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  Json body{{"market", flags.market}, {"side", flags.side}, {"quantity", flags.quantity}};
  if (!flags.price.empty()) body["price"] = flags.price;
  if (!flags.type.empty()) body["type"] = flags.type;
  if (!flags.tif.empty()) body["tif"] = flags.tif;
  if (flags.app->count("--expiry") > 0) body["expiry"] = flags.expiry;
  if (flags.app->count("--lot") > 0) body["lot"] = flags.lot;
  if (flags.app->count("--max-hours") > 0) body["max_hours"] = flags.max_hours;
  if (flags.app->count("--machine") > 0) body["machine"] = flags.machine;
  if (!flags.constraints.empty()) body["constraints"] = flags.constraints;
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  std::vector<std::pair<std::string, std::string>> headers;
  if (!flags.key.empty()) headers.emplace_back("Idempotency-Key", flags.key);
  Json error_body;
  auto got = CallJson(**http, "POST", "/v1/orders", &body, headers, &error_body);
  if (!got.ok()) {
    const Json& column = At(At(error_body, "error"), "column");
    if (column.is_number_integer() && !flags.constraints.empty()) {
      return FailText(name,
                      "the constraints are not a valid query:\n" +
                          CaretUnder(flags.constraints, column.get<int>(),
                                     QueryErrorReason(Cell(At(At(error_body, "error"), "message")),
                                                      column.get<int>())));
    }
    return Fail(name, got.status());
  }
  if (flags.common.json) {
    PrintJson(*got);
    return 0;
  }
  const Json& order = At(*got, "order");
  std::printf("order %s: %s %s %s slots at %s: %s%s\n", Cell(At(order, "id")).c_str(),
              Cell(At(order, "side")).c_str(), Cell(At(order, "quantity")).c_str(),
              Cell(At(order, "market")).c_str(), Cell(At(order, "price")).c_str(),
              Cell(At(order, "status")).c_str(),
              At(*got, "idempotent_replay") == true ? " (placed earlier with this key)" : "");
  const Json& fills = At(*got, "fills");
  if (fills.is_array() && !fills.empty()) {
    Table table({"fill", "price", "slots", "lease"});
    for (size_t i = 0; i < fills.size(); ++i) {
      table.Add({std::to_string(i + 1), Cell(At(fills[i], "price")), Cell(At(fills[i], "quantity")),
                 Cell(At(fills[i], "lease"))});
    }
    table.Print();
  }
  return 0;
}

int RunOrderList(const OrderFlags& flags) {
  const std::string name = "order list";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  std::string target = "/v1/orders";
  if (!flags.status.empty()) target += "?status=" + UrlEncode(flags.status);
  auto orders = ListAll(**http, target);
  if (!orders.ok()) return Fail(name, orders.status());
  if (flags.common.json) {
    PrintJson(Json(*orders));
    return 0;
  }
  if (orders->empty()) {
    std::printf("No orders%s.\n", flags.status.empty() ? "" : (" " + flags.status).c_str());
    return 0;
  }
  PrintOrders(*orders);
  return 0;
}

int RunOrderShow(const OrderFlags& flags) {
  const std::string name = "order show";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(**http, "GET", "/v1/orders/" + std::to_string(flags.id));
  if (!got.ok()) return Fail(name, got.status());
  if (flags.common.json) {
    PrintJson(At(*got, "order"));
    return 0;
  }
  PrintOrders({At(*got, "order")});
  if (At(At(*got, "order"), "cancel_reason").is_string()) {
    std::printf("cancel reason: %s\n", Cell(At(At(*got, "order"), "cancel_reason")).c_str());
  }
  return 0;
}

int RunOrderCancel(const OrderFlags& flags) {
  const std::string name = "order cancel";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(**http, "DELETE", "/v1/orders/" + std::to_string(flags.id));
  if (!got.ok()) return Fail(name, got.status());
  if (flags.common.json) {
    PrintJson(*got);
  } else {
    std::printf("order %llu cancelled\n", static_cast<unsigned long long>(flags.id));
  }
  return 0;
}

// ---------------------------------------------------------------- account, statement

struct AccountFlags {
  Common common;
  std::string from, to;
};

int RunAccount(const AccountFlags& flags) {
  const std::string name = "account";
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto id = WhoAmI(ExchangeUrl(flags.common), *token);
  if (!id.ok()) return Fail(name, id.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  auto got = CallJson(**http, "GET", "/v1/accounts/" + std::to_string(*id));
  if (!got.ok()) return Fail(name, got.status());
  const Json& account = At(*got, "account");
  if (flags.common.json) {
    PrintJson(account);
    return 0;
  }
  std::printf("account %s (%s, %s)\n", Cell(At(account, "id")).c_str(),
              Cell(At(account, "name")).c_str(), Cell(At(account, "role")).c_str());
  const Json& balances = At(account, "balances");
  Table table({"balance", "credits", "meaning"});
  const std::pair<const char*, const char*> rows[] = {
      {"available", "free to spend or withdraw"},
      {"held", "reserved by open buy orders (and jobs waiting for machines)"},
      {"escrow", "reserved by running leases, billed per second"},
      {"earnings", "what your machines earned"}};
  for (const auto& [key, meaning] : rows) table.Add({key, Cell(At(balances, key)), meaning});
  table.Print();
  return 0;
}

int RunStatement(const AccountFlags& flags) {
  const std::string name = "statement";
  int64_t from = 0, to = 0;
  if (!flags.from.empty() && !ParseTime(flags.from, &from)) {
    return FailText(name,
                    "--from is a date (2024-05-01), a UTC time (2024-05-01T12:00:00Z) or "
                    "microseconds since the epoch, not '" +
                        flags.from + "'");
  }
  if (!flags.to.empty() && !ParseTime(flags.to, &to)) {
    return FailText(name,
                    "--to is a date (2024-05-01), a UTC time (2024-05-01T12:00:00Z) or "
                    "microseconds since the epoch, not '" +
                        flags.to + "'");
  }
  auto token = Token(flags.common);
  if (!token.ok()) return Fail(name, token.status());
  auto id = WhoAmI(ExchangeUrl(flags.common), *token);
  if (!id.ok()) return Fail(name, id.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  std::string target = "/v1/accounts/" + std::to_string(*id) + "/statement";
  std::string query;
  if (!flags.from.empty()) query += "&from=" + std::to_string(from);
  if (!flags.to.empty()) query += "&to=" + std::to_string(to);
  if (!query.empty()) target += "?" + query.substr(1);
  auto got = CallJson(**http, "GET", target);
  if (!got.ok()) return Fail(name, got.status());
  if (flags.common.json) {
    PrintJson(*got);
    return 0;
  }
  std::printf("Statement of account %llu from %s to %s\n", static_cast<unsigned long long>(*id),
              Time(At(*got, "from")).c_str(), Time(At(*got, "to")).c_str());
  Table balances({"balance", "opening", "closing"});
  const Json& lines = At(*got, "balances");
  if (lines.is_array()) {
    for (const Json& l : lines) {
      balances.Add({Cell(At(l, "balance")), Cell(At(l, "opening")), Cell(At(l, "closing"))});
    }
  }
  balances.Print();
  std::printf("\n");
  Table entries({"entry", "time", "kind", "amount", "from", "to", "reference"});
  const Json& list = At(*got, "entries");
  if (list.is_array()) {
    for (const Json& e : list) {
      auto ref = [](const Json& r) {
        return Cell(At(r, "account")) + ":" + Cell(At(r, "balance"));
      };
      entries.Add({Cell(At(e, "entry")), Time(At(e, "time")), Cell(At(e, "kind")),
                   Cell(At(e, "amount")), ref(At(e, "from")), ref(At(e, "to")),
                   Cell(At(e, "reference"))});
    }
  }
  if (entries.size() == 0) {
    std::printf("No entries in this period.\n");
  } else {
    entries.Print();
  }
  if (At(*got, "truncated") == true) {
    std::printf("(truncated: narrow --from/--to to see every entry)\n");
  }
  return 0;
}

// ---------------------------------------------------------------- offers

struct OffersFlags {
  Common common;
  std::string query, sort, market;
  bool explain = false;
  int64_t limit = 20;
};

int RunOffers(const OffersFlags& flags) {
  const std::string name = "offers";
  auto token = Token(flags.common, /*required=*/false);
  if (!token.ok()) return Fail(name, token.status());
  auto http = Connect(flags.common, *token);
  if (!http.ok()) return Fail(name, http.status());
  std::string target = "/v1/offers?q=" + UrlEncode(flags.query);
  if (!flags.sort.empty()) target += "&sort=" + UrlEncode(flags.sort);
  if (!flags.market.empty()) target += "&market=" + UrlEncode(flags.market);
  if (flags.explain) target += "&explain=1";
  target += "&limit=" + std::to_string(flags.limit);
  Json error_body;
  auto got = CallJson(**http, "GET", target, nullptr, {}, &error_body);
  if (!got.ok()) {
    const Json& error = At(error_body, "error");
    const Json& column = At(error, "column");
    if (column.is_number_integer()) {
      const bool sort = Cell(At(error, "code")) == "invalid_sort";
      return FailText(
          name, std::string(sort ? "the sort" : "the query") + " is not valid:\n" +
                    CaretUnder(sort ? flags.sort : flags.query, column.get<int>(),
                               QueryErrorReason(Cell(At(error, "message")), column.get<int>())));
    }
    const auto api = client::GetApiError(got.status());
    if (api && api->http_status == 404 && api->code == "not_found") {
      return FailText(name, "this exchange has no discovery endpoint (GET /v1/offers)", 1);
    }
    return Fail(name, got.status());
  }
  if (flags.common.json) {
    PrintJson(*got);
    return 0;
  }
  const Json& items = At(*got, "items");
  const std::string market = Cell(At(*got, "market"));
  // Each item is a machine (as GET /v1/machines/{id}) with its best ask in the market; the
  // attributes the query language sees follow the fixed columns.
  Table table({"machine", "name", "ask", "offered", "region", "attributes"});
  if (items.is_array()) {
    for (const Json& machine : items) {
      const Json& attributes = At(machine, "attributes");
      std::string others;
      if (attributes.is_object()) {
        for (const auto& [key, value] : attributes.items()) {
          if (key == "region") continue;
          others += (others.empty() ? "" : " ") + key + "=" + Cell(value);
        }
      }
      table.Add({Cell(At(machine, "id")), Cell(At(machine, "name")), Cell(At(machine, "ask")),
                 Cell(At(At(machine, "offered"), market.c_str())), Cell(At(attributes, "region")),
                 others});
    }
  }
  if (table.size() == 0) {
    std::printf("No machine matches.\n");
  } else {
    table.Print();
  }
  const Json& total = At(*got, "total_matching");
  if (total.is_number_integer()) {
    std::printf("%s of %s machines match in %s", Cell(total).c_str(),
                Cell(At(*got, "machines_online")).c_str(), market.c_str());
    if (items.is_array() && total.get<int64_t>() > static_cast<int64_t>(items.size())) {
      std::printf(" (showing %zu; --limit shows more)", items.size());
    }
    std::printf("; sorted by %s\n", Cell(At(*got, "sort")).c_str());
  }
  if (flags.explain) {
    const Json& clauses = At(*got, "explain");
    if (clauses.is_array() && !clauses.empty()) {
      std::printf("\nWhat each clause does, of %s machines:\n",
                  Cell(At(*got, "machines_online")).c_str());
      Table why({"clause", "alone matches", "alone rules out", "remaining after it"});
      for (const Json& clause : clauses) {
        why.Add({Cell(At(clause, "clause")), Cell(At(clause, "matching_alone")),
                 Cell(At(clause, "ruled_out_alone")), Cell(At(clause, "remaining_after"))});
      }
      why.Print();
    } else {
      std::printf("\n(no clauses: the empty query matches every machine)\n");
    }
  }
  return 0;
}

}  // namespace

void RegisterConsumer(CLI::App& app, Registry& registry) {
  RegisterRun(app, registry);

  auto jobs = std::make_shared<IdFlags>();
  CLI::App* jobs_command = app.add_subcommand("jobs", "List your jobs");
  AddCommon(jobs_command, &jobs->common);
  jobs_command->add_option("--limit", jobs->limit, "Show the most recent N (0: all)")
      ->capture_default_str();
  jobs_command->footer("Example: ocx jobs --limit 5");
  registry.Add(jobs_command, [jobs] { return RunJobs(*jobs); });

  CLI::App* job = app.add_subcommand("job", "One job: show or cancel");
  job->require_subcommand(1);
  auto show = std::make_shared<IdFlags>();
  CLI::App* show_command = job->add_subcommand("show", "A job with its tasks");
  AddCommon(show_command, &show->common);
  show_command->add_option("id", show->id, "The job's id")->required();
  show_command->footer("Example: ocx job show 4");
  registry.Add(show_command, [show] { return RunJobShow(*show); });
  auto cancel = std::make_shared<IdFlags>();
  CLI::App* cancel_command = job->add_subcommand("cancel", "Cancel a job: orders and tasks");
  AddCommon(cancel_command, &cancel->common);
  cancel_command->add_option("id", cancel->id, "The job's id")->required();
  cancel_command->footer("Example: ocx job cancel 4");
  registry.Add(cancel_command, [cancel] { return RunJobCancel(*cancel); });

  auto logs = std::make_shared<IdFlags>();
  CLI::App* logs_command =
      app.add_subcommand("logs", "A job's output: stored for finished tasks, live while it runs");
  AddCommon(logs_command, &logs->common);
  logs_command->add_option("id", logs->id, "The job's id")->required();
  logs_command->footer(
      "Each line is prefixed '[task i] '; a task's stderr goes to stderr.\n"
      "Example: ocx logs 4");
  registry.Add(logs_command, [logs] { return RunLogs(*logs); });

  auto book = std::make_shared<BookFlags>();
  CLI::App* book_command = app.add_subcommand("book", "A market's order book (depth)");
  AddCommon(book_command, &book->common);
  book_command->add_option("market", book->market, "The market, e.g. cpu")->required();
  book_command->add_option("--depth", book->depth, "Price levels per side")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  book_command->footer("Example: ocx book cpu --depth 5");
  registry.Add(book_command, [book] { return RunBook(*book); });

  CLI::App* order = app.add_subcommand("order", "Place, list, show and cancel orders");
  order->require_subcommand(1);
  auto place = std::make_shared<OrderFlags>();
  CLI::App* place_command = order->add_subcommand("place", "Place a buy or a sell");
  place->app = place_command;
  AddCommon(place_command, &place->common);
  place_command->add_option("side", place->side, "buy or sell")->required();
  place_command->add_option("--market", place->market, "The market")->capture_default_str();
  place_command->add_option("--price", place->price,
                            "Limit price per slot-hour (decimal credits); none for --type market");
  place_command->add_option("--quantity", place->quantity, "Slots")
      ->required()
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  place_command->add_option("--type", place->type, "limit (default) or market");
  place_command->add_option("--tif", place->tif, "gtc (default), ioc, fok or gtd");
  place_command->add_option("--expiry", place->expiry, "For gtd: microseconds since the epoch");
  place_command->add_option("--lot", place->lot, "Buys: fills come in multiples of this");
  place_command->add_option("--max-hours", place->max_hours, "Buys: the lease's longest run");
  place_command->add_option("--machine", place->machine, "Sells: your machine's id");
  place_command->add_option("--constraints", place->constraints,
                            "Buys: a discovery query the seller's machine must match");
  place_command->add_option("--key", place->key, "Idempotency-Key (retries place it once)");
  place_command->footer(
      "Examples:\n"
      "  ocx order place buy --price 0.05 --quantity 2 --max-hours 2 --constraints 'region == "
      "\"eu\"'\n"
      "  ocx order place sell --price 0.05 --quantity 4 --machine 1\n"
      "  ocx order place buy --type market --tif ioc --quantity 1");
  registry.Add(place_command, [place] { return RunOrderPlace(*place); });
  auto list = std::make_shared<OrderFlags>();
  CLI::App* list_command = order->add_subcommand("list", "Your orders");
  AddCommon(list_command, &list->common);
  list_command->add_option("--status", list->status, "open, filled, cancelled or expired")
      ->check(CLI::IsMember({"open", "filled", "cancelled", "expired"}));
  list_command->footer("Example: ocx order list --status open");
  registry.Add(list_command, [list] { return RunOrderList(*list); });
  auto order_show = std::make_shared<OrderFlags>();
  CLI::App* order_show_command = order->add_subcommand("show", "One of your orders");
  AddCommon(order_show_command, &order_show->common);
  order_show_command->add_option("id", order_show->id, "The order's id")->required();
  order_show_command->footer("Example: ocx order show 7");
  registry.Add(order_show_command, [order_show] { return RunOrderShow(*order_show); });
  auto order_cancel = std::make_shared<OrderFlags>();
  CLI::App* order_cancel_command = order->add_subcommand("cancel", "Cancel one of your orders");
  AddCommon(order_cancel_command, &order_cancel->common);
  order_cancel_command->add_option("id", order_cancel->id, "The order's id")->required();
  order_cancel_command->footer("Example: ocx order cancel 7");
  registry.Add(order_cancel_command, [order_cancel] { return RunOrderCancel(*order_cancel); });

  auto account = std::make_shared<AccountFlags>();
  CLI::App* account_command = app.add_subcommand("account", "Your account and its balances");
  AddCommon(account_command, &account->common);
  account_command->footer("Example: OCX_TOKEN=ocx_... ocx account");
  registry.Add(account_command, [account] { return RunAccount(*account); });

  auto statement = std::make_shared<AccountFlags>();
  CLI::App* statement_command =
      app.add_subcommand("statement", "Opening and closing balances and the entries between");
  AddCommon(statement_command, &statement->common);
  statement_command->add_option("--from", statement->from,
                                "Start: 2024-05-01, 2024-05-01T12:00:00Z or microseconds");
  statement_command->add_option("--to", statement->to, "End (same forms); default: now");
  statement_command->footer("Example: ocx statement --from 2024-05-01 --to 2024-06-01");
  registry.Add(statement_command, [statement] { return RunStatement(*statement); });

  auto offers = std::make_shared<OffersFlags>();
  CLI::App* offers_command = app.add_subcommand(
      "offers", "Machines for sale that match a discovery query, with their asks");
  AddCommon(offers_command, &offers->common);
  offers_command
      ->add_option("query", offers->query,
                   "The query (docs/formats/query.md); '' matches every machine")
      ->required();
  offers_command->add_option("--sort", offers->sort, "e.g. price,-reputation");
  offers_command->add_option("--market", offers->market, "Only asks in this market");
  offers_command->add_flag("--explain", offers->explain,
                           "Show how many machines each clause rules out");
  offers_command->add_option("--limit", offers->limit, "At most this many machines")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  offers_command->footer(
      "Examples:\n"
      "  ocx offers 'region == \"eu\" && cpu.factor >= 1' --sort price\n"
      "  ocx offers 'gpu.count >= 1' --market cpu --explain");
  registry.Add(offers_command, [offers] { return RunOffers(*offers); });
}

}  // namespace ocx::cli
