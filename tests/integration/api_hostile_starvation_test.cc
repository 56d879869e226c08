// The hostile-client suite's starvation tests (api_hostile_util.h): small limits configured
// to show them working against a flood of anonymous requests, too many connections from one
// address, a full server that still takes agents, an idle anonymous stream and a WebSocket
// client that never reads.
#include "tests/integration/api_hostile_util.h"

namespace ocx::api_test {
namespace {

// ------------------------------------------------------------------ starvation

const char kStarvationBase[] = R"(
[core]
tick_interval_ms = 60000
)";

class ApiHostileStarvationTest : public HostileExchangeTest {};

// (a) A flood of anonymous requests from one address is refused 429 (with Retry-After), while
// an account on the same address is served and /healthz stays free.
TEST_F(ApiHostileStarvationTest, AnAnonymousFloodIsRateLimitedWhileAccountsAreServed) {
  StartExchange(std::string(kStarvationBase) +
                "[limits]\nanonymous_rate_per_second = 0.001\nanonymous_rate_burst = 5.0\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle consumer = CreateAccount(*op_, "consumer", "flooded");
  ApiClient account(server_->url(), consumer.token);
  ApiClient anonymous(server_->url());
  const uint64_t sequence = DurableSequence();
  int limited = 0;
  for (int i = 0; i < 200 && limited < 20; ++i) {
    Reply reply = anonymous.Call("GET", "/v1/markets");
    if (reply.status == 429) {
      ++limited;
      EXPECT_EQ(reply.ErrorCode(), "rate_limited") << reply;
      EXPECT_TRUE(reply.IsErrorBody()) << reply;
      EXPECT_GE(std::atoi(reply.Header("retry-after").c_str()), 1) << reply;
    } else {
      EXPECT_EQ(reply.status, 200) << reply;
    }
    // Raw connections from the same address share the bucket.
    const Exchanged raw = ExchangeBytes(
        server_->port(), "GET /v1/machines HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::vector<Response> responses;
    std::string why;
    ASSERT_TRUE(ParseResponses(raw.received, &responses, &why)) << why;
    ASSERT_EQ(responses.size(), 1u);
    if (responses[0].status != 200) {
      EXPECT_EQ(responses[0].status, 429);
      EXPECT_TRUE(IsRefusal(responses[0]));
    }
    EXPECT_EQ(account.Call("GET", "/v1/me").status, 200) << "the account is starved";
    EXPECT_EQ(anonymous.Call("GET", "/healthz").status, 200) << "/healthz is charged";
  }
  EXPECT_GE(limited, 20) << "the flood was never limited";
  // A WebSocket upgrade is charged to the same bucket: refused in JSON.
  const std::string upgrade =
      RawHttp(server_->port(),
              "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
              0);
  EXPECT_EQ(RawStatus(upgrade), 429) << upgrade;
  EXPECT_EQ(ErrorCodeIn(RawBody(upgrade)), "rate_limited") << upgrade;
  // An authenticated stream is not (its account pays).
  auto ws = ConnectWebSocket(server_->url(), "/v1/stream", consumer.token);
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->Send(R"({"op":"ping"})").ok());
  EXPECT_TRUE(ReceiveType(*ws, "pong").has_value());
  EXPECT_EQ(DurableSequence(), sequence) << "refused requests moved the durable sequence";
}

// Opens a keep-alive connection and asks GET /healthz on it; the answer's status (0 when none
// came), the connection kept open in *fd (or -1 once the exchange closed it).
int HealthOnNewConnection(uint16_t port, int* fd, const char* source = nullptr,
                          std::string* body = nullptr) {
  *fd = ConnectTcp(port, source);
  if (*fd < 0) return 0;
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  if (::send(*fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    // Refused at accept: the answer may already be there.
  }
  std::string received;
  std::vector<Response> responses;
  const int64_t deadline = NowMs() + kAnswerDeadlineMs;
  bool open = true;
  while (NowMs() < deadline) {
    std::string why;
    responses.clear();
    if (ParseResponses(received, &responses, &why) && !responses.empty()) break;
    if (!open) break;
    open = ReadSome(*fd, &received, deadline - NowMs());
  }
  if (responses.empty()) return 0;
  if (body != nullptr) *body = responses[0].body;
  if (responses[0].Header("connection") == "close" || !open) {
    ::close(*fd);
    *fd = -1;
  }
  if (responses[0].status >= 400) {
    EXPECT_TRUE(IsRefusal(responses[0]));
  }
  return responses[0].status;
}

void CloseAll(std::vector<int>* fds) {
  for (int fd : *fds) {
    if (fd >= 0) ::close(fd);
  }
  fds->clear();
}

// Waits until a new connection is served again (the exchange releases connection slots when
// it sees them closed, a moment later).
bool ServedAgainWithin(uint16_t port, int64_t timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (NowMs() < deadline) {
    int fd = -1;
    const int status = HealthOnNewConnection(port, &fd);
    if (fd >= 0) ::close(fd);
    if (status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// (b) More than connections_per_ip_max connections from one address: the extra ones are
// answered 429 too_many_connections; another address is served meanwhile.
TEST_F(ApiHostileStarvationTest, ConnectionsPastThePerAddressLimitAreRefused) {
  StartExchange(std::string(kStarvationBase) + "[server]\nconnections_per_ip_max = 4\n");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(op_->Call("GET", "/healthz").status, 200);  // op_ holds one connection.
  std::vector<int> held;
  int refused_at = -1;
  std::string refusal;
  for (int i = 0; i < 12 && refused_at < 0; ++i) {
    int fd = -1;
    std::string body;
    const int status = HealthOnNewConnection(server_->port(), &fd, nullptr, &body);
    if (status == 429) {
      refused_at = i;
      refusal = body;
    } else {
      ASSERT_EQ(status, 200) << "connection " << i;
    }
    held.push_back(fd);
  }
  ASSERT_GE(refused_at, 0) << "12 connections from one address were all accepted";
  EXPECT_LE(refused_at, 4) << "refused only after " << refused_at << " more connections";
  EXPECT_EQ(ErrorCodeIn(refusal), "too_many_connections") << refusal;
  // Once more, to be sure it is the limit and not a one-off.
  int extra = -1;
  EXPECT_EQ(HealthOnNewConnection(server_->port(), &extra), 429);
  if (extra >= 0) ::close(extra);
  // Another address is served, and so is the connection that was already open.
  int other = -1;
  EXPECT_EQ(HealthOnNewConnection(server_->port(), &other, "127.0.0.2"), 200)
      << "another address is starved";
  if (other >= 0) ::close(other);
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  CloseAll(&held);
  EXPECT_TRUE(ServedAgainWithin(server_->port(), kAnswerDeadlineMs))
      << "closed connections were never given back";
}

// (c) With connections_max reached by idle clients, a provider's agent still connects (the
// reserved share) and the extra plain clients are answered 503 server_busy.
TEST_F(ApiHostileStarvationTest, AgentsStillConnectWhenPlainClientsFillTheServer) {
  StartExchange(std::string(kStarvationBase) +
                "[server]\nconnections_max = 6\nagent_connections_reserved = 4\n");
  ASSERT_FALSE(HasFatalFailure());
  const Market market = MakeMarket();
  ASSERT_EQ(op_->Call("GET", "/healthz").status, 200);
  // Fill the general share with idle keep-alive clients until one is refused.
  std::vector<int> held;
  int busy = 0;
  for (int i = 0; i < 12 && busy == 0; ++i) {
    int fd = -1;
    std::string body;
    const int status = HealthOnNewConnection(server_->port(), &fd, nullptr, &body);
    if (status == 503) {
      busy = status;
      EXPECT_EQ(ErrorCodeIn(body), "server_busy") << body;
    } else {
      ASSERT_EQ(status, 200) << "connection " << i;
    }
    held.push_back(fd);
  }
  ASSERT_EQ(busy, 503) << "the server never filled";
  // A plain client now: 503 server_busy (in JSON). (A connection the exchange had not yet
  // seen closed may free a slot meanwhile: the client that takes it is held, and another
  // one asks.)
  std::vector<std::unique_ptr<ApiClient>> late;
  Reply refused;
  for (int i = 0; i < 4 && refused.status != 503; ++i) {
    late.push_back(std::make_unique<ApiClient>(server_->url(), market.consumer.token));
    refused = late.back()->Call("GET", "/v1/me");
  }
  EXPECT_EQ(refused.status, 503) << refused;
  EXPECT_EQ(refused.ErrorCode(), "server_busy") << refused;
  EXPECT_TRUE(refused.IsErrorBody()) << refused;
  // The provider's agent still connects, and works.
  auto agent = ConnectAgent(server_->url(), market.machine.id, market.machine.keys.secret_key);
  ASSERT_NE(agent, nullptr) << "the agent was crowded out";
  ASSERT_TRUE(agent->Send(R"({"type":"heartbeat","id":"h"})").ok());
  EXPECT_TRUE(ReceiveType(*agent, "ack").has_value());
  // A stream is not an agent: refused in the reserved share. (As above, a slot of the general
  // share the exchange frees late, from a connection it had not yet seen closed, is first
  // taken by a held client.)
  std::string stream;
  for (int attempt = 0; attempt < 4; ++attempt) {
    for (int i = 0; i < 4; ++i) {
      int fd = -1;
      if (HealthOnNewConnection(server_->port(), &fd) != 200) {
        if (fd >= 0) ::close(fd);
        break;
      }
      held.push_back(fd);
    }
    stream = RawHttp(server_->port(),
                     "GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     0);
    if (RawStatus(stream) == 503) break;
  }
  EXPECT_EQ(RawStatus(stream), 503) << stream;
  // The connections already open are still served.
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  // Past connections_max + agent_connections_reserved: refused at once, before a request.
  int refused_at_accept = -1;
  for (int i = 0; i < 10 && refused_at_accept < 0; ++i) {
    const int fd = ConnectTcp(server_->port());
    ASSERT_GE(fd, 0);
    std::string received;
    ReadSome(fd, &received, 300);
    if (!received.empty()) {
      std::vector<Response> responses;
      std::string why;
      ASSERT_TRUE(ParseResponses(received, &responses, &why)) << why;
      ASSERT_EQ(responses.size(), 1u);
      EXPECT_EQ(responses[0].status, 503);
      EXPECT_EQ(CodeOf(responses[0]), "server_busy");
      refused_at_accept = i;
      ::close(fd);
    } else {
      held.push_back(fd);
    }
  }
  EXPECT_GE(refused_at_accept, 0) << "connections past every share were kept";
  CloseAll(&held);
  agent.reset();
  late.clear();
  EXPECT_TRUE(ServedAgainWithin(server_->port(), kAnswerDeadlineMs))
      << "closed connections were never given back";
}

// (d) An anonymous stream that follows no channel is closed after stream_idle_s; one that
// follows a channel, and an authenticated one, are not.
TEST_F(ApiHostileStarvationTest, AnIdleAnonymousStreamIsClosed) {
  StartExchange(std::string(kStarvationBase) + "[limits]\nstream_idle_s = 1\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle consumer = CreateAccount(*op_, "consumer", "idle");
  auto idle = ConnectWebSocket(server_->url(), "/v1/stream");
  auto following = ConnectWebSocket(server_->url(), "/v1/stream");
  auto authenticated = ConnectWebSocket(server_->url(), "/v1/stream", consumer.token);
  ASSERT_TRUE(idle && following && authenticated);
  ASSERT_TRUE(following->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  ASSERT_TRUE(ReceiveType(*following, "subscribed").has_value());
  // The exchange looks every few seconds (kIdleCheckInterval, 5 s): a deadline well past it.
  EXPECT_TRUE(ClosedWithin(*idle, 20'000)) << "an idle anonymous stream was kept open";
  EXPECT_TRUE(PingPong(*following)) << "a stream with a channel was closed";
  EXPECT_TRUE(PingPong(*authenticated)) << "an authenticated stream was closed";
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
}

// (e) A WebSocket client that never reads, while a book channel floods it, is disconnected
// (ws_outbound_messages_max / ws_outbound_bytes_max); a client that reads is not, and the
// exchange serves everyone else.
TEST_F(ApiHostileStarvationTest, AClientThatNeverReadsIsDisconnectedAndOthersAreServed) {
  StartExchange(std::string(kStarvationBase) +
                "[limits]\nws_outbound_messages_max = 64\nws_outbound_bytes_max = 65536\n"
                "rate_per_second = 1000000.0\nrate_burst = 1000000.0\n"
                "anonymous_rate_per_second = 1000000.0\nanonymous_rate_burst = 1000000.0\n");
  ASSERT_FALSE(HasFatalFailure());
  const AccountHandle flooder = CreateAccount(*op_, "consumer", "flooder");
  Deposit(*op_, flooder.id, "1000");
  // The slow client: small kernel buffers (a small receive window and segment size), so what
  // the exchange cannot send piles up in its own queue; it subscribes and never reads again.
  std::string why;
  auto slow = RawWebSocket::Open(server_->port(), "/v1/stream", "", &why, 4096, 536);
  ASSERT_NE(slow, nullptr) << why;
  ASSERT_TRUE(slow->SendText(R"({"op":"subscribe","channel":"book:cpu"})"));
  // It reads until its subscription is confirmed (so the flood cannot start before the
  // exchange follows it for this client), then never again.
  bool subscribed = false;
  for (int i = 0; i < 8 && !subscribed; ++i) {
    bool ended = false;
    const auto frame = slow->Read(kAnswerDeadlineMs, &ended);
    ASSERT_FALSE(ended) << "the slow client was closed before the flood";
    ASSERT_TRUE(frame.has_value()) << "no answer to the slow client's subscription";
    subscribed = frame->payload.find("\"subscribed\"") != std::string::npos;
  }
  ASSERT_TRUE(subscribed) << "the slow client's subscription was not confirmed";
  // A client that reads everything, on its own thread.
  auto reader = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  ASSERT_TRUE(ReceiveType(*reader, "subscribed").has_value());
  std::atomic<bool> stop{false};
  std::atomic<bool> reader_closed{false};
  std::atomic<int> reader_updates{0};
  std::thread reading([&] {
    while (!stop.load()) {
      auto text = reader->Receive(100);
      if (!text.ok()) {
        if (text.status().code() != absl::StatusCode::kDeadlineExceeded) {
          reader_closed.store(true);
          return;
        }
        continue;
      }
      if (text->find("\"book_update\"") != std::string::npos) reader_updates.fetch_add(1);
    }
  });
  // Joined however the test ends (an ASSERT returns early).
  struct JoinReading {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinReading() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join_reading{stop, reading};
  // The flood: orders at 3000 price levels on the flooder's own stream, 32 at a time (its
  // acknowledgements are queued for it too, and it reads them after each batch: more than
  // ws_outbound_messages_max unread would make it a slow consumer as well).
  auto entry = ConnectWebSocket(server_->url(), "/v1/stream", flooder.token);
  ASSERT_NE(entry, nullptr);
  constexpr int kOrders = 3000;
  constexpr int kBatch = 32;
  for (int first = 0; first < kOrders && !HasFatalFailure(); first += kBatch) {
    for (int i = first; i < std::min(first + kBatch, kOrders); ++i) {
      const Json order{
          {"op", "place_order"}, {"id", i}, {"order", BuyOrder(Credits(100 * (i + 1)), 1)}};
      ASSERT_TRUE(entry->Send(order.dump()).ok());
    }
    for (int i = first; i < std::min(first + kBatch, kOrders); ++i) {
      ASSERT_TRUE(ReceiveType(*entry, "order_placed").has_value()) << "order " << i;
    }
  }
  // The slow client was dropped: a close frame after what was already on its way.
  std::string reason;
  EXPECT_TRUE(slow->ClosedWithin(3 * kAnswerDeadlineMs, &reason))
      << "a client that never reads was kept while the book flooded it; log tail:\n"
      << server_->LogTail(3000);
  EXPECT_NE(reason.find("slow consumer"), std::string::npos) << "closed for: " << reason;
  // Everyone else is served: the reading client (it saw the updates), a new stream, an account,
  // /healthz.
  const int64_t deadline = NowMs() + kAnswerDeadlineMs;
  while (reader_updates.load() < kOrders && !reader_closed.load() && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop.store(true);
  if (reading.joinable()) reading.join();
  EXPECT_FALSE(reader_closed.load()) << "a client that reads was disconnected";
  EXPECT_EQ(reader_updates.load(), kOrders) << "the reading client missed book updates";
  EXPECT_TRUE(PingPong(*reader));
  auto fresh = ConnectWebSocket(server_->url(), "/v1/stream");
  ASSERT_NE(fresh, nullptr);
  ASSERT_TRUE(fresh->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  EXPECT_TRUE(ReceiveType(*fresh, "book_snapshot").has_value()) << server_->LogTail(3000);
  ApiClient account(server_->url(), flooder.token);
  EXPECT_EQ(account.Call("GET", "/v1/me").status, 200);
  EXPECT_EQ(op_->Call("GET", "/healthz").status, 200);
  EXPECT_TRUE(LedgerIsBalanced(*op_, 1000'000'000));
}

}  // namespace
}  // namespace ocx::api_test
