// A WebSocket message on each channel (docs/fuzzing.md): the first byte picks /v1/stream
// anonymous, /v1/stream signed in as the consumer, or /v1/agent signed in as the fixture's
// machine (the challenge answered with its key); the rest is one text message to the handler.
// Every message the exchange sends back must be a JSON object with a "type", an error must
// carry a code of the refusal table, and none may be internal_error; afterwards the handler
// still answers a ping (stream) or a heartbeat (agent).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fuzz/exchange_fixture.h"

namespace {

using ocx::fuzz::ExchangeFixture;

// The server side of a connection, as the Api sees it: keeps what is sent.
class RecordingConnection : public ocx::api::WsConnection {
 public:
  void SendText(std::shared_ptr<const std::string> text) override {
    std::lock_guard lock(mu_);
    sent_.push_back(*text);
  }
  void Close(std::string) override {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  std::vector<std::string> Take() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    out.swap(sent_);
    return out;
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> sent_;  // Guarded by mu_.
  bool closed_ = false;            // Guarded by mu_.
};

void CheckMessages(const std::vector<std::string>& messages) {
  for (const std::string& text : messages) {
    ocx::base::Json message;
    OCX_ASSERT_MSG(ocx::base::ParseJsonStrict(text, &message).ok(), text.c_str());
    OCX_ASSERT(message.is_object() && message.contains("type") && message["type"].is_string());
    if (message["type"] != "error") continue;
    OCX_ASSERT(message.contains("error") && message["error"].is_object() &&
               message["error"].contains("code") && message["error"]["code"].is_string());
    const std::string code = message["error"]["code"].get<std::string>();
    OCX_ASSERT_MSG(ocx::protocol::RefusalFromCode(code).has_value(), text.c_str());
    OCX_ASSERT_MSG(code != "internal_error", text.c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ExchangeFixture& fixture = ExchangeFixture::Get();
  if (size < 1) return 0;
  const int channel = data[0] % 3;
  const std::string message(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto connection = std::make_shared<RecordingConnection>();
  ocx::api::HttpResponse refusal;
  ocx::api::HttpRequest upgrade = ocx::fuzz::Request(
      "GET", channel == 2 ? "/v1/agent" : "/v1/stream", "",
      channel == 1 ? fixture.consumer_token() : "", "");
  std::shared_ptr<ocx::api::WsHandler> handler =
      fixture.api().OpenWebSocket(upgrade, connection, &refusal);
  OCX_ASSERT_MSG(handler != nullptr, refusal.body.c_str());
  handler->OnOpen();
  if (channel == 2) {
    // Answer the challenge with the machine's key.
    const std::vector<std::string> sent = connection->Take();
    OCX_ASSERT(sent.size() == 1);
    ocx::base::Json challenge;
    OCX_ASSERT(ocx::base::ParseJsonStrict(sent[0], &challenge).ok());
    const std::string nonce = challenge["nonce"].get<std::string>();
    handler->OnMessage(ocx::base::DumpJson(
        {{"type", "auth"},
         {"machine", fixture.machine()},
         {"signature",
          ocx::protocol::SignHex(fixture.machine_secret_key(),
                                 ocx::protocol::AgentAuthMessage(fixture.machine(), nonce))}}));
    connection->Take();  // The welcome.
  }
  handler->OnMessage(message);
  // Order entry answers from the delivery thread once durable: a ping (or heartbeat) after it
  // is answered after it, in order, so waiting for that answer waits for both.
  if (!connection->closed()) {
    handler->OnMessage(channel == 2 ? R"({"type":"heartbeat","id":"probe"})"
                                    : R"({"op":"ping"})");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::vector<std::string> all;
    bool answered = false;
    while (!answered) {
      for (std::string& text : connection->Take()) {
        answered = answered || text.find(channel == 2 ? "\"probe\"" : "\"pong\"") !=
                                   std::string::npos;
        all.push_back(std::move(text));
      }
      if (answered) break;
      OCX_ASSERT_MSG(std::chrono::steady_clock::now() < deadline,
                     "the channel stopped answering after a message");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    CheckMessages(all);
  } else {
    CheckMessages(connection->Take());
  }
  handler->OnClose();
  return 0;
}
