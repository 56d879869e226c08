// The hostile-client suite on the WebSocket channels (api_hostile_util.h): every op of
// /v1/stream and every message type of /v1/agent fed hostile messages, hostile frames, and
// hostile answers to the agent's challenge.
#include "tests/integration/api_hostile_util.h"

namespace ocx::api_test {
namespace {

// ------------------------------------------------------------------ /v1/stream

struct WsOp {
  std::string name;
  Template message;
  bool authenticated = false;  // Sent on a connection opened with the consumer's token.
};

TEST_F(ApiHostileTest, EveryStreamOpRefusesHostileMessages) {
  const Json order{{"market", "cpu"}, {"side", "buy"}, {"type", "limit"}, {"tif", "gtc"},
                   {"price", "0.01"}, {"quantity", 1}, {"lot", 1},        {"max_hours", 1}};
  const std::vector<WsOp> ops = {
      {"auth",
       {Json{{"op", "auth"}, {"token", market_.consumer.token}},
        {{"/op", Kind::kEnum, true}, {"/token", Kind::kText, true}}}},
      {"subscribe",
       {Json{{"op", "subscribe"}, {"channel", "book:cpu"}},
        {{"/op", Kind::kEnum, true}, {"/channel", Kind::kEnum, true}},
        {{"a 5000-byte market",
          Json{{"op", "subscribe"}, {"channel", "book:" + std::string(5000, 'c')}}.dump()},
         {"a market with NUL", R"({"op":"subscribe","channel":"book:cpu\u0000"})"}}}},
      {"unsubscribe",
       {Json{{"op", "unsubscribe"}, {"channel", "book:cpu"}},
        {{"/op", Kind::kEnum, true}, {"/channel", Kind::kEnum, true}}}},
      {"ping", {Json{{"op", "ping"}}, {{"/op", Kind::kEnum, true}}}},
      {"place_order",
       {Json{
            {"op", "place_order"}, {"id", 7}, {"idempotency_key", "hostile-key"}, {"order", order}},
        {{"/op", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/idempotency_key", Kind::kText},
         {"/order", Kind::kObject, true},
         {"/order/market", Kind::kText, true},
         {"/order/side", Kind::kEnum, true},
         {"/order/type", Kind::kEnum},
         {"/order/tif", Kind::kEnum},
         {"/order/price", Kind::kMoney},
         {"/order/quantity", Kind::kInt, true},
         {"/order/lot", Kind::kInt},
         {"/order/max_hours", Kind::kInt},
         {"/order/expiry", Kind::kInt},
         {"/order/machine", Kind::kInt},
         {"/order/constraints", Kind::kQuery}},
        {{"an idempotency key of the exchange's",
          Json{{"op", "place_order"}, {"idempotency_key", "auto-1"}, {"order", order}}.dump()},
         {"an idempotency key with a space",
          Json{{"op", "place_order"}, {"idempotency_key", "a b"}, {"order", order}}.dump()}}},
       true},
      {"cancel_order",
       {Json{{"op", "cancel_order"}, {"id", 8}, {"order", order_}},
        {{"/op", Kind::kEnum, true}, {"/id", Kind::kAny}, {"/order", Kind::kInt, true}}},
       true},
  };
  std::set<std::string> covered;
  Generator generator(seed_);
  for (const WsOp& op : ops) {
    covered.insert(op.name);
    const std::string token = op.authenticated ? market_.consumer.token : "";
    auto ws = Stream(token);
    ASSERT_NE(ws, nullptr);
    // Unknown fields are refused, except by ping, which has nothing to read.
    const std::set<std::string> ok =
        op.name == "ping" ? std::set<std::string>{"pong"} : std::set<std::string>{};
    auto send = [&](const std::string& label, const std::string& text, bool invalid_utf8) {
      const bool may_close = invalid_utf8 || text.size() > kWsMessageBytesMax;
      if (!SendWs(*ws, "/v1/stream " + op.name + " " + label, text, may_close, ok, PingPong)) {
        if (dead_) return false;
        ws = Stream(token);  // The exchange closed this one (allowed); go on with another.
        return ws != nullptr;
      }
      return true;
    };
    for (const Field& field : op.message.fields) {
      const Json current = op.message.body.contains(Json::json_pointer(field.pointer))
                               ? op.message.body[Json::json_pointer(field.pointer)]
                               : Json();
      for (const Hostile& value : HostileValues(field, current)) {
        if (!send(field.pointer + " = " + value.label,
                  Substitute(op.message.body, field.pointer, value.text), value.invalid_utf8)) {
          return;
        }
      }
    }
    for (const auto& [label, text] : op.message.extra) {
      if (!send(label, text, false)) return;
    }
    for (const Hostile& message : MalformedBodies(op.message.body)) {
      if (!send(message.label, message.text, message.invalid_utf8)) return;
    }
    for (int i = 0; i < 30; ++i) {
      const Hostile message = generator.Body(op.message);
      if (!send("random #" + std::to_string(i) + " (" + message.label + ")", message.text,
                message.invalid_utf8)) {
        return;
      }
    }
  }
  EXPECT_EQ(covered, (std::set<std::string>{"auth", "subscribe", "unsubscribe", "ping",
                                            "place_order", "cancel_order"}));
}

TEST_F(ApiHostileTest, StreamSurvivesHostileFrames) {
  struct FrameCase {
    std::string label;
    std::string bytes;        // Sent after the upgrade.
    std::string expect_type;  // A reply of this type keeps the connection; "" expects a close.
    bool shut_write = false;
  };
  const std::string ping = R"({"op":"ping"})";
  const std::vector<FrameCase> cases = {
      {"a binary message", RawWebSocket::Encode(0x82, ping), "error"},
      {"invalid UTF-8 text", RawWebSocket::Encode(0x81, "\xff\xfe"), ""},
      {"an unmasked frame", RawWebSocket::Encode(0x81, ping, false), ""},
      {"reserved opcode 3", RawWebSocket::Encode(0x83, ping), ""},
      {"reserved opcode 0xb", RawWebSocket::Encode(0x8b, ""), ""},
      {"RSV1 without an extension", RawWebSocket::Encode(0xc1, ping), ""},
      {"a 126-byte ping", RawWebSocket::Encode(0x89, std::string(126, 'p')), ""},
      {"a fragmented ping", RawWebSocket::Encode(0x09, "p"), ""},
      {"a continuation without a start", RawWebSocket::Encode(0x80, ping), ""},
      {"a length of 2^63", RawWebSocket::Encode(0x81, "abc", true, uint64_t{1} << 63), ""},
      {"a length of 2^64-1", RawWebSocket::Encode(0x81, "abc", true, ~uint64_t{0}), ""},
      {"1 MiB declared, 10 bytes sent", RawWebSocket::Encode(0x81, "0123456789", true, 1 << 20), "",
       true},
      {"a message over 64 KiB", RawWebSocket::Encode(0x81, std::string(70'000, ' ')), ""},
      {"a close code of 999", RawWebSocket::Encode(0x88, std::string("\x03\xe7", 2)), ""},
      {"a close frame of one byte", RawWebSocket::Encode(0x88, "x"), ""},
      {"random bytes", std::string("\x13\x37\xde\xad\xbe\xef\x00\xff", 8), "", true},
      {"a message in two fragments",
       RawWebSocket::Encode(0x01, "{\"op\":") + RawWebSocket::Encode(0x80, "\"ping\"}"), "pong"},
      {"fragments with a ping between",
       RawWebSocket::Encode(0x01, "{\"op\":") + RawWebSocket::Encode(0x89, "x") +
           RawWebSocket::Encode(0x80, "\"ping\"}"),
       "pong"},
      {"a character split across fragments",
       RawWebSocket::Encode(0x01, "{\"op\":\"p\xc3") + RawWebSocket::Encode(0x80, "\xa9\"}"),
       "error"},
      {"invalid UTF-8 split across fragments",
       RawWebSocket::Encode(0x01, "{\"op\":\"\xc3") + RawWebSocket::Encode(0x80, "(\"}"), ""},
      {"1000 pings",
       Repeat(RawWebSocket::Encode(0x89, "x"), 1000) + RawWebSocket::Encode(0x81, ping), "pong"},
      {"1000 empty text messages", Repeat(RawWebSocket::Encode(0x81, ""), 1000), "error"},
  };
  for (const FrameCase& c : cases) {
    SCOPED_TRACE(c.label);
    std::string why;
    auto raw = RawWebSocket::Open(server_->port(), "/v1/stream", "", &why);
    ASSERT_NE(raw, nullptr) << why;
    raw->SendBytes(c.bytes);  // The exchange may close before it read everything.
    if (c.shut_write) raw->ShutdownWrite();
    if (c.expect_type.empty()) {
      EXPECT_TRUE(raw->ClosedWithin(kAnswerDeadlineMs))
          << c.label << ": the exchange kept a connection that broke the protocol";
    } else {
      bool ended = false;
      std::optional<Json> reply;
      const int64_t deadline = NowMs() + kAnswerDeadlineMs;
      while (!reply && !ended && NowMs() < deadline) {
        auto frame = raw->Read(deadline - NowMs(), &ended);
        if (frame && (frame->opcode == 0x1 || frame->opcode == 0x2)) {
          reply = Json::parse(frame->payload, nullptr, false);
        }
      }
      ASSERT_TRUE(reply.has_value()) << c.label << ": no answer (ended: " << ended << ")";
      EXPECT_EQ(reply->value("type", ""), c.expect_type) << reply->dump();
      if (c.expect_type == "error") {
        EXPECT_TRUE(IsErrorMessage(*reply));
      }
    }
    if (!ExpectUnchanged("/v1/stream frame: " + c.label, true)) return;
    auto fresh = Stream("");
    ASSERT_NE(fresh, nullptr);
    EXPECT_TRUE(PingPong(*fresh)) << "after " << c.label;
  }
}

// ------------------------------------------------------------------ /v1/agent

TEST_F(ApiHostileTest, EveryAgentMessageRefusesHostileMessages) {
  const uint64_t machine = market_.machine.id;
  const std::string& secret = market_.machine.keys.secret_key;
  const protocol::UsageFigures figures{lease_, 1, 1, 1, 0};
  const std::string usage_signature =
      protocol::SignHex(secret, protocol::UsageMessage(machine, figures));
  const std::vector<WsOp> types = {
      {"heartbeat",
       {Json{{"type", "heartbeat"}, {"id", 1}},
        {{"/type", Kind::kEnum, true}, {"/id", Kind::kAny}}}},
      {"usage",
       {Json{{"type", "usage"},
             {"id", 2},
             {"lease", lease_},
             {"wall_seconds", 1},
             {"cpu_seconds", 1},
             {"peak_memory_mib", 1},
             {"gpu_seconds", 0},
             {"signature", usage_signature}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/wall_seconds", Kind::kInt, true},
         {"/cpu_seconds", Kind::kInt, true},
         {"/peak_memory_mib", Kind::kInt, true},
         {"/gpu_seconds", Kind::kInt, true},
         {"/signature", Kind::kText, true}}}},
      {"end_lease",
       {Json{{"type", "end_lease"}, {"id", 3}, {"lease", lease_}, {"reason", "finished"}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/reason", Kind::kEnum, true}}}},
      {"task_result",
       {Json{{"type", "task_result"},
             {"id", 4},
             {"lease", lease_},
             {"result", {{"status", "succeeded"}, {"exit_code", 0}}}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/result", Kind::kObject, true}}}},
      {"task_log",
       {Json{{"type", "task_log"},
             {"id", 5},
             {"lease", lease_},
             {"stream", "stdout"},
             {"data", "x"}},
        {{"/type", Kind::kEnum, true},
         {"/id", Kind::kAny},
         {"/lease", Kind::kInt, true},
         {"/stream", Kind::kEnum, true},
         {"/data", Kind::kFreeText, true}}}},
  };
  int probes = 0;
  // The agent answers for itself with an acknowledged heartbeat (a journaled command: the
  // sequence baseline moves with it).
  auto heartbeat = [&](client::WebSocketClient& ws) {
    const std::string id = "probe-" + std::to_string(++probes);
    if (!ws.Send(Json{{"type", "heartbeat"}, {"id", id}}.dump()).ok()) return false;
    const int64_t deadline = NowMs() + kAnswerDeadlineMs;
    while (NowMs() < deadline) {
      auto text = ws.Receive(deadline - NowMs());
      if (!text.ok()) return false;
      const Json m = Json::parse(*text, nullptr, false);
      if (m.is_object() && m.value("type", "") == "ack" && m.value("id", "") == id) {
        sequence_ = DurableSequence();
        return true;
      }
    }
    return false;
  };
  std::set<std::string> covered;
  Generator generator(seed_);
  for (const WsOp& type : types) {
    covered.insert(type.name);
    auto ws = ConnectAgent(server_->url(), machine, secret);
    ASSERT_NE(ws, nullptr);
    auto send = [&](const std::string& label, const std::string& text, bool invalid_utf8) {
      const bool may_close = invalid_utf8 || text.size() > kWsMessageBytesMax;
      if (!SendWs(*ws, "/v1/agent " + type.name + " " + label, text, may_close, {}, heartbeat)) {
        if (dead_) return false;
        ws = ConnectAgent(server_->url(), machine, secret);
        return ws != nullptr;
      }
      return true;
    };
    for (const Field& field : type.message.fields) {
      const Json current = type.message.body.contains(Json::json_pointer(field.pointer))
                               ? type.message.body[Json::json_pointer(field.pointer)]
                               : Json();
      for (const Hostile& value : HostileValues(field, current)) {
        if (!send(field.pointer + " = " + value.label,
                  Substitute(type.message.body, field.pointer, value.text), value.invalid_utf8)) {
          return;
        }
      }
    }
    for (const Hostile& message : MalformedBodies(type.message.body)) {
      if (!send(message.label, message.text, message.invalid_utf8)) return;
    }
    for (int i = 0; i < 30; ++i) {
      const Hostile message = generator.Body(type.message);
      if (!send("random #" + std::to_string(i) + " (" + message.label + ")", message.text,
                message.invalid_utf8)) {
        return;
      }
    }
  }
  EXPECT_EQ(covered,
            (std::set<std::string>{"heartbeat", "usage", "end_lease", "task_result", "task_log"}));
}

// The challenge answer: each hostile one on a connection of its own (a refused answer closes
// it), then a good one still signs the machine in.
TEST_F(ApiHostileTest, AgentAuthRefusesHostileAnswers) {
  const uint64_t machine = market_.machine.id;
  const Template auth{
      Json{{"type", "auth"}, {"machine", machine}, {"signature", std::string(128, '0')}},
      {{"/type", Kind::kEnum, true},
       {"/machine", Kind::kInt, true},
       {"/signature", Kind::kText, true}}};
  std::vector<Hostile> answers;
  for (const Field& field : auth.fields) {
    for (const Hostile& value :
         HostileValues(field, auth.body[Json::json_pointer(field.pointer)])) {
      answers.push_back({field.pointer + " = " + value.label,
                         Substitute(auth.body, field.pointer, value.text), value.invalid_utf8});
    }
  }
  for (const Hostile& message : MalformedBodies(auth.body)) answers.push_back(message);
  answers.push_back({"a heartbeat first", R"({"type":"heartbeat"})"});
  answers.push_back(
      {"the right signature for another machine",
       Json{{"type", "auth"}, {"machine", machine + 1000}, {"signature", std::string(128, '0')}}
           .dump()});
  for (const Hostile& answer : answers) {
    const std::string label = "/v1/agent auth " + answer.label;
    auto ws = ConnectWebSocket(server_->url(), "/v1/agent");
    ASSERT_NE(ws, nullptr);
    ASSERT_TRUE(ReceiveType(*ws, "challenge").has_value());
    const absl::Status sent = ws->Send(answer.text);
    if (sent.ok()) {
      auto text = ws->Receive(kAnswerDeadlineMs);
      if (text.ok()) {
        const Json reply = Json::parse(*text, nullptr, false);
        EXPECT_TRUE(IsErrorMessage(reply)) << label << ": " << Printable(*text);
        EXPECT_TRUE(ClosedWithin(*ws, kAnswerDeadlineMs)) << label << ": not closed";
      } else {
        EXPECT_TRUE(answer.invalid_utf8 || answer.text.size() > kWsMessageBytesMax)
            << label << ": no answer: " << text.status();
      }
    }
    if (!ExpectUnchanged(label, true)) return;
  }
  auto agent = ConnectAgent(server_->url(), machine, market_.machine.keys.secret_key);
  EXPECT_NE(agent, nullptr) << "the machine can no longer sign in";
}

}  // namespace
}  // namespace ocx::api_test
