#include "src/client/http_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/base/sha256.h"
#include "src/base/unique_fd.h"
#include "src/client/fake_servers.h"
#include "src/client/url.h"

namespace ocx::client {
namespace {

// Generous: only reached if something is broken, never waited out by a passing test.
constexpr int64_t kTestTimeoutMs = 10'000;

FakeResponse Echo(const FakeRequest& request) {
  FakeResponse response;
  response.body = request.method + " " + request.target + " " + request.body;
  response.headers = {{"Content-Type", "text/plain"}, {"X-Test", "yes"}};
  return response;
}

std::unique_ptr<HttpClient> ConnectTo(const FakeHttpServer& server,
                                      HttpClientOptions options = {}) {
  absl::StatusOr<Endpoint> endpoint = ParseUrl(server.url());
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  if (options.timeout_ms == HttpClientOptions{}.timeout_ms) options.timeout_ms = kTestTimeoutMs;
  absl::StatusOr<std::unique_ptr<HttpClient>> client =
      HttpClient::Connect(*endpoint, std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

TEST(HttpClientTest, GetRoundTripReturnsStatusBodyAndHeaders) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> response = client->Get("/healthz?x=1");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /healthz?x=1 ");
  EXPECT_EQ(response->Header("X-Test"), "yes");
  EXPECT_EQ(response->Header("content-type"), "text/plain");
  EXPECT_EQ(response->headers.at("x-test"), "yes");
  EXPECT_EQ(response->Header("missing"), "");
}

TEST(HttpClientTest, PostSendsBodyContentTypeTokenAndExtraHeaders) {
  FakeHttpServer server(Echo);
  HttpClientOptions options;
  options.bearer_token = "ocx_secret";
  std::unique_ptr<HttpClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> response =
      client->Request("POST", "/v1/orders", R"({"market":"cpu"})", {{"Idempotency-Key", "k1"}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, R"(POST /v1/orders {"market":"cpu"})");
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers["content-type"], "application/json");
  EXPECT_EQ(requests[0].headers["authorization"], "Bearer ocx_secret");
  EXPECT_EQ(requests[0].headers["idempotency-key"], "k1");
  EXPECT_EQ(requests[0].headers["host"], "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(requests[0].headers["content-length"], "16");
}

TEST(HttpClientTest, CustomContentTypeAndEmptyPost) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Request("PUT", "/v1/blobs/ab", "raw", {}, "application/octet-stream").ok());
  ASSERT_TRUE(client->Post("/v1/leases/1/release", "").ok());
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].headers["content-type"], "application/octet-stream");
  EXPECT_EQ(requests[0].body, "raw");
  EXPECT_EQ(requests[1].headers["content-length"], "0");
  EXPECT_EQ(requests[1].headers.count("content-type"), 0u);
}

TEST(HttpClientTest, SetBearerTokenAppliesToLaterRequests) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Get("/a").ok());
  client->set_bearer_token("ocx_new");
  ASSERT_TRUE(client->Get("/b").ok());
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].headers.count("authorization"), 0u);
  EXPECT_EQ(requests[1].headers["authorization"], "Bearer ocx_new");
}

TEST(HttpClientTest, ErrorStatusIsAResponseNotAnError) {
  FakeHttpServer server([](const FakeRequest&) {
    return FakeResponse{404, R"({"error":{"code":"not_found","message":"No."}})", {}};
  });
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> response = client->Get("/nothing");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 404);
  EXPECT_NE(response->body.find("not_found"), std::string::npos);
}

TEST(HttpClientTest, KeepAliveReusesOneConnection) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpResponse> response = client->Post("/n", std::to_string(i));
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->body, "POST /n " + std::to_string(i));
  }
  EXPECT_EQ(server.connections_accepted(), 1);
  EXPECT_EQ(client->connections_opened(), 1);
}

TEST(HttpClientTest, ReconnectsBeforeSendingWhenServerClosedIdleConnection) {
  FakeHttpServerOptions options;
  options.close_after_response = true;
  FakeHttpServer server(Echo, options);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Post("/first", "1").ok());
  server.WaitForClosedConnections(1);
  // A POST without an Idempotency-Key is never re-sent, so this passes only if the closed
  // connection was noticed before sending.
  absl::StatusOr<HttpResponse> response = client->Post("/second", "2");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "POST /second 2");
  EXPECT_EQ(server.connections_accepted(), 2);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(HttpClientTest, IdempotentRequestsSurviveServerClosingAfterEveryResponse) {
  FakeHttpServerOptions options;
  options.close_after_response = true;
  FakeHttpServer server(Echo, options);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  // No waiting: the close may race the next request, which is then re-sent once.
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpResponse> get = client->Get("/g");
    ASSERT_TRUE(get.ok()) << get.status();
    absl::StatusOr<HttpResponse> post =
        client->Request("POST", "/p", "x", {{"Idempotency-Key", std::to_string(i)}});
    ASSERT_TRUE(post.ok()) << post.status();
  }
}

TEST(HttpClientTest, ConnectionCloseHeaderMakesNextRequestReconnect) {
  FakeHttpServer server([](const FakeRequest&) {
    return FakeResponse{200, "bye", {{"Connection", "close"}}};
  });
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Post("/a", "1").ok());
  ASSERT_TRUE(client->Post("/b", "2").ok());
  EXPECT_EQ(server.connections_accepted(), 2);
  EXPECT_EQ(client->connections_opened(), 2);
}

TEST(HttpClientTest, TimesOutAgainstServerThatNeverAnswers) {
  FakeHttpServerOptions options;
  options.never_answer = true;
  FakeHttpServer server(Echo, options);
  HttpClientOptions client_options;
  client_options.timeout_ms = 200;
  std::unique_ptr<HttpClient> client = ConnectTo(server, client_options);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> response = client->Get("/slow");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  // The same client stays usable: the next request opens a new connection (and times out).
  EXPECT_FALSE(client->Get("/slow").ok());
  EXPECT_EQ(client->connections_opened(), 2);
  server.WaitForClosedConnections(2);  // The client dropped both.
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(HttpClientTest, ConnectToClosedPortIsUnavailable) {
  uint16_t port = 0;
  {
    // Learn a port that nothing listens on any more.
    FakeHttpServer server(Echo);
    port = server.port();
  }
  Endpoint endpoint{"http", "127.0.0.1", port, ""};
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Connect(endpoint);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable) << client.status();
  EXPECT_NE(client.status().message().find("127.0.0.1"), std::string_view::npos);
}

TEST(HttpClientTest, BasePathPrefixesEveryTarget) {
  FakeHttpServer server(Echo);
  absl::StatusOr<Endpoint> endpoint = ParseUrl(server.url() + "/prefix/");
  ASSERT_TRUE(endpoint.ok());
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Connect(*endpoint);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<HttpResponse> response = (*client)->Get("/v1/markets");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "GET /prefix/v1/markets ");
}

TEST(HttpClientTest, HeadResponseWithLengthButNoBodyDoesNotHang) {
  FakeHttpServer server([](const FakeRequest&) { return FakeResponse{200, "12345", {}}; });
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> head = client->Request("HEAD", "/v1/blobs/x");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->Header("Content-Length"), "5");
  EXPECT_EQ(head->body, "");
  absl::StatusOr<HttpResponse> get = client->Get("/v1/blobs/x");
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->body, "12345");
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(HttpClientTest, ResponseOverBodyBoundIsRefused) {
  FakeHttpServer server([](const FakeRequest&) {
    return FakeResponse{200, std::string(1000, 'x'), {}};
  });
  HttpClientOptions options;
  options.response_body_bytes_max = 100;
  std::unique_ptr<HttpClient> client = ConnectTo(server, options);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<HttpResponse> response = client->Get("/big");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted) << response.status();
}

TEST(HttpClientTest, RefusesMalformedRequestsWithoutSending) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Request("FETCH", "/x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Get("relative").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Get("/a b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Request("GET", "/x", "", {{"X-Evil", "a\r\nInjected: 1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Request("GET", "/x", "", {{"Bad Name", "v"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.requests().empty());
  // Lowercase methods are accepted.
  EXPECT_TRUE(client->Request("get", "/x").ok());
}

TEST(HttpClientTest, StatusCodeForHttpStatusFollowsTheApi) {
  EXPECT_EQ(StatusCodeForHttpStatus(400), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeForHttpStatus(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusCodeForHttpStatus(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusCodeForHttpStatus(404), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeForHttpStatus(405), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(StatusCodeForHttpStatus(409), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeForHttpStatus(413), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeForHttpStatus(422), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusCodeForHttpStatus(429), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(StatusCodeForHttpStatus(500), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeForHttpStatus(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeForHttpStatus(302), absl::StatusCode::kUnknown);
}

// ---- Upload: a body streamed from an open file.

// `bytes` written to a new temporary file, opened read-only.
base::UniqueFd FileWith(const std::string& name, const std::string& bytes) {
  base::UniqueFd fd(::open(WriteTempFile(name, bytes).c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  return fd;
}

// `size` bytes that are not all alike, so a byte out of place shows. Seeded: the same run
// every time.
std::string Bytes(size_t size, uint64_t seed) {
  base::Rng rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng.Next() & 0xFF);
  return bytes;
}

TEST(HttpClientUploadTest, SendsTheFileWithContentLengthAndType) {
  FakeHttpServer server([](const FakeRequest& request) {
    return FakeResponse{201, "got " + std::to_string(request.body.size()), {}};
  });
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd = FileWith("small", "hello, world");
  absl::StatusOr<HttpResponse> response = client->Upload(
      "PUT", "/v1/blobs/x", fd.get(), 12, "application/octet-stream", {{"X-Extra", "1"}});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "got 12");
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].body, "hello, world");
  EXPECT_EQ(requests[0].headers["content-length"], "12");
  EXPECT_EQ(requests[0].headers["content-type"], "application/octet-stream");
  EXPECT_EQ(requests[0].headers["x-extra"], "1");
  // Keep-alive as for Request: the next request uses the same connection.
  ASSERT_TRUE(client->Get("/after").ok());
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(HttpClientUploadTest, SeveralMebibytesArriveExactly) {
  FakeHttpServer server([](const FakeRequest& request) {
    return FakeResponse{201, base::Sha256Hex(request.body), {}};
  });
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  const std::string bytes = Bytes((size_t{6} << 20) + 12345, 7);  // Not a multiple of a chunk.
  base::UniqueFd fd = FileWith("large", bytes);
  absl::StatusOr<HttpResponse> response =
      client->Upload("POST", "/v1/blobs", fd.get(), bytes.size());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, base::Sha256Hex(bytes));
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body.size(), bytes.size());
  EXPECT_TRUE(requests[0].body == bytes) << "the body arrived changed";
  EXPECT_EQ(requests[0].headers["content-length"], std::to_string(bytes.size()));
  EXPECT_EQ(Sha256OfUploadBody(fd.get(), bytes.size()).value_or(""), base::Sha256Hex(bytes));
}

TEST(HttpClientUploadTest, ReadsFromTheStartAndLeavesTheOffsetAlone) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd = FileWith("offset", "0123456789");
  ASSERT_EQ(::lseek(fd.get(), 4, SEEK_SET), 4);
  // Only `size` bytes go, whatever the file holds after them.
  absl::StatusOr<HttpResponse> response = client->Upload("PUT", "/p", fd.get(), 6);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "PUT /p 012345");
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 4);
}

TEST(HttpClientUploadTest, EmptyFileSendsContentLengthZero) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd = FileWith("empty", "");
  absl::StatusOr<HttpResponse> response = client->Upload("PUT", "/e", fd.get(), 0);
  ASSERT_TRUE(response.ok()) << response.status();
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers["content-length"], "0");
  EXPECT_EQ(requests[0].body, "");
  EXPECT_EQ(Sha256OfUploadBody(fd.get(), 0).value_or(""), base::Sha256Hex(""));
}

TEST(HttpClientUploadTest, FileShorterThanItsSizeIsAnErrorNotAHang) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  const std::string bytes = Bytes(300'000, 3);  // More than one chunk, then it ends.
  base::UniqueFd fd = FileWith("short", bytes);
  absl::StatusOr<HttpResponse> response = client->Upload("PUT", "/s", fd.get(), 1'000'000);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition) << response.status();
  EXPECT_NE(response.status().message().find("ended after 300000 of 1000000 bytes"),
            std::string_view::npos)
      << response.status();
  // The half-sent request's connection was dropped; the next request opens another.
  server.WaitForClosedConnections(1);
  EXPECT_TRUE(server.requests().empty());
  ASSERT_TRUE(client->Get("/next").ok());
  EXPECT_EQ(client->connections_opened(), 2);
  EXPECT_FALSE(Sha256OfUploadBody(fd.get(), 1'000'000).ok());
}

TEST(HttpClientUploadTest, UnreadableFileIsAnError) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd(::open(WriteTempFile("write-only", "abc").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  absl::StatusOr<HttpResponse> response = client->Upload("PUT", "/u", fd.get(), 3);
  ASSERT_FALSE(response.ok());
  EXPECT_NE(response.status().message().find("reading the body's file"), std::string_view::npos)
      << response.status();
  EXPECT_EQ(client->Upload("PUT", "/u", -1, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Sha256OfUploadBody(fd.get(), 3).ok());
  ASSERT_TRUE(client->Get("/next").ok());
}

TEST(HttpClientUploadTest, AnswerBeforeTheBodyIsReturnedNotAWriteError) {
  // As the exchange refuses an upload over its blob limit or the account's quota: from the
  // headers, closing the connection without reading the body.
  FakeHttpServerOptions options;
  options.answer_before_body = [](const FakeRequest&) -> std::optional<FakeResponse> {
    return FakeResponse{
        413, R"({"error":{"code":"blob_quota_exceeded","message":"Over quota."}})", {}};
  };
  FakeHttpServer server(Echo, options);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  const std::string bytes = Bytes(size_t{16} << 20, 11);  // More than the socket buffers hold.
  base::UniqueFd fd = FileWith("refused", bytes);
  absl::StatusOr<HttpResponse> response =
      client->Upload("POST", "/v1/blobs", fd.get(), bytes.size());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 413);
  EXPECT_NE(response->body.find("blob_quota_exceeded"), std::string::npos);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].headers["content-length"], std::to_string(bytes.size()));
}

TEST(HttpClientUploadTest, PutIsSentAgainWholeAfterAKeptAliveConnectionBroke) {
  FakeHttpServerOptions options;
  options.drop_request_number = 2;  // The second request on each connection is dropped.
  FakeHttpServer server(Echo, options);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Get("/first").ok());
  const std::string bytes = Bytes(size_t{2} << 20, 5);
  base::UniqueFd fd = FileWith("again", bytes);
  absl::StatusOr<HttpResponse> response =
      client->Upload("PUT", "/v1/blobs/digest", fd.get(), bytes.size());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(server.connections_accepted(), 2);
  std::vector<FakeRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].target, "/v1/blobs/digest");
  EXPECT_TRUE(requests[1].body == bytes) << "the re-sent body is not the file";
}

TEST(HttpClientUploadTest, BlobPostIsSentAgainButAnotherPostIsNot) {
  FakeHttpServerOptions options;
  options.drop_request_number = 2;
  FakeHttpServer server(Echo, options);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd = FileWith("post", "content-addressed");
  // POST /v1/blobs stores the same blob however often it is sent: re-sent.
  ASSERT_TRUE(client->Get("/first").ok());
  absl::StatusOr<HttpResponse> blob = client->Upload("POST", "/v1/blobs", fd.get(), 17);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->body, "POST /v1/blobs content-addressed");
  // Another POST might have been acted on: not re-sent.
  ASSERT_TRUE(client->Get("/again").ok());  // The second connection's first request.
  absl::StatusOr<HttpResponse> other = client->Upload("POST", "/v1/other", fd.get(), 17);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable) << other.status();
  EXPECT_NE(other.status().message().find("not re-sent"), std::string_view::npos) << other.status();
}

TEST(HttpClientUploadTest, RefusesMalformedRequestsWithoutSending) {
  FakeHttpServer server(Echo);
  std::unique_ptr<HttpClient> client = ConnectTo(server);
  ASSERT_NE(client, nullptr);
  base::UniqueFd fd = FileWith("bad", "x");
  EXPECT_EQ(client->Upload("FETCH", "/x", fd.get(), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->Upload("PUT", "/x", fd.get(), 1, "text/plain\r\nX: 1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.requests().empty());
}

// TLS: a self-signed certificate made by the test, trusted through tls_ca_file.
class HttpClientTlsTest : public ::testing::Test {
 protected:
  HttpClientTlsTest()
      : certificate_(MakeSelfSignedCertificate()), server_(Echo, TlsOptions(certificate_)) {}

  static FakeHttpServerOptions TlsOptions(const TestCertificate& certificate) {
    FakeHttpServerOptions options;
    options.tls = certificate;
    return options;
  }

  TestCertificate certificate_;
  FakeHttpServer server_;
};

TEST_F(HttpClientTlsTest, RoundTripWithTrustedCertificate) {
  HttpClientOptions options;
  options.tls_ca_file = WriteTempFile("ca.pem", certificate_.cert_pem);
  std::unique_ptr<HttpClient> client = ConnectTo(server_, options);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response = client->Post("/tls", "hi");
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->body, "POST /tls hi");
  }
  EXPECT_EQ(server_.connections_accepted(), 1);
}

TEST_F(HttpClientTlsTest, ByHostNameWithSni) {
  HttpClientOptions options;
  options.tls_ca_file = WriteTempFile("ca.pem", certificate_.cert_pem);
  Endpoint endpoint{"https", "localhost", server_.port(), ""};
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Connect(endpoint, options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->Get("/x").ok());
}

TEST_F(HttpClientTlsTest, UntrustedCertificateIsRefused) {
  // Another self-signed certificate as the only trust anchor: the server's is not trusted.
  HttpClientOptions options;
  options.tls_ca_file = WriteTempFile("other.pem", MakeSelfSignedCertificate().cert_pem);
  Endpoint endpoint{"https", "127.0.0.1", server_.port(), ""};
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Connect(endpoint, options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(client.status().message().find("certificate verify failed"), std::string_view::npos)
      << client.status();
}

TEST_F(HttpClientTlsTest, UploadOverTls) {
  HttpClientOptions options;
  options.tls_ca_file = WriteTempFile("ca.pem", certificate_.cert_pem);
  std::unique_ptr<HttpClient> client = ConnectTo(server_, options);
  ASSERT_NE(client, nullptr);
  const std::string bytes = Bytes(size_t{1} << 20, 9);
  base::UniqueFd fd = FileWith("tls", bytes);
  absl::StatusOr<HttpResponse> response = client->Upload("PUT", "/t", fd.get(), bytes.size());
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(response->body == "PUT /t " + bytes);
}

TEST_F(HttpClientTlsTest, VerificationOffAcceptsSelfSignedCertificate) {
  HttpClientOptions options;
  options.tls_verify = false;
  std::unique_ptr<HttpClient> client = ConnectTo(server_, options);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->Get("/insecure").ok());
}

TEST_F(HttpClientTlsTest, MissingCaFileIsInvalidArgument) {
  HttpClientOptions options;
  options.tls_ca_file = "/nonexistent/ca.pem";
  Endpoint endpoint{"https", "127.0.0.1", server_.port(), ""};
  absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::Connect(endpoint, options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument) << client.status();
}

}  // namespace
}  // namespace ocx::client
