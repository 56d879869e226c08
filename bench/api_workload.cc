#include "bench/api_workload.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "nlohmann/json.hpp"
#include "src/base/clock.h"
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

// What every connection records (one thread runs all of them: no locking).
struct Tally {
  uint64_t orders = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::string first_error;
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

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(net::io_context& ioc, const ApiBenchOptions& options, Shared* shared,
                 Tally* tally, std::string host, std::string token)
      : stream_(ioc), options_(options), shared_(shared), tally_(tally), host_(std::move(host)),
        token_(std::move(token)) {}

  void Start(const tcp::resolver::results_type& endpoints) {
    stream_.async_connect(endpoints, [self = shared_from_this()](beast::error_code ec,
                                                                 const tcp::endpoint&) {
      if (ec) return self->Fail("connect: " + ec.message());
      beast::error_code ignored;
      self->stream_.socket().set_option(tcp::no_delay(true), ignored);
      self->Next();
    });
  }

 private:
  void Next() {
    const auto now = Clock::now();
    if (now >= shared_->stop_at) return;
    // The request is written as bytes, not through Beast's serializer: the generator shares
    // the machine's two cores with the exchange, so what it spends per request is taken
    // from what is measured.
    cancelling_ = options_.workload == "rest" && resting_.size() > kRestingPerConnectionMax;
    request_.clear();
    if (cancelling_) {
      request_ += "DELETE /v1/orders/" + std::to_string(resting_.front()) + " HTTP/1.1\r\n";
      resting_.pop_front();
      request_ += common_headers_;
      request_ += "\r\n";
    } else {
      const std::string body = OrderBody(options_.workload, sent_++);
      request_ += "POST /v1/orders HTTP/1.1\r\n";
      request_ += common_headers_;
      request_ += "Content-Type: application/json\r\nContent-Length: ";
      request_ += std::to_string(body.size());
      request_ += "\r\n\r\n";
      request_ += body;
    }
    started_ = now;
    net::async_write(stream_, net::buffer(request_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Fail("write: " + ec.message());
                       self->response_ = {};
                       http::async_read(self->stream_, self->buffer_, self->response_,
                                        [self](beast::error_code ec, size_t) {
                                          if (ec) return self->Fail("read: " + ec.message());
                                          self->OnResponse();
                                        });
                     });
  }

  void OnResponse() {
    const auto done = Clock::now();
    const bool ok = response_.result_int() / 100 == 2;
    if (ok && !cancelling_ && options_.workload == "rest") {
      const Json body = Json::parse(response_.body(), nullptr, false);
      if (!body.is_discarded()) resting_.push_back(body["order"]["id"].get<int64_t>());
    }
    if (started_ >= shared_->measure_from) {
      ++tally_->requests;
      if (ok && !cancelling_) ++tally_->orders;
      if (!ok) {
        ++tally_->errors;
        if (tally_->first_error.empty()) tally_->first_error = response_.body();
      }
      tally_->latencies_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(done - started_).count()));
    }
    Next();
  }

  void Fail(const std::string& why) {
    if (tally_->first_error.empty()) tally_->first_error = why;
    shared_->failed.store(true);
  }

  beast::tcp_stream stream_;
  const ApiBenchOptions& options_;
  Shared* shared_;
  Tally* tally_;
  std::string host_;
  std::string token_;
  // Host and Authorization, each ending in CRLF: the same on every request.
  const std::string common_headers_ =
      "Host: " + host_ + "\r\nAuthorization: Bearer " + token_ + "\r\n";
  std::string request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  Clock::time_point started_;
  uint64_t sent_ = 0;
  bool cancelling_ = false;
  std::deque<int64_t> resting_;
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
    if (tally_->first_error.empty()) tally_->first_error = why;
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

  net::io_context ioc(1);
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(endpoint->host, std::to_string(endpoint->port), ec);
  if (ec) return absl::UnavailableError("cannot resolve " + endpoint->host + ": " + ec.message());
  Shared shared;
  const auto begin = Clock::now();
  shared.measure_from =
      begin + std::chrono::microseconds(static_cast<int64_t>(options.warmup_seconds * 1e6));
  shared.stop_at = shared.measure_from +
                   std::chrono::microseconds(static_cast<int64_t>(options.seconds * 1e6));
  std::vector<Tally> tallies(options.connections);
  const std::string host = endpoint->host + ":" + std::to_string(endpoint->port);
  for (int i = 0; i < options.connections; ++i) {
    if (options.transport == "http") {
      std::make_shared<HttpConnection>(ioc, options, &shared, &tallies[i], host, (*tokens)[i])
          ->Start(endpoints);
    } else {
      std::make_shared<WsConnection>(ioc, options, &shared, &tallies[i], host, (*tokens)[i])
          ->Start(endpoints);
    }
  }
  ioc.run();
  const double measured = std::chrono::duration<double>(
                              std::min(Clock::now(), shared.stop_at) - shared.measure_from)
                              .count();

  ApiBenchResult result;
  std::vector<uint32_t> latencies;
  for (Tally& t : tallies) {
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
  if (shared.failed.load()) {
    return absl::UnavailableError("a connection failed: " + result.first_error);
  }
  std::sort(latencies.begin(), latencies.end());
  result.seconds = measured;
  result.orders_per_second = measured > 0 ? result.orders / measured : 0;
  result.requests_per_second = measured > 0 ? result.requests / measured : 0;
  result.p50_ms = Percentile(latencies, 0.50);
  result.p90_ms = Percentile(latencies, 0.90);
  result.p99_ms = Percentile(latencies, 0.99);
  result.p999_ms = Percentile(latencies, 0.999);
  result.max_ms = latencies.empty() ? 0 : latencies.back() / 1000.0;
  return result;
}

}  // namespace ocx::bench
