#include "src/client/fake_servers.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "src/base/assert.h"
#include "src/client/strings_internal.h"

namespace ocx::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

namespace {

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

void AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  OCX_ASSERT(extension != nullptr);
  OCX_ASSERT(X509_add_ext(cert, extension, -1) == 1);
  X509_EXTENSION_free(extension);
}

std::unique_ptr<ssl::context> MakeServerContext(const TestCertificate& certificate) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  beast::error_code ec;
  context->use_certificate_chain(asio::buffer(certificate.cert_pem), ec);
  OCX_ASSERT_MSG(!ec, "test certificate refused");
  context->use_private_key(asio::buffer(certificate.key_pem), ssl::context::pem, ec);
  OCX_ASSERT_MSG(!ec, "test key refused");
  return context;
}

// Accepts connections on 127.0.0.1:0 and serves each on its own thread with `serve`, which
// returns when the connection is done; the socket is then closed and counted.
class LoopbackServer {
 public:
  using Serve = std::function<void(tcp::socket&)>;

  explicit LoopbackServer(Serve serve) : serve_(std::move(serve)) {
    beast::error_code ec;
    acceptor_.open(tcp::v4(), ec);
    OCX_ASSERT(!ec);
    acceptor_.bind(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0), ec);
    OCX_ASSERT(!ec);
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    OCX_ASSERT(!ec);
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    {
      // Wakes the blocking accept; the loop sees stopping_ and ends.
      tcp::socket waker(ioc_);
      beast::error_code ec;
      waker.connect(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port_), ec);
      accept_thread_.join();
    }
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      // shutdown() wakes a thread blocked reading its socket; close() would not.
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (std::thread& thread : threads) thread.join();
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

  void WaitForClosed(int count) const {
    std::unique_lock lock(mu_);
    closed_cv_.wait(lock, [&] { return closed_ >= count; });
  }

 private:
  void AcceptLoop() {
    for (;;) {
      auto socket = std::make_unique<tcp::socket>(ioc_);
      beast::error_code ec;
      acceptor_.accept(*socket, ec);
      if (stopping_) return;
      if (ec) continue;
      ++accepted_;
      std::lock_guard lock(mu_);
      open_fds_.insert(socket->native_handle());
      threads_.emplace_back([this, socket = std::move(socket)] {
        serve_(*socket);
        {
          std::lock_guard lock(mu_);
          open_fds_.erase(socket->native_handle());
          beast::error_code ignored;
          socket->close(ignored);
          ++closed_;
        }
        closed_cv_.notify_all();
      });
    }
  }

  Serve serve_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable closed_cv_;
  std::set<int> open_fds_;            // Guarded by mu_.
  std::vector<std::thread> threads_;  // Guarded by mu_.
  int closed_ = 0;                    // Guarded by mu_.
};

FakeRequest Recorded(const http::request<http::string_body>& request) {
  FakeRequest recorded;
  recorded.method = std::string(request.method_string());
  recorded.target = std::string(request.target());
  recorded.body = request.body();
  for (const auto& field : request) {
    recorded.headers[internal::AsciiLower(std::string(field.name_string()))] =
        std::string(field.value());
  }
  return recorded;
}

template <class Stream>
void WriteAnswer(Stream& stream, const FakeResponse& answer, unsigned version, bool keep_alive,
                 bool head, beast::error_code& ec) {
  http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
  response.keep_alive(keep_alive);
  for (const auto& [name, value] : answer.headers) response.set(name, value);
  if (head) {
    response.content_length(answer.body.size());
  } else {
    response.body() = answer.body;
    response.prepare_payload();
  }
  http::write(stream, response, ec);
}

// How a connection's HTTP requests are answered (FakeHttpServer's handler and options, or the
// WebSocket server's `http`), and where they are recorded (optional).
struct HttpAnswerer {
  const std::function<FakeResponse(const FakeRequest&)>* handler;
  const FakeHttpServerOptions* options;
  std::function<void(const FakeRequest&)> record;
};

// Serves HTTP requests on `stream` until the connection ends. `first`, when not null, is a
// request whose header has been read already.
template <class Stream>
void ServeHttpRequests(Stream& stream, beast::flat_buffer& buffer, const HttpAnswerer& answerer,
                       http::request_parser<http::string_body>* first) {
  const FakeHttpServerOptions& options = *answerer.options;
  for (int number = 1;; ++number) {
    std::optional<http::request_parser<http::string_body>> own;
    http::request_parser<http::string_body>* parser = first;
    first = nullptr;
    beast::error_code ec;
    if (parser == nullptr) {
      own.emplace();
      parser = &*own;
      parser->body_limit(kFakeRequestBodyBytesMax);
      http::read_header(stream, buffer, *parser, ec);
      if (ec) return;
    }
    if (number == options.drop_request_number) return;
    if (options.answer_before_body) {
      const FakeRequest head = Recorded(parser->get());
      if (std::optional<FakeResponse> early = options.answer_before_body(head)) {
        if (answerer.record) answerer.record(head);
        // The body stays unread: closing now resets the connection under the client's
        // upload, as a server that refused it does.
        WriteAnswer(stream, *early, parser->get().version(), /*keep_alive=*/false,
                    parser->get().method() == http::verb::head, ec);
        return;
      }
    }
    if (!parser->is_done()) http::read(stream, buffer, *parser, ec);
    if (ec) return;
    const http::request<http::string_body>& request = parser->get();
    const FakeRequest recorded = Recorded(request);
    if (answerer.record) answerer.record(recorded);
    if (options.never_answer) continue;
    const bool keep_alive = request.keep_alive();
    WriteAnswer(stream, (*answerer.handler)(recorded), request.version(), keep_alive,
                request.method() == http::verb::head, ec);
    if (ec || options.close_after_response || !keep_alive) return;
  }
}

// A scripted session's view of one accepted WebSocket.
template <class Ws>
class WsConnection final : public FakeWebSocketConnection {
 public:
  WsConnection(Ws& ws, std::string target) : ws_(ws), target_(std::move(target)) {}

  bool Send(const std::string& text) override {
    beast::error_code ec;
    ws_.text(true);
    ws_.write(asio::buffer(text), ec);
    return !ec;
  }

  std::optional<std::string> Receive() override {
    beast::flat_buffer buffer;
    beast::error_code ec;
    ws_.read(buffer, ec);
    if (ec) return std::nullopt;
    return beast::buffers_to_string(buffer.data());
  }

  const std::string& target() const override { return target_; }

 private:
  Ws& ws_;
  const std::string target_;
};

}  // namespace

TestCertificate MakeSelfSignedCertificate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  OCX_ASSERT(key != nullptr);
  X509* cert = X509_new();
  OCX_ASSERT(cert != nullptr);
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ocx test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  AddExtension(cert, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert, NID_subject_key_identifier, "hash");
  AddExtension(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  OCX_ASSERT(X509_sign(cert, key, EVP_sha256()) > 0);

  TestCertificate result;
  BIO* bio = BIO_new(BIO_s_mem());
  OCX_ASSERT(PEM_write_bio_X509(bio, cert) == 1);
  result.cert_pem = BioToString(bio);
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  OCX_ASSERT(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  result.key_pem = BioToString(bio);
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return result;
}

std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string path = internal::Cat(::testing::TempDir(), "/ocx_client_",
                                         test ? test->name() : "none", "_", ::getpid(), "_", name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  OCX_ASSERT(out.good());
  return path;
}

// ---------------------------------------------------------------------------------------
// FakeHttpServer

struct FakeHttpServer::State {
  State(Handler h, FakeHttpServerOptions o) : handler(std::move(h)), options(std::move(o)) {
    if (options.tls) tls_context = MakeServerContext(*options.tls);
    server = std::make_unique<LoopbackServer>([this](tcp::socket& socket) { Serve(socket); });
  }

  void Serve(tcp::socket& socket) {
    if (!tls_context) {
      ServeHttp(socket);
      return;
    }
    ssl::stream<tcp::socket&> stream(socket, *tls_context);
    beast::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (!ec) ServeHttp(stream);
  }

  template <class Stream>
  void ServeHttp(Stream& stream) {
    beast::flat_buffer buffer;
    const HttpAnswerer answerer{&handler, &options, [this](const FakeRequest& request) {
                                  std::lock_guard lock(mu);
                                  requests.push_back(request);
                                }};
    ServeHttpRequests(stream, buffer, answerer, nullptr);
  }

  Handler handler;
  FakeHttpServerOptions options;
  std::unique_ptr<ssl::context> tls_context;
  mutable std::mutex mu;
  std::vector<FakeRequest> requests;       // Guarded by mu.
  std::unique_ptr<LoopbackServer> server;  // Last: stopped before the rest goes.
};

FakeHttpServer::FakeHttpServer(Handler handler, FakeHttpServerOptions options)
    : state_(std::make_unique<State>(std::move(handler), std::move(options))) {}

FakeHttpServer::~FakeHttpServer() { state_->server.reset(); }

uint16_t FakeHttpServer::port() const { return state_->server->port(); }

std::string FakeHttpServer::url() const {
  return internal::Cat(state_->tls_context ? "https" : "http", "://127.0.0.1:", port());
}

int FakeHttpServer::connections_accepted() const { return state_->server->accepted(); }

std::vector<FakeRequest> FakeHttpServer::requests() const {
  std::lock_guard lock(state_->mu);
  return state_->requests;
}

void FakeHttpServer::WaitForClosedConnections(int count) const {
  state_->server->WaitForClosed(count);
}

// ---------------------------------------------------------------------------------------
// FakeWebSocketServer

struct FakeWebSocketServer::State {
  explicit State(FakeWebSocketServerOptions o) : options(std::move(o)) {
    if (options.tls) tls_context = MakeServerContext(*options.tls);
    server = std::make_unique<LoopbackServer>([this](tcp::socket& socket) { Serve(socket); });
  }

  void Serve(tcp::socket& socket) {
    if (!tls_context) {
      websocket::stream<tcp::socket&, /*deflateSupported=*/false> ws(socket);
      ServeWebSocket(ws);
      return;
    }
    websocket::stream<ssl::stream<tcp::socket&>, /*deflateSupported=*/false> ws(socket,
                                                                                *tls_context);
    beast::error_code ec;
    ws.next_layer().handshake(ssl::stream_base::server, ec);
    if (!ec) ServeWebSocket(ws);
  }

  template <class Ws>
  void ServeWebSocket(Ws& ws) {
    beast::flat_buffer buffer;
    http::request_parser<http::string_body> parser;
    parser.body_limit(kFakeRequestBodyBytesMax);
    beast::error_code ec;
    http::read_header(ws.next_layer(), buffer, parser, ec);
    if (ec) return;
    if (!websocket::is_upgrade(parser.get())) {
      if (!options.http) return;
      const FakeHttpServerOptions http_options;
      ServeHttpRequests(ws.next_layer(), buffer, HttpAnswerer{&options.http, &http_options, {}},
                        &parser);
      return;
    }
    if (!parser.is_done()) http::read(ws.next_layer(), buffer, parser, ec);
    if (ec) return;
    const http::request<http::string_body>& request = parser.get();
    if (!options.required_token.empty() &&
        request[http::field::authorization] != internal::Cat("Bearer ", options.required_token)) {
      http::response<http::string_body> refusal{http::status::unauthorized, request.version()};
      refusal.set(http::field::content_type, "application/json");
      refusal.body() = R"({"error":{"code":"unauthenticated","message":"Bad token."}})";
      refusal.prepare_payload();
      http::write(ws.next_layer(), refusal, ec);
      return;
    }
    ws.accept(request, ec);
    if (ec) return;
    if (options.session) {
      WsConnection<Ws> connection(ws, std::string(request.target()));
      options.session(connection);
      return;
    }
    for (;;) {
      buffer.clear();
      ws.read(buffer, ec);
      if (ec) return;
      const std::string message = beast::buffers_to_string(buffer.data());
      if (message.starts_with("close:")) {
        ws.close(websocket::close_reason(websocket::close_code::normal,
                                         std::string_view(message).substr(6)),
                 ec);
        return;
      }
      if (message == "drop") return;
      if (message == "mute") {
        // Stop reading (so pings go unanswered and sends back up) until the peer hangs up
        // or the server shuts the socket down; POLLIN is deliberately not asked for.
        pollfd fd{};
        fd.fd = beast::get_lowest_layer(ws).native_handle();
        fd.events = POLLRDHUP;
        ::poll(&fd, 1, -1);
        return;
      }
      int count = 0;
      if (message.starts_with("push:") && absl::SimpleAtoi(message.substr(5), &count)) {
        ws.text(true);
        for (int i = 0; i < count && !ec; ++i) ws.write(asio::buffer(std::to_string(i)), ec);
        if (ec) return;
        continue;
      }
      ws.text(ws.got_text());
      ws.write(asio::buffer(message), ec);
      if (ec) return;
    }
  }

  FakeWebSocketServerOptions options;
  std::unique_ptr<ssl::context> tls_context;
  std::unique_ptr<LoopbackServer> server;  // Last: stopped before the rest goes.
};

FakeWebSocketServer::FakeWebSocketServer(FakeWebSocketServerOptions options)
    : state_(std::make_unique<State>(std::move(options))) {}

FakeWebSocketServer::~FakeWebSocketServer() { state_->server.reset(); }

uint16_t FakeWebSocketServer::port() const { return state_->server->port(); }

std::string FakeWebSocketServer::url() const {
  return internal::Cat(state_->tls_context ? "wss" : "ws", "://127.0.0.1:", port());
}

}  // namespace ocx::client
