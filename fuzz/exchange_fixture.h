// An exchange in this process for the API and stream harnesses (docs/fuzzing.md): the real
// ExchangeServer (sequencer, journal, SQLite store, blobs, market data) on a scratch data
// directory, with a market already there: an operator, a funded consumer, a provider with a
// machine (an Ed25519 key the harness holds) and a resting sell. Requests go straight to
// Api::Handle and WebSocket messages to Api::OpenWebSocket's handlers, without a socket, so
// an input costs what the API and the core do with it.
//
// Made once per process (the first input pays for it). Not thread-safe: libFuzzer runs one
// input at a time.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "spdlog/spdlog.h"
#include "src/api/api.h"
#include "src/base/clock.h"
#include "src/base/files.h"
#include "src/base/json.h"
#include "src/protocol/identity.h"
#include "src/server/exchange_server.h"

namespace ocx::fuzz {

// The answer Api::Handle gives, waited for with a deadline (a request that is never answered
// is a wedged exchange: the harness fails).
inline api::HttpResponse Call(api::Api& api, api::HttpRequest request) {
  auto promise = std::make_shared<std::promise<api::HttpResponse>>();
  auto future = promise->get_future();
  auto answered = std::make_shared<std::once_flag>();
  api.Handle(std::move(request), [promise, answered](api::HttpResponse response) {
    std::call_once(*answered, [&] { promise->set_value(std::move(response)); });
  });
  OCX_ASSERT_MSG(future.wait_for(std::chrono::seconds(30)) == std::future_status::ready,
                 "the exchange did not answer a request within 30 s");
  return future.get();
}

inline api::HttpRequest Request(std::string method, std::string target, std::string body,
                                const std::string& token, std::string content_type) {
  api::HttpRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  if (!api::ParseTarget(request.target, &request.path, &request.query)) request.path.clear();
  if (!token.empty()) request.headers["authorization"] = "Bearer " + token;
  if (!content_type.empty()) request.headers["content-type"] = std::move(content_type);
  request.body = std::move(body);
  request.remote_address = "127.0.0.1";
  return request;
}

class ExchangeFixture {
 public:
  static ExchangeFixture& Get() {
    static ExchangeFixture* fixture = new ExchangeFixture();  // Lives until the process ends.
    return *fixture;
  }

  api::Api& api() { return server_->api(); }
  const std::string& operator_token() const { return operator_token_; }
  const std::string& consumer_token() const { return consumer_token_; }
  const std::string& provider_token() const { return provider_token_; }
  uint64_t machine() const { return machine_; }
  const std::string& machine_secret_key() const { return keys_.secret_key; }

  // A checked call that must succeed while the fixture is set up.
  base::Json Expect(int status, std::string method, std::string target, const base::Json& body,
                    const std::string& token) {
    const api::HttpResponse response =
        Call(api(), Request(std::move(method), std::move(target),
                            body.is_null() ? "" : base::DumpJson(body), token, "application/json"));
    OCX_ASSERT_MSG(response.status == status, response.body.c_str());
    base::Json json;
    OCX_ASSERT(base::ParseJsonStrict(response.body, &json).ok());
    return json;
  }

  // An answer of POST /v1/accounts/{id}/token that replaced the token of one of the fixture's
  // accounts: the fixture goes on with the new one (an input may rotate any of them).
  void FollowTokenRotation(const api::HttpResponse& response) {
    if (response.status != 200) return;
    base::Json body;
    if (!base::ParseJsonStrict(response.body, &body).ok() || !body.is_object()) return;
    const auto account = body.find("account");
    const auto token = body.find("token");
    if (account == body.end() || token == body.end() || !account->is_number_unsigned() ||
        !token->is_string()) {
      return;
    }
    const uint64_t id = account->get<uint64_t>();
    std::string* held = id == operator_id_   ? &operator_token_
                        : id == consumer_id_ ? &consumer_token_
                        : id == provider_id_ ? &provider_token_
                                             : nullptr;
    if (held != nullptr) *held = token->get<std::string>();
  }

  // True when the whole ledger sums to zero (GET /v1/ledger as the operator).
  bool LedgerBalanced() {
    const base::Json ledger = Expect(200, "GET", "/v1/ledger", base::Json(), operator_token_);
    return ledger["balanced"] == true;
  }

 private:
  ExchangeFixture() {
    spdlog::set_level(spdlog::level::off);  // Millions of inputs: the log would be the cost.
    server::ExchangeServerOptions options;
    options.clock = &clock_;
    options.config.data_dir = ScratchDir() + "/exchange";
    options.config.port = 0;
    options.config.io_threads = 1;
    options.config.log_level = "off";
    // Every input is one request from one address and a handful of accounts: the limits
    // would answer 429 to nearly all of them and hide the code behind.
    options.config.rate_per_second = 1e9;
    options.config.rate_burst = 1e9;
    options.config.anonymous_rate_per_second = 1e9;
    options.config.anonymous_rate_burst = 1e9;
    options.config.signup_rate_per_second = 1e9;
    options.config.signup_rate_burst = 1e9;
    options.config.blob_bytes_max = 1 << 20;
    options.config.snapshot_every = 1'000'000;
    auto started = server::ExchangeServer::Start(std::move(options));
    OCX_ASSERT_MSG(started.ok(), started.status().ToString().c_str());
    server_ = std::move(*started);
    auto token = base::ReadFileBounded(server_->operator_token_path(), 4096);
    OCX_ASSERT(token.ok());
    operator_token_ = token->substr(0, token->find('\n'));
    operator_id_ = Expect(200, "GET", "/v1/me", base::Json(), operator_token_)["account"]["id"]
                       .get<uint64_t>();

    const base::Json consumer = Expect(201, "POST", "/v1/accounts",
                                       {{"name", "fuzz-consumer"}, {"role", "consumer"}}, "");
    consumer_token_ = consumer["token"].get<std::string>();
    consumer_id_ = consumer["account"]["id"].get<uint64_t>();
    const base::Json provider = Expect(201, "POST", "/v1/accounts",
                                       {{"name", "fuzz-provider"}, {"role", "provider"}}, "");
    provider_token_ = provider["token"].get<std::string>();
    provider_id_ = provider["account"]["id"].get<uint64_t>();
    Expect(201, "POST", "/v1/accounts/" + std::to_string(consumer_id_) + "/deposits",
           {{"amount", "1000000"}}, operator_token_);
    keys_ = protocol::NewMachineKeyPair();
    const base::Json machine = Expect(
        201, "POST", "/v1/machines",
        {{"name", "fuzz-box"},
         {"public_key", keys_.public_key_hex},
         {"attributes", {{"region", "eu"}, {"cpu.cores", 64}}},
         {"capacity", {{"cpu", 1000}}}},
        provider_token_);
    machine_ = machine["machine"]["id"].get<uint64_t>();
    Expect(201, "POST", "/v1/orders",
           {{"market", "cpu"}, {"side", "sell"}, {"price", "0.05"}, {"quantity", 500},
            {"machine", machine_}},
           provider_token_);
  }

  base::SystemClock clock_;
  std::unique_ptr<server::ExchangeServer> server_;
  std::string operator_token_;
  std::string consumer_token_;
  std::string provider_token_;
  uint64_t operator_id_ = 0;
  uint64_t consumer_id_ = 0;
  uint64_t provider_id_ = 0;
  protocol::MachineKeyPair keys_;
  uint64_t machine_ = 0;
};

// Checks what every answer of the exchange must be: a status it documents, and for a refusal
// the JSON error of the refusal table with the table's status; never a 500 (an exception or a
// broken invariant behind it) and never a 503 while the exchange runs.
inline void CheckAnswer(const api::HttpResponse& response) {
  OCX_ASSERT(response.status >= 200 && response.status < 600);
  OCX_ASSERT_MSG(response.status != 500, response.body.c_str());
  OCX_ASSERT_MSG(response.status != 503, response.body.c_str());
  if (response.status < 400) return;
  base::Json body;
  OCX_ASSERT_MSG(base::ParseJsonStrict(response.body, &body).ok(), response.body.c_str());
  OCX_ASSERT(body.is_object() && body.contains("error") && body["error"].is_object());
  const base::Json& error = body["error"];
  OCX_ASSERT(error.contains("code") && error["code"].is_string());
  OCX_ASSERT(error.contains("message") && error["message"].is_string());
  const auto refusal = protocol::RefusalFromCode(error["code"].get<std::string>());
  OCX_ASSERT_MSG(refusal.has_value(), response.body.c_str());
  OCX_ASSERT_MSG(protocol::HttpStatus(*refusal) == response.status, response.body.c_str());
}

}  // namespace ocx::fuzz
