// RunJob (job_runner.h). About 1,250 lines, kept in one file on purpose: it is one state
// machine (JobRun) following one job from upload to bill, and its steps share the run's
// state; the pieces that stand alone (input planning and upload, writing outputs under a
// root, the query error's caret) are free functions of job_runner.h, tested on their own in
// job_file_test.cc.
#include "src/cli/job_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "src/base/decimal.h"
#include "src/base/errno_status.h"
#include "src/base/json.h"
#include "src/base/sha256.h"
#include "src/base/status.h"
#include "src/base/unique_fd.h"
#include "src/client/exchange_client.h"
#include "src/client/json_fields.h"
#include "src/client/url.h"
#include "src/client/websocket_client.h"
#include "src/protocol/task_spec.h"

namespace ocx::cli {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr int64_t kReceiveSliceMs = 200;  // How often the loop looks at `cancel`.
constexpr int64_t kHttpTimeoutMs = 60'000;
constexpr size_t kLogLineBytesMax = 64 * 1024;  // A partial line longer than this is printed.
constexpr size_t kLedgerPagesMax = 10'000;      // 10 M entries: a bound, not an expectation.

// ---- JSON from the exchange: parsed strictly, every field read with its type checked
// (client/json_fields.h), so a buggy or compromised exchange cannot make `ocx run` throw.

// `text` parsed strictly; null (which has no fields) when it is not JSON.
Json ParseOrNull(std::string_view text) {
  std::optional<Json> parsed = client::ParseExchangeJson(text);
  return parsed ? std::move(*parsed) : Json();
}
const Json* Field(const Json& j, std::string_view key) { return client::FindField(j, key); }
std::string Str(const Json& j, std::string_view key, const std::string& fallback = "") {
  return client::StringField(j, key).value_or(fallback);
}
uint64_t U64(const Json& j, std::string_view key) {
  return client::Uint64Field(j, key).value_or(0);
}
int64_t I64(const Json& j, std::string_view key, int64_t fallback = 0) {
  return client::Int64Field(j, key).value_or(fallback);
}
// A money string in micro-units; 0 when absent or malformed.
int64_t MoneyMicros(const Json& j, std::string_view key) {
  const base::ParsedMicros parsed = base::ParseMicros(Str(j, key));
  return parsed.ok() ? parsed.micros : 0;
}
std::string Dump(const Json& j) { return base::DumpJson(j); }

std::string Bytes(uint64_t bytes) {
  char text[32];
  if (bytes < 1024) {
    std::snprintf(text, sizeof(text), "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < (uint64_t{1} << 20)) {
    std::snprintf(text, sizeof(text), "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(text, sizeof(text), "%.1f MiB", static_cast<double>(bytes) / (1024 * 1024));
  }
  return text;
}

bool IsTerminal(const std::ostream& out) {
  if (&out == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  if (&out == &std::cerr || &out == &std::clog) return ::isatty(STDERR_FILENO) == 1;
  return false;
}

std::string RandomKey() {
  std::random_device device;
  std::string key = "run-";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 24; ++i) key += kHex[device() % 16];
  return key;
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The refusal of an input larger than a blob may be, naming the file and the limit.
absl::Status InputTooLarge(const std::string& path, uint64_t size, uint64_t bytes_max) {
  return absl::InvalidArgumentError("the input " + path + " is " + std::to_string(size) +
                                    " bytes (" + Bytes(size) + "), more than a blob may hold (" +
                                    std::to_string(bytes_max) + " bytes)");
}

// Lexically normalized path text: "./a//b/" -> "a/b".
std::string Normalize(const std::string& path) {
  std::string out = std::filesystem::path(path).lexically_normal().generic_string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

}  // namespace

// ---------------------------------------------------------------- shared helpers

absl::StatusOr<OpenedInput> OpenInput(const std::string& path, uint64_t bytes_max) {
  OpenedInput input;
  input.path = path;
  input.fd.Reset(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  struct stat st;
  if (!input.fd.valid() || ::fstat(input.fd.get(), &st) != 0) {
    return absl::InvalidArgumentError("cannot read the input " + path + ": " +
                                      std::string(base::ErrnoStatus(errno, "open").message()));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("the input " + path + " is not a regular file");
  }
  input.size = static_cast<uint64_t>(st.st_size);
  // Checked again on the open file: it may have grown since the inputs were planned.
  if (input.size > bytes_max) return InputTooLarge(path, input.size, bytes_max);
  absl::StatusOr<std::string> sha256 = client::Sha256OfUploadBody(input.fd.get(), input.size);
  if (!sha256.ok()) {
    return absl::InvalidArgumentError("cannot read the input " + path + ": " +
                                      std::string(sha256.status().message()));
  }
  input.sha256 = std::move(*sha256);
  return input;
}

absl::StatusOr<bool> PutInput(client::HttpClient& http, const OpenedInput& input) {
  OCX_ASSIGN_OR_RETURN(client::HttpResponse head,
                       http.Request("HEAD", "/v1/blobs/" + input.sha256, {}, {}, ""));
  if (head.status == 200) return false;
  if (head.status != 404) {
    return client::ApiErrorToStatus(client::ParseApiError(head.status, head.body));
  }
  OCX_ASSIGN_OR_RETURN(client::HttpResponse put,
                       http.Upload("PUT", "/v1/blobs/" + input.sha256, input.fd.get(), input.size));
  if (put.status == 200 || put.status == 201) return true;
  const client::ApiError error = client::ParseApiError(put.status, put.body);
  std::string message = error.message;
  if (!message.empty() && message.back() == '.') message.pop_back();
  // Over the exchange's blob limit or the account's blob quota: not the input's fault as
  // such, so not a usage error (exit 1, not 2), but the file is named.
  const absl::StatusCode code = put.status == 413 ? absl::StatusCode::kResourceExhausted
                                                  : client::StatusCodeForHttpStatus(put.status);
  return absl::Status(code, "the exchange refused the input " + input.path + ": " + message + " (" +
                                error.code + ")");
}

std::string UrlEncode(std::string_view text) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '_' || u == '.' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string CaretUnder(std::string_view query, int column, std::string_view message) {
  // Only the line holding the column; the caret counts UTF-8 characters, not bytes.
  const size_t offset = std::min(column > 0 ? static_cast<size_t>(column - 1) : 0, query.size());
  const size_t newline_before =
      offset == 0 ? std::string_view::npos : query.rfind('\n', offset - 1);
  const size_t line_start = newline_before == std::string_view::npos ? 0 : newline_before + 1;
  size_t line_end = query.find('\n', line_start);
  if (line_end == std::string_view::npos) line_end = query.size();
  std::string line(query.substr(line_start, line_end - line_start));
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') c = '?';
  }
  std::string pad;
  for (size_t i = line_start; i < offset; ++i) {
    const unsigned char u = static_cast<unsigned char>(query[i]);
    if ((u & 0xC0) == 0x80) continue;  // A UTF-8 continuation byte.
    pad += query[i] == '\t' ? '\t' : ' ';
  }
  return "  " + line + "\n  " + pad + "^ column " + std::to_string(column) + ": " +
         std::string(message);
}

std::string QueryErrorReason(const std::string& message, int column) {
  const std::string marker = "column " + std::to_string(column) + ": ";
  const size_t at = message.find(marker);
  return at == std::string::npos ? message : message.substr(at + marker.size());
}

absl::StatusOr<Json> CallJson(client::HttpClient& http, std::string_view method,
                              std::string_view target, const Json* body, const Headers& headers,
                              Json* error_body) {
  const std::string text = body != nullptr ? Dump(*body) : std::string();
  OCX_ASSIGN_OR_RETURN(client::HttpResponse response,
                       http.Request(method, target, text, headers, "application/json"));
  if (response.status < 200 || response.status > 299) {
    if (error_body != nullptr) *error_body = ParseOrNull(response.body);
    return client::ApiErrorToStatus(client::ParseApiError(response.status, response.body));
  }
  if (response.body.empty()) return Json();
  std::optional<Json> parsed = client::ParseExchangeJson(response.body);
  if (!parsed) {
    return absl::InternalError(std::string(method) + " " + std::string(target) +
                               " answered with something that is not JSON");
  }
  return std::move(*parsed);
}

absl::Status WriteUnder(const std::string& root, const std::string& relative,
                        std::string_view data) {
  if (!IsSafeOutputPath(relative)) {
    return absl::InvalidArgumentError("refusing the result path '" + relative +
                                      "': not a relative path inside the output folder");
  }
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(root, error);
  if (error) return absl::InternalError("cannot create " + root + ": " + error.message());
  fs::path at(root);
  const fs::path rel(relative);
  for (auto part = rel.begin(); part != rel.end(); ++part) {
    at /= *part;
    const bool last = std::next(part) == rel.end();
    const fs::file_status status = fs::symlink_status(at, error);
    if (fs::is_symlink(status)) {
      return absl::InvalidArgumentError("refusing to write through the symbolic link " +
                                        at.string());
    }
    if (last) break;
    if (!fs::exists(status)) {
      if (!fs::create_directory(at, error) && error) {
        return absl::InternalError("cannot create " + at.string() + ": " + error.message());
      }
    } else if (!fs::is_directory(status)) {
      return absl::InvalidArgumentError("cannot write " + relative + ": " + at.string() +
                                        " is not a folder");
    }
  }
  base::UniqueFd fd(
      ::open(at.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "cannot write " + at.string());
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "cannot write " + at.string());
    }
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<InputFile>> PlanInputs(const JobFile& job) {
  namespace fs = std::filesystem;
  std::vector<InputFile> files;
  std::map<std::string, std::string> remote_to_local;
  auto add = [&](const fs::path& local, const std::string& remote) -> absl::Status {
    std::error_code error;
    const uint64_t size = fs::file_size(local, error);
    if (error) return absl::InvalidArgumentError("cannot read the input " + local.string());
    if (size > kJobInputBytesMax) return InputTooLarge(local.string(), size, kJobInputBytesMax);
    if (!protocol::IsSafeRelativePath(remote)) {
      return absl::InvalidArgumentError("the input " + local.string() +
                                        " has no usable path under /work ('" + remote + "')");
    }
    const auto [it, inserted] = remote_to_local.emplace(remote, local.string());
    if (!inserted) {
      return absl::InvalidArgumentError("the inputs " + it->second + " and " + local.string() +
                                        " would both be /work/" + remote);
    }
    if (files.size() >= kJobInputFilesMax) {
      return absl::InvalidArgumentError("more than 10000 input files");
    }
    const fs::perms perms = fs::status(local, error).permissions();
    const bool executable =
        (perms & (fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec)) !=
        fs::perms::none;
    files.push_back(InputFile{local.string(), remote, size, executable});
    return absl::OkStatus();
  };
  for (const std::string& input : job.inputs) {
    const fs::path local = fs::path(input).is_absolute() || job.base_dir.empty()
                               ? fs::path(input)
                               : fs::path(job.base_dir) / input;
    // Where it goes: a relative path without ".." keeps its place; otherwise its last part.
    std::string remote = Normalize(input);
    if (fs::path(input).is_absolute() || !protocol::IsSafeRelativePath(remote)) {
      remote = remote == "."
                   ? ""
                   : fs::path(Normalize(fs::absolute(local).string())).filename().string();
    }
    if (remote == ".") remote = "";
    std::error_code error;
    const fs::file_status status = fs::status(local, error);
    if (fs::is_regular_file(status)) {
      if (remote.empty()) remote = local.filename().string();
      OCX_RETURN_IF_ERROR(add(local, remote));
    } else if (fs::is_directory(status)) {
      std::vector<fs::path> found;
      fs::recursive_directory_iterator it(local, error), end;
      if (error) return absl::InvalidArgumentError("cannot list the input folder " + input);
      for (; it != end; it.increment(error)) {
        if (error) return absl::InvalidArgumentError("cannot list the input folder " + input);
        if (it->is_regular_file(error)) found.push_back(it->path());
      }
      std::sort(found.begin(), found.end());  // A stable order: the same job, the same spec.
      for (const fs::path& file : found) {
        const std::string below = file.lexically_relative(local).generic_string();
        OCX_RETURN_IF_ERROR(add(file, remote.empty() ? below : remote + "/" + below));
      }
    } else {
      return absl::InvalidArgumentError("the input " + local.string() +
                                        " is not a file or folder that can be read");
    }
  }
  return files;
}

absl::StatusOr<uint64_t> WhoAmI(const std::string& exchange_url, const std::string& token) {
  OCX_ASSIGN_OR_RETURN(client::Endpoint endpoint, client::ParseUrl(exchange_url));
  client::HttpClientOptions options;
  options.timeout_ms = 10'000;
  OCX_ASSIGN_OR_RETURN(std::unique_ptr<client::WebSocketClient> ws,
                       client::WebSocketClient::Connect(endpoint, "/v1/stream", options));
  OCX_RETURN_IF_ERROR(ws->Send(Dump(Json{{"op", "auth"}, {"token", token}})));
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < give_up) {
    OCX_ASSIGN_OR_RETURN(std::string text, ws->Receive(10'000));
    const Json message = ParseOrNull(text);
    const std::string type = Str(message, "type");
    if (type == "authenticated") return U64(message, "account");
    if (type == "error") {
      const Json* error = Field(message, "error");
      return absl::UnauthenticatedError(
          "the exchange refused the API token: " +
          (error != nullptr ? Str(*error, "message") : Dump(message)));
    }
  }
  return absl::DeadlineExceededError("the exchange did not answer the authentication");
}

// ---------------------------------------------------------------- the run

namespace {

struct LeaseRef {
  uint64_t lease = 0;
  int attempt = 1;
};

struct TaskState {
  std::string state = "waiting";
  int attempts = 0;
  uint64_t lease = 0;  // The latest attempt's.
  uint64_t machine = 0;
  std::vector<LeaseRef> leases;  // Every lease it had, oldest first.
  bool saved = false;            // The latest lease's result is in the output folder.
};

// One RunJob call: the job's state as learnt from the stream, the POST answer and polls, and
// what was saved. Owned by RunJob on its thread; not thread-safe (only *cancel is shared).
// Its maps hold only this job's leases (at most 3 per task), never the account's others.
class JobRun {
 public:
  JobRun(const JobRunOptions& options, std::ostream& out, const std::atomic<bool>* cancel)
      : options_(options), job_(options.job), out_(out), cancel_(cancel) {}

  absl::StatusOr<JobReport> Run();

 private:
  bool Cancelled() const { return cancel_ != nullptr && cancel_->load(); }
  void Say(const std::string& line) { out_ << "ocx: " << line << "\n" << std::flush; }

  absl::Status CheckMarket();
  absl::Status CheckConstraints();
  absl::StatusOr<Json> UploadInputs(const std::vector<InputFile>& files);
  void DrawProgress(uint64_t done, uint64_t total, size_t index, size_t count,
                    const std::string& name);
  absl::Status OpenStream();
  absl::Status Submit(const Json& spec);
  void Follow();
  void HandleMessage(const Json& message);
  void NoteLease(int index, uint64_t lease, uint64_t machine, int attempt);
  void ApplyTask(int index, const std::string& state, int attempts, uint64_t lease,
                 uint64_t machine);
  void ApplyJob(const Json& job);
  void Poll();
  void ReportWaiting();
  void OnLog(uint64_t lease, const std::string& stream, const std::string& data);
  void FlushLogs(uint64_t lease);
  void MaybeSave(int index);
  void SaveResult(int index, uint64_t lease, const Json& result);
  absl::StatusOr<std::string> Download(const std::string& digest);
  void Cancel();
  bool Settled() const;
  std::string MachineName(uint64_t machine);
  absl::StatusOr<JobReport> MakeBill();
  std::string TaskDir(int index) const { return output_dir_ + "/task-" + std::to_string(index); }

  const JobRunOptions& options_;
  const JobFile& job_;
  std::ostream& out_;
  const std::atomic<bool>* cancel_;

  std::unique_ptr<client::HttpClient> http_;
  std::unique_ptr<client::WebSocketClient> ws_;
  uint64_t account_ = 0;
  int64_t tick_micros_ = 0;
  int64_t max_price_micros_ = 0;

  uint64_t job_id_ = 0;
  std::string job_state_ = "active";
  std::string output_dir_;
  std::vector<TaskState> tasks_;
  std::map<uint64_t, int> lease_task_;  // Lease -> task index, for this job's leases.
  std::map<uint64_t, Json> results_;    // Lease -> its task result (null: none came).
  std::set<uint64_t> ended_leases_;
  std::map<std::pair<uint64_t, std::string>, std::string> partial_lines_;
  std::map<uint64_t, std::string> machine_names_;
  std::vector<std::string> problems_;  // Downloads that failed, refused paths.

  bool cancelling_ = false;
  Clock::time_point cancel_deadline_;
  Clock::time_point settle_deadline_;
  bool job_over_ = false;
  bool offers_supported_ = true;
};

absl::Status JobRun::CheckConstraints() {
  if (job_.constraints.empty()) return absl::OkStatus();
  // The exchange's discovery endpoint parses queries as the job's constraints are parsed: a
  // mistake shows here, before anything is uploaded; and the count says whether the job can
  // find a machine at all.
  Json error_body;
  auto offers = CallJson(*http_, "GET",
                         "/v1/offers?q=" + UrlEncode(job_.constraints) +
                             "&market=" + UrlEncode(job_.market) + "&limit=1",
                         nullptr, {}, &error_body);
  if (offers.ok()) {
    if (const std::optional<int64_t> n = client::Int64Field(*offers, "total_matching")) {
      const int64_t matching = *n;
      Say(matching == 0
              ? "no machine online matches the constraints now; the job waits until "
                "one does"
              : Plural(matching, "machine matches", "machines match") + " the constraints now");
    }
    return absl::OkStatus();
  }
  const auto api = client::GetApiError(offers.status());
  if (api && (api->http_status == 404 || api->http_status == 405)) {
    offers_supported_ = false;  // No discovery endpoint: the exchange checks at submission.
    return absl::OkStatus();
  }
  const Json* error = Field(error_body, "error");
  if (api && api->http_status == 400 && error != nullptr && I64(*error, "column") > 0) {
    const int column = static_cast<int>(I64(*error, "column"));
    return absl::InvalidArgumentError(
        "the constraints are not a valid query:\n" +
        CaretUnder(job_.constraints, column, QueryErrorReason(api->message, column)));
  }
  return absl::OkStatus();  // Anything else: the submission will say.
}

absl::Status JobRun::CheckMarket() {
  OCX_ASSIGN_OR_RETURN(Json markets, CallJson(*http_, "GET", "/v1/markets"));
  std::string names;
  const Json* items = Field(markets, "items");
  if (items != nullptr && items->is_array()) {
    for (const Json& market : *items) {
      const std::string name = Str(market, "name");
      if (name == job_.market) {
        tick_micros_ = MoneyMicros(market, "tick");
        if (tick_micros_ > 0 && max_price_micros_ % tick_micros_ != 0) {
          return absl::InvalidArgumentError("the max price " + job_.max_price +
                                            " is not a multiple of the " + job_.market +
                                            " market's tick " + Str(market, "tick"));
        }
        return absl::OkStatus();
      }
      names += (names.empty() ? "" : ", ") + name;
    }
  }
  return absl::InvalidArgumentError("the exchange has no market '" + job_.market +
                                    "' (markets: " + names + ")");
}

void JobRun::DrawProgress(uint64_t done, uint64_t total, size_t index, size_t count,
                          const std::string& name) {
  constexpr int kWidth = 30;
  const int filled = total == 0 ? kWidth : static_cast<int>(done * kWidth / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '-');
  std::string shown = name.size() > 32 ? "..." + name.substr(name.size() - 29) : name;
  char line[256];
  std::snprintf(line, sizeof(line), "\rocx: uploading [%s] %zu/%zu files %s/%s %-32s", bar.c_str(),
                index, count, Bytes(done).c_str(), Bytes(total).c_str(), shown.c_str());
  out_ << line << std::flush;
}

absl::StatusOr<Json> JobRun::UploadInputs(const std::vector<InputFile>& files) {
  Json inputs = Json::array();
  if (files.empty()) return inputs;
  const bool bar = options_.show_progress && IsTerminal(out_);
  uint64_t total = 0, done = 0, sent_bytes = 0;
  for (const InputFile& file : files) total += file.size;
  std::set<std::string> on_exchange;
  int64_t sent = 0, present = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (Cancelled()) return absl::CancelledError("cancelled while uploading the inputs");
    const InputFile& file = files[i];
    if (bar) DrawProgress(done, total, i, files.size(), file.remote_path);
    // Hashed, then sent a chunk at a time, from one open file: PUT names the digest and the
    // exchange checks the bytes against it, so a file changed in between is refused.
    OCX_ASSIGN_OR_RETURN(const OpenedInput opened, OpenInput(file.local_path, kJobInputBytesMax));
    if (!on_exchange.contains(opened.sha256)) {
      OCX_ASSIGN_OR_RETURN(const bool put, PutInput(*http_, opened));
      if (put) {
        ++sent;
        sent_bytes += opened.size;
      } else {
        ++present;
      }
      on_exchange.insert(opened.sha256);
    }
    Json input{{"path", file.remote_path}, {"sha256", opened.sha256}, {"size", opened.size}};
    if (file.executable) input["executable"] = true;
    inputs.push_back(std::move(input));
    done += file.size;
  }
  if (bar) {
    DrawProgress(done, total, files.size(), files.size(), "");
    out_ << "\n";
  }
  Say("inputs: " + Plural(static_cast<int64_t>(files.size()), "file", "files") + ", " +
      Bytes(total) + "; uploaded " + std::to_string(sent) + " (" + Bytes(sent_bytes) + "), " +
      std::to_string(present) + " already on the exchange");
  return inputs;
}

absl::Status JobRun::OpenStream() {
  OCX_ASSIGN_OR_RETURN(client::Endpoint endpoint, client::ParseUrl(options_.exchange_url));
  client::HttpClientOptions ws_options;
  ws_options.timeout_ms = 30'000;
  OCX_ASSIGN_OR_RETURN(ws_, client::WebSocketClient::Connect(endpoint, "/v1/stream", ws_options));
  OCX_RETURN_IF_ERROR(ws_->Send(Dump(Json{{"op", "auth"}, {"token", options_.token}})));
  OCX_RETURN_IF_ERROR(ws_->Send(Dump(Json{{"op", "subscribe"}, {"channel", "leases"}})));
  bool subscribed = false;
  const auto give_up = Clock::now() + std::chrono::seconds(30);
  while (!subscribed || account_ == 0) {
    if (Clock::now() > give_up) {
      return absl::DeadlineExceededError("the exchange did not confirm the leases subscription");
    }
    OCX_ASSIGN_OR_RETURN(std::string text, ws_->Receive(10'000));
    const Json message = ParseOrNull(text);
    const std::string type = Str(message, "type");
    if (type == "authenticated") account_ = U64(message, "account");
    if (type == "subscribed") subscribed = true;
    if (type == "error") {
      const Json* error = Field(message, "error");
      return absl::UnauthenticatedError("the exchange refused the stream: " +
                                        (error ? Str(*error, "message") : Dump(message)));
    }
  }
  return absl::OkStatus();
}

absl::Status JobRun::Submit(const Json& spec) {
  Json body{{"market", job_.market},        {"tasks", job_.tasks},
            {"slots_per_task", job_.slots}, {"max_price", job_.max_price},
            {"max_hours", job_.max_hours},  {"task", spec}};
  if (!job_.constraints.empty()) body["constraints"] = job_.constraints;
  const std::string key = options_.idempotency_key.empty() ? RandomKey() : options_.idempotency_key;
  Json error_body;
  absl::StatusOr<Json> answer =
      CallJson(*http_, "POST", "/v1/jobs", &body, {{"Idempotency-Key", key}}, &error_body);
  if (!answer.ok() && absl::IsUnavailable(answer.status())) {
    // The same key again is safe: the exchange answers with the job it already made.
    answer = CallJson(*http_, "POST", "/v1/jobs", &body, {{"Idempotency-Key", key}}, &error_body);
  }
  if (!answer.ok()) {
    const auto api = client::GetApiError(answer.status());
    const Json* error = Field(error_body, "error");
    if (api && api->code == "invalid_constraints" && error != nullptr &&
        I64(*error, "column") > 0) {
      const int column = static_cast<int>(I64(*error, "column"));
      const std::string message = QueryErrorReason(api->message, column);
      return absl::InvalidArgumentError("the constraints are not a valid query:\n" +
                                        CaretUnder(job_.constraints, column, message));
    }
    if (api) {
      const absl::StatusCode code =
          api->http_status == 400 ? absl::StatusCode::kInvalidArgument : answer.status().code();
      std::string message = api->message;
      if (!message.empty() && message.back() == '.') message.pop_back();
      return absl::Status(code,
                          "the exchange refused the job: " + message + " (" + api->code + ")");
    }
    return answer.status();
  }
  const Json* job = Field(*answer, "job");
  if (job == nullptr || U64(*job, "id") == 0) {
    return absl::InternalError("POST /v1/jobs answered without a job: " + Dump(*answer));
  }
  job_id_ = U64(*job, "id");
  output_dir_ =
      options_.output_dir.empty() ? "ocx-out/job-" + std::to_string(job_id_) : options_.output_dir;
  if (const Json* replay = Field(*answer, "idempotent_replay");
      replay && replay->is_boolean() && replay->get<bool>()) {
    Say("job " + std::to_string(job_id_) + " was already submitted with this key; following it");
  } else {
    Say("job " + std::to_string(job_id_) + " submitted: " + Plural(job_.tasks, "task", "tasks") +
        " of " + Plural(job_.slots, "slot", "slots") + " in " + job_.market + ", at most " +
        job_.max_price + " per slot-hour for up to " + Plural(job_.max_hours, "hour", "hours") +
        (job_.constraints.empty() ? "" : ", where " + job_.constraints));
  }
  ApplyJob(*job);
  return absl::OkStatus();
}

std::string JobRun::MachineName(uint64_t machine) {
  if (machine == 0) return "";
  if (const auto it = machine_names_.find(machine); it != machine_names_.end()) return it->second;
  std::string name;
  if (auto got = CallJson(*http_, "GET", "/v1/machines/" + std::to_string(machine)); got.ok()) {
    if (const Json* m = Field(*got, "machine")) name = Str(*m, "name");
  }
  machine_names_[machine] = name;
  return name;
}

// Where a task state stands in its life: updates come from the stream (in order) and from
// the POST answer and polls (which may be ahead of the stream), so an older update must not
// undo a newer one. Within an attempt a task goes waiting -> running -> an end state; a retry
// starts a higher attempt.
int StateRank(const std::string& state) {
  if (state == "waiting") return 0;
  if (state == "running") return 1;
  return 2;
}

void JobRun::NoteLease(int index, uint64_t lease, uint64_t machine, int attempt) {
  if (lease == 0 || lease_task_.contains(lease)) return;
  TaskState& task = tasks_[static_cast<size_t>(index)];
  lease_task_[lease] = index;
  task.leases.push_back(LeaseRef{lease, attempt});
  std::sort(task.leases.begin(), task.leases.end(),
            [](const LeaseRef& a, const LeaseRef& b) { return a.attempt < b.attempt; });
  const std::string name = MachineName(machine);
  Say("task " + std::to_string(index) + " running on machine " + std::to_string(machine) +
      (name.empty() ? "" : " (" + name + ")") + ", lease " + std::to_string(lease) +
      (attempt > 1 ? ", attempt " + std::to_string(attempt) : ""));
}

void JobRun::ApplyTask(int index, const std::string& state, int attempts, uint64_t lease,
                       uint64_t machine) {
  if (index < 0 || index >= static_cast<int>(tasks_.size())) return;
  TaskState& task = tasks_[static_cast<size_t>(index)];
  const std::string label = "task " + std::to_string(index);
  NoteLease(index, lease, machine, std::max(1, attempts > 0 ? attempts : task.attempts));
  if (state.empty() ||
      std::pair(attempts, StateRank(state)) <= std::pair(task.attempts, StateRank(task.state))) {
    MaybeSave(index);  // Nothing newer than what is known.
    return;
  }
  if (lease != 0 && lease != task.lease) {
    task.lease = lease;
    task.machine = machine;
    task.saved = false;
  }
  const int attempts_before = task.attempts;
  task.state = state;
  task.attempts = attempts;
  if (state == "waiting" && attempts_before >= 1 && attempts > attempts_before) {
    task.lease = 0;
    Say(label + ": its machine went away before it finished; ordering again (attempt " +
        std::to_string(attempts) + " of 3)");
  } else if (state == "lost") {
    Say(label + " lost: no result and no attempt left (or no funds for another order)");
  } else if (state == "cancelled" && !cancelling_) {
    Say(label + " cancelled");
  }
  MaybeSave(index);
}

void JobRun::ApplyJob(const Json& job) {
  const Json* tasks = Field(job, "tasks");
  if (tasks != nullptr && tasks->is_array()) {
    for (const Json& t : *tasks) {
      ApplyTask(static_cast<int>(I64(t, "index", -1)), Str(t, "state"),
                static_cast<int>(I64(t, "attempts")), U64(t, "lease"), U64(t, "machine"));
    }
  }
  const std::string state = Str(job, "state");
  if (!state.empty() && state != "active" && !job_over_) {
    job_over_ = true;
    job_state_ = state;
    settle_deadline_ = Clock::now() + std::chrono::milliseconds(kJobSettleMs);
  }
}

void JobRun::HandleMessage(const Json& message) {
  const std::string type = Str(message, "type");
  if (type == "job_task" && U64(message, "job") == job_id_) {
    ApplyTask(static_cast<int>(I64(message, "task_index", -1)), Str(message, "state"),
              static_cast<int>(I64(message, "attempts")), U64(message, "lease"),
              U64(message, "machine"));
  } else if (type == "task_assigned" && U64(message, "job") == job_id_) {
    const int index = static_cast<int>(I64(message, "task_index", -1));
    ApplyTask(index, "", 0, U64(message, "lease"), U64(message, "machine"));
  } else if (type == "task_log") {
    OnLog(U64(message, "lease"), Str(message, "stream"), Str(message, "data"));
  } else if (type == "task_finished") {
    const uint64_t lease = U64(message, "lease");
    const auto it = lease_task_.find(lease);
    if (it == lease_task_.end()) return;
    FlushLogs(lease);
    const Json* result = Field(message, "result");
    results_[lease] = result != nullptr ? *result : Json();
    MaybeSave(it->second);
  } else if (type == "lease_ended" && lease_task_.contains(U64(message, "lease"))) {
    ended_leases_.insert(U64(message, "lease"));
  } else if (type == "job_ended" && U64(message, "job") == job_id_) {
    if (!job_over_) {
      job_over_ = true;
      job_state_ = Str(message, "state", "done");
      settle_deadline_ = Clock::now() + std::chrono::milliseconds(kJobSettleMs);
    }
  }
}

void JobRun::OnLog(uint64_t lease, const std::string& stream, const std::string& data) {
  const auto it = lease_task_.find(lease);
  if (it == lease_task_.end() || !options_.stream_logs) return;
  std::string& partial = partial_lines_[{lease, stream}];
  partial += data;
  size_t start = 0;
  for (size_t newline = partial.find('\n'); newline != std::string::npos;
       newline = partial.find('\n', start)) {
    out_ << "[task " << it->second << "] "
         << std::string_view(partial).substr(start, newline - start) << "\n";
    start = newline + 1;
  }
  partial.erase(0, start);
  if (partial.size() > kLogLineBytesMax) {
    out_ << "[task " << it->second << "] " << partial << "\n";
    partial.clear();
  }
  out_ << std::flush;
}

void JobRun::FlushLogs(uint64_t lease) {
  const auto task = lease_task_.find(lease);
  for (const char* stream : {"stdout", "stderr"}) {
    const auto it = partial_lines_.find({lease, stream});
    if (it == partial_lines_.end()) continue;
    if (!it->second.empty() && task != lease_task_.end()) {
      out_ << "[task " << task->second << "] " << it->second << "\n";
    }
    partial_lines_.erase(it);
  }
  out_ << std::flush;
}

absl::StatusOr<std::string> JobRun::Download(const std::string& digest) {
  if (digest.size() != 64) return absl::InvalidArgumentError("a malformed blob digest");
  OCX_ASSIGN_OR_RETURN(client::HttpResponse got, http_->Get("/v1/blobs/" + digest));
  if (got.status != 200) {
    return client::ApiErrorToStatus(client::ParseApiError(got.status, got.body));
  }
  if (base::Sha256Hex(got.body) != digest) {
    return absl::DataLossError("the blob " + digest + " did not match its SHA-256");
  }
  return std::move(got.body);
}

void JobRun::MaybeSave(int index) {
  TaskState& task = tasks_[static_cast<size_t>(index)];
  if (task.saved || task.lease == 0) return;
  if (task.state != "finished" && task.state != "cancelled") return;
  auto it = results_.find(task.lease);
  if (it == results_.end()) {
    if (task.state != "finished") return;  // A cancelled task's result may still come.
    // Finished means the result is journaled: read it (the stream message may be lost).
    auto got = CallJson(*http_, "GET", "/v1/leases/" + std::to_string(task.lease) + "/task");
    if (!got.ok()) return;  // Tried again at the next poll.
    const Json* t = Field(*got, "task");
    const Json* result = t != nullptr ? Field(*t, "result") : nullptr;
    if (result == nullptr) return;
    it = results_.emplace(task.lease, *result).first;
  }
  task.saved = true;
  SaveResult(index, task.lease, it->second);
}

void JobRun::SaveResult(int index, uint64_t lease, const Json& result) {
  const std::string label = "task " + std::to_string(index);
  FlushLogs(lease);
  if (!result.is_object()) {
    Say(label + ": its machine never reported a result");
    return;
  }
  const std::string dir = TaskDir(index);
  int saved = 0;
  auto keep = [&](const std::string& what, const std::string& digest, const std::string& path) {
    absl::StatusOr<std::string> data = Download(digest);
    absl::Status written = data.ok() ? WriteUnder(dir, path, *data) : data.status();
    if (!written.ok()) {
      problems_.push_back(label + ": " + what + ": " + std::string(written.message()));
      Say(label + ": could not save " + what + ": " + std::string(written.message()));
      return false;
    }
    return true;
  };
  for (const char* stream : {"stdout", "stderr"}) {
    const Json* blob = Field(result, stream);
    if (blob == nullptr || !blob->is_object()) continue;
    keep(stream, Str(*blob, "sha256"), std::string(stream) + ".log");
  }
  if (const Json* outputs = Field(result, "outputs"); outputs != nullptr && outputs->is_array()) {
    for (const Json& output : *outputs) {
      const std::string path = Str(output, "path");
      if (!IsSafeOutputPath(path)) {
        problems_.push_back(label + ": refused the output path '" + path + "'");
        Say(label + ": refused the output path '" + path + "' (outside the output folder)");
        continue;
      }
      if (keep("output " + path, Str(output, "sha256"), path)) ++saved;
    }
  }
  std::string missing;
  if (const Json* m = Field(result, "missing_outputs"); m != nullptr && m->is_array()) {
    for (const Json& path : *m) {
      if (path.is_string()) missing += (missing.empty() ? "" : ", ") + path.get<std::string>();
    }
  }
  const std::string status = Str(result, "status", "unknown");
  std::string line = label + " " + status;
  if (const Json* code = Field(result, "exit_code"); code != nullptr && code->is_number_integer()) {
    line += " (exit " + std::to_string(code->get<int64_t>()) + ")";
  }
  if (const int64_t wall = I64(result, "wall_ms", -1); wall >= 0) {
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), " in %.1f s", static_cast<double>(wall) / 1000);
    line += seconds;
  }
  line += "; " + Plural(saved, "output", "outputs") + " and its logs in " + dir;
  if (!missing.empty()) line += "; missing: " + missing;
  if (status != "succeeded") {
    const std::string message = Str(result, "message");
    if (!message.empty()) line += " (" + message + ")";
  }
  Say(line);
}

void JobRun::Poll() {
  auto got = CallJson(*http_, "GET", "/v1/jobs/" + std::to_string(job_id_));
  if (got.ok()) {
    if (const Json* job = Field(*got, "job")) ApplyJob(*job);
  }
  const bool waiting_for_results = job_over_ || cancelling_;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    TaskState& task = tasks_[i];
    if (task.saved || task.lease == 0) continue;
    if (task.state == "finished") {
      MaybeSave(static_cast<int>(i));
    } else if (task.state == "cancelled" && waiting_for_results) {
      // A killed task still reports; read it if the stream message went missing.
      auto result = CallJson(*http_, "GET", "/v1/leases/" + std::to_string(task.lease) + "/task");
      if (result.ok()) {
        const Json* t = Field(*result, "task");
        const std::string status = t != nullptr ? Str(*t, "status") : "";
        if (t != nullptr && Field(*t, "result") != nullptr) {
          results_[task.lease] = *Field(*t, "result");
          MaybeSave(static_cast<int>(i));
        } else if (status == "lost") {
          results_[task.lease] = Json();
          MaybeSave(static_cast<int>(i));
        }
      }
    }
  }
  if (waiting_for_results) {
    for (const auto& [lease, index] : lease_task_) {
      if (ended_leases_.contains(lease)) continue;
      auto lease_json = CallJson(*http_, "GET", "/v1/leases/" + std::to_string(lease));
      if (!lease_json.ok()) continue;
      const Json* l = Field(*lease_json, "lease");
      if (l != nullptr && Str(*l, "status") == "ended") ended_leases_.insert(lease);
    }
  }
}

void JobRun::ReportWaiting() {
  std::vector<int> waiting;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (tasks_[i].state == "waiting") waiting.push_back(static_cast<int>(i));
  }
  if (waiting.empty()) return;
  std::string which;
  for (size_t i = 0; i < waiting.size() && i < 8; ++i) {
    which += (i == 0 ? "" : ", ") + std::to_string(waiting[i]);
  }
  if (waiting.size() > 8) which += ", ...";
  std::string line =
      (waiting.size() == 1 ? "task " : "tasks ") + which + " waiting for a machine: ";
  std::string best_ask;
  if (auto markets = CallJson(*http_, "GET", "/v1/markets"); markets.ok()) {
    if (const Json* items = Field(*markets, "items"); items != nullptr && items->is_array()) {
      for (const Json& market : *items) {
        if (Str(market, "name") == job_.market) best_ask = Str(market, "best_ask");
      }
    }
  }
  if (best_ask.empty()) {
    line += "nobody offers " + job_.market + " slots right now";
  } else {
    const base::ParsedMicros ask = base::ParseMicros(best_ask);
    if (ask.ok() && ask.micros > max_price_micros_) {
      line +=
          "the best ask is " + best_ask + " per slot-hour, above your max price " + job_.max_price;
    } else {
      line += "the best ask " + best_ask + " is within your max price " + job_.max_price +
              ", but no offer at that price fits (" + Plural(job_.slots, "slot", "slots") +
              " on one machine" + (job_.constraints.empty() ? "" : ", your constraints") + ")";
    }
  }
  if (!job_.constraints.empty() && offers_supported_) {
    Json error_body;
    auto offers = CallJson(*http_, "GET",
                           "/v1/offers?q=" + UrlEncode(job_.constraints) +
                               "&market=" + UrlEncode(job_.market) + "&limit=1",
                           nullptr, {}, &error_body);
    if (offers.ok()) {
      if (const std::optional<int64_t> n = client::Int64Field(*offers, "total_matching")) {
        line += "; " + Plural(*n, "machine matches", "machines match") + " your constraints";
      }
    } else if (const auto api = client::GetApiError(offers.status());
               api && (api->http_status == 404 || api->http_status == 405)) {
      offers_supported_ = false;  // This exchange has no discovery endpoint.
    }
  }
  Say(line);
}

void JobRun::Cancel() {
  cancelling_ = true;
  cancel_deadline_ = Clock::now() + std::chrono::milliseconds(options_.cancel_grace_ms);
  Say("cancelling job " + std::to_string(job_id_) +
      ": waiting orders are withdrawn, running tasks stopped (Ctrl-C again quits at once)");
  auto cancelled = CallJson(*http_, "DELETE", "/v1/jobs/" + std::to_string(job_id_));
  if (!cancelled.ok()) {
    const auto api = client::GetApiError(cancelled.status());
    if (!(api && api->code == "unknown_job")) {  // unknown_job: it had ended already.
      Say("the exchange did not cancel the job: " + std::string(cancelled.status().message()));
    }
  }
}

bool JobRun::Settled() const {
  if (!job_over_) return false;
  for (const auto& [lease, index] : lease_task_) {
    if (!ended_leases_.contains(lease)) return false;
  }
  for (const TaskState& task : tasks_) {
    if (task.lease == 0 || task.saved) continue;
    if (task.state == "finished") return false;
    if (task.state == "cancelled" && cancelling_ && Clock::now() < cancel_deadline_) return false;
  }
  return true;
}

void JobRun::Follow() {
  auto next_poll = Clock::now();
  auto next_report = Clock::now() + std::chrono::milliseconds(options_.waiting_report_interval_ms);
  while (true) {
    if (Cancelled() && !cancelling_) Cancel();
    if (ws_ != nullptr) {
      absl::StatusOr<std::string> text = ws_->Receive(kReceiveSliceMs);
      if (text.ok()) {
        HandleMessage(ParseOrNull(*text));
      } else if (!absl::IsDeadlineExceeded(text.status())) {
        Say("the live stream closed (" + std::string(text.status().message()) +
            "); following the job by polling, without live output");
        ws_.reset();
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(kReceiveSliceMs));
    }
    const auto now = Clock::now();
    if (now >= next_poll) {
      Poll();
      next_poll = now + std::chrono::milliseconds(options_.poll_interval_ms);
    }
    if (!job_over_ && !cancelling_ && now >= next_report) {
      ReportWaiting();
      next_report = now + std::chrono::milliseconds(options_.waiting_report_interval_ms);
    }
    if (Settled()) return;
    if (job_over_ && now > settle_deadline_) {
      Say("gave up waiting for the job's leases to end; the bill may not be final");
      return;
    }
    if (cancelling_ && !job_over_ &&
        now > cancel_deadline_ + std::chrono::milliseconds(kJobSettleMs)) {
      Say("the job did not end after the cancel; the bill may not be final");
      return;
    }
  }
}

absl::StatusOr<JobReport> JobRun::MakeBill() {
  JobReport report;
  report.job = job_id_;
  report.state = job_state_;
  report.output_dir = output_dir_;
  // What the ledger moved out of this account's escrow for each lease, refunds aside: the
  // bill to the seller, and the fees and insurance on top.
  std::map<uint64_t, int64_t> ledger;
  bool ledger_read = false;
  if (options_.verify_with_ledger && !lease_task_.empty() && account_ != 0) {
    uint64_t after = 0;
    ledger_read = true;
    for (size_t page = 0; page < kLedgerPagesMax; ++page) {
      auto got = CallJson(*http_, "GET",
                          "/v1/accounts/" + std::to_string(account_) +
                              "/ledger?limit=1000&after=" + std::to_string(after));
      if (!got.ok()) {
        Say("could not read the ledger: " + std::string(got.status().message()));
        ledger_read = false;
        break;
      }
      if (const Json* items = Field(*got, "items"); items != nullptr && items->is_array()) {
        for (const Json& entry : *items) {
          const Json* from = Field(entry, "from");
          const uint64_t reference = U64(entry, "reference");
          if (from == nullptr || U64(*from, "account") != account_ ||
              Str(*from, "balance") != "escrow" || Str(entry, "kind") == "refund" ||
              !lease_task_.contains(reference)) {
            continue;
          }
          ledger[reference] += MoneyMicros(entry, "amount");
        }
      }
      const Json* next = Field(*got, "next_after");
      if (next == nullptr || !next->is_number_unsigned()) break;
      after = next->get<uint64_t>();
    }
  }
  int64_t total = 0;
  bool all_succeeded = job_state_ == "done" && problems_.empty();
  for (size_t i = 0; i < tasks_.size(); ++i) {
    const TaskState& task = tasks_[i];
    if (task.state != "finished") all_succeeded = false;
    if (task.leases.empty()) {
      TaskBill bill;
      bill.index = static_cast<int>(i);
      bill.cost = "0";
      bill.status = task.state;
      bill.attempt = std::max(1, task.attempts);
      report.tasks.push_back(bill);
      continue;
    }
    for (const LeaseRef& ref : task.leases) {
      TaskBill bill;
      bill.index = static_cast<int>(i);
      bill.lease = ref.lease;
      bill.attempt = ref.attempt;
      auto got = CallJson(*http_, "GET", "/v1/leases/" + std::to_string(ref.lease));
      if (!got.ok()) return got.status();
      const Json* lease = Field(*got, "lease");
      if (lease == nullptr) return absl::InternalError("GET /v1/leases answered without a lease");
      bill.machine = U64(*lease, "machine");
      bill.machine_name = MachineName(bill.machine);
      bill.price = Str(*lease, "price");
      bill.seconds = I64(*lease, "billed_seconds");
      bill.lease_status = Str(*lease, "status");
      // Escrow at the start minus the refund at the end is what left the escrow: the bill
      // and the fees. While the lease runs, only the bill so far is known.
      const int64_t cost = bill.lease_status == "ended"
                               ? MoneyMicros(*lease, "escrow") - MoneyMicros(*lease, "refunded")
                               : MoneyMicros(*lease, "billed_total");
      bill.cost = base::FormatMicros(cost);
      total += cost;
      if (ledger_read) {
        bill.ledger_cost = base::FormatMicros(ledger[ref.lease]);
        if (ledger[ref.lease] != cost) report.ledger_matches = false;
      }
      const auto result = results_.find(ref.lease);
      if (result != results_.end() && result->second.is_object()) {
        bill.status = Str(result->second, "status", "unknown");
        bill.exit_code = static_cast<int>(I64(result->second, "exit_code", -1));
      } else if (ref.lease == task.lease) {
        bill.status = task.state == "finished" ? "finished" : task.state;
      } else {
        bill.status = "lost (" + Str(*lease, "end_reason", "ended") + ")";
      }
      if (ref.lease == task.lease && bill.status != "succeeded") all_succeeded = false;
      report.tasks.push_back(bill);
    }
  }
  report.total = base::FormatMicros(total);
  report.all_succeeded = all_succeeded;
  if (!report.ledger_matches) {
    Say("warning: a lease's cost does not match the ledger's movements out of escrow");
  }
  for (const std::string& problem : problems_) Say("problem: " + problem);
  return report;
}

absl::StatusOr<JobReport> JobRun::Run() {
  OCX_RETURN_IF_ERROR(CheckJobComplete(job_, "the job"));
  max_price_micros_ = base::ParseMicros(job_.max_price).micros;
  OCX_ASSIGN_OR_RETURN(const std::vector<InputFile> files, PlanInputs(job_));
  // The task spec, checked here as the exchange will check it, before anything is uploaded.
  Json spec{{"command", job_.command}};
  if (!job_.env.empty()) {
    Json env = Json::object();
    for (const auto& [name, value] : job_.env) env[name] = value;
    spec["env"] = env;
  }
  if (!job_.outputs.empty()) spec["outputs"] = job_.outputs;
  if (job_.network) spec["network"] = true;
  if (job_.timeout_s) spec["timeout_s"] = *job_.timeout_s;
  {
    Json draft = spec;
    Json inputs = Json::array();
    for (const InputFile& file : files) {
      inputs.push_back({{"path", file.remote_path}, {"sha256", std::string(64, '0')}});
    }
    if (!inputs.empty()) draft["inputs"] = inputs;
    if (auto checked = protocol::ParseTaskSpec(Dump(draft)); !checked.ok()) {
      return absl::InvalidArgumentError("the task is not valid: " +
                                        std::string(checked.status().message()));
    }
  }

  client::HttpClientOptions http_options;
  http_options.timeout_ms = kHttpTimeoutMs;
  http_options.bearer_token = options_.token;
  OCX_ASSIGN_OR_RETURN(client::Endpoint endpoint, client::ParseUrl(options_.exchange_url));
  auto http = client::HttpClient::Connect(endpoint, http_options);
  if (!http.ok()) {
    return absl::UnavailableError("cannot reach the exchange at " + options_.exchange_url + ": " +
                                  std::string(http.status().message()));
  }
  http_ = std::move(*http);
  OCX_RETURN_IF_ERROR(CheckMarket());
  OCX_RETURN_IF_ERROR(CheckConstraints());
  OCX_ASSIGN_OR_RETURN(Json inputs, UploadInputs(files));
  if (!inputs.empty()) spec["inputs"] = inputs;
  if (Cancelled()) return absl::CancelledError("cancelled before the job was submitted");
  // Subscribed before submitting: every message about the job arrives after this point.
  OCX_RETURN_IF_ERROR(OpenStream());
  tasks_.resize(static_cast<size_t>(job_.tasks));
  if (Cancelled()) return absl::CancelledError("cancelled before the job was submitted");
  OCX_RETURN_IF_ERROR(Submit(spec));
  Follow();
  for (const auto& [lease, index] : lease_task_) FlushLogs(lease);
  if (ws_ != nullptr) (void)ws_->Close();
  return MakeBill();
}

}  // namespace

absl::StatusOr<JobReport> RunJob(const JobRunOptions& options, std::ostream& out,
                                 const std::atomic<bool>* cancel) {
  JobRun run(options, out, cancel);
  return run.Run();
}

void PrintBill(const JobReport& report, std::ostream& out) {
  out << "\nBill for job " << report.job << " (" << report.state << ")\n";
  char line[512];
  std::snprintf(line, sizeof(line), "  %-5s %-24s %-7s %-13s %8s %12s  %s\n", "task", "machine",
                "lease", "price/slot-h", "seconds", "cost", "status");
  out << line;
  for (const TaskBill& bill : report.tasks) {
    std::string machine = bill.machine == 0 ? "-" : "#" + std::to_string(bill.machine);
    if (!bill.machine_name.empty()) machine = bill.machine_name + " (" + machine + ")";
    std::string status = bill.status;
    if (bill.exit_code >= 0 && bill.status != "succeeded") {
      status += " (exit " + std::to_string(bill.exit_code) + ")";
    }
    if (!bill.lease_status.empty() && bill.lease_status != "ended") status += ", lease still open";
    std::snprintf(line, sizeof(line), "  %-5d %-24s %-7s %-13s %8lld %12s  %s\n", bill.index,
                  machine.c_str(), bill.lease == 0 ? "-" : std::to_string(bill.lease).c_str(),
                  bill.price.empty() ? "-" : bill.price.c_str(),
                  static_cast<long long>(bill.seconds), bill.cost.c_str(), status.c_str());
    out << line;
  }
  std::snprintf(line, sizeof(line), "  %-5s %-24s %-7s %-13s %8s %12s\n", "total", "", "", "", "",
                report.total.c_str());
  out << line;
  out << "  (cost = billed time at the lease's price plus the buyer's fee, in credits)\n";
  std::error_code error;
  if (!report.output_dir.empty() && std::filesystem::exists(report.output_dir, error)) {
    out << "Outputs and logs: " << report.output_dir << "\n";
  }
  out << std::flush;
}

nlohmann::json JobReportJson(const JobReport& report) {
  Json tasks = Json::array();
  for (const TaskBill& bill : report.tasks) {
    Json t{{"index", bill.index},
           {"attempt", bill.attempt},
           {"lease", bill.lease},
           {"machine", bill.machine},
           {"machine_name", bill.machine_name},
           {"price", bill.price},
           {"seconds", bill.seconds},
           {"cost", bill.cost},
           {"status", bill.status},
           {"exit_code", bill.exit_code},
           {"lease_status", bill.lease_status}};
    if (!bill.ledger_cost.empty()) t["ledger_cost"] = bill.ledger_cost;
    tasks.push_back(std::move(t));
  }
  return Json{{"job", report.job},
              {"state", report.state},
              {"all_succeeded", report.all_succeeded},
              {"total", report.total},
              {"ledger_matches", report.ledger_matches},
              {"output_dir", report.output_dir},
              {"tasks", tasks}};
}

}  // namespace ocx::cli
