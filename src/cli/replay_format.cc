#include "src/cli/replay_format.h"

#include <cmath>
#include <limits>

#include "nlohmann/json.hpp"
#include "src/base/decimal.h"

namespace ocx::cli {
namespace {

using engine::Command;
using engine::CommandOp;
using engine::RejectReason;
using Json = nlohmann::json;

// Sentinels that the engine rejects with the right reason, for values that are well-formed
// JSON but out of the domain (a negative price, a fractional quantity).
constexpr engine::PriceMicros kBadPrice = 0;
constexpr engine::Quantity kBadQuantity = -1;

// A price field: a decimal string ("0.055") or a JSON number. Returns false (with *error)
// when it is not a decimal at all; a decimal out of the domain becomes kBadPrice.
bool ReadPrice(const Json& value, engine::PriceMicros* price, std::string* error) {
  std::string text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_number()) {
    // nlohmann prints numbers in their shortest exact form ("0.055"), which the decimal
    // parser reads without going through binary floating point arithmetic.
    text = value.dump();
  } else {
    *error = "\"price\" must be a decimal string such as \"0.055\"";
    return false;
  }
  const base::ParsedMicros parsed = base::ParseMicros(text);
  switch (parsed.error) {
    case base::DecimalError::kNone:
      *price = parsed.micros > 0 ? parsed.micros : kBadPrice;
      return true;
    case base::DecimalError::kTooManyDigits:
    case base::DecimalError::kOutOfRange:
      *price = kBadPrice;
      return true;
    case base::DecimalError::kSyntax:
      break;
  }
  *error = "\"price\" is not a decimal number: " + text;
  return false;
}

// An integer count field (qty, lot). Non-integral or out-of-range numbers become
// `bad_value` so the engine rejects them; non-numbers are malformed.
bool ReadCount(const Json& value, const char* name, int64_t bad_value, int64_t* out,
               std::string* error) {
  if (value.is_number_integer()) {
    *out = value.is_number_unsigned() &&
                   value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
               ? bad_value
               : value.get<int64_t>();
    return true;
  }
  if (value.is_number_float()) {
    *out = bad_value;
    return true;
  }
  *error = std::string("\"") + name + "\" must be an integer";
  return false;
}

bool ReadInt64(const Json& object, const char* name, bool required, int64_t* out,
               bool* present, std::string* error) {
  const auto it = object.find(name);
  *present = it != object.end();
  if (!*present) {
    if (required) *error = std::string("missing \"") + name + "\"";
    return !required;
  }
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
    *error = std::string("\"") + name + "\" must be a 64-bit integer";
    return false;
  }
  *out = it->get<int64_t>();
  return true;
}

bool ReadEnum(const Json& object, const char* name, std::string_view fallback,
              std::string* out, std::string* error) {
  const auto it = object.find(name);
  if (it == object.end()) {
    if (fallback.empty()) {
      *error = std::string("missing \"") + name + "\"";
      return false;
    }
    *out = fallback;
    return true;
  }
  if (!it->is_string()) {
    *error = std::string("\"") + name + "\" must be a string";
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

void AppendInt(int64_t value, std::string* out) { out->append(std::to_string(value)); }

void AppendPrice(int64_t micros, std::string* out) {
  out->push_back('"');
  base::AppendMicros(micros, out);
  out->push_back('"');
}

}  // namespace

engine::AccountId ReplayParser::InternAccount(const std::string& name) {
  const auto [it, inserted] =
      accounts_.try_emplace(name, static_cast<engine::AccountId>(accounts_.size() + 1));
  return it->second;
}

ReplayParser::Outcome ReplayParser::Parse(std::string_view line, Command* command,
                                          std::string* error) {
  if (line.find_first_not_of(" \t\r\n") == std::string_view::npos) return Outcome::kBlank;
  const Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    *error = "not valid JSON";
    return Outcome::kMalformed;
  }
  if (!json.is_object()) {
    *error = "a command must be a JSON object";
    return Outcome::kMalformed;
  }
  std::string op;
  if (!ReadEnum(json, "op", "", &op, error)) return Outcome::kMalformed;

  *command = Command{};
  int64_t ts = last_time_;
  bool has_ts = false;
  if (!ReadInt64(json, "ts", false, &ts, &has_ts, error)) return Outcome::kMalformed;
  if (ts < last_time_) {
    *error = "\"ts\" " + std::to_string(ts) + " is before the previous command's " +
             std::to_string(last_time_);
    return Outcome::kMalformed;
  }
  command->time = ts;

  int64_t id = 0;
  bool has_id = false;
  if (op == "time") {
    if (!has_ts) {
      *error = "a \"time\" command needs \"ts\"";
      return Outcome::kMalformed;
    }
    command->op = CommandOp::kTime;
  } else if (op == "cancel") {
    if (!ReadInt64(json, "id", true, &id, &has_id, error)) return Outcome::kMalformed;
    command->op = CommandOp::kCancel;
    command->cancel_id = id;
  } else if (op == "replace") {
    if (!ReadInt64(json, "id", true, &id, &has_id, error)) return Outcome::kMalformed;
    command->op = CommandOp::kReplace;
    command->replace.id = id;
    if (const auto it = json.find("price"); it != json.end()) {
      engine::PriceMicros price = 0;
      if (!ReadPrice(*it, &price, error)) return Outcome::kMalformed;
      command->replace.price = price;
    }
    if (const auto it = json.find("qty"); it != json.end()) {
      int64_t quantity = 0;
      if (!ReadCount(*it, "qty", kBadQuantity, &quantity, error)) return Outcome::kMalformed;
      command->replace.quantity = quantity;
    }
    if (!command->replace.price && !command->replace.quantity) {
      *error = "a replace needs \"price\" and/or \"qty\"";
      return Outcome::kMalformed;
    }
  } else if (op == "new") {
    if (!ReadInt64(json, "id", true, &id, &has_id, error)) return Outcome::kMalformed;
    command->op = CommandOp::kNew;
    engine::NewOrder& order = command->order;
    order.id = id;
    const auto account = json.find("account");
    if (account == json.end() || !(account->is_string() || account->is_number_integer())) {
      *error = "a new order needs \"account\" (a string)";
      return Outcome::kMalformed;
    }
    order.account =
        InternAccount(account->is_string() ? account->get<std::string>() : account->dump());
    std::string side, type, tif;
    if (!ReadEnum(json, "side", "", &side, error)) return Outcome::kMalformed;
    if (side == "buy") {
      order.side = engine::Side::kBuy;
    } else if (side == "sell") {
      order.side = engine::Side::kSell;
    } else {
      *error = "\"side\" must be \"buy\" or \"sell\", not \"" + side + "\"";
      return Outcome::kMalformed;
    }
    if (!ReadEnum(json, "type", "limit", &type, error)) return Outcome::kMalformed;
    if (type == "limit") {
      order.type = engine::OrderType::kLimit;
    } else if (type == "market") {
      order.type = engine::OrderType::kMarket;
    } else {
      *error = "\"type\" must be \"limit\" or \"market\", not \"" + type + "\"";
      return Outcome::kMalformed;
    }
    if (!ReadEnum(json, "tif", order.type == engine::OrderType::kMarket ? "ioc" : "gtc", &tif,
                  error)) {
      return Outcome::kMalformed;
    }
    if (tif == "gtc") {
      order.tif = engine::TimeInForce::kGtc;
    } else if (tif == "ioc") {
      order.tif = engine::TimeInForce::kIoc;
    } else if (tif == "fok") {
      order.tif = engine::TimeInForce::kFok;
    } else if (tif == "gtd") {
      order.tif = engine::TimeInForce::kGtd;
    } else {
      *error = "\"tif\" must be gtc, ioc, fok or gtd, not \"" + tif + "\"";
      return Outcome::kMalformed;
    }
    if (order.type == engine::OrderType::kLimit) {
      const auto price = json.find("price");
      if (price == json.end()) {
        *error = "a limit order needs \"price\"";
        return Outcome::kMalformed;
      }
      if (!ReadPrice(*price, &order.price, error)) return Outcome::kMalformed;
    }
    const auto quantity = json.find("qty");
    if (quantity == json.end()) {
      *error = "a new order needs \"qty\"";
      return Outcome::kMalformed;
    }
    if (!ReadCount(*quantity, "qty", kBadQuantity, &order.quantity, error)) {
      return Outcome::kMalformed;
    }
    if (const auto lot = json.find("lot"); lot != json.end()) {
      if (!ReadCount(*lot, "lot", 0, &order.lot, error)) return Outcome::kMalformed;
    }
    int64_t expiry = 0;
    bool has_expiry = false;
    if (!ReadInt64(json, "expiry", false, &expiry, &has_expiry, error)) {
      return Outcome::kMalformed;
    }
    if (has_expiry) order.expiry = expiry;
  } else {
    *error = "unknown \"op\" \"" + op + "\" (expected new, cancel, replace or time)";
    return Outcome::kMalformed;
  }
  last_time_ = ts;
  return Outcome::kCommand;
}

void AppendEventJson(const engine::Event& event, std::string* out) {
  using engine::EventType;
  switch (event.type) {
    case EventType::kAccepted:
      out->append("{\"type\":\"accepted\",\"id\":");
      AppendInt(event.id, out);
      out->append(event.side == engine::Side::kBuy ? ",\"side\":\"buy\"" : ",\"side\":\"sell\"");
      if (event.price != 0) {
        out->append(",\"price\":");
        AppendPrice(event.price, out);
      }
      out->append(",\"qty\":");
      AppendInt(event.quantity, out);
      break;
    case EventType::kTrade:
      out->append("{\"type\":\"trade\",\"taker\":");
      AppendInt(event.id, out);
      out->append(",\"maker\":");
      AppendInt(event.maker_id, out);
      out->append(",\"price\":");
      AppendPrice(event.price, out);
      out->append(",\"qty\":");
      AppendInt(event.quantity, out);
      break;
    case EventType::kCancelled:
      out->append("{\"type\":\"cancelled\",\"id\":");
      AppendInt(event.id, out);
      out->append(",\"qty\":");
      AppendInt(event.quantity, out);
      out->append(",\"reason\":\"");
      out->append(engine::ReasonCode(event.cancel));
      out->push_back('"');
      break;
    case EventType::kRejected: {
      out->append("{\"type\":\"rejected\",\"id\":");
      AppendInt(event.id, out);
      static constexpr const char* kOps[] = {"new", "cancel", "replace"};
      out->append(",\"op\":\"");
      out->append(kOps[static_cast<int>(event.command)]);
      out->append("\",\"reason\":\"");
      out->append(engine::ReasonCode(event.reject));
      out->push_back('"');
      break;
    }
    case EventType::kReplaced:
      out->append("{\"type\":\"replaced\",\"id\":");
      AppendInt(event.id, out);
      out->append(",\"price\":");
      AppendPrice(event.price, out);
      out->append(",\"qty\":");
      AppendInt(event.quantity, out);
      out->append(event.priority_kept ? ",\"priority\":\"kept\"" : ",\"priority\":\"lost\"");
      break;
    case EventType::kExpired:
      out->append("{\"type\":\"expired\",\"id\":");
      AppendInt(event.id, out);
      out->append(",\"qty\":");
      AppendInt(event.quantity, out);
      break;
  }
  out->append("}\n");
}

}  // namespace ocx::cli

namespace ocx::cli {

ReplayStats Replay(std::istream& in, engine::PriceMicros tick_micros, std::ostream& out,
                   std::ostream& errors) {
  engine::BookConfig config;
  config.tick_micros = tick_micros;
  return Replay(in, config, out, errors);
}

ReplayStats Replay(std::istream& in, const engine::BookConfig& book_config, std::ostream& out,
                   std::ostream& errors) {
  engine::OrderBook book(book_config);
  ReplayParser parser;
  ReplayStats stats;
  std::vector<engine::Event> events;
  std::string line, error, buffer;
  engine::Command command;
  constexpr size_t kFlushBytes = 1 << 16;
  while (std::getline(in, line)) {
    ++stats.lines;
    switch (parser.Parse(line, &command, &error)) {
      case ReplayParser::Outcome::kBlank:
        continue;
      case ReplayParser::Outcome::kMalformed:
        ++stats.malformed;
        errors << "line " << stats.lines << ": " << error << "\n";
        continue;
      case ReplayParser::Outcome::kCommand:
        break;
    }
    ++stats.commands;
    events.clear();
    const bool new_order = command.op == engine::CommandOp::kNew;
    if (new_order && parser.IdUsedBefore(command.order.id)) {
      // Ids are unique across the file: an id stays taken whether its order still rests,
      // finished earlier, or expires at this very command's time (the time is applied first,
      // so the expiry is reported before the rejection).
      book.AdvanceTime(command.time, &events);
      engine::Event rejected;
      rejected.type = engine::EventType::kRejected;
      rejected.command = engine::CommandKind::kNew;
      rejected.reject = engine::RejectReason::kDuplicateId;
      rejected.id = command.order.id;
      events.push_back(rejected);
    } else {
      engine::Apply(book, command, &events);
    }
    for (const engine::Event& event : events) {
      if (event.type == engine::EventType::kTrade) ++stats.trades;
      if (new_order && event.type == engine::EventType::kAccepted) {
        parser.MarkIdUsed(event.id);
      }
      AppendEventJson(event, &buffer);
    }
    if (buffer.size() >= kFlushBytes) {
      out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      buffer.clear();
    }
  }
  out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  out.flush();
  return stats;
}

}  // namespace ocx::cli
