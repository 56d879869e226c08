// The life of orders over HTTP against a real exchange: resting, crossing, leases, cancel,
// replace, release, the ledger and statements, and idempotent retries (docs/api.md).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bench/http_response_reader.h"
#include "gtest/gtest.h"
#include "tests/integration/api_test_util.h"

namespace ocx::api_test {
namespace {

// Buy 4 slots at 0.05 for 1 hour: 0.2 credits plus the 20 bps taker fee.
constexpr int64_t kCostMicros = 200'000;
constexpr int64_t kTakerFeeMicros = 400;
constexpr int64_t kDepositMicros = 100'000'000;

int64_t TakerFee(int64_t amount_micros) { return amount_micros * 20 / 10'000; }

class ApiOrderLifeTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
    consumer_ = ClientFor(market_.consumer);
    provider_ = ClientFor(market_.provider);
  }

  // The provider's ask of 4 slots at 0.05; returns its order id.
  uint64_t PlaceAsk(std::string_view price = "0.05", int64_t quantity = 4) {
    Json placed = provider_->Expect(201, "POST", "/v1/orders",
                                    SellOrder(price, quantity, market_.machine.id));
    return placed["order"]["id"].get<uint64_t>();
  }

  Market market_;
  std::unique_ptr<ApiClient> consumer_;
  std::unique_ptr<ApiClient> provider_;
};

TEST_F(ApiOrderLifeTest, SellRestsAndShowsInTheBook) {
  Json placed =
      provider_->Expect(201, "POST", "/v1/orders", SellOrder("0.05", 4, market_.machine.id));
  EXPECT_EQ(placed["order"]["status"], "open");
  EXPECT_EQ(placed["order"]["remaining"], 4);
  EXPECT_EQ(placed["order"]["filled"], 0);
  EXPECT_EQ(placed["order"]["side"], "sell");
  EXPECT_EQ(placed["order"]["price"], "0.05");
  EXPECT_EQ(placed["order"]["account"], market_.provider.id);
  EXPECT_TRUE(placed["fills"].empty());

  Json book = consumer_->Expect(200, "GET", "/v1/markets/cpu/book");
  EXPECT_EQ(book["market"], "cpu");
  EXPECT_EQ(book["asks"], Json::parse(R"([["0.05",4]])")) << book.dump();
  EXPECT_EQ(book["bids"], Json::array());
  Json markets = consumer_->Expect(200, "GET", "/v1/markets");
  ASSERT_FALSE(markets["items"].empty());
  EXPECT_EQ(markets["items"][0]["name"], "cpu");
  EXPECT_EQ(markets["items"][0]["best_ask"], "0.05");
  EXPECT_TRUE(markets["items"][0]["best_bid"].is_null());
  // The machine now offers 4 of its 16 slots.
  Json machine =
      consumer_->Expect(200, "GET", "/v1/machines/" + std::to_string(market_.machine.id));
  EXPECT_EQ(machine["machine"]["offered"]["cpu"], 4) << machine.dump();
  EXPECT_EQ(machine["machine"]["capacity"]["cpu"], 16);
}

TEST_F(ApiOrderLifeTest, CrossingBuyFillsAndStartsALease) {
  const uint64_t ask = PlaceAsk();
  Reply reply = consumer_->Call("POST", "/v1/orders", BuyOrder("0.05", 4));
  ASSERT_EQ(reply.status, 201) << reply;
  Json& order = reply.body["order"];
  EXPECT_EQ(order["status"], "filled");
  EXPECT_EQ(order["filled"], 4);
  EXPECT_EQ(order["remaining"], 0);
  ASSERT_EQ(reply.body["fills"].size(), 1u) << reply;
  Json& fill = reply.body["fills"][0];
  EXPECT_EQ(fill["maker_order"], ask);
  EXPECT_EQ(fill["price"], "0.05");
  EXPECT_EQ(fill["quantity"], 4);
  const uint64_t lease = fill["lease"].get<uint64_t>();
  EXPECT_GT(lease, 0u);
  const uint64_t buy = order["id"].get<uint64_t>();

  // The trade, in the market's trade list.
  Json trades = consumer_->Expect(200, "GET", "/v1/markets/cpu/trades");
  ASSERT_EQ(trades["items"].size(), 1u) << trades.dump();
  Json& trade = trades["items"][0];
  EXPECT_EQ(trade["price"], "0.05");
  EXPECT_EQ(trade["quantity"], 4);
  EXPECT_EQ(trade["taker_side"], "buy");
  EXPECT_EQ(trade["taker_order"], buy);
  EXPECT_EQ(trade["maker_order"], ask);
  EXPECT_EQ(trade["buyer"], market_.consumer.id);
  EXPECT_EQ(trade["seller"], market_.provider.id);
  EXPECT_EQ(trade["lease"], lease);
  EXPECT_TRUE(trades["next_after"].is_null());

  // Both orders, as their owners see them.
  Json mine = consumer_->Expect(200, "GET", "/v1/orders/" + std::to_string(buy));
  EXPECT_EQ(mine["order"]["status"], "filled");
  EXPECT_EQ(mine["order"]["filled"], 4);
  Json theirs = provider_->Expect(200, "GET", "/v1/orders/" + std::to_string(ask));
  EXPECT_EQ(theirs["order"]["status"], "filled");
  Json list = consumer_->Expect(200, "GET", "/v1/orders");
  ASSERT_EQ(list["items"].size(), 1u) << list.dump();
  EXPECT_EQ(list["items"][0]["id"], buy);
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders?status=filled")["items"].size(), 1u);
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders?status=open")["items"].size(), 0u);

  // The lease, for buyer and seller.
  for (ApiClient* client : {consumer_.get(), provider_.get()}) {
    Json got = client->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
    EXPECT_EQ(got["lease"]["status"], "active");
    EXPECT_EQ(got["lease"]["buyer"], market_.consumer.id);
    EXPECT_EQ(got["lease"]["seller"], market_.provider.id);
    EXPECT_EQ(got["lease"]["machine"], market_.machine.id);
    EXPECT_EQ(got["lease"]["slots"], 4);
    EXPECT_EQ(got["lease"]["price"], "0.05");
    EXPECT_EQ(got["lease"]["buy_order"], buy);
    EXPECT_EQ(got["lease"]["sell_order"], ask);
    EXPECT_EQ(Micros(got["lease"]["escrow"]), kCostMicros + kTakerFeeMicros);
  }
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/leases")["items"].size(), 1u);

  // The buyer's money moved from available into escrow: cost plus the taker fee.
  const Balances b = GetBalances(*consumer_, market_.consumer.id);
  EXPECT_EQ(b.escrow, kCostMicros + kTakerFeeMicros);
  EXPECT_EQ(b.held, 0);
  EXPECT_EQ(b.available, kDepositMicros - kCostMicros - kTakerFeeMicros);
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros));
}

TEST_F(ApiOrderLifeTest, RestingBuyHoldsItsCostAndCancelReleasesIt) {
  Json placed = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 3, 2));
  const uint64_t id = placed["order"]["id"].get<uint64_t>();
  EXPECT_EQ(placed["order"]["status"], "open");
  // 0.04 * 3 slots * 2 hours = 0.24, plus 20 bps.
  const int64_t hold = 240'000 + TakerFee(240'000);
  Balances b = GetBalances(*consumer_, market_.consumer.id);
  EXPECT_EQ(b.held, hold);
  EXPECT_EQ(b.available, kDepositMicros - hold);
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/markets/cpu/book")["bids"],
            Json::parse(R"([["0.04",3]])"));

  Json cancelled = consumer_->Expect(200, "DELETE", "/v1/orders/" + std::to_string(id));
  EXPECT_EQ(cancelled["status"], "cancelled");
  EXPECT_EQ(cancelled["cancelled_quantity"], 3);
  Json got = consumer_->Expect(200, "GET", "/v1/orders/" + std::to_string(id));
  EXPECT_EQ(got["order"]["status"], "cancelled");
  EXPECT_EQ(got["order"]["remaining"], 0);
  b = GetBalances(*consumer_, market_.consumer.id);
  EXPECT_EQ(b.held, 0);
  EXPECT_EQ(b.available, kDepositMicros);
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/markets/cpu/book")["bids"], Json::array());
  // A second cancel finds nothing to cancel.
  Reply again = consumer_->Call("DELETE", "/v1/orders/" + std::to_string(id));
  EXPECT_EQ(again.status, 404) << again;
  EXPECT_EQ(again.ErrorCode(), "unknown_order");
}

TEST_F(ApiOrderLifeTest, ReplaceChangesPriceAndQuantityAndTheHold) {
  Json placed = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.04", 3));
  const uint64_t id = placed["order"]["id"].get<uint64_t>();
  Json replaced = consumer_->Expect(200, "PATCH", "/v1/orders/" + std::to_string(id),
                                    Json{{"price", "0.03"}, {"quantity", 5}});
  EXPECT_EQ(replaced["status"], "replaced") << replaced.dump();
  EXPECT_EQ(replaced["price"], "0.03");
  EXPECT_EQ(replaced["remaining"], 5);
  Json got = consumer_->Expect(200, "GET", "/v1/orders/" + std::to_string(id));
  EXPECT_EQ(got["order"]["price"], "0.03");
  EXPECT_EQ(got["order"]["remaining"], 5);
  EXPECT_EQ(got["order"]["status"], "open");
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/markets/cpu/book")["bids"],
            Json::parse(R"([["0.03",5]])"));
  // The hold follows: 0.03 * 5 * 1 hour plus 20 bps.
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).held, 150'000 + TakerFee(150'000));

  // Quantity alone.
  Json smaller =
      consumer_->Expect(200, "PATCH", "/v1/orders/" + std::to_string(id), Json{{"quantity", 2}});
  EXPECT_EQ(smaller["remaining"], 2);
  EXPECT_EQ(smaller["price"], "0.03");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).held, 60'000 + TakerFee(60'000));
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros));
}

TEST_F(ApiOrderLifeTest, ReleaseEndsTheLeaseAndRefundsTheUnusedEscrow) {
  PlaceAsk();
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 4));
  const uint64_t lease = bought["fills"][0]["lease"].get<uint64_t>();
  Json released =
      consumer_->Expect(200, "POST", "/v1/leases/" + std::to_string(lease) + "/release");
  EXPECT_EQ(released["status"], "ended") << released.dump();
  EXPECT_EQ(released["reason"], "released");
  // Billing stops at the release: the seconds elapsed (here 0 or a few) at 0.2 credits/hour.
  const int64_t billed = Micros(released["billed_total"]);
  const int64_t refunded = Micros(released["refunded"]);
  const int64_t seconds = released["billed_seconds"].get<int64_t>();
  EXPECT_EQ(billed, kCostMicros * seconds / 3600);
  EXPECT_EQ(refunded, kCostMicros + kTakerFeeMicros - billed - TakerFee(billed));

  Json got = consumer_->Expect(200, "GET", "/v1/leases/" + std::to_string(lease));
  EXPECT_EQ(got["lease"]["status"], "ended");
  EXPECT_EQ(got["lease"]["end_reason"], "released");
  EXPECT_EQ(Micros(got["lease"]["refunded"]), refunded);
  const Balances consumer = GetBalances(*consumer_, market_.consumer.id);
  EXPECT_EQ(consumer.escrow, 0);
  EXPECT_EQ(consumer.held, 0);
  EXPECT_EQ(consumer.available, kDepositMicros - billed - TakerFee(billed));
  // The seller is the maker (0 bps): it earns the whole bill.
  EXPECT_EQ(GetBalances(*provider_, market_.provider.id).earnings, billed);
  // The slots are free again.
  Json machine =
      consumer_->Expect(200, "GET", "/v1/machines/" + std::to_string(market_.machine.id));
  EXPECT_EQ(machine["machine"]["leased"]["cpu"], 0) << machine.dump();
  // A lease ends once.
  Reply again = consumer_->Call("POST", "/v1/leases/" + std::to_string(lease) + "/release");
  EXPECT_EQ(again.status, 404) << again;
  EXPECT_EQ(again.ErrorCode(), "unknown_lease");
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros));
}

TEST_F(ApiOrderLifeTest, LedgerAndStatementAccountForEveryMovement) {
  PlaceAsk();
  Json bought = consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 4));
  const uint64_t buy = bought["order"]["id"].get<uint64_t>();
  const uint64_t lease = bought["fills"][0]["lease"].get<uint64_t>();

  // deposit, hold (buy), escrow (lease) for the consumer; the hold is used up exactly.
  const std::vector<Json> entries =
      ListAll(*consumer_, "/v1/accounts/" + std::to_string(market_.consumer.id) + "/ledger");
  ASSERT_EQ(entries.size(), 3u) << Json(entries).dump();
  EXPECT_EQ(entries[0]["kind"], "deposit");
  EXPECT_EQ(entries[0]["amount"], "100");
  EXPECT_EQ(entries[0]["from"], Json::parse(R"({"account":0,"balance":"external"})"));
  EXPECT_EQ(entries[0]["to"]["account"], market_.consumer.id);
  EXPECT_EQ(entries[0]["to"]["balance"], "available");
  EXPECT_EQ(entries[1]["kind"], "hold");
  EXPECT_EQ(entries[1]["reference"], buy);
  EXPECT_EQ(Micros(entries[1]["amount"]), kCostMicros + kTakerFeeMicros);
  EXPECT_EQ(entries[2]["kind"], "escrow");
  EXPECT_EQ(entries[2]["reference"], lease);
  EXPECT_EQ(entries[2]["from"]["balance"], "held");
  EXPECT_EQ(entries[2]["to"]["balance"], "escrow");
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_LT(entries[i - 1]["entry"].get<uint64_t>(), entries[i]["entry"].get<uint64_t>());
  }
  // Pagination walks the same entries one at a time.
  EXPECT_EQ(
      ListAll(*consumer_, "/v1/accounts/" + std::to_string(market_.consumer.id) + "/ledger", 1),
      entries);

  // The statement over all time: opening 0, closing = the balances now.
  Json statement = consumer_->Expect(
      200, "GET", "/v1/accounts/" + std::to_string(market_.consumer.id) + "/statement");
  EXPECT_EQ(statement["account"], market_.consumer.id);
  EXPECT_EQ(statement["entries"].size(), 3u) << statement.dump();
  EXPECT_EQ(statement["truncated"], false);
  const Balances now = GetBalances(*consumer_, market_.consumer.id);
  std::map<std::string, std::pair<int64_t, int64_t>> lines;
  for (Json line : statement["balances"]) {
    lines[line["balance"].get<std::string>()] = {Micros(line["opening"]), Micros(line["closing"])};
  }
  EXPECT_EQ(lines["available"], std::make_pair(int64_t{0}, now.available)) << statement.dump();
  EXPECT_EQ(lines["escrow"], std::make_pair(int64_t{0}, now.escrow));
  EXPECT_EQ(lines["held"].second, 0);
  // A statement of a window before anything happened has no entries.
  Json empty = consumer_->Expect(
      200, "GET", "/v1/accounts/" + std::to_string(market_.consumer.id) + "/statement?from=0&to=1");
  EXPECT_TRUE(empty["entries"].empty()) << empty.dump();

  // After the lease is released, deposits are conserved across every account plus fees.
  consumer_->Expect(200, "POST", "/v1/leases/" + std::to_string(lease) + "/release");
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros));
}

TEST_F(ApiOrderLifeTest, WithdrawalsLeaveTheExchangeThroughTheLedger) {
  Json withdrawn = op_->Expect(
      201, "POST", "/v1/accounts/" + std::to_string(market_.consumer.id) + "/withdrawals",
      Json{{"amount", "30.5"}});
  EXPECT_EQ(withdrawn["amount"], "30.5");
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).available, 69'500'000);
  Reply too_much =
      op_->Call("POST", "/v1/accounts/" + std::to_string(market_.consumer.id) + "/withdrawals",
                Json{{"amount", "70"}});
  EXPECT_EQ(too_much.status, 422) << too_much;
  EXPECT_EQ(too_much.ErrorCode(), "insufficient_funds");
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros - 30'500'000));
}

TEST_F(ApiOrderLifeTest, LedgerCheckNoticesAWrongTotal) {
  PlaceAsk();
  consumer_->Expect(201, "POST", "/v1/orders", BuyOrder("0.05", 2));
  EXPECT_TRUE(LedgerIsBalanced(*op_, kDepositMicros));
  EXPECT_FALSE(LedgerIsBalanced(*op_, kDepositMicros + 1));
  EXPECT_FALSE(LedgerIsBalanced(*op_, kDepositMicros - 1));
}

// ---------------------------------------------------------------- idempotency

class ApiIdempotencyTest : public ApiOrderLifeTest {};

TEST_F(ApiIdempotencyTest, RetryWithTheSameKeyReplaysTheOrder) {
  const Headers key = {{"Idempotency-Key", "job-7"}};
  Reply first = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_EQ(first.body["order"]["client_order_id"], "job-7");
  Reply second = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(second.status, 200) << second;
  EXPECT_EQ(second.body["idempotent_replay"], true);
  EXPECT_EQ(second.body["order"]["id"], first.body["order"]["id"]);
  EXPECT_EQ(second.body["order"]["status"], "open");
  EXPECT_EQ(second.body["order"]["client_order_id"], "job-7");

  // One order, held once.
  Json list = consumer_->Expect(200, "GET", "/v1/orders");
  ASSERT_EQ(list["items"].size(), 1u) << list.dump();
  EXPECT_EQ(list["items"][0]["id"], first.body["order"]["id"]);
  EXPECT_EQ(GetBalances(*consumer_, market_.consumer.id).held, 120'000 + TakerFee(120'000));
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/markets/cpu/book")["bids"],
            Json::parse(R"([["0.04",3]])"));
}

TEST_F(ApiIdempotencyTest, ReplayShowsTheOrderAsItIsNow) {
  const Headers key = {{"Idempotency-Key", "k-now"}};
  Reply first = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(first.status, 201) << first;
  consumer_->Expect(200, "DELETE",
                    "/v1/orders/" + std::to_string(first.body["order"]["id"].get<uint64_t>()));
  Reply replay = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(replay.status, 200) << replay;
  EXPECT_EQ(replay.body["order"]["status"], "cancelled");
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders")["items"].size(), 1u);
}

TEST_F(ApiIdempotencyTest, SameKeyWithADifferentQuantityIsRefused) {
  const Headers key = {{"Idempotency-Key", "k-qty"}};
  ASSERT_EQ(consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key).status, 201);
  Reply reused = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 5), key);
  EXPECT_EQ(reused.status, 409) << reused;
  EXPECT_EQ(reused.ErrorCode(), "idempotency_key_reused");
  EXPECT_TRUE(reused.IsErrorBody()) << reused;
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders")["items"].size(), 1u);
}

TEST_F(ApiIdempotencyTest, SameKeyWithADifferentPriceIsRefused) {
  // docs/api.md: "the same key with a different order body is 409 idempotency_key_reused".
  const Headers key = {{"Idempotency-Key", "k-price"}};
  ASSERT_EQ(consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key).status, 201);
  Reply reused = consumer_->Call("POST", "/v1/orders", BuyOrder("0.03", 3), key);
  EXPECT_EQ(reused.status, 409) << reused;
  EXPECT_EQ(reused.ErrorCode(), "idempotency_key_reused");
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders")["items"].size(), 1u);
}

TEST_F(ApiIdempotencyTest, SameKeyOnAnotherAccountPlacesItsOwnOrder) {
  const Headers key = {{"Idempotency-Key", "shared-key"}};
  Reply mine = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(mine.status, 201) << mine;
  const AccountHandle other = CreateAccount(*op_, "consumer", "other");
  Deposit(*op_, other.id, "10");
  Reply theirs = ClientFor(other)->Call("POST", "/v1/orders", BuyOrder("0.04", 3), key);
  ASSERT_EQ(theirs.status, 201) << theirs;
  EXPECT_NE(theirs.body["order"]["id"], mine.body["order"]["id"]);
}

TEST_F(ApiIdempotencyTest, WithoutAKeyEveryPostIsANewOrder) {
  Reply first = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 1));
  Reply second = consumer_->Call("POST", "/v1/orders", BuyOrder("0.04", 1));
  ASSERT_EQ(first.status, 201) << first;
  ASSERT_EQ(second.status, 201) << second;
  EXPECT_NE(first.body["order"]["id"], second.body["order"]["id"]);
  EXPECT_EQ(consumer_->Expect(200, "GET", "/v1/orders")["items"].size(), 2u);
}

// ---- How requests arrive on the wire: a body after its header, requests back to back.

// A plain TCP connection to the exchange, for requests written byte by byte as a test needs.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // True when some answer arrives within `wait_ms`.
  bool Readable(int wait_ms) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, wait_ms) > 0;
  }
  // The next `count` responses as (status, body); fewer when the connection ends or 10 s pass.
  std::vector<std::pair<int, std::string>> Read(size_t count) {
    std::vector<std::pair<int, std::string>> out;
    const int64_t deadline = NowMs() + 10'000;
    auto state = reader_.Parse();
    while (out.size() < count) {
      if (state == bench::HttpResponseReader::State::kComplete) {
        out.emplace_back(reader_.status(), std::string(reader_.body()));
        reader_.Consume();
        state = reader_.Parse();
        continue;
      }
      if (state == bench::HttpResponseReader::State::kError || NowMs() > deadline) break;
      if (!Readable(static_cast<int>(deadline - NowMs()))) continue;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      state = reader_.Append(chunk, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bench::HttpResponseReader reader_;
};

class ApiFramingTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    if (HasFatalFailure()) return;
    market_ = MakeMarket("100");
  }
  std::string OrderRequest(const std::string& body) const {
    return "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           market_.consumer.token +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }
  Market market_;
};

TEST_F(ApiFramingTest, BodyArrivingAfterItsHeaderIsReadWhole) {
  RawConnection connection(server_->port());
  ASSERT_TRUE(connection.connected());
  const std::string request = OrderRequest(BuyOrder("0.04", 2).dump());
  const size_t body_start = request.find("\r\n\r\n") + 4;
  // The header and a few bytes of the body, then nothing: no answer may come yet.
  ASSERT_TRUE(connection.Send(request.substr(0, body_start + 5)));
  EXPECT_FALSE(connection.Readable(200)) << "answered before the body was complete";
  ASSERT_TRUE(connection.Send(request.substr(body_start + 5)));
  const auto answers = connection.Read(1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].first, 201) << answers[0].second;
  const Json order = Json::parse(answers[0].second, nullptr, false);
  ASSERT_TRUE(order.is_object()) << answers[0].second;
  EXPECT_EQ(order["order"]["quantity"], 2);
  EXPECT_EQ(order["order"]["price"], "0.04");
}

TEST_F(ApiFramingTest, RequestsWrittenBackToBackAreAnsweredInOrder) {
  RawConnection connection(server_->port());
  ASSERT_TRUE(connection.connected());
  // Three requests in one write: the server finds the second and third already buffered
  // after the first one's body.
  ASSERT_TRUE(connection.Send(OrderRequest(BuyOrder("0.03", 1).dump()) +
                              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
                              OrderRequest(BuyOrder("0.02", 3).dump())));
  const auto answers = connection.Read(3);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].first, 201) << answers[0].second;
  EXPECT_EQ(answers[1].first, 200) << answers[1].second;
  EXPECT_EQ(answers[2].first, 201) << answers[2].second;
  const Json first = Json::parse(answers[0].second, nullptr, false);
  const Json third = Json::parse(answers[2].second, nullptr, false);
  ASSERT_TRUE(first.is_object() && third.is_object());
  EXPECT_EQ(first["order"]["price"], "0.03");
  EXPECT_EQ(third["order"]["price"], "0.02");
  EXPECT_LT(first["order"]["id"].get<uint64_t>(), third["order"]["id"].get<uint64_t>());
}

}  // namespace
}  // namespace ocx::api_test
