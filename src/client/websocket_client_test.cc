#include "src/client/websocket_client.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/client/fake_servers.h"
#include "src/client/url.h"

namespace ocx::client {
namespace {

// Generous: only reached if something is broken, never waited out by a passing test.
constexpr int64_t kTestTimeoutMs = 10'000;

std::unique_ptr<WebSocketClient> ConnectTo(const FakeWebSocketServer& server,
                                           HttpClientOptions options = {}) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl(server.url());
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  if (options.timeout_ms == HttpClientOptions{}.timeout_ms) options.timeout_ms = kTestTimeoutMs;
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*endpoint, "/v1/stream", std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

TEST(WebSocketClientTest, SendAndReceiveEcho) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(R"({"op":"subscribe","channel":"book:cpu"})").ok());
  ASSERT_TRUE(client->Send("second").ok());
  absl::StatusOr<std::string> first = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, R"({"op":"subscribe","channel":"book:cpu"})");
  absl::StatusOr<std::string> second = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, "second");
  EXPECT_TRUE(client->Close().ok());
}

TEST(WebSocketClientTest, ReceiveTimesOutAndConnectionStaysUsable) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::string> nothing = client->Receive(50);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kDeadlineExceeded) << nothing.status();
  EXPECT_EQ(client->Receive(0).status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(client->Send("late").ok());
  absl::StatusOr<std::string> late = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(*late, "late");
}

TEST(WebSocketClientTest, QuietServerIsNotMistakenForDead) {
  FakeWebSocketServer server;
  HttpClientOptions options;
  options.timeout_ms = 100;  // Pings after 50 ms of silence; the server answers them.
  std::unique_ptr<WebSocketClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Receive(500).status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(client->Send("still here").ok());
  absl::StatusOr<std::string> echo = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "still here");
}

TEST(WebSocketClientTest, UnresponsiveServerIsDeclaredLost) {
  FakeWebSocketServer server;
  HttpClientOptions options;
  options.timeout_ms = 200;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("mute").ok());
  absl::StatusOr<std::string> lost = client->Receive(kTestTimeoutMs);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable) << lost.status();
}

TEST(WebSocketClientTest, SendToServerThatStopsReadingFailsInsteadOfBlocking) {
  FakeWebSocketServer server;
  HttpClientOptions options;
  options.timeout_ms = 200;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("mute").ok());
  // Large messages fill the socket buffers within a few sends; then a send must give up.
  const std::string big(kWebSocketMessageBytesMax, 'x');
  absl::Status send;
  for (int i = 0; i < 256 && send.ok(); ++i) send = client->Send(big);
  ASSERT_FALSE(send.ok());
  // Whatever ended it, the connection is now reported closed, not "no message yet".
  EXPECT_EQ(client->Receive(0).status().code(), absl::StatusCode::kUnavailable);
}

TEST(WebSocketClientTest, ServerCloseIsUnavailableWithReasonAfterEarlierMessages) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("before").ok());
  ASSERT_TRUE(client->Send("close:going away now").ok());
  absl::StatusOr<std::string> before = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(*before, "before");
  absl::StatusOr<std::string> closed = client->Receive(kTestTimeoutMs);
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kUnavailable) << closed.status();
  EXPECT_NE(closed.status().message().find("code 1000 (going away now)"), std::string_view::npos)
      << closed.status();
  // Stays closed, and sending says why.
  EXPECT_EQ(client->Receive(0).status().code(), absl::StatusCode::kUnavailable);
  absl::Status send = client->Send("after");
  EXPECT_EQ(send.code(), absl::StatusCode::kUnavailable) << send;
  EXPECT_NE(send.message().find("going away now"), std::string_view::npos) << send;
  EXPECT_TRUE(client->Close().ok());
}

TEST(WebSocketClientTest, DroppedConnectionIsUnavailable) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("drop").ok());
  absl::StatusOr<std::string> lost = client->Receive(kTestTimeoutMs);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable) << lost.status();
}

TEST(WebSocketClientTest, ClientCloseMakesReceiveCancelled) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("echoed").ok());
  absl::StatusOr<std::string> echoed = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  ASSERT_TRUE(client->Close().ok());
  absl::StatusOr<std::string> after = client->Receive(kTestTimeoutMs);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), absl::StatusCode::kCancelled) << after.status();
  EXPECT_EQ(client->Send("x").code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(client->Close().ok());  // Idempotent.
}

TEST(WebSocketClientTest, CloseWakesABlockedReceive) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  absl::Status received;
  std::thread receiver([&] { received = client->Receive(kTestTimeoutMs).status(); });
  EXPECT_TRUE(client->Close().ok());
  receiver.join();
  EXPECT_EQ(received.code(), absl::StatusCode::kCancelled) << received;
}

TEST(WebSocketClientTest, SendFromOtherThreadsWhileReceiveBlocks) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  constexpr int kPerSender = 200;
  std::vector<std::string> received;
  absl::Status receive_status;
  std::thread receiver([&] {
    for (int i = 0; i < 2 * kPerSender; ++i) {
      absl::StatusOr<std::string> message = client->Receive(kTestTimeoutMs);
      if (!message.ok()) {
        receive_status = message.status();
        return;
      }
      received.push_back(*message);
    }
  });
  auto send_all = [&](const std::string& prefix) {
    for (int i = 0; i < kPerSender; ++i) {
      absl::Status status = client->Send(prefix + std::to_string(i));
      EXPECT_TRUE(status.ok()) << status;
    }
  };
  std::thread sender_a(send_all, "a");
  std::thread sender_b(send_all, "b");
  sender_a.join();
  sender_b.join();
  receiver.join();
  ASSERT_TRUE(receive_status.ok()) << receive_status;
  ASSERT_EQ(received.size(), 2u * kPerSender);
  // Each sender's messages arrive in the order it sent them.
  int next_a = 0;
  int next_b = 0;
  for (const std::string& message : received) {
    int& next = message[0] == 'a' ? next_a : next_b;
    EXPECT_EQ(message.substr(1), std::to_string(next)) << message;
    ++next;
  }
  EXPECT_EQ(next_a, kPerSender);
  EXPECT_EQ(next_b, kPerSender);
}

TEST(WebSocketClientTest, FullInboxPausesReadingWithoutLosingMessages) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  const int count = static_cast<int>(kWebSocketInboxMessagesMax) + 100;
  ASSERT_TRUE(client->Send("push:" + std::to_string(count)).ok());
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::string> message = client->Receive(kTestTimeoutMs);
    ASSERT_TRUE(message.ok()) << i << ": " << message.status();
    ASSERT_EQ(*message, std::to_string(i));
  }
  // Reading resumed: the connection still carries new traffic.
  ASSERT_TRUE(client->Send("more").ok());
  absl::StatusOr<std::string> more = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(*more, "more");
}

TEST(WebSocketClientTest, BearerTokenIsSentAndRefusalMapsHttpStatus) {
  FakeWebSocketServerOptions server_options;
  server_options.required_token = "ocx_good";
  FakeWebSocketServer server(server_options);
  absl::StatusOr<Endpoint> endpoint = ParseUrl(server.url());
  ASSERT_TRUE(endpoint.ok());

  HttpClientOptions bad;
  bad.bearer_token = "ocx_bad";
  absl::StatusOr<std::unique_ptr<WebSocketClient>> refused =
      WebSocketClient::Connect(*endpoint, "/v1/stream", bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  EXPECT_NE(refused.status().message().find("HTTP 401"), std::string_view::npos)
      << refused.status();

  HttpClientOptions good;
  good.bearer_token = "ocx_good";
  std::unique_ptr<WebSocketClient> client = ConnectTo(server, good);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("hi").ok());
  absl::StatusOr<std::string> echo = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "hi");
}

TEST(WebSocketClientTest, ConnectToClosedPortIsUnavailable) {
  uint16_t port = 0;
  {
    FakeWebSocketServer server;
    port = server.port();
  }
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(Endpoint{"http", "127.0.0.1", port, ""}, "/v1/stream");
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable) << client.status();
}

TEST(WebSocketClientTest, RefusesTargetWithoutSlash) {
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(Endpoint{"http", "127.0.0.1", 1, ""}, "v1/stream");
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WebSocketClientTest, DestructorClosesOpenConnection) {
  FakeWebSocketServer server;
  std::unique_ptr<WebSocketClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("x").ok());
  client.reset();  // Must neither hang nor crash.
}

TEST(WebSocketClientTest, SecureWebSocketWithTrustedCertificate) {
  TestCertificate certificate = MakeSelfSignedCertificate();
  FakeWebSocketServerOptions server_options;
  server_options.tls = certificate;
  FakeWebSocketServer server(server_options);
  HttpClientOptions options;
  options.tls_ca_file = WriteTempFile("ca.pem", certificate.cert_pem);
  std::unique_ptr<WebSocketClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("secure").ok());
  absl::StatusOr<std::string> echo = client->Receive(kTestTimeoutMs);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "secure");
  ASSERT_TRUE(client->Send("close:done").ok());
  absl::StatusOr<std::string> closed = client->Receive(kTestTimeoutMs);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kUnavailable) << closed.status();
}

}  // namespace
}  // namespace ocx::client
