#include "src/core/codec.h"

#include <sodium.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "nlohmann/json.hpp"
#include "src/base/assert.h"
#include "src/base/json.h"
#include "src/base/json_string.h"
#include "src/core/exchange.h"

namespace ocx::core {

using Json = nlohmann::json;

namespace {

// The last microsecond of year 9999: no time the exchange keeps is later.
constexpr Timestamp kTimestampMax = 253'402'300'799LL * kMicrosPerSecond + 999'999;

// Enum <-> name tables. The names are part of the on-disk format: never change them.
template <typename E, size_t N>
struct Names {
  std::array<std::pair<E, const char*>, N> entries;
  const char* Name(E value) const {
    for (const auto& [e, name] : entries) {
      if (e == value) return name;
    }
    OCX_ASSERT_MSG(false, "enum value without a name");
    return "";
  }
  bool Parse(const std::string& name, E* value) const {
    for (const auto& [e, n] : entries) {
      if (name == n) {
        *value = e;
        return true;
      }
    }
    return false;
  }
};

constexpr Names<Role, 3> kRoles{{{{Role::kConsumer, "consumer"},
                                  {Role::kProvider, "provider"},
                                  {Role::kOperator, "operator"}}}};
constexpr Names<BalanceKind, 7> kBalanceKinds{{{{BalanceKind::kAvailable, "available"},
                                                {BalanceKind::kHeld, "held"},
                                                {BalanceKind::kEscrow, "escrow"},
                                                {BalanceKind::kEarnings, "earnings"},
                                                {BalanceKind::kExternal, "external"},
                                                {BalanceKind::kFees, "fees"},
                                                {BalanceKind::kInsurance, "insurance"}}}};
constexpr Names<engine::Side, 2> kSides{{{{engine::Side::kBuy, "buy"},
                                          {engine::Side::kSell, "sell"}}}};
constexpr Names<engine::OrderType, 2> kTypes{{{{engine::OrderType::kLimit, "limit"},
                                               {engine::OrderType::kMarket, "market"}}}};
constexpr Names<engine::TimeInForce, 4> kTifs{{{{engine::TimeInForce::kGtc, "gtc"},
                                                {engine::TimeInForce::kIoc, "ioc"},
                                                {engine::TimeInForce::kFok, "fok"},
                                                {engine::TimeInForce::kGtd, "gtd"}}}};
constexpr Names<LeaseEndReason, 5> kEndReasons{{{{LeaseEndReason::kFinished, "finished"},
                                                 {LeaseEndReason::kReleased, "released"},
                                                 {LeaseEndReason::kReclaimed, "reclaimed"},
                                                 {LeaseEndReason::kExpired, "expired"},
                                                 {LeaseEndReason::kOffline, "offline"}}}};
constexpr Names<JobTaskState, 5> kJobTaskStates{{{{JobTaskState::kWaiting, "waiting"},
                                                   {JobTaskState::kRunning, "running"},
                                                   {JobTaskState::kFinished, "finished"},
                                                   {JobTaskState::kLost, "lost"},
                                                   {JobTaskState::kCancelled, "cancelled"}}}};

Json AttributesToJson(const std::map<std::string, AttributeValue>& attributes) {
  Json out = Json::object();
  for (const auto& [key, value] : attributes) {
    out[key] = value.is_number ? Json{{"n", value.number_micros}} : Json{{"s", value.text}};
  }
  return out;
}

// A reader over one JSON object that records the first problem instead of throwing.
class Reader {
 public:
  explicit Reader(const Json& json) : json_(json) {}
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // An integer that fits T: one past its range is refused, never narrowed or wrapped (a
  // record naming account 2^32 + 1 must not name account 1).
  template <typename T>
  T Int(const char* key) {
    const auto it = json_.find(key);
    if (it == json_.end() || !it->is_number_integer()) {
      Fail(key, "an integer");
      return T{};
    }
    if (it->is_number_unsigned()) {
      const uint64_t value = it->get<uint64_t>();
      if (!std::in_range<T>(value)) {
        Fail(key, "an integer in the range of its type");
        return T{};
      }
      return static_cast<T>(value);
    }
    const int64_t value = it->get<int64_t>();
    if (!std::in_range<T>(value)) {
      Fail(key, "an integer in the range of its type");
      return T{};
    }
    return static_cast<T>(value);
  }
  // A time: microseconds since the epoch, from 0 to the end of year 9999, so that adding a
  // timeout or a lease's length to it cannot overflow.
  Timestamp Time(const char* key) {
    const Timestamp value = Int<Timestamp>(key);
    if (value < 0 || value > kTimestampMax) Fail(key, "a time from 0 to year 9999");
    return value;
  }
  std::string Str(const char* key) {
    const auto it = json_.find(key);
    if (it == json_.end() || !it->is_string()) {
      Fail(key, "a string");
      return {};
    }
    return it->get<std::string>();
  }
  template <typename E, size_t N>
  E Enum(const char* key, const Names<E, N>& names) {
    E value{};
    if (!names.Parse(Str(key), &value)) Fail(key, "a known name");
    return value;
  }
  bool Has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }
  const Json& Sub(const char* key) {
    static const Json kEmpty = Json::object();
    const auto it = json_.find(key);
    if (it == json_.end() || !(it->is_object() || it->is_array())) {
      Fail(key, "an object or array");
      return kEmpty;
    }
    return *it;
  }
  void Fail(const char* key, const char* what) {
    if (error_.empty()) error_ = std::string("\"") + key + "\" must be " + what;
  }

 private:
  const Json& json_;
  std::string error_;
};

bool ReadAttributes(const Json& json, std::map<std::string, AttributeValue>* out) {
  if (!json.is_object()) return false;
  for (const auto& [key, value] : json.items()) {
    AttributeValue attribute;
    if (!value.is_object()) return false;
    if (value.contains("n") && value["n"].is_number_integer()) {
      if (value["n"].is_number_unsigned() &&
          value["n"].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return false;
      }
      attribute.is_number = true;
      attribute.number_micros = value["n"].get<int64_t>();
    } else if (value.contains("s") && value["s"].is_string()) {
      attribute.text = value["s"].get<std::string>();
    } else {
      return false;
    }
    (*out)[key] = attribute;
  }
  return true;
}

Json SpecToJson(const MachineSpec& spec) {
  Json capacity = Json::object();
  for (const auto& [market, slots] : spec.capacity) capacity[market] = slots;
  Json json{{"name", spec.name},
            {"attributes", AttributesToJson(spec.attributes)},
            {"capacity", capacity}};
  if (!spec.public_key.empty()) json["public_key"] = spec.public_key;
  return json;
}

bool ReadSpec(const Json& json, MachineSpec* spec) {
  if (!json.is_object() || !json.contains("name") || !json["name"].is_string()) return false;
  spec->name = json["name"].get<std::string>();
  if (json.contains("public_key")) {
    if (!json["public_key"].is_string()) return false;
    spec->public_key = json["public_key"].get<std::string>();
  }
  if (!json.contains("attributes") || !ReadAttributes(json["attributes"], &spec->attributes)) {
    return false;
  }
  if (!json.contains("capacity") || !json["capacity"].is_object()) return false;
  for (const auto& [market, slots] : json["capacity"].items()) {
    if (!slots.is_number_integer()) return false;
    if (slots.is_number_unsigned() && slots.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return false;
    }
    spec->capacity[market] = slots.get<Quantity>();
  }
  return true;
}

// Writes canonical compact JSON directly (keys in sorted order, integers only), byte for
// byte what nlohmann's dump() gives for the same object, without building one: encoding is
// on the sequencer's hot path. Strings must be valid UTF-8 (TextIsValid()).
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Open() { out_->push_back('{'); first_ = true; }
  void Close() { out_->push_back('}'); first_ = false; }
  void Key(std::string_view key) {
    if (!first_) out_->push_back(',');
    first_ = false;
    String(key);
    out_->push_back(':');
  }
  void Int(std::string_view key, int64_t value) { Key(key); out_->append(std::to_string(value)); }
  void UInt(std::string_view key, uint64_t value) { Key(key); out_->append(std::to_string(value)); }
  void Str(std::string_view key, std::string_view value) { Key(key); String(value); }
  void String(std::string_view text) { base::AppendJsonString(out_, text); }

 private:
  std::string* out_;
  bool first_ = true;
};

void WriteSpec(Writer& w, const MachineSpec& spec) {
  w.Key("spec");
  w.Open();
  w.Key("attributes");
  w.Open();
  for (const auto& [key, value] : spec.attributes) {  // std::map: sorted, as JSON needs.
    w.Key(key);
    w.Open();
    if (value.is_number) {
      w.Int("n", value.number_micros);
    } else {
      w.Str("s", value.text);
    }
    w.Close();
  }
  w.Close();
  w.Key("capacity");
  w.Open();
  for (const auto& [market, slots] : spec.capacity) w.Int(market, slots);
  w.Close();
  w.Str("name", spec.name);
  if (!spec.public_key.empty()) w.Str("public_key", spec.public_key);
  w.Close();
}

// Each writes the command's fields and "type" in sorted key order.
struct Encoder {
  Writer& w;
  void operator()(const CreateAccount& c) const {
    w.UInt("actor", c.actor);
    w.Str("name", c.name);
    w.Str("role", kRoles.Name(c.role));
    if (!c.token_hash.empty()) w.Str("token_hash", c.token_hash);
    w.Str("type", "create_account");
  }
  void operator()(const Deposit& c) const {
    w.UInt("account", c.account);
    w.UInt("actor", c.actor);
    w.Int("amount", c.amount);
    w.Str("type", "deposit");
  }
  void operator()(const Withdraw& c) const {
    w.UInt("account", c.account);
    w.UInt("actor", c.actor);
    w.Int("amount", c.amount);
    w.Str("from", kBalanceKinds.Name(c.from));
    w.Str("type", "withdraw");
  }
  void operator()(const RegisterMachine& c) const {
    w.UInt("actor", c.actor);
    WriteSpec(w, c.spec);
    w.Str("type", "register_machine");
  }
  void operator()(const Heartbeat& c) const {
    w.UInt("machine", c.machine);
    w.Str("type", "heartbeat");
  }
  void operator()(const PlaceOrder& c) const {
    w.UInt("actor", c.actor);
    w.Str("client_order_id", c.client_order_id);
    if (!c.constraints.empty()) w.Str("constraints", c.constraints);
    if (c.expiry) w.Int("expiry", *c.expiry);
    w.Int("lot", c.lot);
    w.UInt("machine", c.machine);
    w.Str("market", c.market);
    w.Int("max_hours", c.max_hours);
    w.Str("order_type", kTypes.Name(c.type));
    w.Int("price", c.price);
    w.Int("quantity", c.quantity);
    w.Str("side", kSides.Name(c.side));
    w.Str("tif", kTifs.Name(c.tif));
    w.Str("type", "place_order");
  }
  void operator()(const CancelOrder& c) const {
    w.UInt("actor", c.actor);
    w.Int("order", c.order);
    w.Str("type", "cancel_order");
  }
  void operator()(const ReplaceOrder& c) const {
    w.UInt("actor", c.actor);
    w.Int("order", c.order);
    if (c.price) w.Int("price", *c.price);
    if (c.quantity) w.Int("quantity", *c.quantity);
    w.Str("type", "replace_order");
  }
  void operator()(const ReportUsage& c) const {
    w.Int("cpu_seconds", c.cpu_seconds);
    w.Int("gpu_seconds", c.gpu_seconds);
    w.UInt("lease", c.lease);
    w.UInt("machine", c.machine);
    w.Int("peak_memory_mib", c.peak_memory_mib);
    w.Str("type", "report_usage");
    w.Int("wall_seconds", c.wall_seconds);
  }
  void operator()(const EndLease& c) const {
    w.UInt("actor", c.actor);
    w.UInt("lease", c.lease);
    w.UInt("machine", c.machine);
    w.Str("reason", kEndReasons.Name(c.reason));
    w.Str("type", "end_lease");
  }
  void operator()(const Tick&) const { w.Str("type", "tick"); }
  void operator()(const AssignTask& c) const {
    w.UInt("actor", c.actor);
    w.UInt("lease", c.lease);
    w.Str("spec", c.spec);
    w.Str("type", "assign_task");
  }
  void operator()(const FinishTask& c) const {
    w.UInt("lease", c.lease);
    w.UInt("machine", c.machine);
    w.Str("result", c.result);
    w.Str("type", "finish_task");
  }
  void operator()(const SubmitJob& c) const {
    w.UInt("actor", c.actor);
    w.Str("client_job_id", c.client_job_id);
    if (!c.constraints.empty()) w.Str("constraints", c.constraints);
    w.Str("market", c.market);
    w.Int("max_hours", c.max_hours);
    w.Int("max_price", c.max_price);
    w.Int("slots_per_task", c.slots_per_task);
    w.Str("task_spec", c.task_spec);
    w.Int("tasks", c.tasks);
    w.Str("type", "submit_job");
  }
  void operator()(const CancelJob& c) const {
    w.UInt("actor", c.actor);
    w.UInt("job", c.job);
    w.Str("type", "cancel_job");
  }
  void operator()(const RotateToken& c) const {
    w.UInt("account", c.account);
    w.UInt("actor", c.actor);
    w.Str("token_hash", c.token_hash);
    w.Str("type", "rotate_token");
  }
};

bool Utf8Valid(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t extra;
    uint32_t code;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { extra = 1; code = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; code = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; code = c & 0x07; }
    else return false;
    if (i + extra >= text.size()) return false;  // Truncated sequence.
    for (size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      code = (code << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((extra == 1 && code < 0x80) || (extra == 2 && code < 0x800) ||
        (extra == 3 && code < 0x10000) || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

std::string_view CommandName(const CommandBody& command) {
  static constexpr const char* kNames[] = {
      "create_account", "deposit",       "withdraw",      "register_machine",
      "heartbeat",      "place_order",   "cancel_order",  "replace_order",
      "report_usage",   "end_lease",     "tick",          "assign_task",
      "finish_task",    "submit_job",    "cancel_job",    "rotate_token"};
  static_assert(std::size(kNames) == std::variant_size_v<CommandBody>);
  return kNames[command.index()];
}

std::string EncodeCommand(const CommandBody& command) {
  std::string out;
  out.reserve(256);
  Writer writer(&out);
  writer.Open();
  std::visit(Encoder{writer}, command);
  writer.Close();
  return out;
}

bool TextIsValid(const CommandBody& command) {
  return std::visit(
      [](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateAccount>) {
          return Utf8Valid(c.name) && Utf8Valid(c.token_hash);
        } else if constexpr (std::is_same_v<T, RotateToken>) {
          return Utf8Valid(c.token_hash);
        } else if constexpr (std::is_same_v<T, PlaceOrder>) {
          return Utf8Valid(c.market) && Utf8Valid(c.client_order_id) &&
                 Utf8Valid(c.constraints);
        } else if constexpr (std::is_same_v<T, SubmitJob>) {
          return Utf8Valid(c.market) && Utf8Valid(c.client_job_id) && Utf8Valid(c.constraints) &&
                 Utf8Valid(c.task_spec);
        } else if constexpr (std::is_same_v<T, AssignTask>) {
          return Utf8Valid(c.spec);
        } else if constexpr (std::is_same_v<T, FinishTask>) {
          return Utf8Valid(c.result);
        } else if constexpr (std::is_same_v<T, RegisterMachine>) {
          if (!Utf8Valid(c.spec.name) || !Utf8Valid(c.spec.public_key)) return false;
          for (const auto& [key, value] : c.spec.attributes) {
            if (!Utf8Valid(key) || !Utf8Valid(value.text)) return false;
          }
          for (const auto& [market, slots] : c.spec.capacity) {
            if (!Utf8Valid(market)) return false;
          }
          return true;
        } else {
          return true;
        }
      },
      command);
}

absl::StatusOr<CommandBody> DecodeCommand(std::string_view payload) {
  const Json j = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError("command payload is not a JSON object");
  }
  Reader r(j);
  const std::string type = r.Str("type");
  CommandBody out;
  if (type == "create_account") {
    CreateAccount c{r.Int<AccountId>("actor"), r.Str("name"), r.Enum("role", kRoles), {}};
    if (j.contains("token_hash")) c.token_hash = r.Str("token_hash");
    out = c;
  } else if (type == "deposit") {
    out = Deposit{r.Int<AccountId>("actor"), r.Int<AccountId>("account"), r.Int<Micros>("amount")};
  } else if (type == "withdraw") {
    out = Withdraw{r.Int<AccountId>("actor"), r.Int<AccountId>("account"), r.Int<Micros>("amount"),
                   r.Enum("from", kBalanceKinds)};
  } else if (type == "register_machine") {
    RegisterMachine c;
    c.actor = r.Int<AccountId>("actor");
    if (!ReadSpec(r.Sub("spec"), &c.spec)) r.Fail("spec", "a machine spec");
    out = c;
  } else if (type == "heartbeat") {
    out = Heartbeat{r.Int<MachineId>("machine")};
  } else if (type == "place_order") {
    PlaceOrder c;
    c.actor = r.Int<AccountId>("actor");
    c.market = r.Str("market");
    c.client_order_id = r.Str("client_order_id");
    c.side = r.Enum("side", kSides);
    c.type = r.Enum("order_type", kTypes);
    c.tif = r.Enum("tif", kTifs);
    c.price = r.Int<PriceMicros>("price");
    c.quantity = r.Int<Quantity>("quantity");
    c.lot = r.Int<Quantity>("lot");
    c.max_hours = r.Int<int32_t>("max_hours");
    c.machine = r.Int<MachineId>("machine");
    if (r.Has("expiry")) c.expiry = r.Int<Timestamp>("expiry");
    if (r.Has("constraints")) c.constraints = r.Str("constraints");
    out = c;
  } else if (type == "cancel_order") {
    out = CancelOrder{r.Int<AccountId>("actor"), r.Int<OrderId>("order")};
  } else if (type == "replace_order") {
    ReplaceOrder c;
    c.actor = r.Int<AccountId>("actor");
    c.order = r.Int<OrderId>("order");
    if (r.Has("price")) c.price = r.Int<PriceMicros>("price");
    if (r.Has("quantity")) c.quantity = r.Int<Quantity>("quantity");
    out = c;
  } else if (type == "report_usage") {
    out = ReportUsage{r.Int<MachineId>("machine"),      r.Int<LeaseId>("lease"),
                      r.Int<int64_t>("wall_seconds"),    r.Int<int64_t>("cpu_seconds"),
                      r.Int<int64_t>("peak_memory_mib"), r.Int<int64_t>("gpu_seconds")};
  } else if (type == "end_lease") {
    out = EndLease{r.Int<AccountId>("actor"), r.Int<MachineId>("machine"), r.Int<LeaseId>("lease"),
                   r.Enum("reason", kEndReasons)};
  } else if (type == "tick") {
    out = Tick{};
  } else if (type == "assign_task") {
    out = AssignTask{r.Int<AccountId>("actor"), r.Int<LeaseId>("lease"), r.Str("spec")};
  } else if (type == "finish_task") {
    out = FinishTask{r.Int<MachineId>("machine"), r.Int<LeaseId>("lease"), r.Str("result")};
  } else if (type == "submit_job") {
    SubmitJob c;
    c.actor = r.Int<AccountId>("actor");
    c.client_job_id = r.Str("client_job_id");
    c.market = r.Str("market");
    c.slots_per_task = r.Int<Quantity>("slots_per_task");
    c.tasks = r.Int<int32_t>("tasks");
    c.max_price = r.Int<PriceMicros>("max_price");
    c.max_hours = r.Int<int32_t>("max_hours");
    if (r.Has("constraints")) c.constraints = r.Str("constraints");
    c.task_spec = r.Str("task_spec");
    out = c;
  } else if (type == "cancel_job") {
    out = CancelJob{r.Int<AccountId>("actor"), r.Int<JobId>("job")};
  } else if (type == "rotate_token") {
    out = RotateToken{r.Int<AccountId>("actor"), r.Int<AccountId>("account"),
                      r.Str("token_hash")};
  } else {
    return absl::DataLossError("unknown command type \"" + type + "\"");
  }
  if (!r.ok()) return absl::DataLossError("command \"" + type + "\": " + r.error());
  return out;
}

// ---------------------------------------------------------------- snapshots

// Reads and writes Exchange's private state.
class SnapshotCodec {
 public:
  // One [account, key, id, time] entry of client_order_ids or client_job_ids; a snapshot
  // written before ids had a retention has no time, and counts as used at the snapshot.
  template <typename Map>
  static bool ReadRememberedId(const Json& c, Timestamp snapshot_time, Map* out) {
    if (!c.is_array() || (c.size() != 3 && c.size() != 4) || !c[0].is_number_unsigned() ||
        !c[1].is_string() || !c[2].is_number_unsigned() ||
        (c.size() == 4 && !c[3].is_number_integer())) {
      return false;
    }
    const uint64_t account = c[0].get<uint64_t>();
    if (account > std::numeric_limits<AccountId>::max()) return false;
    const Timestamp time = c.size() == 4 ? c[3].get<Timestamp>() : snapshot_time;
    (*out)[{static_cast<AccountId>(account), c[1].get<std::string>()}] =
        Exchange::RememberedId{c[2].get<uint64_t>(), time};
    return true;
  }

  // The order of forgetting, from the two maps (it is not kept in the snapshot).
  static void RebuildRememberedKeys(Exchange& x) {
    x.remembered_keys_.clear();
    for (const bool job : {false, true}) {
      for (const auto& [key, remembered] : job ? x.client_job_ids_ : x.client_order_ids_) {
        x.remembered_keys_.push_back(
            Exchange::RememberedKey{remembered.time, job, key.first, key.second});
      }
    }
    std::stable_sort(x.remembered_keys_.begin(), x.remembered_keys_.end(),
                     [](const auto& a, const auto& b) { return a.time < b.time; });
  }

  static Json Save(const Exchange& x) {
    Json markets = Json::array();
    for (const MarketConfig& m : x.config_.markets) markets.push_back(m.name);
    Json accounts = Json::array();
    for (const auto& [id, a] : x.accounts_) {
      Json account = {{"id", id}, {"name", a.name}, {"role", kRoles.Name(a.role)}};
      if (!a.token_hash.empty()) account["token_hash"] = a.token_hash;
      accounts.push_back(std::move(account));
    }
    Json balances = Json::array();
    for (const auto& [ref, amount] : x.balances_) {
      balances.push_back({{"owner", ref.owner},
                          {"kind", kBalanceKinds.Name(ref.kind)},
                          {"amount", amount}});
    }
    Json orders = Json::array();
    // Resting orders per market and side in priority order, so a restore rebuilds the
    // books' time priority exactly.
    for (size_t m = 0; m < x.books_.size(); ++m) {
      for (engine::Side side : {engine::Side::kBuy, engine::Side::kSell}) {
        x.books_[m]->ForEachResting(side, [&](const engine::OrderView& v) {
          const OrderState& s = x.orders_.at(v.id);
          Json o = {{"id", v.id},
                    {"account", v.account},
                    {"market", m},
                    {"side", kSides.Name(v.side)},
                    {"tif", kTifs.Name(v.tif)},
                    {"price", v.price},
                    {"remaining", v.remaining},
                    {"lot", v.lot},
                    {"expiry", v.expiry},
                    {"machine", v.machine},
                    {"client_order_id", s.client_order_id},
                    {"hold_price", s.hold_price},
                    {"max_hours", s.max_hours},
                    {"hold", s.hold}};
          if (!s.constraints.empty()) o["constraints"] = s.constraints;
          orders.push_back(std::move(o));
        });
      }
    }
    Json client_ids = Json::array();
    for (const auto& [key, remembered] : x.client_order_ids_) {
      client_ids.push_back({key.first, key.second, remembered.id, remembered.time});
    }
    Json machines = Json::array();
    for (const auto& [id, m] : x.machines_) {
      machines.push_back({{"id", id},
                          {"owner", m.owner},
                          {"spec", SpecToJson(m.spec)},
                          {"last_heartbeat", m.last_heartbeat},
                          {"online", m.online}});
      // Only once it has a record, so snapshots of machines without one stay the same.
      if (m.leases_ended != 0) {
        machines.back()["leases_ended"] = m.leases_ended;
        machines.back()["leases_failed"] = m.leases_failed;
      }
    }
    Json leases = Json::array();
    for (const auto& [id, l] : x.leases_) {
      leases.push_back({{"id", id},
                        {"buyer", l.buyer},
                        {"seller", l.seller},
                        {"machine", l.machine},
                        {"market", l.market},
                        {"slots", l.slots},
                        {"price", l.price},
                        {"max_hours", l.max_hours},
                        {"start", l.start},
                        {"buy_order", l.buy_order},
                        {"sell_order", l.sell_order},
                        {"buyer_fee_bps", l.buyer_fee_bps},
                        {"seller_fee_bps", l.seller_fee_bps},
                        {"escrow", l.escrow},
                        {"billed", l.billed},
                        {"buyer_fee", l.buyer_fee},
                        {"seller_fee", l.seller_fee},
                        {"buyer_fee_insured", l.buyer_fee_insured},
                        {"seller_fee_insured", l.seller_fee_insured},
                        {"billed_seconds", l.billed_seconds},
                        {"reported_wall_seconds", l.reported_wall_seconds}});
    }
    Json snapshot{{"version", kSnapshotVersion},
                {"markets", markets},
                {"last_sequence", x.last_sequence_},
                {"now", x.now_},
                {"next_account", x.next_account_},
                {"next_machine", x.next_machine_},
                {"next_order", x.next_order_},
                {"next_lease", x.next_lease_},
                {"next_entry", x.next_entry_},
                {"deposits", x.deposits_},
                {"withdrawals", x.withdrawals_},
                {"accounts", accounts},
                {"balances", balances},
                {"orders", orders},
                {"client_order_ids", client_ids},
                {"machines", machines},
                {"leases", leases}};
    // Written only when there are some, so snapshots of states without tasks stay the same.
    if (!x.open_tasks_.empty()) {
      Json tasks = Json::array();
      for (const auto& [id, t] : x.open_tasks_) {
        tasks.push_back({{"lease", id},
                         {"buyer", t.buyer},
                         {"machine", t.machine},
                         {"spec", t.spec},
                         {"assigned", t.assigned},
                         {"lease_ended", t.lease_ended}});
        if (t.job != 0) {
          tasks.back()["job"] = t.job;
          tasks.back()["task_index"] = t.task_index;
        }
      }
      snapshot["tasks"] = std::move(tasks);
    }
    // Also only when there are some (snapshots of states without jobs stay the same).
    if (x.next_job_ != 1) {
      snapshot["next_job"] = x.next_job_;
      Json jobs = Json::array();
      for (const auto& [id, job] : x.jobs_) {
        Json tasks = Json::array();
        for (const JobTask& t : job.tasks) {
          tasks.push_back({{"state", kJobTaskStates.Name(t.state)},
                           {"attempts", t.attempts},
                           {"order", t.order},
                           {"lease", t.lease},
                           {"machine", t.machine}});
        }
        jobs.push_back({{"id", id},
                        {"owner", job.spec.actor},
                        {"client_job_id", job.spec.client_job_id},
                        {"market", job.spec.market},
                        {"slots_per_task", job.spec.slots_per_task},
                        {"max_price", job.spec.max_price},
                        {"max_hours", job.spec.max_hours},
                        {"constraints", job.spec.constraints},
                        {"task_spec", job.spec.task_spec},
                        {"submitted", job.submitted},
                        {"tasks", std::move(tasks)}});
      }
      snapshot["jobs"] = std::move(jobs);
      Json client_job_ids = Json::array();
      for (const auto& [key, remembered] : x.client_job_ids_) {
        client_job_ids.push_back({key.first, key.second, remembered.id, remembered.time});
      }
      snapshot["client_job_ids"] = std::move(client_job_ids);
    }
    return snapshot;
  }

  static absl::Status Load(const Json& j, Exchange& x) {
    if (!j.is_object() || !j.contains("version") || !j["version"].is_number_integer() ||
        j["version"] != kSnapshotVersion) {
      return absl::DataLossError("snapshot: not a version 1 exchange snapshot");
    }
    Json markets = Json::array();
    for (const MarketConfig& m : x.config_.markets) markets.push_back(m.name);
    const auto snapshot_markets = j.find("markets");
    if (snapshot_markets == j.end() || *snapshot_markets != markets) {
      return absl::FailedPreconditionError(
          "snapshot: its markets " +
          (snapshot_markets == j.end() ? std::string("(none)") : base::DumpJson(*snapshot_markets)) +
          " differ from the configuration's " + markets.dump());
    }
    Reader r(j);
    x.last_sequence_ = r.Int<uint64_t>("last_sequence");
    x.now_ = r.Time("now");
    x.next_account_ = r.Int<AccountId>("next_account");
    x.next_machine_ = r.Int<MachineId>("next_machine");
    x.next_order_ = r.Int<OrderId>("next_order");
    x.next_lease_ = r.Int<LeaseId>("next_lease");
    x.next_entry_ = r.Int<uint64_t>("next_entry");
    x.deposits_ = r.Int<Micros>("deposits");
    x.withdrawals_ = r.Int<Micros>("withdrawals");
    for (const Json& a : r.Sub("accounts")) {
      Reader ar(a);
      Account account{ar.Int<AccountId>("id"), ar.Str("name"), ar.Enum("role", kRoles), 0, {}};
      if (a.contains("token_hash")) account.token_hash = ar.Str("token_hash");
      if (!ar.ok()) return absl::DataLossError("snapshot account: " + ar.error());
      x.account_names_[account.name] = account.id;
      x.accounts_[account.id] = account;
    }
    for (const Json& b : r.Sub("balances")) {
      Reader br(b);
      const BalanceRef ref{br.Int<AccountId>("owner"), br.Enum("kind", kBalanceKinds)};
      x.balances_[ref] = br.Int<Micros>("amount");
      if (!br.ok()) return absl::DataLossError("snapshot balance: " + br.error());
    }
    for (const Json& m : r.Sub("machines")) {
      Reader mr(m);
      Machine machine;
      machine.id = mr.Int<MachineId>("id");
      machine.owner = mr.Int<AccountId>("owner");
      if (!ReadSpec(mr.Sub("spec"), &machine.spec)) mr.Fail("spec", "a machine spec");
      machine.last_heartbeat = mr.Time("last_heartbeat");
      if (m.contains("online") && !m["online"].is_boolean()) mr.Fail("online", "a boolean");
      machine.online = m.contains("online") && m["online"].is_boolean() && m["online"].get<bool>();
      if (m.contains("leases_ended")) {
        machine.leases_ended = mr.Int<int64_t>("leases_ended");
        machine.leases_failed = mr.Int<int64_t>("leases_failed");
      }
      if (!mr.ok()) return absl::DataLossError("snapshot machine: " + mr.error());
      machine.capacity.assign(x.books_.size(), 0);
      machine.offered.assign(x.books_.size(), 0);
      machine.leased.assign(x.books_.size(), 0);
      for (const auto& [market, slots] : machine.spec.capacity) {
        const int index = x.MarketIndex(market);
        if (index < 0) return absl::DataLossError("snapshot machine: unknown market " + market);
        machine.capacity[index] = slots;
      }
      if (machine.online) {
        x.heartbeat_deadlines_.insert(
            {machine.last_heartbeat + x.config_.heartbeat_timeout, machine.id});
      }
      const auto owner = x.accounts_.find(machine.owner);
      if (owner == x.accounts_.end()) {
        return absl::DataLossError("snapshot machine " + std::to_string(machine.id) +
                                   " has no owner account");
      }
      ++owner->second.machines;
      x.machines_[machine.id] = std::move(machine);
    }
    for (const Json& o : r.Sub("orders")) {
      Reader orr(o);
      engine::OrderView v{};
      v.id = orr.Int<OrderId>("id");
      v.account = orr.Int<AccountId>("account");
      const size_t market = orr.Int<size_t>("market");
      v.side = orr.Enum("side", kSides);
      v.tif = orr.Enum("tif", kTifs);
      v.price = orr.Int<PriceMicros>("price");
      v.remaining = orr.Int<Quantity>("remaining");
      v.lot = orr.Int<Quantity>("lot");
      v.expiry = orr.Int<Timestamp>("expiry");
      v.machine = orr.Int<MachineId>("machine");
      OrderState s;
      s.id = v.id;
      s.account = v.account;
      s.market = market;
      s.side = v.side;
      s.client_order_id = orr.Str("client_order_id");
      s.remaining = v.remaining;
      s.lot = v.lot;
      s.hold_price = orr.Int<PriceMicros>("hold_price");
      s.max_hours = orr.Int<int32_t>("max_hours");
      s.hold = orr.Int<Micros>("hold");
      s.machine = v.machine;
      if (o.contains("constraints")) s.constraints = orr.Str("constraints");
      if (!orr.ok()) return absl::DataLossError("snapshot order: " + orr.error());
      if (!s.constraints.empty()) {
        const std::string error = x.CheckConstraints(s.constraints);
        if (!error.empty()) return absl::DataLossError("snapshot order constraints: " + error);
        v.constraint = x.CompileConstraint(s.constraints);
        s.constraint_handle = v.constraint;
      }
      if (market >= x.books_.size() || !x.accounts_.contains(v.account) ||
          (v.side == engine::Side::kSell && !x.machines_.contains(v.machine))) {
        return absl::DataLossError("snapshot order " + std::to_string(v.id) + " is inconsistent");
      }
      // What the book asserts of a resting order is checked here first: a snapshot is data
      // from disk, and a bad one is data loss, not a broken invariant.
      const engine::OrderBook& book = *x.books_[market];
      if (v.id <= 0 || book.Contains(v.id) || x.orders_.contains(v.id) || v.remaining <= 0 ||
          v.lot < 1 || v.remaining % v.lot != 0 ||
          (v.tif != engine::TimeInForce::kGtc && v.tif != engine::TimeInForce::kGtd) ||
          book.ValidatePrice(v.price) != engine::RejectReason::kNone || s.max_hours < 0 ||
          s.max_hours > x.config_.max_hours_max || s.hold < 0) {
        return absl::DataLossError("snapshot order " + std::to_string(v.id) +
                                   " cannot rest in a book");
      }
      x.books_[market]->RestoreResting(v, x.now_);
      x.orders_[v.id] = s;
      ++x.accounts_[v.account].open_orders;
      if (v.side == engine::Side::kSell) {
        Machine& machine = x.machines_[v.machine];
        machine.sells.insert(v.id);
        machine.offered[market] += v.remaining;
      }
    }
    for (const Json& c : r.Sub("client_order_ids")) {
      if (!ReadRememberedId(c, x.now_, &x.client_order_ids_)) {
        return absl::DataLossError("snapshot client order id");
      }
    }
    for (const Json& l : r.Sub("leases")) {
      Reader lr(l);
      Lease lease;
      lease.id = lr.Int<LeaseId>("id");
      lease.buyer = lr.Int<AccountId>("buyer");
      lease.seller = lr.Int<AccountId>("seller");
      lease.machine = lr.Int<MachineId>("machine");
      lease.market = lr.Int<size_t>("market");
      lease.slots = lr.Int<Quantity>("slots");
      lease.price = lr.Int<PriceMicros>("price");
      lease.max_hours = lr.Int<int32_t>("max_hours");
      if (lease.max_hours < 1 || lease.max_hours > x.config_.max_hours_max) {
        lr.Fail("max_hours", "within the configuration's bounds");
      }
      lease.start = lr.Time("start");
      lease.buy_order = lr.Int<OrderId>("buy_order");
      lease.sell_order = lr.Int<OrderId>("sell_order");
      lease.buyer_fee_bps = lr.Int<int32_t>("buyer_fee_bps");
      lease.seller_fee_bps = lr.Int<int32_t>("seller_fee_bps");
      lease.escrow = lr.Int<Micros>("escrow");
      lease.billed = lr.Int<Micros>("billed");
      lease.buyer_fee = lr.Int<Micros>("buyer_fee");
      lease.seller_fee = lr.Int<Micros>("seller_fee");
      lease.buyer_fee_insured = lr.Int<Micros>("buyer_fee_insured");
      lease.seller_fee_insured = lr.Int<Micros>("seller_fee_insured");
      lease.billed_seconds = lr.Int<int64_t>("billed_seconds");
      lease.reported_wall_seconds = lr.Int<int64_t>("reported_wall_seconds");
      if (!lr.ok()) return absl::DataLossError("snapshot lease: " + lr.error());
      if (!x.machines_.contains(lease.machine) || lease.market >= x.books_.size()) {
        return absl::DataLossError("snapshot lease " + std::to_string(lease.id) +
                                   " is inconsistent");
      }
      Machine& machine = x.machines_[lease.machine];
      machine.leased[lease.market] += lease.slots;
      machine.leases.insert(lease.id);
      x.lease_deadlines_.insert(
          {lease.start + Timestamp{lease.max_hours} * 3600 * kMicrosPerSecond, lease.id});
      x.leases_[lease.id] = lease;
    }
    if (j.contains("tasks")) {
      for (const Json& t : r.Sub("tasks")) {
        Reader tr(t);
        OpenTask task;
        task.lease = tr.Int<LeaseId>("lease");
        task.buyer = tr.Int<AccountId>("buyer");
        task.machine = tr.Int<MachineId>("machine");
        task.spec = tr.Str("spec");
        task.assigned = tr.Int<Timestamp>("assigned");
        task.lease_ended = tr.Int<Timestamp>("lease_ended");
        if (t.contains("job")) {
          task.job = tr.Int<JobId>("job");
          task.task_index = tr.Int<int32_t>("task_index");
        }
        if (!tr.ok()) return absl::DataLossError("snapshot task: " + tr.error());
        const bool active = x.leases_.contains(task.lease);
        if (active != (task.lease_ended == 0)) {
          return absl::DataLossError("snapshot task of lease " + std::to_string(task.lease) +
                                     " is inconsistent");
        }
        if (!active) {
          x.task_deadlines_.insert({task.lease_ended + x.config_.task_result_grace, task.lease});
        }
        x.open_tasks_[task.lease] = std::move(task);
      }
    }
    if (j.contains("next_job")) {
      x.next_job_ = r.Int<JobId>("next_job");
      for (const Json& jj : r.Sub("jobs")) {
        Reader jr(jj);
        Job job;
        job.id = jr.Int<JobId>("id");
        job.spec.actor = jr.Int<AccountId>("owner");
        job.spec.client_job_id = jr.Str("client_job_id");
        job.spec.market = jr.Str("market");
        job.spec.slots_per_task = jr.Int<Quantity>("slots_per_task");
        job.spec.max_price = jr.Int<PriceMicros>("max_price");
        job.spec.max_hours = jr.Int<int32_t>("max_hours");
        job.spec.constraints = jr.Str("constraints");
        job.spec.task_spec = jr.Str("task_spec");
        job.submitted = jr.Int<Timestamp>("submitted");
        for (const Json& t : jr.Sub("tasks")) {
          Reader tr(t);
          JobTask task;
          task.state = tr.Enum("state", kJobTaskStates);
          task.attempts = tr.Int<int32_t>("attempts");
          task.order = tr.Int<OrderId>("order");
          task.lease = tr.Int<LeaseId>("lease");
          task.machine = tr.Int<MachineId>("machine");
          if (!tr.ok()) return absl::DataLossError("snapshot job task: " + tr.error());
          const int32_t index = static_cast<int32_t>(job.tasks.size());
          if (task.state == JobTaskState::kWaiting) x.job_orders_[task.order] = {job.id, index};
          if (task.state == JobTaskState::kRunning) x.job_leases_[task.lease] = {job.id, index};
          job.tasks.push_back(task);
        }
        if (!jr.ok()) return absl::DataLossError("snapshot job: " + jr.error());
        job.spec.tasks = static_cast<int32_t>(job.tasks.size());
        x.jobs_[job.id] = std::move(job);
      }
      for (const Json& c : r.Sub("client_job_ids")) {
        if (!ReadRememberedId(c, x.now_, &x.client_job_ids_)) {
          return absl::DataLossError("snapshot client job id");
        }
      }
    }
    if (!r.ok()) return absl::DataLossError("snapshot: " + r.error());
    return absl::OkStatus();
  }
};

std::string Exchange::Serialize() const { return SnapshotCodec::Save(*this).dump(); }

absl::StatusOr<std::unique_ptr<Exchange>> Exchange::Restore(ExchangeConfig config,
                                                            std::string_view serialized) {
  Json j;
  if (const base::JsonParseResult parsed = base::ParseJsonStrict(serialized, &j, 64);
      !parsed.ok()) {
    return absl::DataLossError("snapshot: not valid JSON: " + parsed.message);
  }
  auto exchange = std::make_unique<Exchange>(std::move(config));
  // The loader checks what it reads; a value of a type it did not expect makes nlohmann
  // throw, and a damaged snapshot is data loss, never the end of the process.
  try {
    const absl::Status status = SnapshotCodec::Load(j, *exchange);
    if (!status.ok()) return status;
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("snapshot: ") + e.what());
  }
  SnapshotCodec::RebuildRememberedKeys(*exchange);
  return exchange;
}

std::string Exchange::StateHash() const {
  static const bool initialized = sodium_init() >= 0;
  OCX_ASSERT(initialized);
  const std::string bytes = Serialize();
  unsigned char hash[32];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : hash) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 15]);
  }
  return hex;
}

}  // namespace ocx::core
