#include "src/api/http_server.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <deque>
#include <limits>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "spdlog/spdlog.h"
#include "src/base/sha256.h"
#include "src/base/strings.h"
#include "src/base/thread_name.h"

namespace ocx::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

// A connection in the reserved share may only become an agent channel, and must say so soon.
constexpr std::chrono::seconds kReservedHeaderTimeout{5};
// How often a WebSocket connection asks its handler whether it has been idle too long.
constexpr std::chrono::seconds kIdleCheckInterval{5};
// A file answer is sent in pieces of this size.
constexpr size_t kFileChunkBytes = 64 * 1024;

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  Api* api = nullptr;
  net::io_context ioc;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::atomic<int64_t> in_flight{0};  // Requests handed to the Api, not yet answered.
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::mutex stop_mu;

  mutable std::mutex connections_mu;
  size_t general = 0;  // Open connections that are not agent channels. Guarded.
  size_t agents = 0;   // Open agent channels. Guarded.
  std::unordered_map<std::string, size_t> per_address;  // Guarded by connections_mu.

  explicit Impl(int threads) : ioc(threads) {}
  void Accept();
  void RunThread();
};

namespace {

// One accepted connection's place in the server's counts, given back when it ends.
class ConnectionTicket {
 public:
  ConnectionTicket(HttpServer::Impl* server, std::string address, bool reserved_only)
      : server_(server), address_(std::move(address)), reserved_only_(reserved_only) {}
  ~ConnectionTicket() {
    std::lock_guard lock(server_->connections_mu);
    (agent_ ? server_->agents : server_->general) -= 1;
    const auto it = server_->per_address.find(address_);
    if (it != server_->per_address.end() && --it->second == 0) server_->per_address.erase(it);
  }
  ConnectionTicket(const ConnectionTicket&) = delete;
  ConnectionTicket& operator=(const ConnectionTicket&) = delete;

  // The connection is an agent channel from now on (it no longer counts against the share
  // of other clients).
  void BecomeAgent() {
    std::lock_guard lock(server_->connections_mu);
    if (agent_) return;
    agent_ = true;
    --server_->general;
    ++server_->agents;
  }
  bool reserved_only() const { return reserved_only_; }
  const std::string& address() const { return address_; }

 private:
  HttpServer::Impl* server_;
  const std::string address_;
  const bool reserved_only_;
  bool agent_ = false;  // Strand of the connection only (and the destructor).
};

// The stream types a session runs over.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

beast::tcp_stream& Lowest(PlainStream& s) { return s; }
beast::tcp_stream& Lowest(TlsStream& s) { return beast::get_lowest_layer(s); }

// A request body received straight into a file of the upload directory and hashed as it
// arrives. The file is removed when this goes, unless the Api moved it away first (then the
// unlink finds nothing).
class UploadFile {
 public:
  static std::unique_ptr<UploadFile> Create(const std::string& dir) {
    auto file = std::unique_ptr<UploadFile>(new UploadFile());
    file->path_ = dir + "/upload-XXXXXX";
    file->fd_ = ::mkostemp(file->path_.data(), O_CLOEXEC);
    if (file->fd_ < 0) return nullptr;
    return file;
  }
  ~UploadFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  UploadFile(const UploadFile&) = delete;
  UploadFile& operator=(const UploadFile&) = delete;

  bool Write(const char* data, size_t size) {
    hash_.Update(std::string_view(data, size));
    size_ += size;
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  UploadedFile Finish() {
    ::close(fd_);
    fd_ = -1;
    return UploadedFile{path_, size_, hash_.FinishHex()};
  }

 private:
  UploadFile() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  base::Sha256 hash_;
};

// A Beast body that writes into an UploadFile.
struct UploadBody {
  using value_type = std::unique_ptr<UploadFile>;

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) {
      ec = body_ ? beast::error_code() : make_error_code(beast::errc::io_error);
    }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      size_t used = 0;
      for (const auto buffer : beast::buffers_range_ref(buffers)) {
        if (!body_->Write(static_cast<const char*>(buffer.data()), buffer.size())) {
          ec = make_error_code(beast::errc::io_error);
          return used;
        }
        used += buffer.size();
      }
      ec = {};
      return used;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

HttpRequest ToRequest(const http::request_header<>& in, const std::string& remote,
                      std::optional<uint64_t> content_length) {
  HttpRequest out;
  out.method = std::string(in.method_string());
  out.target = std::string(in.target());
  if (!ParseTarget(out.target, &out.path, &out.query)) out.path.clear();
  for (const auto& field : in) {
    std::string name(field.name_string());
    for (char& c : name) c = absl::ascii_tolower(static_cast<unsigned char>(c));
    out.headers[std::move(name)] = std::string(field.value());
  }
  out.content_length = content_length;
  out.remote_address = remote;
  return out;
}

// A response's status line and headers as they go on the wire. Written by hand rather than by
// Beast's serializer, which costs several times more per small response; the headers are the
// ones Beast would write for the same message.
std::string WireHead(const HttpResponse& in, unsigned version, bool keep_alive,
                     uint64_t content_length) {
  std::string head;
  head.reserve(192 + in.content_type.size());
  // The request's version, as Beast wrote it (10 * major + minor).
  head += "HTTP/";
  head += std::to_string(version / 10);
  head += '.';
  head += std::to_string(version % 10);
  head += ' ';
  head += std::to_string(in.status);
  head += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(in.status));
  head.append(reason.data(), reason.size());
  head += "\r\nServer: ocx\r\nContent-Type: ";
  head += in.content_type;
  const bool has_cache_control =
      std::any_of(in.headers.begin(), in.headers.end(),
                  [](const auto& h) { return base::EqualsIgnoreCase(h.first, "Cache-Control"); });
  if (in.content_type == "application/json" && !has_cache_control) {
    head += "\r\nCache-Control: no-store";
  }
  for (const auto& [name, value] : in.headers) {
    head += "\r\n";
    head += name;
    head += ": ";
    head += value;
  }
  // As Beast's prepare_payload: informational, 204 and 304 responses carry no length.
  const bool bodiless = in.status / 100 == 1 || in.status == 204 || in.status == 304;
  if (!bodiless) {
    head += "\r\nContent-Length: ";
    head += std::to_string(content_length);
  }
  if (version >= 11 && !keep_alive) head += "\r\nConnection: close";
  if (version < 11 && keep_alive) head += "\r\nConnection: keep-alive";
  head += "\r\n\r\n";
  return head;
}

// Why a WebSocket upgrade request cannot be accepted (the checks of Beast's accept, answered
// in JSON instead of Beast's plain text), or nothing when it can.
std::optional<HttpResponse> HandshakeRefusal(const http::request_header<>& request) {
  auto bad = [](std::string_view why) {
    return Refuse(Refusal::kBadRequest, "Not a valid WebSocket handshake: " + std::string(why));
  };
  if (request.version() != 11) return bad("HTTP/1.1 is required.");
  if (request.method() != http::verb::get) return bad("the method must be GET.");
  if (request.find(http::field::host) == request.end()) return bad("no Host header.");
  const auto key = request.find(http::field::sec_websocket_key);
  if (key == request.end() || key->value().empty() || key->value().size() > 24) {
    return bad("Sec-WebSocket-Key is missing or malformed.");
  }
  const auto version = request.find(http::field::sec_websocket_version);
  if (version == request.end() || version->value() != "13") {
    HttpResponse refusal = Refuse(Refusal::kUpgradeRequired,
                                  "This server speaks WebSocket version 13 only.");
    refusal.headers.emplace_back("Sec-WebSocket-Version", "13");
    return refusal;
  }
  return std::nullopt;
}

// Logs what an Api call threw and gives the answer for it.
HttpResponse Thrown(const char* where, const std::exception* e) {
  return InternalError(std::string(where) + " threw: " + (e ? e->what() : "a non-standard exception"));
}

// ------------------------------------------------------------------- WebSocket session

// What a WsHandler holds: forwards to the session once it exists; drops messages after.
class ConnectionSlot : public WsConnection {
 public:
  void Attach(std::weak_ptr<WsConnection> target) {
    std::lock_guard lock(mu_);
    target_ = std::move(target);
  }
  void SendText(std::shared_ptr<const std::string> text) override {
    if (auto target = Target()) target->SendText(std::move(text));
  }
  void Close(std::string reason) override {
    if (auto target = Target()) target->Close(std::move(reason));
  }

 private:
  std::shared_ptr<WsConnection> Target() {
    std::lock_guard lock(mu_);
    return target_.lock();
  }
  std::mutex mu_;
  std::weak_ptr<WsConnection> target_;  // Guarded by mu_.
};

template <typename Stream>
class WsSession : public WsConnection, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(HttpServer::Impl* server, Stream&& stream, std::shared_ptr<ConnectionSlot> slot,
            std::unique_ptr<ConnectionTicket> ticket)
      : server_(server),
        ws_(std::move(stream)),
        slot_(std::move(slot)),
        ticket_(std::move(ticket)),
        idle_timer_(ws_.get_executor()) {}

  void Run(http::request<http::empty_body> upgrade, std::shared_ptr<WsHandler> handler) {
    handler_ = std::move(handler);
    Lowest(ws_.next_layer()).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(server_->options.ws_message_bytes_max);
    ws_.async_accept(upgrade,
                     beast::bind_front_handler(&WsSession::OnAccept, this->shared_from_this()));
  }

  void SendText(std::shared_ptr<const std::string> text) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), text = std::move(text)] {
      // After Close() nothing new goes out: what was queued before it is sent, then the close.
      if (self->closing_ || self->close_after_writes_) return;
      const HttpServerOptions& options = self->server_->options;
      if (self->outbound_.size() >= options.ws_outbound_messages_max ||
          self->outbound_bytes_ + text->size() > options.ws_outbound_bytes_max) {
        // A client that cannot keep up is dropped rather than buffered without bound.
        self->CloseNow("slow consumer: outbound queue full");
        return;
      }
      self->outbound_bytes_ += text->size();
      self->outbound_.push_back(text);
      if (!self->writing_ && self->accepted_) self->WriteNext();
    });
  }

  void Close(std::string reason) override {
    net::post(ws_.get_executor(), [self = this->shared_from_this(), reason = std::move(reason)] {
      self->close_reason_ = reason;
      self->close_after_writes_ = true;
      if (!self->writing_ && self->outbound_.empty() && self->accepted_) self->CloseNow(reason);
    });
  }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) return Finish();
    accepted_ = true;
    handler_->OnOpen();
    if (!outbound_.empty() && !writing_) WriteNext();
    ScheduleIdleCheck();
    Read();
  }

  void ScheduleIdleCheck() {
    idle_timer_.expires_after(kIdleCheckInterval);
    idle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_ || self->closing_) return;
      if (self->handler_->IdleExpired(std::chrono::steady_clock::now())) {
        return self->CloseNow("idle: an anonymous stream without channels");
      }
      self->ScheduleIdleCheck();
    });
  }

  void Read() {
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&WsSession::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec) return Finish();
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      SendText(std::make_shared<const std::string>(
          R"({"type":"error","error":{"code":"invalid_message","message":"Messages are JSON text."}})"));
      return Read();
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    try {
      handler_->OnMessage(std::move(text));
    } catch (const std::exception& e) {
      // The handlers answer their own failures; this is the last line.
      LogIncident(std::string("a WebSocket handler threw: ") + e.what());
      return CloseNow("internal error");
    }
    if (!closing_) Read();
  }

  void WriteNext() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(*outbound_.front()),
                    beast::bind_front_handler(&WsSession::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    writing_ = false;
    outbound_bytes_ -= outbound_.front()->size();
    outbound_.pop_front();
    if (ec) return Finish();
    if (closing_) return;  // CloseNow kept only the message that was being written.
    if (!outbound_.empty()) return WriteNext();
    if (close_after_writes_) CloseNow(close_reason_);
  }

  void CloseNow(const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    // The message being written stays queued until its write completes: the write reads
    // it from the queue's buffer (dropping it here freed the bytes under the write).
    while (outbound_.size() > (writing_ ? 1 : 0)) {
      outbound_bytes_ -= outbound_.back()->size();
      outbound_.pop_back();
    }
    idle_timer_.cancel();
    websocket::close_reason why(websocket::close_code::policy_error);
    why.reason = reason.substr(0, 120);
    ws_.async_close(why, [self = this->shared_from_this()](beast::error_code) { self->Finish(); });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    idle_timer_.cancel();
    if (handler_) handler_->OnClose();
  }

  HttpServer::Impl* server_;
  websocket::stream<Stream> ws_;
  std::shared_ptr<ConnectionSlot> slot_;  // Keeps the handler's forwarding slot alive.
  std::unique_ptr<ConnectionTicket> ticket_;
  net::steady_timer idle_timer_;
  beast::flat_buffer buffer_;
  std::shared_ptr<WsHandler> handler_;
  std::deque<std::shared_ptr<const std::string>> outbound_;  // Strand only.
  size_t outbound_bytes_ = 0;                                 // Strand only.
  bool accepted_ = false;
  bool writing_ = false;  // An async_write of outbound_.front() is in flight.
  bool closing_ = false;
  bool close_after_writes_ = false;
  bool finished_ = false;
  std::string close_reason_;
};

// ------------------------------------------------------------------- HTTP session

template <typename Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(HttpServer::Impl* server, Stream&& stream, std::unique_ptr<ConnectionTicket> ticket)
      : server_(server), stream_(std::move(stream)), ticket_(std::move(ticket)) {}

  void Run() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest(stream_).expires_after(std::chrono::seconds(30));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&HttpSession::Read, this->shared_from_this()));
    }
  }

 private:
  void Read() {
    if (server_->stopping.load()) return Shutdown();
    admission_.reset();
    upload_.reset();
    header_parser_.emplace();
    header_parser_->header_limit(static_cast<uint32_t>(server_->options.header_bytes_max));
    // The body's limit is the route's, known once the header is read (Api::Admit checks a
    // declared Content-Length against it before a byte of the body is read).
    header_parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    Lowest(stream_).expires_after(ticket_->reserved_only()
                                      ? std::chrono::seconds(kReservedHeaderTimeout)
                                      : std::chrono::seconds(server_->options.idle_timeout_s));
    http::async_read_header(
        stream_, buffer_, *header_parser_,
        beast::bind_front_handler(&HttpSession::OnHeader, this->shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    const http::request_header<>& header = header_parser_->get();
    std::optional<uint64_t> content_length;
    if (const auto length = header_parser_->content_length()) content_length = *length;
    keep_alive_ = header_parser_->get().keep_alive();
    version_ = header.version();
    head_request_ = header.method() == http::verb::head;
    HttpRequest head = ToRequest(header, ticket_->address(), content_length);
    if (head.path.empty()) {
      return WriteError(Refuse(Refusal::kBadRequest,
                               "The request target is not a valid path (percent-encoding, UTF-8, "
                               "at most 64 query parameters)."));
    }
    // A Transfer-Encoding that does not end in chunked leaves the body's length unknown: RFC
    // 9112 6.3 says refuse and close (the parser would otherwise take it as no body, and
    // what follows as the next request).
    if (header.find(http::field::transfer_encoding) != header.end() &&
        !header_parser_->chunked()) {
      return WriteError(Refuse(Refusal::kBadRequest,
                               "A request's Transfer-Encoding must end in chunked."));
    }
    if (websocket::is_upgrade(header_parser_->get())) return Upgrade(std::move(head));
    if (ticket_->reserved_only()) {
      return WriteError(Refuse(Refusal::kServerBusy,
                               "The exchange has no room for another connection now; retry "
                               "shortly."));
    }
    HttpResponse refusal;
    try {
      admission_ = server_->api->Admit(std::move(head), &refusal);
    } catch (const std::exception& e) {
      refusal = Thrown("admitting a request", &e);
    }
    if (!admission_) return WriteError(std::move(refusal));
    if (base::EqualsIgnoreCase(header[http::field::expect], "100-continue")) {
      // The client waits for this before it sends a large body; it is admitted.
      auto interim = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      net::async_write(stream_, net::buffer(*interim),
                       [self = this->shared_from_this(), interim](beast::error_code ec, size_t) {
                         if (ec) return self->Shutdown();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    const uint64_t limit = Api::BodyLimit(*admission_);
    const std::string& directory = Api::BodyFileDirectory(*admission_);
    if (!directory.empty()) {
      upload_parser_.emplace(std::move(*header_parser_));
      upload_parser_->body_limit(limit);
      upload_parser_->get().body() = UploadFile::Create(directory);
      if (!upload_parser_->get().body()) {
        return WriteError(InternalError("cannot create an upload file in " + directory));
      }
      return ReadBodyWith(*upload_parser_);
    }
    string_parser_.emplace(std::move(*header_parser_));
    string_parser_->body_limit(limit);
    ReadBodyWith(*string_parser_);
  }

  template <typename Parser>
  void ReadBodyWith(Parser& parser) {
    // A small request usually arrives whole in the read that found its header: its body is
    // parsed here and now rather than by another asynchronous read, which would complete
    // through the scheduler's queue (a hand-off, and often a wake-up of the other I/O thread).
    while (!parser.is_done() && buffer_.size() > 0) {
      beast::error_code parse_error;
      const size_t used = parser.put(buffer_.data(), parse_error);
      buffer_.consume(used);
      if (parse_error == http::error::need_more) break;
      if (parse_error) return OnReadError(parse_error);
      if (used == 0) break;
    }
    if (parser.is_done()) return OnBody({}, 0);
    // A body can take a while to arrive; the idle timeout is for silence between requests.
    Lowest(stream_).expires_after(
        std::chrono::seconds(std::max<int64_t>(30, server_->options.idle_timeout_s)));
    http::async_read(stream_, buffer_, parser,
                     beast::bind_front_handler(&HttpSession::OnBody, this->shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return WriteError(Refuse(Refusal::kHeadersTooLarge,
                               "The request headers exceed " +
                                   std::to_string(server_->options.header_bytes_max) + " bytes."));
    }
    if (ec == http::error::body_limit) return WriteError(Refuse(Refusal::kBodyTooLarge));
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return Shutdown();
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return WriteError(Refuse(Refusal::kBadRequest, "The request is not valid HTTP/1.1."));
    }
    if (ec == beast::errc::io_error && upload_parser_) {
      return WriteError(InternalError("writing an upload to disk failed"));
    }
    Shutdown();
  }

  // An answer after which the connection closes (the body, if any, was not read).
  void WriteError(HttpResponse response) {
    keep_alive_ = false;
    if (version_ == 0) version_ = 11;
    WriteResponse(std::move(response));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    std::string body;
    std::optional<UploadedFile> upload;
    if (upload_parser_) {
      upload_ = std::move(upload_parser_->get().body());
      upload_parser_.reset();
      upload = upload_->Finish();
    } else {
      body = std::move(string_parser_->get().body());
      string_parser_.reset();
    }
    server_->in_flight.fetch_add(1);
    auto respond = [self = this->shared_from_this()](HttpResponse response) {
      net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->server_->in_flight.fetch_sub(1);
        self->WriteResponse(std::move(response));
      });
    };
    try {
      server_->api->Handle(std::move(admission_), std::move(body), std::move(upload), respond);
    } catch (const std::exception& e) {
      // Handle answers what its handlers throw; this is what escaped Handle itself. The call
      // may have been answered already: that answer wins (in_flight is balanced by it).
      respond(Thrown("handling a request", &e));
    }
  }

  void WriteResponse(HttpResponse response) {
    const bool keep_alive = keep_alive_ && !server_->stopping.load();
    const bool bodiless = response.status / 100 == 1 || response.status == 204 ||
                          response.status == 304;
    const bool from_file = response.body_file != nullptr && !bodiless;
    const uint64_t length = from_file ? response.body_file_size : response.body.size();
    auto message = std::make_shared<std::pair<std::string, std::string>>(
        WireHead(response, version_, keep_alive, length),
        head_request_ || bodiless || from_file ? std::string() : std::move(response.body));
    Lowest(stream_).expires_after(std::chrono::seconds(30));
    const std::array<net::const_buffer, 2> buffers{net::buffer(message->first),
                                                   net::buffer(message->second)};
    std::shared_ptr<base::UniqueFd> file =
        from_file && !head_request_ ? std::move(response.body_file) : nullptr;
    net::async_write(stream_, buffers,
                     [self = this->shared_from_this(), message, keep_alive, file,
                      length](beast::error_code ec, size_t) {
                       if (ec) return self->Shutdown();
                       if (file) return self->WriteFile(file, length, keep_alive);
                       self->AfterResponse(keep_alive);
                     });
  }

  // Sends `remaining` bytes of `file` after the head, a piece at a time.
  void WriteFile(std::shared_ptr<base::UniqueFd> file, uint64_t remaining, bool keep_alive) {
    if (remaining == 0) return AfterResponse(keep_alive);
    auto chunk = std::make_shared<std::string>(
        static_cast<size_t>(std::min<uint64_t>(remaining, kFileChunkBytes)), '\0');
    ssize_t n;
    do {
      n = ::read(file->get(), chunk->data(), chunk->size());
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return Shutdown();  // The file shrank: the client sees a short body and no more.
    chunk->resize(static_cast<size_t>(n));
    Lowest(stream_).expires_after(std::chrono::seconds(30));
    net::async_write(stream_, net::buffer(*chunk),
                     [self = this->shared_from_this(), chunk, file, remaining,
                      keep_alive](beast::error_code ec, size_t written) {
                       if (ec) return self->Shutdown();
                       self->WriteFile(file, remaining - written, keep_alive);
                     });
  }

  void AfterResponse(bool keep_alive) {
    upload_.reset();  // Whatever the Api did not move into the blob store goes now.
    if (!keep_alive) return Shutdown();
    Read();
  }

  void Upgrade(HttpRequest head) {
    const http::request_header<>& header = header_parser_->get();
    if (auto refusal = HandshakeRefusal(header)) return WriteError(std::move(*refusal));
    const bool agent = head.path == "/v1/agent";
    if (ticket_->reserved_only() && !agent) {
      return WriteError(Refuse(Refusal::kServerBusy,
                               "The exchange has no room for another connection now; retry "
                               "shortly."));
    }
    // The handler gets a slot that forwards to the WebSocket session, which exists only once
    // the Api has accepted the upgrade (a refusal is answered on this HTTP session).
    auto slot = std::make_shared<ConnectionSlot>();
    HttpResponse refusal;
    std::shared_ptr<WsHandler> handler;
    try {
      handler = server_->api->OpenWebSocket(head, slot, &refusal);
    } catch (const std::exception& e) {
      refusal = Thrown("opening a WebSocket", &e);
    }
    if (!handler) return WriteError(std::move(refusal));
    if (agent) ticket_->BecomeAgent();
    auto session = std::make_shared<WsSession<Stream>>(server_, std::move(stream_), slot,
                                                       std::move(ticket_));
    slot->Attach(session);
    session->Run(header_parser_->release(), std::move(handler));
  }

  void Shutdown() {
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      Lowest(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  HttpServer::Impl* server_;
  Stream stream_;
  std::unique_ptr<ConnectionTicket> ticket_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> string_parser_;
  std::optional<http::request_parser<UploadBody>> upload_parser_;
  std::shared_ptr<Api::Admission> admission_;
  std::unique_ptr<UploadFile> upload_;  // Received, until its answer is sent.
  unsigned version_ = 0;
  bool keep_alive_ = true;
  bool head_request_ = false;
};

// Answers a connection refused at accept with `response` and closes it (plain HTTP only: a
// TLS client would not read plain text, so it is just closed).
void RefuseConnection(tcp::socket socket, HttpResponse response) {
  auto held = std::make_shared<tcp::socket>(std::move(socket));
  auto text = std::make_shared<std::string>(WireHead(response, 11, false, response.body.size()) +
                                            response.body);
  net::async_write(*held, net::buffer(*text), [held, text](beast::error_code, size_t) {
    beast::error_code ignored;
    held->shutdown(tcp::socket::shutdown_both, ignored);
    held->close(ignored);
  });
}

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping.load()) return;
      spdlog::warn("accept failed: {}", ec.message());
      return Accept();
    }
    beast::error_code remote_ec;
    const auto remote = socket.remote_endpoint(remote_ec);
    std::string address = remote_ec ? "" : remote.address().to_string();
    bool reserved_only = false;
    std::optional<HttpResponse> refusal;
    {
      std::lock_guard lock(connections_mu);
      if (general + agents >= options.connections_max + options.agent_connections_reserved) {
        refusal = Refuse(Refusal::kServerBusy, "The exchange has no room for another connection.");
      } else if (per_address[address] >= options.connections_per_ip_max) {
        refusal = Refuse(Refusal::kTooManyConnections);
      } else {
        reserved_only = general >= options.connections_max;
        ++general;
        ++per_address[address];
      }
      if (refusal && per_address[address] == 0) per_address.erase(address);
    }
    if (refusal) {
      if (tls) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        RefuseConnection(std::move(socket), std::move(*refusal));
      }
      return Accept();
    }
    auto ticket = std::make_unique<ConnectionTicket>(this, std::move(address), reserved_only);
    socket.set_option(tcp::no_delay(true), remote_ec);
    if (tls) {
      std::make_shared<HttpSession<TlsStream>>(this, TlsStream(std::move(socket), *tls),
                                               std::move(ticket))
          ->Run();
    } else {
      std::make_shared<HttpSession<PlainStream>>(this, PlainStream(std::move(socket)),
                                                 std::move(ticket))
          ->Run();
    }
    Accept();
  });
}

void HttpServer::Impl::RunThread() {
  base::NameThisThread("ocx-io");
  // A handler that throws ends ioc.run() on this thread only: log it and serve on (the
  // connection it belonged to lost its handler and is closed when its last reference goes).
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      LogIncident(std::string("an I/O handler threw: ") + e.what());
    } catch (...) {
      LogIncident("an I/O handler threw a non-standard exception");
    }
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(0); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, Api* api) {
  auto impl = std::make_unique<Impl>(options.io_threads);
  impl->options = options;
  impl->api = api;
  beast::error_code ec;
  if (!options.tls_cert_file.empty()) {
    impl->tls.emplace(ssl::context::tls_server);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot load TLS certificate " + options.tls_cert_file +
                                        ": " + ec.message());
    }
    impl->tls->use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError("cannot load TLS key " + options.tls_key_file + ": " +
                                        ec.message());
    }
  }
  const auto address = net::ip::make_address(options.address, ec);
  if (ec) return absl::InvalidArgumentError("invalid listen address: " + options.address);
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("cannot listen on " + options.address + ":" +
                                  std::to_string(options.port) + ": " + ec.message());
  }
  impl->Accept();
  for (int i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([server = impl.get()] { server->RunThread(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

bool HttpServer::tls() const { return impl_->tls.has_value(); }

HttpServerCounts HttpServer::counts() const {
  std::lock_guard lock(impl_->connections_mu);
  return HttpServerCounts{impl_->general + impl_->agents, impl_->agents};
}

void HttpServer::Stop(int64_t grace_ms) {
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping.store(true);
  net::post(impl_->acceptor.get_executor(), [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace ocx::api
