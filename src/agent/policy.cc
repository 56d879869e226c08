#include "src/agent/policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <utility>

#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/base/status.h"
#include "src/base/strings.h"
#include "src/base/toml_report.h"
#include "src/base/unique_fd.h"
#include "src/base/utf8.h"

namespace ocx::agent {
namespace {

// Error reporting: the same wording as the exchange's config (src/base/toml_report.h).
using base::AtSource;
using base::FormatShortestDouble;

std::string Quoted(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

// The file being parsed: turns messages into located InvalidArgument errors.
class Source {
 public:
  explicit Source(std::string_view name) : name_(name) {}

  absl::Status Error(const toml::source_region& region, std::string_view message) const {
    return absl::InvalidArgumentError(AtSource(region, name_, message));
  }
  absl::Status Error(const toml::node& node, std::string_view message) const {
    return Error(node.source(), message);
  }
  absl::Status WrongType(const toml::node& node, const std::string& name,
                         std::string_view want) const {
    return Error(node, name + " must be " + std::string(want) + ", not " +
                           std::string(base::TomlTypeName(node)));
  }
  absl::Status UnknownKey(const toml::key& key, const std::string& name) const {
    return Error(key.source(), "unknown key " + name);
  }

 private:
  std::string_view name_;
};

absl::StatusOr<const toml::table*> TableOf(const Source& source, const toml::node& node,
                                           const std::string& name) {
  const toml::table* table = node.as_table();
  if (table == nullptr) return source.WrongType(node, name, "a table");
  return table;
}

absl::Status ReadString(const Source& source, const toml::node& node, const std::string& name,
                        std::string* out) {
  const toml::value<std::string>* value = node.as_string();
  if (value == nullptr) return source.WrongType(node, name, "a string");
  *out = value->get();
  return absl::OkStatus();
}

absl::Status ReadBool(const Source& source, const toml::node& node, const std::string& name,
                      bool* out) {
  const toml::value<bool>* value = node.as_boolean();
  if (value == nullptr) return source.WrongType(node, name, "a boolean");
  *out = value->get();
  return absl::OkStatus();
}

absl::Status ReadSeconds(const Source& source, const toml::node& node, const std::string& name,
                         int32_t* out) {
  const toml::value<int64_t>* value = node.as_integer();
  if (value == nullptr) return source.WrongType(node, name, "an integer");
  const int64_t v = value->get();
  if (v < 0 || v > kSustainMaxSeconds) {
    return source.Error(node, name + " must be in 0.." + std::to_string(kSustainMaxSeconds) +
                                  ", not " + std::to_string(v));
  }
  *out = static_cast<int32_t>(v);
  return absl::OkStatus();
}

// A number (TOML float or integer, so that `cores = 1` works) in [0, 1] or (0, 1].
absl::Status ReadFraction(const Source& source, const toml::node& node, const std::string& name,
                          bool zero_allowed, double* out) {
  double v = 0;
  if (const toml::value<double>* value = node.as_floating_point()) {
    v = value->get();
  } else if (const toml::value<int64_t>* value = node.as_integer()) {
    v = static_cast<double>(value->get());
  } else {
    return source.WrongType(node, name, "a number");
  }
  const bool ok = std::isfinite(v) && v <= 1 && (zero_allowed ? v >= 0 : v > 0);
  if (!ok) {
    return source.Error(node, name + " must be a fraction in " +
                                  (zero_allowed ? "[0, 1]" : "(0, 1]") + ", not " +
                                  FormatShortestDouble(v));
  }
  *out = v;
  return absl::OkStatus();
}

// A share in micro-units, at least one micro (0.0000004 would round to nothing).
absl::Status ReadShare(const Source& source, const toml::node& node, const std::string& name,
                       int64_t* micros) {
  double v = 0;
  OCX_RETURN_IF_ERROR(ReadFraction(source, node, name, /*zero_allowed=*/false, &v));
  const int64_t rounded = std::llround(v * static_cast<double>(base::kMicrosPerUnit));
  if (rounded < 1) {
    return source.Error(node, name + " must be a fraction in (0, 1], not " +
                                  FormatShortestDouble(v) + " (below 0.000001)");
  }
  *micros = rounded;
  return absl::OkStatus();
}

// A decimal string of credits or a fraction ("0.05") in micro-units, within [min, max].
absl::Status ReadMicros(const Source& source, const toml::node& node, const std::string& name,
                        int64_t min, int64_t max, std::string_view range_text, int64_t* micros) {
  const toml::value<std::string>* value = node.as_string();
  if (value == nullptr) {
    return source.Error(node, name + " must be a decimal string like \"0.05\", not " +
                                  std::string(base::TomlTypeName(node)));
  }
  const std::string& text = value->get();
  const base::ParsedMicros parsed = base::ParseMicros(text);
  switch (parsed.error) {
    case base::DecimalError::kNone:
      break;
    case base::DecimalError::kSyntax:
      return source.Error(node,
                          name + " must be a decimal string like \"0.05\", not " + Quoted(text));
    case base::DecimalError::kTooManyDigits:
      return source.Error(node, name + " has more than 6 fractional digits: " + Quoted(text));
    case base::DecimalError::kOutOfRange:
      return source.Error(node,
                          name + " must be " + std::string(range_text) + ", not " + Quoted(text));
  }
  if (parsed.micros < min || parsed.micros > max) {
    return source.Error(node,
                        name + " must be " + std::string(range_text) + ", not " + Quoted(text));
  }
  *micros = parsed.micros;
  return absl::OkStatus();
}

// "cpu", "gpu.h100": dot-separated words of [a-z0-9_-], at most kMachineNameBytesMax bytes.
bool IsMarketName(std::string_view name) {
  if (name.empty() || name.size() > kMachineNameBytesMax) return false;
  bool word_empty = true;
  for (const char c : name) {
    if (c == '.') {
      if (word_empty) return false;
      word_empty = true;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
    word_empty = false;
  }
  return !word_empty;
}

// Machine names and regions: [A-Za-z0-9._-] (regions lower case), 1..kMachineNameBytesMax.
bool IsPlainName(std::string_view name, bool lower_only) {
  if (name.empty() || name.size() > kMachineNameBytesMax) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (!lower_only && c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Label keys: [a-z][a-z0-9_]*, so that they can never collide with the measured, dotted
// attributes (cpu.cores, gpu.model, ...).
bool IsLabelKey(std::string_view key) {
  if (key.empty() || key.size() > kLabelKeyBytesMax) return false;
  if (key[0] < 'a' || key[0] > 'z') return false;
  for (const char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Attributes the agent or the exchange set; a label may not pretend to be one of them.
constexpr std::string_view kReservedLabelKeys[] = {"arch",       "machine", "name",   "network",
                                                   "os",         "region",  "market", "markets",
                                                   "reputation", "provider"};

// ---- Tables ---------------------------------------------------------------------------------

absl::Status ParseShareTable(const Source& source, const toml::table& table, SharePolicy* share) {
  for (const auto& [key, node] : table) {
    const std::string name = "share." + std::string(key.str());
    if (key.str() == "cores") {
      OCX_RETURN_IF_ERROR(ReadShare(source, node, name, &share->cores_micros));
    } else if (key.str() == "memory") {
      OCX_RETURN_IF_ERROR(ReadShare(source, node, name, &share->mem_micros));
    } else if (key.str() == "disk") {
      OCX_RETURN_IF_ERROR(ReadShare(source, node, name, &share->disk_micros));
    } else {
      return source.UnknownKey(key, name);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseWindows(const Source& source, const toml::node& node,
                          std::vector<AvailabilityWindow>* windows) {
  const std::string name = "availability.windows";
  const toml::array* array = node.as_array();
  if (array == nullptr) return source.WrongType(node, name, "an array of strings");
  if (array->empty()) {
    return source.Error(node, name +
                                  " must list at least one window (leave it out to be always "
                                  "available)");
  }
  if (array->size() > kAvailabilityWindowsMax) {
    return source.Error(
        node, name + " has more than " + std::to_string(kAvailabilityWindowsMax) + " windows");
  }
  windows->clear();
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string element_name = name + "[" + std::to_string(i) + "]";
    std::string text;
    OCX_RETURN_IF_ERROR(ReadString(source, element, element_name, &text));
    const absl::StatusOr<AvailabilityWindow> window = ParseAvailabilityWindow(text);
    if (!window.ok()) {
      return source.Error(element, element_name + " " + Quoted(text) + ": " +
                                       std::string(window.status().message()));
    }
    windows->push_back(*window);
  }
  return absl::OkStatus();
}

absl::Status ParseAvailabilityTable(const Source& source, const toml::table& table,
                                    OwnerPolicy* policy) {
  for (const auto& [key, node] : table) {
    const std::string name = "availability." + std::string(key.str());
    if (key.str() == "timezone") {
      std::string zone;
      OCX_RETURN_IF_ERROR(ReadString(source, node, name, &zone));
      if (zone == "local") {
        policy->utc = false;
      } else if (zone == "utc") {
        policy->utc = true;
      } else {
        return source.Error(node, name + " must be \"local\" or \"utc\", not " + Quoted(zone));
      }
    } else if (key.str() == "windows") {
      OCX_RETURN_IF_ERROR(ParseWindows(source, node, &policy->windows));
    } else {
      return source.UnknownKey(key, name);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseLoadTable(const Source& source, const toml::table& table, LoadPolicy* load) {
  const toml::node* resume_below_node = nullptr;
  bool resume_sustain_given = false;
  for (const auto& [key, node] : table) {
    const std::string name = "load." + std::string(key.str());
    if (key.str() == "pause_above") {
      double v = 0;
      OCX_RETURN_IF_ERROR(ReadFraction(source, node, name, /*zero_allowed=*/false, &v));
      load->pause_above = v;
    } else if (key.str() == "resume_below") {
      OCX_RETURN_IF_ERROR(
          ReadFraction(source, node, name, /*zero_allowed=*/true, &load->resume_below));
      resume_below_node = &node;
    } else if (key.str() == "sustain_s") {
      OCX_RETURN_IF_ERROR(ReadSeconds(source, node, name, &load->sustain_s));
    } else if (key.str() == "resume_sustain_s") {
      OCX_RETURN_IF_ERROR(ReadSeconds(source, node, name, &load->resume_sustain_s));
      resume_sustain_given = true;
    } else if (key.str() == "on_pause") {
      std::string action;
      OCX_RETURN_IF_ERROR(ReadString(source, node, name, &action));
      if (action == "reclaim") {
        load->on_pause = PauseAction::kReclaim;
      } else if (action == "drain") {
        load->on_pause = PauseAction::kDrain;
      } else {
        return source.Error(node,
                            name + " must be \"reclaim\" or \"drain\", not " + Quoted(action));
      }
    } else {
      return source.UnknownKey(key, name);
    }
  }
  if (!resume_sustain_given) load->resume_sustain_s = load->sustain_s;
  if (!load->pause_above.has_value()) return absl::OkStatus();
  if (resume_below_node == nullptr) {
    load->resume_below = *load->pause_above / 2;
  } else if (load->resume_below >= *load->pause_above) {
    return source.Error(*resume_below_node, "load.resume_below must be below load.pause_above (" +
                                                FormatShortestDouble(*load->pause_above) +
                                                "), not " +
                                                FormatShortestDouble(load->resume_below));
  }
  return absl::OkStatus();
}

// One pricing rule: [pricing] (markets == true: it may hold the per-market tables, read by
// the caller) or [pricing.markets."<market>"]. `prefix` is the table's name for messages.
// Sets *any_key when the table sets a rule key at all.
absl::Status ParseRuleTable(const Source& source, const toml::table& table,
                            const std::string& prefix, bool markets_allowed, PricingRule* rule,
                            bool* any_key) {
  const std::string range = "in 0.." + base::FormatMicros(kPolicyPriceMaxMicros);
  const toml::node* rule_node = nullptr;
  const toml::node* price_node = nullptr;
  const toml::node* margin_node = nullptr;
  const toml::node* min_price_node = nullptr;
  PricingRule parsed;
  parsed.price_micros = 0;
  for (const auto& [key, node] : table) {
    const std::string name = prefix + "." + std::string(key.str());
    if (key.str() == "rule") {
      std::string kind;
      OCX_RETURN_IF_ERROR(ReadString(source, node, name, &kind));
      if (kind == "fixed") {
        parsed.kind = PricingRule::Kind::kFixed;
      } else if (kind == "spot_margin") {
        parsed.kind = PricingRule::Kind::kSpotMargin;
      } else {
        return source.Error(node,
                            name + " must be \"fixed\" or \"spot_margin\", not " + Quoted(kind));
      }
      rule_node = &node;
    } else if (key.str() == "price") {
      OCX_RETURN_IF_ERROR(
          ReadMicros(source, node, name, 1, kPolicyPriceMaxMicros,
                     "positive and at most " + base::FormatMicros(kPolicyPriceMaxMicros),
                     &parsed.price_micros));
      price_node = &node;
    } else if (key.str() == "margin") {
      OCX_RETURN_IF_ERROR(ReadMicros(source, node, name, kMarginMinMicros + 1, kMarginMaxMicros,
                                     "above -1 and at most " + base::FormatMicros(kMarginMaxMicros),
                                     &parsed.margin_micros));
      margin_node = &node;
    } else if (key.str() == "min_price") {
      OCX_RETURN_IF_ERROR(ReadMicros(source, node, name, 0, kPolicyPriceMaxMicros, range,
                                     &parsed.min_price_micros));
      min_price_node = &node;
    } else if (markets_allowed && key.str() == "markets") {
      continue;  // The caller reads the per-market tables.
    } else {
      return source.UnknownKey(key, name);
    }
  }
  *any_key = rule_node != nullptr || price_node != nullptr || margin_node != nullptr ||
             min_price_node != nullptr;
  if (!*any_key) return absl::OkStatus();
  if (parsed.kind == PricingRule::Kind::kFixed) {
    if (price_node == nullptr) {
      const toml::source_region& where =
          rule_node != nullptr ? rule_node->source() : table.source();
      return source.Error(where, prefix + ".price is required with rule \"fixed\"" +
                                     (rule_node == nullptr ? " (the default rule)" : ""));
    }
    if (margin_node != nullptr) {
      return source.Error(*margin_node,
                          prefix + ".margin applies only to rule \"spot_margin\", not \"fixed\"");
    }
    if (min_price_node != nullptr && parsed.min_price_micros > parsed.price_micros) {
      return source.Error(*min_price_node, prefix + ".min_price (" +
                                               base::FormatMicros(parsed.min_price_micros) +
                                               ") is above " + prefix + ".price (" +
                                               base::FormatMicros(parsed.price_micros) + ")");
    }
  }
  *rule = parsed;
  return absl::OkStatus();
}

absl::Status ParsePricingTable(const Source& source, const toml::table& table, OwnerPolicy* policy,
                               std::map<std::string, const toml::key*>* market_keys) {
  bool any_key = false;
  OCX_RETURN_IF_ERROR(ParseRuleTable(source, table, "pricing", /*markets_allowed=*/true,
                                     &policy->pricing, &any_key));
  const toml::node* markets_node = table.get("markets");
  if (markets_node == nullptr) return absl::OkStatus();
  OCX_ASSIGN_OR_RETURN(const toml::table* markets,
                       TableOf(source, *markets_node, "pricing.markets"));
  if (markets->size() > kPolicyMarketsMax) {
    return source.Error(*markets_node, "pricing.markets has more than " +
                                           std::to_string(kPolicyMarketsMax) + " markets");
  }
  for (const auto& [key, node] : *markets) {
    const std::string market(key.str());
    const std::string name = "pricing.markets." + Quoted(market);
    if (!IsMarketName(market)) {
      return source.Error(key.source(),
                          name + " is not a market name (like \"cpu\" or \"gpu.h100\")");
    }
    OCX_ASSIGN_OR_RETURN(const toml::table* rule_table, TableOf(source, node, name));
    PricingRule rule;
    bool rule_any_key = false;
    OCX_RETURN_IF_ERROR(
        ParseRuleTable(source, *rule_table, name, /*markets_allowed=*/false, &rule, &rule_any_key));
    if (!rule_any_key) {
      return source.Error(node, name + " sets nothing: give at least its rule and price");
    }
    policy->market_pricing[market] = rule;
    (*market_keys)[market] = &key;
  }
  return absl::OkStatus();
}

absl::Status ParseLabels(const Source& source, const toml::node& node,
                         std::map<std::string, std::string>* labels) {
  OCX_ASSIGN_OR_RETURN(const toml::table* table, TableOf(source, node, "machine.labels"));
  if (table->size() > kLabelsMax) {
    return source.Error(node,
                        "machine.labels has more than " + std::to_string(kLabelsMax) + " labels");
  }
  labels->clear();
  for (const auto& [key, value_node] : *table) {
    const std::string label(key.str());
    const std::string name = "machine.labels." + label;
    if (!IsLabelKey(label)) {
      return source.Error(key.source(),
                          name +
                              " is not a label name: lower-case letters, digits and _, "
                              "starting with a letter, at most " +
                              std::to_string(kLabelKeyBytesMax) + " bytes");
    }
    for (const std::string_view reserved : kReservedLabelKeys) {
      if (label == reserved) {
        return source.Error(key.source(), name +
                                              " is reserved for the attribute the agent or "
                                              "the exchange sets");
      }
    }
    std::string value;
    OCX_RETURN_IF_ERROR(ReadString(source, value_node, name, &value));
    if (value.size() > kLabelValueBytesMax || base::HasControlCharacter(value)) {
      return source.Error(value_node, name + " must be at most " +
                                          std::to_string(kLabelValueBytesMax) +
                                          " bytes without control characters");
    }
    (*labels)[label] = std::move(value);
  }
  return absl::OkStatus();
}

absl::Status ParseMarketList(const Source& source, const toml::node& node,
                             std::vector<std::string>* markets) {
  const std::string name = "machine.markets";
  const toml::array* array = node.as_array();
  if (array == nullptr) return source.WrongType(node, name, "an array of strings");
  if (array->empty()) {
    return source.Error(node, name +
                                  " must name at least one market (leave it out to offer every "
                                  "market the machine qualifies for)");
  }
  if (array->size() > kPolicyMarketsMax) {
    return source.Error(node,
                        name + " has more than " + std::to_string(kPolicyMarketsMax) + " markets");
  }
  markets->clear();
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string element_name = name + "[" + std::to_string(i) + "]";
    std::string market;
    OCX_RETURN_IF_ERROR(ReadString(source, element, element_name, &market));
    if (!IsMarketName(market)) {
      return source.Error(element, element_name + " " + Quoted(market) +
                                       " is not a market name (like \"cpu\" or \"gpu.h100\")");
    }
    if (std::find(markets->begin(), markets->end(), market) != markets->end()) {
      return source.Error(element, element_name + " " + Quoted(market) + " is listed twice");
    }
    markets->push_back(std::move(market));
  }
  return absl::OkStatus();
}

absl::Status ParseMachineTable(const Source& source, const toml::table& table,
                               OwnerPolicy* policy) {
  for (const auto& [key, node] : table) {
    const std::string name = "machine." + std::string(key.str());
    if (key.str() == "name") {
      OCX_RETURN_IF_ERROR(ReadString(source, node, name, &policy->name));
      if (!IsPlainName(policy->name, /*lower_only=*/false)) {
        return source.Error(node, name + " must be 1.." + std::to_string(kMachineNameBytesMax) +
                                      " letters, digits, '.', '_' or '-', not " +
                                      Quoted(policy->name));
      }
    } else if (key.str() == "region") {
      OCX_RETURN_IF_ERROR(ReadString(source, node, name, &policy->region));
      if (!IsPlainName(policy->region, /*lower_only=*/true)) {
        return source.Error(node, name + " must be 1.." + std::to_string(kMachineNameBytesMax) +
                                      " lower-case letters, digits, '.', '_' or '-', not " +
                                      Quoted(policy->region));
      }
    } else if (key.str() == "labels") {
      OCX_RETURN_IF_ERROR(ParseLabels(source, node, &policy->labels));
    } else if (key.str() == "network") {
      OCX_RETURN_IF_ERROR(ReadBool(source, node, name, &policy->network));
    } else if (key.str() == "markets") {
      OCX_RETURN_IF_ERROR(ParseMarketList(source, node, &policy->markets));
    } else {
      return source.UnknownKey(key, name);
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyRoot(const Source& source, const toml::table& root, OwnerPolicy* policy) {
  std::map<std::string, const toml::key*> priced_markets;
  // toml::table iterates in key order, so the first error reported does not vary.
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    if (name != "share" && name != "availability" && name != "load" && name != "pricing" &&
        name != "machine") {
      return source.UnknownKey(key, name);
    }
    OCX_ASSIGN_OR_RETURN(const toml::table* table, TableOf(source, node, name));
    if (name == "share") {
      OCX_RETURN_IF_ERROR(ParseShareTable(source, *table, &policy->share));
    } else if (name == "availability") {
      OCX_RETURN_IF_ERROR(ParseAvailabilityTable(source, *table, policy));
    } else if (name == "load") {
      OCX_RETURN_IF_ERROR(ParseLoadTable(source, *table, &policy->load));
    } else if (name == "pricing") {
      OCX_RETURN_IF_ERROR(ParsePricingTable(source, *table, policy, &priced_markets));
    } else {
      OCX_RETURN_IF_ERROR(ParseMachineTable(source, *table, policy));
    }
  }
  // A price for a market the owner does not sell in is a typo or a stale table.
  if (!policy->markets.empty()) {
    for (const auto& [market, key] : priced_markets) {
      if (!OffersMarket(*policy, market)) {
        return source.Error(key->source(), "pricing.markets." + Quoted(market) +
                                               " prices a market that machine.markets leaves "
                                               "out");
      }
    }
  }
  return absl::OkStatus();
}

// ---- Time -----------------------------------------------------------------------------------

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// The wall-clock position in the week of one instant.
struct WallTime {
  int minute_of_week = 0;  // Monday 00:00 is 0.
  int second = 0;          // 0..59 within the minute.
  int64_t utc_offset_s = 0;
};

WallTime ToWallTime(bool utc, int64_t unix_seconds) {
  if (!utc) {
    const time_t t = static_cast<time_t>(unix_seconds);
    struct tm local;
    if (::localtime_r(&t, &local) != nullptr) {
      const int day = (local.tm_wday + 6) % 7;  // tm_wday counts from Sunday.
      return {day * kMinutesPerDay + local.tm_hour * 60 + local.tm_min,
              std::min(local.tm_sec, 59),  // 60 only in zones with leap seconds.
              static_cast<int64_t>(local.tm_gmtoff)};
    }
    // Out of the C library's range (years beyond int): take UTC rather than fail.
  }
  const int64_t days = FloorDiv(unix_seconds, 86'400);
  const int64_t second_of_day = unix_seconds - days * 86'400;
  const int day = static_cast<int>(FloorMod(days + 3, 7));  // 1970-01-01 was a Thursday.
  return {day * kMinutesPerDay + static_cast<int>(second_of_day / 60),
          static_cast<int>(second_of_day % 60), 0};
}

// The window's length in minutes; asserts AvailabilityWindow's invariants (a hand-built
// policy could break them).
int WindowMinutes(const AvailabilityWindow& window) {
  OCX_ASSERT(window.days_mask >= 1 && window.days_mask <= kEveryDay);
  OCX_ASSERT(window.start_minute >= 0 && window.start_minute < kMinutesPerDay);
  OCX_ASSERT(window.end_minute >= 0 && window.end_minute <= kMinutesPerDay);
  OCX_ASSERT(window.end_minute != window.start_minute);
  return window.end_minute > window.start_minute
             ? window.end_minute - window.start_minute
             : window.end_minute + kMinutesPerDay - window.start_minute;
}

bool InWindows(const std::vector<AvailabilityWindow>& windows, int minute_of_week) {
  for (const AvailabilityWindow& window : windows) {
    const int length = WindowMinutes(window);
    for (int day = 0; day < 7; ++day) {
      if ((window.days_mask & (1 << day)) == 0) continue;
      const int start = day * kMinutesPerDay + window.start_minute;
      const int into = static_cast<int>(FloorMod(minute_of_week - start, kMinutesPerWeek));
      if (into < length) return true;
    }
  }
  return false;
}

using WeekMinutes = std::bitset<kMinutesPerWeek>;

WeekMinutes ToWeekMinutes(const std::vector<AvailabilityWindow>& windows) {
  WeekMinutes bits;
  for (const AvailabilityWindow& window : windows) {
    const int length = WindowMinutes(window);
    for (int day = 0; day < 7; ++day) {
      if ((window.days_mask & (1 << day)) == 0) continue;
      const int start = day * kMinutesPerDay + window.start_minute;
      for (int i = 0; i < length; ++i) bits.set((start + i) % kMinutesPerWeek);
    }
  }
  return bits;
}

// ---- Window text ----------------------------------------------------------------------------

constexpr std::string_view kDayNames[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::optional<int> DayIndex(std::string_view text) {
  const std::string lower = base::AsciiLower(text);
  for (int i = 0; i < 7; ++i) {
    if (lower == kDayNames[i]) return i;
  }
  return std::nullopt;
}

absl::StatusOr<uint8_t> ParseDays(std::string_view text) {
  if (base::AsciiLower(text) == "daily") {
    return kEveryDay;
  }
  uint8_t mask = 0;
  size_t pos = 0;
  while (true) {
    const size_t comma = text.find(',', pos);
    const std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (item.empty()) {
      return absl::InvalidArgumentError("empty day in " + Quoted(text));
    }
    const size_t dash = item.find('-');
    const std::string_view first = item.substr(0, dash);
    const std::string_view last = dash == std::string_view::npos ? first : item.substr(dash + 1);
    for (const std::string_view day : {first, last}) {
      if (!DayIndex(day).has_value()) {
        return absl::InvalidArgumentError(
            Quoted(day) + " is not a day: write mon, tue, wed, thu, fri, sat or sun");
      }
    }
    // A range runs forward through the week and may wrap: fri-mon is fri, sat, sun, mon.
    int day = *DayIndex(first);
    const int end = *DayIndex(last);
    while (true) {
      mask |= static_cast<uint8_t>(1 << day);
      if (day == end) break;
      day = (day + 1) % 7;
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return mask;
}

// "HH:MM" in minutes of the day: 00:00..23:59, and 24:00 when `end`.
std::optional<int> ParseTimeOfDay(std::string_view text, bool end) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  for (const int i : {0, 1, 3, 4}) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  }
  const int hours = (text[0] - '0') * 10 + (text[1] - '0');
  const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (minutes > 59) return std::nullopt;
  if (hours < 24) return hours * 60 + minutes;
  if (end && hours == 24 && minutes == 0) return kMinutesPerDay;
  return std::nullopt;
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

}  // namespace

// ---- Public: availability -------------------------------------------------------------------

absl::StatusOr<AvailabilityWindow> ParseAvailabilityWindow(std::string_view text) {
  const std::string_view usage = "write [DAYS ]HH:MM-HH:MM, like \"mon-fri 22:00-07:00\"";
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  const std::string_view trimmed = text.substr(begin, end - begin);
  size_t split = 0;
  while (split < trimmed.size() && !IsSpace(trimmed[split])) ++split;
  std::string_view days_text;
  std::string_view times_text = trimmed;
  if (split < trimmed.size()) {
    days_text = trimmed.substr(0, split);
    size_t rest = split;
    while (rest < trimmed.size() && IsSpace(trimmed[rest])) ++rest;
    times_text = trimmed.substr(rest);
    for (const char c : times_text) {
      if (IsSpace(c)) return absl::InvalidArgumentError("not a window: " + std::string(usage));
    }
  }
  AvailabilityWindow window;
  if (!days_text.empty()) {
    OCX_ASSIGN_OR_RETURN(window.days_mask, ParseDays(days_text));
  }
  const size_t dash = times_text.find('-');
  if (dash == std::string_view::npos) {
    return absl::InvalidArgumentError("not a window: " + std::string(usage));
  }
  const std::string_view start_text = times_text.substr(0, dash);
  const std::string_view end_text = times_text.substr(dash + 1);
  const std::optional<int> start = ParseTimeOfDay(start_text, /*end=*/false);
  if (!start.has_value()) {
    return absl::InvalidArgumentError(Quoted(start_text) +
                                      " is not a start time: write HH:MM from 00:00 to 23:59");
  }
  const std::optional<int> finish = ParseTimeOfDay(end_text, /*end=*/true);
  if (!finish.has_value()) {
    return absl::InvalidArgumentError(Quoted(end_text) +
                                      " is not an end time: write HH:MM from 00:01 to 24:00");
  }
  if (*finish == *start) {
    return absl::InvalidArgumentError(
        "starts and ends at the same time; write 00:00-24:00 for a whole day");
  }
  window.start_minute = *start;
  window.end_minute = *finish;
  return window;
}

bool IsAvailable(const OwnerPolicy& policy, int64_t unix_seconds) {
  if (policy.windows.empty()) return true;
  return InWindows(policy.windows, ToWallTime(policy.utc, unix_seconds).minute_of_week);
}

std::optional<int64_t> SecondsUntilAvailabilityChanges(const OwnerPolicy& policy,
                                                       int64_t unix_seconds) {
  if (policy.windows.empty()) return std::nullopt;
  const WeekMinutes week = ToWeekMinutes(policy.windows);
  if (week.all() || week.none()) return std::nullopt;
  const bool now_available = week[ToWallTime(policy.utc, unix_seconds).minute_of_week];
  // Walk wall-clock time to the next minute of the week whose state differs. Local time can
  // jump (daylight saving): when the UTC offset differs between here and that candidate, go
  // to the instant of the jump first (binary search) and look again from there. Real zones
  // change offset at most twice a year, so two or three steps suffice; the bound is a guard.
  constexpr int kStepsMax = 8;
  int64_t cursor = unix_seconds;
  for (int step = 0; step < kStepsMax; ++step) {
    const WallTime wall = ToWallTime(policy.utc, cursor);
    if (week[wall.minute_of_week] != now_available) return cursor - unix_seconds;
    int minutes = 1;
    while (week[(wall.minute_of_week + minutes) % kMinutesPerWeek] == now_available) ++minutes;
    const int64_t candidate = cursor + int64_t{minutes} * 60 - wall.second;
    if (ToWallTime(policy.utc, candidate).utc_offset_s == wall.utc_offset_s) {
      return candidate - unix_seconds;
    }
    int64_t low = cursor;      // Same offset as wall.
    int64_t high = candidate;  // Another offset.
    while (high - low > 1) {
      const int64_t middle = low + (high - low) / 2;
      if (ToWallTime(policy.utc, middle).utc_offset_s == wall.utc_offset_s) {
        low = middle;
      } else {
        high = middle;
      }
    }
    cursor = high;
  }
  // Not reached in any real time zone; the agent asks again at the last offset change.
  OCX_ASSERT(cursor > unix_seconds);
  return cursor - unix_seconds;
}

// ---- Public: policy -------------------------------------------------------------------------

OwnerPolicy DefaultOwnerPolicy() { return OwnerPolicy{}; }

absl::StatusOr<OwnerPolicy> ParseOwnerPolicy(std::string_view toml_text,
                                             std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(
        AtSource(error.source(), source_name, std::string(error.description())));
  }
  OwnerPolicy policy = DefaultOwnerPolicy();
  OCX_RETURN_IF_ERROR(ApplyRoot(Source(source_name), root, &policy));
  return policy;
}

absl::StatusOr<OwnerPolicy> LoadOwnerPolicy(const std::string& path) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "open " + path);
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return absl::ErrnoToStatus(errno, "fstat " + path);
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(path + " is not a regular file");
  }
  if (static_cast<uint64_t>(info.st_size) > kOwnerPolicyFileBytesMax) {
    return absl::InvalidArgumentError(path + " is larger than " +
                                      std::to_string(kOwnerPolicyFileBytesMax) +
                                      " bytes: not a policy file");
  }
  std::string text(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "read " + path);
    if (n == 0) break;  // Shrank while we read: parse what is there.
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return ParseOwnerPolicy(text, path);
}

const PricingRule& PricingFor(const OwnerPolicy& policy, std::string_view market) {
  const auto it = policy.market_pricing.find(std::string(market));
  return it == policy.market_pricing.end() ? policy.pricing : it->second;
}

bool OffersMarket(const OwnerPolicy& policy, std::string_view market) {
  return policy.markets.empty() ||
         std::find(policy.markets.begin(), policy.markets.end(), market) != policy.markets.end();
}

std::optional<int64_t> AskPriceMicros(const PricingRule& rule, std::optional<int64_t> spot_micros,
                                      int64_t tick_micros) {
  OCX_ASSERT(tick_micros > 0 && tick_micros <= kPolicyPriceMaxMicros);
  OCX_ASSERT(rule.margin_micros > kMarginMinMicros);
  OCX_ASSERT(rule.price_micros >= 0 && rule.min_price_micros >= 0);
  __int128 ask = 0;
  if (rule.kind == PricingRule::Kind::kFixed) {
    ask = rule.price_micros;
  } else if (spot_micros.has_value() && *spot_micros > 0) {
    // ceil(spot * (1'000'000 + margin) / 1'000'000); both factors positive.
    const __int128 scaled =
        static_cast<__int128>(*spot_micros) * (base::kMicrosPerUnit + rule.margin_micros);
    ask = (scaled + base::kMicrosPerUnit - 1) / base::kMicrosPerUnit;
  } else if (rule.price_micros > 0) {
    ask = rule.price_micros;
  } else {
    return std::nullopt;
  }
  ask = std::max<__int128>(ask, rule.min_price_micros);
  ask = (ask + tick_micros - 1) / tick_micros * tick_micros;  // Up to the tick.
  ask = std::max<__int128>(ask, tick_micros);                 // A price is positive.
  const int64_t cap = kPolicyPriceMaxMicros / tick_micros * tick_micros;
  return static_cast<int64_t>(std::min<__int128>(ask, cap));
}

// ---- Public: owner load ---------------------------------------------------------------------

absl::StatusOr<CpuSample> ParseCpuSample(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() < 4 || !line.starts_with("cpu") || !IsSpace(line[3])) continue;
    // user nice system idle iowait irq softirq steal guest guest_nice
    constexpr size_t kFieldsMax = 10;
    uint64_t fields[kFieldsMax] = {};
    size_t count = 0;
    size_t i = 3;
    while (true) {
      while (i < line.size() && IsSpace(line[i])) ++i;
      if (i >= line.size()) break;
      size_t word_end = i;
      while (word_end < line.size() && !IsSpace(line[word_end])) ++word_end;
      const std::string_view word = line.substr(i, word_end - i);
      i = word_end;
      if (count == kFieldsMax) break;  // Fields a future kernel adds.
      uint64_t value = 0;
      const std::from_chars_result result =
          std::from_chars(word.data(), word.data() + word.size(), value);
      if (result.ec != std::errc() || result.ptr != word.data() + word.size()) {
        return absl::InvalidArgumentError("/proc/stat: field " + std::to_string(count + 1) +
                                          " of the cpu line is not a number: " + Quoted(word));
      }
      fields[count++] = value;
    }
    if (count < 4) {
      return absl::InvalidArgumentError("/proc/stat: the cpu line has " + std::to_string(count) +
                                        " fields, fewer than 4");
    }
    uint64_t total = 0;
    for (size_t f = 0; f < std::min<size_t>(count, 8); ++f) {
      if (__builtin_add_overflow(total, fields[f], &total)) {
        return absl::InvalidArgumentError("/proc/stat: the cpu line's sum overflows");
      }
    }
    const uint64_t idle = fields[3] + fields[4];  // fields[4] is 0 when absent.
    if (idle < fields[3] || idle > total) {
      return absl::InvalidArgumentError("/proc/stat: the cpu line's idle time overflows");
    }
    return CpuSample{.busy = total - idle, .total = total};
  }
  return absl::InvalidArgumentError("/proc/stat: no \"cpu\" line");
}

absl::StatusOr<CpuSample> ReadCpuSample(const std::string& proc_stat) {
  constexpr size_t kReadBytes = 4096;  // The aggregate cpu line is the first, well inside.
  base::UniqueFd fd(::open(proc_stat.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "open " + proc_stat);
  std::string text(kReadBytes, '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "read " + proc_stat);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return ParseCpuSample(text);
}

std::optional<double> OwnerBusyFraction(const CpuSample& before, const CpuSample& after,
                                        int64_t jobs_cpu_us, int64_t ticks_per_s) {
  OCX_ASSERT(ticks_per_s > 0);
  if (after.total <= before.total || after.busy < before.busy) return std::nullopt;
  const double total = static_cast<double>(after.total - before.total);
  const double busy = std::min(static_cast<double>(after.busy - before.busy), total);
  const double jobs = static_cast<double>(std::max<int64_t>(jobs_cpu_us, 0)) *
                      static_cast<double>(ticks_per_s) / 1e6;
  return std::clamp((busy - jobs) / total, 0.0, 1.0);
}

LoadGovernor::LoadGovernor(const LoadPolicy& policy) : policy_(policy) {
  if (policy_.pause_above.has_value()) {
    OCX_ASSERT(*policy_.pause_above > 0 && *policy_.pause_above <= 1);
    OCX_ASSERT(policy_.resume_below >= 0 && policy_.resume_below < *policy_.pause_above);
  }
  OCX_ASSERT(policy_.sustain_s >= 0 && policy_.sustain_s <= kSustainMaxSeconds);
  OCX_ASSERT(policy_.resume_sustain_s >= 0 && policy_.resume_sustain_s <= kSustainMaxSeconds);
}

bool LoadGovernor::Observe(int64_t now_ms, double owner_busy_fraction) {
  OCX_ASSERT(owner_busy_fraction >= 0 && owner_busy_fraction <= 1);  // Also refuses NaN.
  OCX_ASSERT_MSG(!last_ms_.has_value() || now_ms >= *last_ms_, "time went backwards");
  last_ms_ = now_ms;
  if (!policy_.pause_above.has_value()) return paused_;
  const bool switching = paused_ ? owner_busy_fraction < policy_.resume_below
                                 : owner_busy_fraction > *policy_.pause_above;
  if (!switching) {
    switching_since_ms_.reset();
    return paused_;
  }
  if (!switching_since_ms_.has_value()) switching_since_ms_ = now_ms;
  const int64_t sustain_ms = int64_t{paused_ ? policy_.resume_sustain_s : policy_.sustain_s} * 1000;
  if (now_ms - *switching_since_ms_ >= sustain_ms) {
    paused_ = !paused_;
    switching_since_ms_.reset();
  }
  return paused_;
}

// ---- Public: the example ------------------------------------------------------------------

std::string ExampleOwnerPolicyToml() {
  return R"(# ocx provider policy (docs/formats/provider-policy.md): what the owner of this
# machine sells on the exchange, when, and at what price. Every table and key is optional;
# a missing one keeps its default, and an empty file shares the whole machine, always, at
# 0.05 credits per slot-hour. This example: a workstation shared on weeknights and at
# weekends.

[share]
# Fractions of the machine to sell, each in (0, 1]; default 1 (all of it).
cores = 0.5     # of the logical cores (then scaled by the benchmark factor)
memory = 0.5    # of the total RAM
disk = 0.25     # of the free space where jobs' scratch directories live

[availability]
# When capacity is offered. Without this table, or without windows: always.
# "local" (the agent's TZ, daylight saving included) or "utc".
timezone = "local"
# "[DAYS ]HH:MM-HH:MM". DAYS: daily (the default), a day (mon), a range (mon-fri; fri-mon
# wraps round the week) or a comma list of them (mon,wed,fri-sat). The day is the one the
# window starts on: a window that ends at or before its start crosses midnight, so
# "mon-fri 22:00-07:00" also covers Saturday 00:00-07:00. 24:00 ends a day.
windows = ["mon-fri 22:00-07:00", "sat-sun 00:00-24:00"]

[load]
# Step aside while the owner uses the machine. The owner's load is the busy fraction of the
# whole machine (all cores) minus what ocx jobs use. Without pause_above: never pause.
pause_above = 0.6
# Resume once the load is below this; below pause_above; default pause_above / 2.
resume_below = 0.3
# Seconds the load must stay above pause_above before pausing (0..86400; default 30).
sustain_s = 30
# Seconds it must stay below resume_below before resuming (0..86400; default sustain_s).
resume_sustain_s = 300
# On pause: "reclaim" the running leases (their jobs get the 30 s notice), or "drain": stop
# selling and let them run to their end.
on_pause = "reclaim"

[pricing]
# The ask per slot-hour, for every market without a table of its own below. Credits are
# decimal strings, never floats. A table that sets any of these keys is a whole rule:
#   "fixed"       always `price` (required).
#   "spot_margin" the market's spot index * (1 + margin); `price` (optional) while no spot
#                 index is known, and no ask at all without one.
rule = "spot_margin"
# A fraction above -1: "0.10" asks 10% over spot, "-0.05" undercuts it by 5%. Default "0".
margin = "0.10"
price = "0.05"
# Never ask less than this (default "0"). Asks are rounded up to the market's tick.
min_price = "0.02"

# A GPU slot is worth far more than a CPU slot: give each GPU market its own rule. Nothing
# is inherited from [pricing].
[pricing.markets."gpu.h100"]
rule = "fixed"
price = "2.5"
min_price = "2"

[machine]
# The name shown in discovery; default: the hostname.
name = "my-box"
# Region, lower case, for buyers' constraints (region == "eu"); default: none.
region = "eu"
# Attributes of your own that buyers' constraints can test.
labels = { owner = "alice", power = "solar" }
# Whether jobs may reach the network; default false.
network = false
# Markets to sell in; default: every market the machine qualifies for.
markets = ["cpu", "gpu.h100"]
)";
}

}  // namespace ocx::agent
