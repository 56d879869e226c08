// The provider agent against a fake exchange (src/client/fake_servers.h: its REST answers
// and a scripted /v1/agent session on one loopback port) and a fake sandbox that runs
// nothing. What the exchange sends is hostile input: messages and answers of the wrong
// shape (a type that is a number, a lease id that is a string, a welcome whose leases are
// not a list, JSON that is not JSON) must be ignored or refused, never crash the agent, and
// the agent must go on to run the next well-formed task.
#include "src/agent/agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/agent/policy.h"
#include "src/base/sha256.h"
#include "src/base/testing/temp_dir.h"
#include "src/client/fake_servers.h"

namespace ocx::agent {
namespace {

using Json = nlohmann::json;
using client::FakeRequest;
using client::FakeResponse;

// Generous: reached only when something is broken, never waited out by a passing test.
constexpr auto kWait = std::chrono::seconds(30);
constexpr uint64_t kMachine = 7;
constexpr uint64_t kSellOrder = 11;
constexpr char kJobStdout[] = "ran\n";

// Runs nothing: writes a fixed line as the job's stdout (an empty stderr) and says it
// succeeded. No process is started, so no root is needed.
class FakeSandbox final : public sandbox::Sandbox {
 public:
  absl::StatusOr<sandbox::JobResult> Run(const sandbox::JobSpec& spec) override {
    if (!spec.stdout_sink.path.empty()) std::ofstream(spec.stdout_sink.path) << kJobStdout;
    if (!spec.stderr_sink.path.empty()) std::ofstream(spec.stderr_sink.path) << "";
    sandbox::JobResult result;
    result.exit_code = 0;
    return result;
  }
};

FakeResponse JsonAnswer(int status, const Json& body) { return {status, body.dump(), {}}; }

// A fake exchange: REST answers as the real one gives them (each replaceable by a test), a
// blob store in memory, and /v1/agent sessions that send what the test scripted and record
// what the agent sends. Thread-safe: the servers' threads and the test's share it.
class FakeExchange {
 public:
  // What one /v1/agent connection sends: the challenge, and after the agent's auth the
  // welcome and then each of `then`, in order. The session then records what the agent
  // sends (answering a task_result with an ack) until the connection ends.
  struct Script {
    std::string challenge = R"({"type":"challenge","nonce":"n0nce"})";
    std::string welcome = R"({"type":"welcome","machine":7,"leases":[]})";
    std::vector<std::string> then;
  };

  FakeExchange() {
    client::FakeWebSocketServerOptions options;
    options.http = [this](const FakeRequest& request) { return Answer(request); };
    options.session = [this](client::FakeWebSocketConnection& connection) { Serve(connection); };
    server_ = std::make_unique<client::FakeWebSocketServer>(std::move(options));
  }
  ~FakeExchange() { server_.reset(); }  // Joins the servers' threads before the rest goes.

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  // The script of connection `number` (1 = the first); later ones repeat the last.
  void SetScripts(std::vector<Script> scripts) {
    std::lock_guard lock(mu_);
    scripts_ = std::move(scripts);
  }
  // Replaces the answer to `method` on paths starting with `prefix`.
  void Override(const std::string& method, const std::string& prefix, FakeResponse answer) {
    std::lock_guard lock(mu_);
    overrides_.push_back({method, prefix, std::move(answer)});
  }

  // Waits until the agent has sent a message for which `match` holds; returns it.
  std::optional<Json> WaitForMessage(const std::function<bool(const Json&)>& match) {
    std::unique_lock lock(mu_);
    std::optional<Json> found;
    cv_.wait_for(lock, kWait, [&] {
      for (const Json& message : received_) {
        if (match(message)) {
          found = message;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<Json> WaitForResult(uint64_t lease) {
    return WaitForMessage([lease](const Json& m) {
      return m.value("type", "") == "task_result" && m.value("lease", uint64_t{0}) == lease;
    });
  }
  // Waits until `count` /v1/agent connections have ended.
  bool WaitForSessionsEnded(int count) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return sessions_ended_ >= count; });
  }
  int sessions() const {
    std::lock_guard lock(mu_);
    return sessions_;
  }
  std::optional<std::string> Blob(const std::string& sha256) const {
    std::lock_guard lock(mu_);
    const auto it = blobs_.find(sha256);
    if (it == blobs_.end()) return std::nullopt;
    return it->second;
  }

 private:
  struct Override_ {
    std::string method;
    std::string prefix;
    FakeResponse answer;
  };

  FakeResponse Answer(const FakeRequest& request) {
    std::lock_guard lock(mu_);
    for (const Override_& o : overrides_) {
      if (request.method == o.method && request.target.starts_with(o.prefix)) return o.answer;
    }
    const std::string& path = request.target;
    if (request.method == "POST" && path == "/v1/machines") {
      return JsonAnswer(201, {{"machine", {{"id", kMachine}}}});
    }
    if (request.method == "GET" && path == "/v1/markets") {
      return JsonAnswer(200, {{"items", Json::array({{{"name", "cpu"}, {"tick", "0.0001"}}})}});
    }
    if (request.method == "POST" && path == "/v1/orders") {
      return JsonAnswer(201, {{"order", {{"id", kSellOrder}, {"status", "open"}}}});
    }
    if (request.method == "GET" && path.starts_with("/v1/orders/")) {
      return JsonAnswer(200,
                        {{"order", {{"id", kSellOrder}, {"status", "open"}, {"remaining", 4}}}});
    }
    if (request.method == "PATCH" && path.starts_with("/v1/orders/")) {
      return JsonAnswer(200, {{"status", "replaced"}});
    }
    if (request.method == "DELETE" && path.starts_with("/v1/orders/")) {
      return JsonAnswer(200, Json::object());
    }
    if (request.method == "PUT" && path.starts_with("/v1/blobs/")) {
      const std::string sha256 = path.substr(10);
      if (base::Sha256Hex(request.body) != sha256) {
        return JsonAnswer(400, {{"error", {{"code", "digest_mismatch"}, {"message", "No."}}}});
      }
      blobs_[sha256] = request.body;
      return JsonAnswer(201, {{"sha256", sha256}, {"size", request.body.size()}});
    }
    return JsonAnswer(404, {{"error", {{"code", "not_found"}, {"message", "No such path."}}}});
  }

  void Serve(client::FakeWebSocketConnection& connection) {
    Script script;
    {
      std::lock_guard lock(mu_);
      const int number = ++sessions_;
      if (!scripts_.empty()) {
        script = scripts_[std::min<size_t>(static_cast<size_t>(number), scripts_.size()) - 1];
      }
    }
    auto record = [this](const std::string& text) {
      std::lock_guard lock(mu_);
      Json message = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      received_.push_back(std::move(message));
      cv_.notify_all();
    };
    connection.Send(script.challenge);
    if (std::optional<std::string> auth = connection.Receive()) {
      record(*auth);
      connection.Send(script.welcome);
      for (const std::string& text : script.then) connection.Send(text);
      while (std::optional<std::string> text = connection.Receive()) {
        record(*text);
        const Json message = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
        if (message.is_object() && message.value("type", "") == "task_result") {
          connection.Send(Json{{"type", "ack"}, {"id", message["id"]}}.dump());
        }
      }
    }
    std::lock_guard lock(mu_);
    ++sessions_ended_;
    cv_.notify_all();
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Script> scripts_;                          // Guarded by mu_.
  std::vector<Override_> overrides_;                     // Guarded by mu_.
  std::vector<Json> received_;                           // Guarded by mu_.
  std::map<std::string, std::string> blobs_;             // Guarded by mu_.
  int sessions_ = 0;                                     // Guarded by mu_.
  int sessions_ended_ = 0;                               // Guarded by mu_.
  std::unique_ptr<client::FakeWebSocketServer> server_;  // Last: stopped first.
};

std::string LeaseStarted(uint64_t lease) {
  return Json{
      {"type", "lease_started"}, {"lease", lease}, {"slots", 1}, {"max_hours", 1}, {"start", 0}}
      .dump();
}

std::string Task(uint64_t lease) {
  return Json{{"type", "task"}, {"lease", lease}, {"spec", {{"command", {"true"}}}}}.dump();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // As root, the task runner checks that a job's uid could pass through to its directory.
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
  }

  void TearDown() override {
    if (agent_ != nullptr) agent_->Stop();
  }

  AgentOptions Options() {
    AgentOptions options;
    options.exchange_url = exchange_.url();
    options.provider_token = "ocx_provider";
    options.data_dir = dir_.File("agent");
    options.policy = DefaultOwnerPolicy();
    core::MachineSpec spec;
    spec.name = "fake-box";
    spec.capacity["cpu"] = 4;
    options.spec = spec;
    options.sandbox = &sandbox_;
    options.warm_sandboxes = 0;
    options.log = [this](const std::string& line) {
      std::lock_guard lock(log_mu_);
      log_ += line + "\n";
    };
    return options;
  }

  void StartAgent() {
    absl::StatusOr<std::unique_ptr<Agent>> started = Agent::Start(Options());
    ASSERT_TRUE(started.ok()) << started.status();
    agent_ = std::move(*started);
    agent_->RunInBackground();
  }

  std::string AgentLog() {
    std::lock_guard lock(log_mu_);
    return log_;
  }

  // The task's result, checked to be the fake job's success with its stdout kept.
  void ExpectSucceeded(uint64_t lease) {
    const std::optional<Json> result = exchange_.WaitForResult(lease);
    ASSERT_TRUE(result.has_value()) << "no task_result for lease " << lease << "; agent log:\n"
                                    << AgentLog();
    const Json& r = (*result)["result"];
    EXPECT_EQ(r["status"], "succeeded") << r.dump();
    ASSERT_TRUE(r["stdout"].is_object()) << r.dump();
    EXPECT_EQ(r["stdout"]["sha256"], base::Sha256Hex(kJobStdout));
    EXPECT_EQ(exchange_.Blob(base::Sha256Hex(kJobStdout)), kJobStdout);
  }

  base::testing::TempDir dir_{"ocx_agent_test"};
  FakeExchange exchange_;
  FakeSandbox sandbox_;
  std::mutex log_mu_;
  std::string log_;               // Guarded by log_mu_.
  std::unique_ptr<Agent> agent_;  // Last: stopped before the exchange and the sandbox go.
};

TEST_F(AgentTest, RunsATaskAndReportsItsResult) {
  exchange_.SetScripts({{.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  ExpectSucceeded(5);
  EXPECT_EQ(exchange_.sessions(), 1);
}

TEST_F(AgentTest, MessagesOfTheWrongShapeAreIgnoredAndTheAgentKeepsWorking) {
  const std::vector<std::string> hostile = {
      R"({"type":5})",
      R"({"type":null,"lease":5})",
      R"({"type":"lease","lease":"x"})",
      R"({"type":"lease_started","lease":"x"})",
      R"({"type":"lease_started","lease":-3})",
      R"({"type":"lease_started","lease":6,"slots":"two"})",
      R"({"type":"lease_started","lease":6,"slots":1e300})",
      R"({"type":"lease_started","lease":6,"slots":100000000})",
      R"({"type":"lease_started","lease":6,"max_hours":-1})",
      R"({"type":"lease_started","lease":6,"start":"yesterday"})",
      R"({"type":"task","lease":"5","spec":{"command":["true"]}})",
      R"({"type":"task","lease":5,"spec":7})",
      R"({"type":"lease_ended","lease":[5],"reason":"released"})",
      R"({"type":"lease_ended","lease":5,"reason":3})",
      R"({"type":"ack","id":"result-x"})",
      R"({"type":"ack","id":"result-99999999999999999999999"})",
      R"({"type":"ack","id":5})",
      R"({"type":"error","id":"result-","error":7})",
      R"([1,2,3])",
      R"("just a string")",
      R"(not json at all)",
      R"({"type":"lease_ended","lease":5,"lease":5})",          // A duplicate key.
      std::string(100, '[') + std::string(100, ']'),            // Too deep.
      R"({"type":"lease_started","lease":6,"note":"\udc00"})",  // A lone surrogate.
  };
  std::vector<std::string> then = {LeaseStarted(5)};
  then.insert(then.end(), hostile.begin(), hostile.end());  // Lease 5 is known meanwhile.
  then.push_back(Task(5));
  exchange_.SetScripts({{.welcome = R"({"type":"welcome","machine":7,"leases":7})", .then = then}});
  StartAgent();
  ExpectSucceeded(5);
  // Nothing of the hostile messages started a lease, or ended lease 5 early; and the agent
  // never dropped the connection over them.
  EXPECT_EQ(exchange_.sessions(), 1);
  EXPECT_EQ(agent_->status().connections, 1);
  EXPECT_TRUE(agent_->status().connected);
  EXPECT_NE(AgentLog().find("ignored a malformed message from the exchange"), std::string::npos);
  EXPECT_NE(AgentLog().find("ignored the welcome's leases, which are not a list"),
            std::string::npos);
}

TEST_F(AgentTest, MalformedLeasesInTheWelcomeAreIgnored) {
  exchange_.SetScripts({{.welcome = R"({"type":"welcome","machine":7,"leases":[
        5, "x", null, {"lease":"y"}, {"lease":0}, {"lease":8,"slots":-1},
        {"lease":9,"task":3}, {"lease":10,"task":{"command":"not a list"}}]})",
                         .then = {Task(9)}}});
  StartAgent();
  // Lease 9 was taken on (its task in the welcome was not an object, so it waited); the
  // well-formed task that came next runs.
  ExpectSucceeded(9);
  // Lease 10's task is an object but not a valid spec: the agent reports an error result.
  const std::optional<Json> ten = exchange_.WaitForResult(10);
  ASSERT_TRUE(ten.has_value()) << AgentLog();
  EXPECT_EQ((*ten)["result"]["status"], "error");
  EXPECT_EQ(agent_->status().connections, 1);
}

TEST_F(AgentTest, ABadChallengeDropsTheConnectionAndTheNextOneWorks) {
  exchange_.SetScripts({{.challenge = R"({"type":5})", .then = {}},
                        {.challenge = R"({"type":"challenge","nonce":7})", .then = {}},
                        {.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  ExpectSucceeded(5);
  EXPECT_EQ(exchange_.sessions(), 3);
  EXPECT_EQ(agent_->status().connections, 1);  // Authenticated once: the third time.
  EXPECT_NE(AgentLog().find("the exchange did not send a challenge"), std::string::npos)
      << AgentLog();
}

TEST_F(AgentTest, AWelcomeThatIsNotOneIsARefusalAndTheAgentTriesAgain) {
  exchange_.SetScripts(
      {{.welcome = R"({"type":["welcome"]})", .then = {}}, {.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  ExpectSucceeded(5);
  EXPECT_EQ(exchange_.sessions(), 2);
}

TEST_F(AgentTest, RestAnswersOfTheWrongShapeAreNotFatal) {
  exchange_.Override("GET", "/v1/markets", JsonAnswer(200, {{"items", 7}}));
  exchange_.Override("POST", "/v1/orders", JsonAnswer(201, {{"order", {{"id", "eleven"}}}}));
  exchange_.Override("GET", "/v1/orders/", JsonAnswer(200, {{"order", 5}}));
  exchange_.SetScripts({{.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  ExpectSucceeded(5);
  EXPECT_EQ(agent_->status().sell_order, 0u);  // No order id it could follow.
  EXPECT_NE(AgentLog().find("names no order"), std::string::npos) << AgentLog();
}

TEST_F(AgentTest, ARegistrationAnswerWithoutAMachineIdIsAnError) {
  exchange_.Override("POST", "/v1/machines", JsonAnswer(201, {{"machine", {{"id", "7"}}}}));
  absl::StatusOr<std::unique_ptr<Agent>> started = Agent::Start(Options());
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.status().message().find("without a machine id"), std::string_view::npos)
      << started.status();
}

TEST_F(AgentTest, ABlobUploadAnswerThatDoesNotNameTheBlobIsAnErrorResult) {
  exchange_.Override("PUT", "/v1/blobs/", JsonAnswer(201, {{"sha256", 5}}));
  exchange_.SetScripts({{.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  const std::optional<Json> result = exchange_.WaitForResult(5);
  ASSERT_TRUE(result.has_value()) << AgentLog();
  EXPECT_EQ((*result)["result"]["status"], "error");
  EXPECT_NE((*result)["result"]["message"].get<std::string>().find("does not name the blob"),
            std::string::npos)
      << result->dump();
}

TEST_F(AgentTest, ABlobTheExchangeRefusesWithA413IsSaidInTheResult) {
  exchange_.Override(
      "PUT", "/v1/blobs/",
      JsonAnswer(413, {{"error",
                        {{"code", "blob_quota_exceeded"},
                         {"message", "The account's blobs would exceed its quota."}}}}));
  exchange_.SetScripts({{.then = {LeaseStarted(5), Task(5)}}});
  StartAgent();
  const std::optional<Json> result = exchange_.WaitForResult(5);
  ASSERT_TRUE(result.has_value()) << AgentLog();
  const Json& r = (*result)["result"];
  EXPECT_EQ(r["status"], "succeeded") << r.dump();  // The job did; its logs were refused.
  EXPECT_TRUE(r["stdout"].is_null()) << r.dump();
  EXPECT_NE(r["message"].get<std::string>().find(
                "the job's stdout was not kept: the exchange refused it (blob_quota_exceeded"),
            std::string::npos)
      << r.dump();
}

}  // namespace
}  // namespace ocx::agent
