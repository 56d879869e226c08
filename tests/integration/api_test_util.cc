#include "tests/integration/api_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "src/base/decimal.h"
#include "src/base/testing/build_paths.h"
#include "src/client/url.h"

extern char** environ;

namespace ocx::api_test {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// A short pause inside a loop that polls a condition against a deadline.
void PollPause() { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- ExchangeProcess

ExchangeProcess::ExchangeProcess(std::string root) : root_(std::move(root)) {}

ExchangeProcess::~ExchangeProcess() {
  if (running()) Kill();
}

absl::Status ExchangeProcess::Start() {
  if (running()) return absl::FailedPreconditionError("the server is already running");
  const std::string port_file = root_ + "/port";
  const std::string log_file = root_ + "/server.log";
  std::filesystem::remove(port_file);
  port_ = 0;
  url_.clear();

  std::vector<std::string> args = {base::testing::OcxBinary(),
                                   "exchange",
                                   "--data-dir",
                                   data_dir(),
                                   "--port",
                                   "0",
                                   "--port-file",
                                   port_file,
                                   "--log-level",
                                   "warn"};
  args.insert(args.end(), extra_arguments_.begin(), extra_arguments_.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // The test's own sockets must not leak into the server (they would outlive their close).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (spawned != 0) {
    return absl::InternalError(std::string("posix_spawn ") + base::testing::OcxBinary() + ": " +
                               std::strerror(spawned));
  }
  pid_ = pid;

  const int64_t deadline = NowMs() + kServerStartDeadlineMs;
  while (true) {
    const std::string text = Trim(ReadFile(port_file));
    if (!text.empty()) {
      const int port = std::atoi(text.c_str());
      if (port <= 0 || port > 65535) {
        return absl::InternalError("the port file holds '" + text + "'");
      }
      port_ = static_cast<uint16_t>(port);
      break;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError("the server exited with " +
                                 std::to_string(DecodeWaitStatus(status)) +
                                 " before listening; log:\n" + LogTail());
    }
    if (NowMs() > deadline) {
      Kill();
      return absl::DeadlineExceededError("no port file within 20 s; log:\n" + LogTail());
    }
    PollPause();
  }
  url_ = "http://127.0.0.1:" + std::to_string(port_);
  operator_token_ = Trim(ReadFile(data_dir() + "/operator.token"));
  if (!protocol::LooksLikeToken(operator_token_)) {
    return absl::InternalError("operator.token does not hold a token: '" + operator_token_ + "'");
  }
  return absl::OkStatus();
}

void ExchangeProcess::Signal(int signal) {
  if (running()) ::kill(pid_, signal);
}

int ExchangeProcess::Wait(int64_t deadline_ms) {
  if (!running()) return -1;
  const int64_t deadline = NowMs() + deadline_ms;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return DecodeWaitStatus(status);
    }
    if (done < 0 && errno != EINTR) {
      pid_ = -1;
      return -1;
    }
    if (NowMs() > deadline) {
      Kill();
      return -1;
    }
    PollPause();
  }
}

int ExchangeProcess::Stop() {
  if (!running()) return -1;
  ::kill(pid_, SIGTERM);
  return Wait();
}

void ExchangeProcess::Kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string ExchangeProcess::LogTail(size_t bytes) const {
  const std::string log = ReadFile(root_ + "/server.log");
  return log.size() > bytes ? log.substr(log.size() - bytes) : log;
}

// ---------------------------------------------------------------- Reply, ApiClient

std::string Reply::ErrorCode() const {
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) return "";
  const auto code = body["error"].find("code");
  return code != body["error"].end() && code->is_string() ? code->get<std::string>() : "";
}

bool Reply::IsErrorBody() const {
  if (!body.is_object() || body.size() != 1 || !body.contains("error")) return false;
  const Json& error = body["error"];
  return error.is_object() && error.size() == 2 && error.contains("code") &&
         error.contains("message") && error["code"].is_string() && error["message"].is_string() &&
         !error["code"].get<std::string>().empty() && !error["message"].get<std::string>().empty();
}

std::ostream& operator<<(std::ostream& out, const Reply& reply) {
  return out << "HTTP " << reply.status << " "
             << (reply.raw.size() > 600 ? reply.raw.substr(0, 600) + "..." : reply.raw);
}

ApiClient::ApiClient(std::string url, std::string token)
    : url_(std::move(url)), token_(std::move(token)) {}

ApiClient::~ApiClient() = default;

Reply ApiClient::Call(std::string_view method, std::string_view target, const Json& body,
                      const Headers& headers) {
  return Raw(method, target, body.is_null() ? std::string() : body.dump(), headers,
             "application/json");
}

Reply ApiClient::Raw(std::string_view method, std::string_view target, std::string_view body,
                     const Headers& headers, std::string_view content_type) {
  Reply reply;
  if (!http_) {
    const auto endpoint = client::ParseUrl(url_);
    if (!endpoint.ok()) {
      reply.raw = endpoint.status().ToString();
      return reply;
    }
    client::HttpClientOptions options;
    options.timeout_ms = 15'000;
    options.bearer_token = token_;
    auto connected = client::HttpClient::Connect(*endpoint, options);
    if (!connected.ok()) {
      reply.raw = connected.status().ToString();
      return reply;
    }
    http_ = std::move(*connected);
  }
  auto response = http_->Request(method, target, body, headers, content_type);
  if (!response.ok()) {
    http_.reset();  // A fresh connection next time.
    reply.raw = response.status().ToString();
    return reply;
  }
  reply.status = response->status;
  reply.raw = response->body;
  reply.headers = response->headers;
  reply.body = Json::parse(reply.raw, nullptr, /*allow_exceptions=*/false);
  if (reply.body.is_discarded()) reply.body = Json();
  return reply;
}

Json ApiClient::Expect(int status, std::string_view method, std::string_view target,
                       const Json& body, const Headers& headers) {
  Reply reply = Call(method, target, body, headers);
  EXPECT_EQ(reply.status, status) << method << " " << target << " " << body.dump() << " -> "
                                  << reply;
  return reply.body;
}

// ---------------------------------------------------------------- money, accounts

int64_t Micros(const Json& decimal_string) {
  if (!decimal_string.is_string()) {
    ADD_FAILURE() << "money is not a decimal string: " << decimal_string.dump();
    return 0;
  }
  const base::ParsedMicros parsed = base::ParseMicros(decimal_string.get<std::string>());
  EXPECT_TRUE(parsed.ok()) << decimal_string.dump();
  return parsed.micros;
}

std::string Credits(int64_t micros) { return base::FormatMicros(micros); }

std::ostream& operator<<(std::ostream& out, const Balances& b) {
  return out << "{available " << Credits(b.available) << ", held " << Credits(b.held) << ", escrow "
             << Credits(b.escrow) << ", earnings " << Credits(b.earnings) << "}";
}

std::string UniqueName(std::string_view prefix) {
  static std::atomic<int> counter{0};
  return std::string(prefix) + "-" + std::to_string(++counter);
}

AccountHandle CreateAccount(ApiClient& op, std::string_view role, std::string_view prefix) {
  AccountHandle account;
  account.name = UniqueName(prefix);
  Reply reply =
      op.Call("POST", "/v1/accounts", Json{{"name", account.name}, {"role", std::string(role)}});
  EXPECT_EQ(reply.status, 201) << reply;
  if (reply.status != 201) return account;
  account.id = reply.body["account"]["id"].get<uint64_t>();
  account.token = reply.body["token"].get<std::string>();
  return account;
}

void Deposit(ApiClient& op, uint64_t account, std::string_view amount) {
  Reply reply = op.Call("POST", "/v1/accounts/" + std::to_string(account) + "/deposits",
                        Json{{"amount", std::string(amount)}});
  EXPECT_EQ(reply.status, 201) << reply;
}

MachineHandle RegisterMachine(ApiClient& provider, int64_t cpu_slots) {
  MachineHandle machine;
  machine.keys = protocol::NewMachineKeyPair();
  Reply reply = provider.Call("POST", "/v1/machines",
                              Json{{"name", UniqueName("machine")},
                                   {"public_key", machine.keys.public_key_hex},
                                   {"attributes", {{"cpu.cores", 8}, {"region", "test-1"}}},
                                   {"capacity", {{"cpu", cpu_slots}}}});
  EXPECT_EQ(reply.status, 201) << reply;
  if (reply.status == 201) machine.id = reply.body["machine"]["id"].get<uint64_t>();
  return machine;
}

Balances GetBalances(ApiClient& client, uint64_t account) {
  Reply reply = client.Call("GET", "/v1/accounts/" + std::to_string(account));
  EXPECT_EQ(reply.status, 200) << reply;
  Balances b;
  if (reply.status != 200) return b;
  Json& j = reply.body["account"]["balances"];
  b.available = Micros(j["available"]);
  b.held = Micros(j["held"]);
  b.escrow = Micros(j["escrow"]);
  b.earnings = Micros(j["earnings"]);
  return b;
}

Json BuyOrder(std::string_view price, int64_t quantity, int64_t max_hours) {
  return Json{{"market", "cpu"},
              {"side", "buy"},
              {"price", std::string(price)},
              {"quantity", quantity},
              {"max_hours", max_hours}};
}

Json SellOrder(std::string_view price, int64_t quantity, uint64_t machine) {
  return Json{{"market", "cpu"},
              {"side", "sell"},
              {"price", std::string(price)},
              {"quantity", quantity},
              {"machine", machine}};
}

std::vector<Json> ListAll(ApiClient& client, const std::string& target, size_t page_limit) {
  std::vector<Json> items;
  const char separator = target.find('?') == std::string::npos ? '?' : '&';
  std::string after;
  for (int page = 0; page < 100'000; ++page) {
    std::string url = target + separator + "limit=" + std::to_string(page_limit);
    if (!after.empty()) url += "&after=" + after;
    Reply reply = client.Call("GET", url);
    EXPECT_EQ(reply.status, 200) << url << " -> " << reply;
    if (reply.status != 200 || !reply.body.contains("items")) return items;
    for (Json item : reply.body["items"]) items.push_back(item);
    Json& next = reply.body["next_after"];
    if (next.is_null()) return items;
    after = next.dump();
  }
  ADD_FAILURE() << "pagination of " << target << " never ended";
  return items;
}

::testing::AssertionResult LedgerIsBalanced(ApiClient& op, int64_t net_deposits_micros,
                                            std::map<uint64_t, Balances>* balances_out) {
  const std::vector<Json> accounts = ListAll(op, "/v1/accounts");
  if (accounts.empty()) return ::testing::AssertionFailure() << "no accounts listed";
  std::map<uint64_t, Json> entries;  // Entry number -> entry (each seen once or identical).
  std::map<uint64_t, Balances> reported;
  for (Json account : accounts) {
    const uint64_t id = account["id"].get<uint64_t>();
    reported[id] = GetBalances(op, id);
    for (Json entry : ListAll(op, "/v1/accounts/" + std::to_string(id) + "/ledger")) {
      const uint64_t number = entry["entry"].get<uint64_t>();
      const auto [it, inserted] = entries.emplace(number, entry);
      if (!inserted && it->second != entry) {
        return ::testing::AssertionFailure()
               << "ledger entry " << number << " differs between accounts: " << it->second.dump()
               << " vs " << entry.dump();
      }
    }
  }
  // Every transfer touches a user account (deposits, withdrawals, holds, fees), so the union
  // of the accounts' ledgers is the whole ledger: entries 1..N, no gap.
  uint64_t expected = 1;
  for (const auto& [number, entry] : entries) {
    if (number != expected) {
      return ::testing::AssertionFailure() << "ledger entries are not numbered 1..N: expected "
                                           << expected << ", found " << number;
    }
    ++expected;
  }
  std::map<std::pair<uint64_t, std::string>, int64_t> sums;
  for (auto& [number, entry] : entries) {
    const int64_t amount = Micros(entry["amount"]);
    if (amount <= 0) {
      return ::testing::AssertionFailure()
             << "a ledger entry without a positive amount: " << entry.dump();
    }
    sums[{entry["from"]["account"].get<uint64_t>(), entry["from"]["balance"].get<std::string>()}] -=
        amount;
    sums[{entry["to"]["account"].get<uint64_t>(), entry["to"]["balance"].get<std::string>()}] +=
        amount;
  }
  int64_t users_total = 0;
  for (const auto& [id, balances] : reported) {
    const Balances computed{sums[{id, "available"}], sums[{id, "held"}], sums[{id, "escrow"}],
                            sums[{id, "earnings"}]};
    if (!(computed == balances)) {
      return ::testing::AssertionFailure() << "account " << id << " reports " << balances
                                           << " but its ledger sums to " << computed;
    }
    if (balances.available < 0 || balances.held < 0 || balances.escrow < 0 ||
        balances.earnings < 0) {
      return ::testing::AssertionFailure()
             << "account " << id << " has a negative balance " << balances;
    }
    users_total += balances.Total();
  }
  int64_t system_total = 0;
  for (const auto& [ref, amount] : sums) {
    const auto& [owner, kind] = ref;
    const bool system_kind = kind == "external" || kind == "fees" || kind == "insurance";
    if (system_kind != (owner == 0)) {
      return ::testing::AssertionFailure()
             << "balance '" << kind << "' of account " << owner << " in the ledger";
    }
    if (owner == 0 && kind != "external") {
      if (amount < 0) {
        return ::testing::AssertionFailure() << "system balance " << kind << " is negative";
      }
      system_total += amount;
    }
  }
  const int64_t external = sums[{0, "external"}];
  if (external != -net_deposits_micros) {
    return ::testing::AssertionFailure()
           << "the world outside holds " << Credits(external)
           << ", expected minus the net deposits " << Credits(net_deposits_micros);
  }
  if (users_total + system_total != net_deposits_micros) {
    return ::testing::AssertionFailure()
           << "accounts hold " << Credits(users_total) << " and fees+insurance "
           << Credits(system_total) << ", together not the net deposits "
           << Credits(net_deposits_micros);
  }
  if (balances_out != nullptr) *balances_out = reported;
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------- WebSocket

std::unique_ptr<client::WebSocketClient> ConnectWebSocket(const std::string& url,
                                                          std::string_view target,
                                                          const std::string& token) {
  const auto endpoint = client::ParseUrl(url);
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  if (!endpoint.ok()) return nullptr;
  client::HttpClientOptions options;
  options.timeout_ms = 15'000;
  options.bearer_token = token;
  auto ws = client::WebSocketClient::Connect(*endpoint, target, options);
  EXPECT_TRUE(ws.ok()) << ws.status();
  if (!ws.ok()) return nullptr;
  return std::move(*ws);
}

std::optional<Json> ReceiveJson(client::WebSocketClient& ws, int64_t timeout_ms, std::string* why) {
  auto text = ws.Receive(timeout_ms);
  if (!text.ok()) {
    if (why != nullptr) *why = text.status().ToString();
    return std::nullopt;
  }
  Json message = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    if (why != nullptr) *why = "not JSON: " + *text;
    return std::nullopt;
  }
  return message;
}

std::optional<Json> ReceiveUntil(client::WebSocketClient& ws,
                                 const std::function<bool(const Json&)>& match,
                                 int64_t timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  std::vector<std::string> skipped;
  while (true) {
    const int64_t left = deadline - NowMs();
    std::string why;
    std::optional<Json> message = left > 0 ? ReceiveJson(ws, left, &why) : std::optional<Json>();
    if (!message) {
      std::string seen;
      for (const std::string& s : skipped) seen += "\n  " + s;
      ADD_FAILURE() << "no matching message (" << (left > 0 ? why : "deadline")
                    << "); skipped:" << seen;
      return std::nullopt;
    }
    if (match(*message)) return message;
    if (skipped.size() < 20) skipped.push_back(message->dump());
  }
}

std::optional<Json> ReceiveType(client::WebSocketClient& ws, std::string_view type,
                                int64_t timeout_ms) {
  return ReceiveUntil(
      ws, [type](const Json& m) { return m.is_object() && m.value("type", "") == type; },
      timeout_ms);
}

bool ClosedWithin(client::WebSocketClient& ws, int64_t timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (NowMs() < deadline) {
    auto text = ws.Receive(deadline - NowMs());
    if (!text.ok()) return text.status().code() != absl::StatusCode::kDeadlineExceeded;
  }
  return false;
}

std::unique_ptr<client::WebSocketClient> ConnectAgent(const std::string& url, uint64_t machine,
                                                      const std::string& secret_key,
                                                      Json* welcome) {
  auto ws = ConnectWebSocket(url, "/v1/agent");
  if (!ws) return nullptr;
  std::optional<Json> challenge = ReceiveType(*ws, "challenge");
  if (!challenge) return nullptr;
  const std::string nonce = challenge->value("nonce", "");
  EXPECT_EQ(nonce.size(), 64u) << challenge->dump();
  const Json auth{
      {"type", "auth"},
      {"machine", machine},
      {"signature", protocol::SignHex(secret_key, protocol::AgentAuthMessage(machine, nonce))}};
  EXPECT_TRUE(ws->Send(auth.dump()).ok());
  std::string why;
  std::optional<Json> answer = ReceiveJson(*ws, kMessageDeadlineMs, &why);
  EXPECT_TRUE(answer && answer->value("type", "") == "welcome") << (answer ? answer->dump() : why);
  if (!answer || answer->value("type", "") != "welcome") return nullptr;
  if (welcome != nullptr) *welcome = *answer;
  return ws;
}

// ---------------------------------------------------------------- fixture

void ExchangeTest::SetUp() {
  dir_ = std::make_unique<base::testing::TempDir>("ocx_api_it");
  server_ = std::make_unique<ExchangeProcess>(dir_->path());
  const absl::Status started = server_->Start();
  ASSERT_TRUE(started.ok()) << started;
  op_ = std::make_unique<ApiClient>(server_->url(), server_->operator_token());
}

void ExchangeTest::TearDown() {
  op_.reset();
  if (server_ && server_->running()) {
    const int code = server_->Stop();
    EXPECT_EQ(code, 0) << "the exchange did not stop cleanly; log:\n" << server_->LogTail();
  }
  server_.reset();
  dir_.reset();
}

ExchangeTest::Market ExchangeTest::MakeMarket(std::string_view deposit, int64_t slots) {
  Market m;
  m.consumer = CreateAccount(*op_, "consumer", "consumer");
  m.provider = CreateAccount(*op_, "provider", "provider");
  Deposit(*op_, m.consumer.id, deposit);
  ApiClient provider(server_->url(), m.provider.token);
  m.machine = RegisterMachine(provider, slots);
  return m;
}

std::unique_ptr<ApiClient> ExchangeTest::ClientFor(const AccountHandle& account) const {
  return std::make_unique<ApiClient>(server_->url(), account.token);
}

// ---------------------------------------------------------------- raw sockets

std::string RawHttp(uint16_t port, const std::string& head, size_t body_bytes,
                    int64_t deadline_ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::string filler(64 * 1024, ' ');
  size_t head_sent = 0, body_sent = 0;
  bool writing = true;
  std::string response;
  const int64_t deadline = NowMs() + deadline_ms;
  while (NowMs() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, deadline - NowMs()))) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[8192];
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        response.append(buffer, static_cast<size_t>(n));
        // Stop once a whole response (by its Content-Length) is in.
        const size_t end = response.find("\r\n\r\n");
        if (end != std::string::npos) {
          std::string lower = response.substr(0, end);
          std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
          const size_t at = lower.find("content-length:");
          if (at != std::string::npos &&
              response.size() >= end + 4 + std::strtoull(lower.c_str() + at + 15, nullptr, 10)) {
            break;
          }
        }
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    if (writing && (p.revents & POLLOUT)) {
      ssize_t n = 0;
      if (head_sent < head.size()) {
        n = ::send(fd, head.data() + head_sent, head.size() - head_sent, MSG_NOSIGNAL);
        if (n > 0) head_sent += static_cast<size_t>(n);
      } else {
        n = ::send(fd, filler.data(), std::min(filler.size(), body_bytes - body_sent),
                   MSG_NOSIGNAL);
        if (n > 0) body_sent += static_cast<size_t>(n);
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) writing = false;  // The server closed.
      if (head_sent == head.size() && body_sent == body_bytes) writing = false;
    }
  }
  ::close(fd);
  return response;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

int RawStatus(const std::string& response) {
  if (!response.starts_with("HTTP/1.")) return 0;
  const size_t space = response.find(' ');
  return space == std::string::npos ? 0 : std::atoi(response.c_str() + space + 1);
}

std::string RawBody(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace ocx::api_test
