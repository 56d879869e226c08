#include "bench/api_workload.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "bench/http_response_reader.h"
#include "nlohmann/json.hpp"
#include "src/base/clock.h"
#include "src/base/thread_name.h"
#include "src/client/exchange_client.h"
#include "src/client/url.h"
#include "src/server/exchange_server.h"

namespace ocx::bench {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kRestingPerConnectionMax = 50;

struct Shared {
  Clock::time_point measure_from;
  Clock::time_point stop_at;
  std::atomic<bool> failed{false};
};

// Seconds each thread of this process has run so far, summed by thread name (the kernel's
// per-thread run time, /proc/self/task/*/schedstat, in nanoseconds).
std::map<std::string, double> ThreadCpuSecondsByName() {
  std::map<std::string, double> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::ifstream schedstat(task.path() / "schedstat");
    std::string name;
    uint64_t run_nanos = 0;
    if (std::getline(comm, name) && (schedstat >> run_nanos)) out[name] += run_nanos / 1e9;
  }
  return out;
}

// User + system CPU seconds of this process so far (every thread).
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// What every connection records (one thread runs all of them: no locking).
struct Tally {
  uint64_t answered = 0;  // Every answer, warm-up included (for CPU per request).
  uint64_t orders = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::string first_error;  // The body of the first answer that was not a success.
  std::string failure;      // Why the connection failed (the run is void then).
  std::vector<uint32_t> latencies_us;
};

// The order body of the n-th request of a connection.
std::string OrderBody(const std::string& workload, uint64_t n) {
  // Prices 0.0100 .. 0.0199 on the cpu market's 0.0001 tick; no sells, so nothing trades.
  const int ticks = 100 + static_cast<int>(n % 100);
  char price[16];
  std::snprintf(price, sizeof price, "0.%04d", ticks);
  return std::string(R"({"market":"cpu","side":"buy","price":")") + price +
         R"(","quantity":1,"tif":")" + (workload == "ioc" ? "ioc" : "gtc") + R"("})";
}

// The HTTP side of the generator: plain sockets and epoll on this one thread, one request in
// flight per keep-alive connection. Not Beast: every microsecond the generator spends is
// taken from the exchange it measures (they share the two cores), and Asio's reads cost a
// failed speculative recv plus its scheduler's bookkeeping per response.
class EpollHttpLoad {
 public:
  EpollHttpLoad(const ApiBenchOptions& options, Shared* shared, std::vector<Tally>* tallies)
      : options_(options), shared_(shared), tallies_(tallies) {}
  ~EpollHttpLoad() {
    for (Connection& c : connections_) {
      if (c.fd >= 0) ::close(c.fd);
    }
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  // Connects every connection (blocking, before the clock matters), then drives them until
  // the measured window ends and every request in flight is answered.
  absl::Status Run(const std::string& host, uint16_t port, const std::vector<std::string>& tokens) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return absl::InternalError(std::string("epoll_create1: ") + strerror(errno));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
        rc != 0) {
      return absl::UnavailableError("cannot resolve " + host + ": " + gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
    const std::string host_header = host + ":" + std::to_string(port);
    connections_.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      Connection& c = connections_[i];
      c.tally = &(*tallies_)[i];
      c.fd = ::socket(addresses->ai_family, addresses->ai_socktype | SOCK_CLOEXEC,
                      addresses->ai_protocol);
      if (c.fd < 0 || ::connect(c.fd, addresses->ai_addr, addresses->ai_addrlen) != 0) {
        return absl::UnavailableError("connect to " + host_header + ": " + strerror(errno));
      }
      const int one = 1;
      ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(c.fd, F_SETFL, ::fcntl(c.fd, F_GETFL) | O_NONBLOCK);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = i;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &event) != 0) {
        return absl::InternalError(std::string("epoll_ctl: ") + strerror(errno));
      }
      c.common_headers = "Host: " + host_header + "\r\nAuthorization: Bearer " + tokens[i] + "\r\n";
    }
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (!SendNext(i)) return Failed();
    }
    std::vector<epoll_event> events(connections_.size());
    char chunk[64 * 1024];
    while (in_flight_ > 0) {
      const int ready = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                     /*timeout_ms=*/10'000);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return absl::InternalError(std::string("epoll_wait: ") + strerror(errno));
      }
      if (ready == 0) return absl::DeadlineExceededError("no answer from the exchange in 10 s");
      for (int e = 0; e < ready; ++e) {
        const size_t i = events[e].data.u64;
        Connection& c = connections_[i];
        if (events[e].events & EPOLLOUT) {
          if (!Flush(i)) return Failed();
        }
        if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
        const ssize_t got = ::recv(c.fd, chunk, sizeof chunk, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got <= 0) {
          Fail(got == 0 ? "read: the exchange closed the connection"
                        : std::string("read: ") + strerror(errno));
          return Failed();
        }
        HttpResponseReader::State state = c.reader.Append(chunk, static_cast<size_t>(got));
        while (state == HttpResponseReader::State::kComplete) {
          if (!OnResponse(i)) return Failed();
          state = c.reader.Parse();
        }
        if (state == HttpResponseReader::State::kError) {
          Fail("read: " + c.reader.error());
          return Failed();
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  struct Connection {
    int fd = -1;
    Tally* tally = nullptr;
    std::string common_headers;  // Host and Authorization, each ending in CRLF.
    std::string request;         // What is being sent; request_sent bytes of it are out.
    size_t request_sent = 0;
    bool waiting = false;     // A request is in flight.
    bool cancelling = false;  // It is a cancel (rest workload).
    uint64_t sent = 0;
    Clock::time_point started;
    std::deque<int64_t> resting;
    bool watching_writable = false;  // EPOLLOUT is in the connection's epoll events.
    HttpResponseReader reader;
  };

  // Writes the connection's next request, unless the window is over.
  bool SendNext(size_t i) {
    Connection& c = connections_[i];
    const auto now = Clock::now();
    if (now >= shared_->stop_at) return true;
    c.cancelling = options_.workload == "rest" && c.resting.size() > kRestingPerConnectionMax;
    c.request.clear();
    if (c.cancelling) {
      c.request += "DELETE /v1/orders/";
      c.request += std::to_string(c.resting.front());
      c.request += " HTTP/1.1\r\n";
      c.resting.pop_front();
      c.request += c.common_headers;
      c.request += "\r\n";
    } else {
      const std::string body = OrderBody(options_.workload, c.sent++);
      c.request += "POST /v1/orders HTTP/1.1\r\n";
      c.request += c.common_headers;
      c.request += "Content-Type: application/json\r\nContent-Length: ";
      c.request += std::to_string(body.size());
      c.request += "\r\n\r\n";
      c.request += body;
    }
    c.request_sent = 0;
    c.started = now;
    c.waiting = true;
    ++in_flight_;
    return Flush(i);
  }

  // Sends what is left of the request; waits for EPOLLOUT when the socket is full.
  bool Flush(size_t i) {
    Connection& c = connections_[i];
    while (c.request_sent < c.request.size()) {
      const ssize_t n = ::send(c.fd, c.request.data() + c.request_sent,
                               c.request.size() - c.request_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return WatchWritable(i, true);
      if (n < 0) {
        Fail(std::string("write: ") + strerror(errno));
        return false;
      }
      c.request_sent += static_cast<size_t>(n);
    }
    return WatchWritable(i, false);
  }

  bool WatchWritable(size_t i, bool on) {
    Connection& c = connections_[i];
    if (c.watching_writable == on) return true;
    epoll_event event{};
    event.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    event.data.u64 = i;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &event) != 0) {
      Fail(std::string("epoll_ctl: ") + strerror(errno));
      return false;
    }
    c.watching_writable = on;
    return true;
  }

  bool OnResponse(size_t i) {
    Connection& c = connections_[i];
    const auto done = Clock::now();
    if (!c.waiting) {
      Fail("read: an answer to no request");
      return false;
    }
    c.waiting = false;
    --in_flight_;
    const int status = c.reader.status();
    const bool ok = status / 100 == 2;
    Tally& tally = *c.tally;
    ++tally.answered;
    if (ok && !c.cancelling && options_.workload == "rest") {
      const Json body = Json::parse(c.reader.body(), nullptr, false);
      if (!body.is_discarded()) c.resting.push_back(body["order"]["id"].get<int64_t>());
    }
    if (c.started >= shared_->measure_from) {
      ++tally.requests;
      if (ok && !c.cancelling) ++tally.orders;
      if (!ok) {
        ++tally.errors;
        if (tally.first_error.empty()) tally.first_error = std::string(c.reader.body());
      }
      tally.latencies_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(done - c.started).count()));
    }
    const bool closes = c.reader.closes();
    c.reader.Consume();
    if (closes) {
      Fail("read: the exchange closed the keep-alive connection (status " + std::to_string(status) +
           ")");
      return false;
    }
    return SendNext(i);
  }

  void Fail(const std::string& why) {
    if (first_error_.empty()) first_error_ = why;
    shared_->failed.store(true);
  }
  absl::Status Failed() const { return absl::UnavailableError(first_error_); }

  const ApiBenchOptions& options_;
  Shared* shared_;
  std::vector<Tally>* tallies_;
  std::vector<Connection> connections_;
  int epoll_fd_ = -1;
  size_t in_flight_ = 0;
  std::string first_error_;
};

class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  WsConnection(net::io_context& ioc, const ApiBenchOptions& options, Shared* shared, Tally* tally,
               std::string host, std::string token)
      : ws_(ioc), options_(options), shared_(shared), tally_(tally), host_(std::move(host)),
        token_(std::move(token)) {}

  void Start(const tcp::resolver::results_type& endpoints) {
    beast::get_lowest_layer(ws_).async_connect(
        endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->Fail("connect: " + ec.message());
          beast::error_code ignored;
          beast::get_lowest_layer(self->ws_).socket().set_option(tcp::no_delay(true), ignored);
          self->ws_.set_option(websocket::stream_base::decorator(
              [token = self->token_](websocket::request_type& request) {
                request.set(http::field::authorization, "Bearer " + token);
              }));
          self->ws_.async_handshake(self->host_, "/v1/stream", [self](beast::error_code ec) {
            if (ec) return self->Fail("handshake: " + ec.message());
            self->ws_.text(true);
            self->Next();
          });
        });
  }

 private:
  void Next() {
    const auto now = Clock::now();
    if (now >= shared_->stop_at) {
      ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {});
      return;
    }
    cancelling_ = options_.workload == "rest" && resting_.size() > kRestingPerConnectionMax;
    if (cancelling_) {
      message_ = R"({"op":"cancel_order","id":)" + std::to_string(sent_) + R"(,"order":)" +
                 std::to_string(resting_.front()) + "}";
      resting_.pop_front();
    } else {
      message_ = R"({"op":"place_order","id":)" + std::to_string(sent_) + R"(,"order":)" +
                 OrderBody(options_.workload, sent_) + "}";
    }
    ++sent_;
    started_ = now;
    ws_.async_write(net::buffer(message_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail("write: " + ec.message());
      self->Read();
    });
  }

  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail("read: " + ec.message());
      self->OnMessage();
    });
  }

  void OnMessage() {
    const auto done = Clock::now();
    const std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    const Json message = Json::parse(text, nullptr, false);
    const std::string type = message.is_discarded() ? "" : message.value("type", "");
    const bool ok = type == "order_placed" || type == "order_cancelled";
    ++tally_->answered;
    if (ok && type == "order_placed" && options_.workload == "rest") {
      resting_.push_back(message["order"]["id"].get<int64_t>());
    }
    if (started_ >= shared_->measure_from) {
      ++tally_->requests;
      if (type == "order_placed") ++tally_->orders;
      if (!ok) {
        ++tally_->errors;
        if (tally_->first_error.empty()) tally_->first_error = text;
      }
      tally_->latencies_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(done - started_).count()));
    }
    Next();
  }

  void Fail(const std::string& why) {
    if (tally_->failure.empty()) tally_->failure = why;
    shared_->failed.store(true);
  }

  websocket::stream<beast::tcp_stream> ws_;
  const ApiBenchOptions& options_;
  Shared* shared_;
  Tally* tally_;
  std::string host_;
  std::string token_;
  std::string message_;
  beast::flat_buffer buffer_;
  Clock::time_point started_;
  uint64_t sent_ = 0;
  bool cancelling_ = false;
  std::deque<int64_t> resting_;
};

// Drives the WebSocket connections on one Asio thread until the window ends.
absl::Status RunWebSocketLoad(const ApiBenchOptions& options, const std::string& host,
                              uint16_t port, const std::vector<std::string>& tokens, Shared* shared,
                              std::vector<Tally>* tallies) {
  net::io_context ioc(1);
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return absl::UnavailableError("cannot resolve " + host + ": " + ec.message());
  const std::string host_header = host + ":" + std::to_string(port);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::make_shared<WsConnection>(ioc, options, shared, &(*tallies)[i], host_header, tokens[i])
        ->Start(endpoints);
  }
  ioc.run();
  if (!shared->failed.load()) return absl::OkStatus();
  for (const Tally& tally : *tallies) {
    if (!tally.failure.empty()) return absl::UnavailableError(tally.failure);
  }
  return absl::UnavailableError("a WebSocket connection failed");
}

// Creates and funds one consumer per connection through the API.
absl::StatusOr<std::vector<std::string>> MakeAccounts(const std::string& url,
                                                      const std::string& operator_token,
                                                      int count) {
  client::HttpClientOptions client_options;
  client_options.bearer_token = operator_token;
  auto exchange = client::ExchangeClient::Connect(url, client_options);
  if (!exchange.ok()) return exchange.status();
  const std::string prefix = "bench-" + std::to_string(::getpid()) + "-" +
                             std::to_string(Clock::now().time_since_epoch().count() % 1000000);
  std::vector<std::string> tokens;
  for (int i = 0; i < count; ++i) {
    const Json account_request{{"name", prefix + "-" + std::to_string(i)}, {"role", "consumer"}};
    auto created = (*exchange)->Call("POST", "/v1/accounts", &account_request, {201});
    if (!created.ok()) return created.status();
    const int64_t id = (*created)["account"]["id"].get<int64_t>();
    const Json deposit{{"amount", "1000000"}};
    auto funded = (*exchange)->Call("POST", "/v1/accounts/" + std::to_string(id) + "/deposits",
                                    &deposit, {201});
    if (!funded.ok()) return funded.status();
    tokens.push_back((*created)["token"].get<std::string>());
  }
  return tokens;
}

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index] / 1000.0;
}

}  // namespace

absl::StatusOr<ApiBenchResult> RunApiBench(const ApiBenchOptions& options) {
  if (options.transport != "http" && options.transport != "ws") {
    return absl::InvalidArgumentError("--transport is http or ws");
  }
  if (options.workload != "ioc" && options.workload != "rest") {
    return absl::InvalidArgumentError("--workload is ioc or rest");
  }
  base::SystemClock clock;
  std::unique_ptr<server::ExchangeServer> server;
  std::string url = options.url;
  std::string operator_token = options.operator_token;
  if (url.empty()) {
    server::ExchangeServerOptions server_options;
    server_options.config.data_dir = options.data_dir;
    server_options.config.port = 0;
    server_options.config.io_threads = options.io_threads;
    server_options.config.log_level = "warn";
    // The benchmark measures the exchange, not its per-account limit.
    server_options.config.rate_per_second = 1e7;
    server_options.config.rate_burst = 1e7;
    server_options.clock = &clock;
    auto started = server::ExchangeServer::Start(server_options);
    if (!started.ok()) return started.status();
    server = std::move(*started);
    url = server->url();
    std::ifstream token_file(server->operator_token_path());
    std::getline(token_file, operator_token);
  }
  auto endpoint = client::ParseUrl(url);
  if (!endpoint.ok()) return endpoint.status();
  if (endpoint->scheme != "http") {
    return absl::InvalidArgumentError("the load generator speaks plain HTTP only");
  }
  auto tokens = MakeAccounts(url, operator_token, options.connections);
  if (!tokens.ok()) return tokens.status();

  // The generator runs on this thread: named, so a profile tells it from the exchange's.
  base::NameThisThread("ocx-generator");
  Shared shared;
  const auto begin = Clock::now();
  shared.measure_from =
      begin + std::chrono::microseconds(static_cast<int64_t>(options.warmup_seconds * 1e6));
  shared.stop_at = shared.measure_from +
                   std::chrono::microseconds(static_cast<int64_t>(options.seconds * 1e6));
  std::vector<Tally> tallies(options.connections);
  const double cpu_before = ProcessCpuSeconds();
  const std::map<std::string, double> threads_before = ThreadCpuSecondsByName();
  absl::Status ran;
  if (options.transport == "http") {
    EpollHttpLoad load(options, &shared, &tallies);
    ran = load.Run(endpoint->host, endpoint->port, *tokens);
  } else {
    ran = RunWebSocketLoad(options, endpoint->host, endpoint->port, *tokens, &shared, &tallies);
  }
  const double cpu_spent = ProcessCpuSeconds() - cpu_before;
  std::map<std::string, double> thread_seconds = ThreadCpuSecondsByName();
  for (const auto& [name, seconds] : threads_before) thread_seconds[name] -= seconds;
  const double measured = std::chrono::duration<double>(
                              std::min(Clock::now(), shared.stop_at) - shared.measure_from)
                              .count();

  ApiBenchResult result;
  std::vector<uint32_t> latencies;
  uint64_t answered = 0;
  for (Tally& t : tallies) {
    answered += t.answered;
    result.orders += t.orders;
    result.requests += t.requests;
    result.errors += t.errors;
    if (result.first_error.empty()) result.first_error = t.first_error;
    latencies.insert(latencies.end(), t.latencies_us.begin(), t.latencies_us.end());
  }
  if (server) {
    const absl::Status stopped = server->Stop();
    if (!stopped.ok()) return stopped;
  }
  if (!ran.ok())
    return absl::UnavailableError("a connection failed: " + std::string(ran.message()));
  std::sort(latencies.begin(), latencies.end());
  result.seconds = measured;
  result.orders_per_second = measured > 0 ? result.orders / measured : 0;
  result.requests_per_second = measured > 0 ? result.requests / measured : 0;
  result.p50_ms = Percentile(latencies, 0.50);
  result.p90_ms = Percentile(latencies, 0.90);
  result.p99_ms = Percentile(latencies, 0.99);
  result.p999_ms = Percentile(latencies, 0.999);
  result.max_ms = latencies.empty() ? 0 : latencies.back() / 1000.0;
  result.cpu_us_per_request = answered > 0 ? cpu_spent * 1e6 / answered : 0;
  for (const auto& [name, seconds] : thread_seconds) {
    if (answered > 0 && seconds > 0) {
      result.cpu_us_per_request_by_thread.emplace_back(name, seconds * 1e6 / answered);
    }
  }
  std::sort(result.cpu_us_per_request_by_thread.begin(), result.cpu_us_per_request_by_thread.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  return result;
}

}  // namespace ocx::bench
