// Machines: registration by a provider, and the public list, read from the machine directory
// (the view published after each batch; never the sequencer's lock).
#include "src/api/api.h"
#include "src/api/fields.h"
#include "src/base/decimal.h"
#include "src/base/utf8.h"

namespace ocx::api {

Json MachineRecordJson(const core::MachineRecord& m,
                       const std::vector<core::MarketConfig>& markets) {
  Json attributes = Json::object();
  for (const auto& [key, value] : m.attributes) {
    if (!value.is_number) {
      attributes[key] = value.text;
    } else if (value.number_micros % base::kMicrosPerUnit == 0) {
      attributes[key] = value.number_micros / base::kMicrosPerUnit;
    } else {
      // Exact decimal text, read back as a JSON number for people and scripts.
      Json number;
      if (base::ParseJsonStrict(base::FormatMicros(value.number_micros), &number).ok()) {
        attributes[key] = std::move(number);
      }
    }
  }
  Json capacity = Json::object();
  Json offered = Json::object();
  Json leased = Json::object();
  for (size_t i = 0; i < markets.size() && i < m.capacity.size(); ++i) {
    if (m.capacity[i] == 0 && m.offered[i] == 0 && m.leased[i] == 0) continue;
    capacity[markets[i].name] = m.capacity[i];
    offered[markets[i].name] = m.offered[i];
    leased[markets[i].name] = m.leased[i];
  }
  return Json{{"id", m.id},
              {"owner", m.owner},
              {"name", m.name},
              {"online", m.online},
              {"last_heartbeat", m.last_heartbeat},
              {"public_key", m.public_key},
              {"attributes", attributes},
              {"capacity", capacity},
              {"offered", offered},
              {"leased", leased},
              {"active_leases", m.active_leases},
              {"leases_ended", m.leases_ended},
              {"leases_failed", m.leases_failed},
              {"reputation", Money(m.reputation_micros)}};
}

namespace {

constexpr size_t kMachineNameBytesMax = 64;
constexpr size_t kAttributeNameBytesMax = 64;
constexpr size_t kAttributeTextBytesMax = 256;
// The core holds at most this many attributes per machine; refusing more here keeps a huge
// attribute object from being copied into a command at all.
constexpr size_t kAttributesMax = 64;
constexpr size_t kCapacityMarketsMax = 64;

void RegisterMachine(Api& api, const CallPtr& call) {
  HttpResponse error;
  const auto body = ParseJsonBody(call->request, &error);
  if (!body) return call->Respond(std::move(error));
  Fields f(*body);
  core::RegisterMachine c;
  c.actor = call->caller->id;
  c.spec.name = f.Str("name", true, kMachineNameBytesMax);
  c.spec.public_key = f.Str("public_key", true, 64);
  const Json* attributes = f.Object("attributes", false);
  const Json* capacity = f.Object("capacity", true);
  if (!f.Finish()) return call->Respond(f.Error());
  if (base::HasControlCharacter(c.spec.name)) {
    return call->Respond(
        Refuse(Refusal::kInvalidField, "The field 'name' must not hold control characters."));
  }
  if (call->caller->role != core::Role::kProvider) {
    return call->Respond(
        Refuse(Refusal::kForbidden, "Only a provider account may register a machine."));
  }
  if (attributes != nullptr) {
    if (attributes->size() > kAttributesMax) {
      return call->Respond(Refuse(Refusal::kInvalidField, "A machine has at most 64 attributes."));
    }
    for (const auto& [key, value] : attributes->items()) {
      core::AttributeValue attribute;
      if (key.empty() || key.size() > kAttributeNameBytesMax || base::HasControlCharacter(key)) {
        return call->Respond(Refuse(Refusal::kInvalidField,
                                    "Attribute names are 1 to 64 bytes, without control "
                                    "characters."));
      }
      if (value.is_string()) {
        attribute.text = value.get_ref<const std::string&>();
        if (attribute.text.size() > kAttributeTextBytesMax) {
          return call->Respond(
              Refuse(Refusal::kInvalidField, "Attribute values are at most 256 bytes."));
        }
        if (base::HasControlCharacter(attribute.text)) {
          return call->Respond(
              Refuse(Refusal::kInvalidField, "Attribute values must not hold control characters."));
        }
      } else if (value.is_number()) {
        // The number's shortest decimal text, read exactly into micro-units.
        const base::ParsedMicros parsed = base::ParseMicros(base::DumpJson(value));
        if (!parsed.ok()) {
          return call->Respond(
              Refuse(Refusal::kInvalidField,
                     "Attribute '" + key + "' must be a number with at most 6 fractional digits."));
        }
        attribute.is_number = true;
        attribute.number_micros = parsed.micros;
      } else {
        return call->Respond(Refuse(Refusal::kInvalidField,
                                    "Attribute '" + key + "' must be a string or a number."));
      }
      c.spec.attributes[key] = attribute;
    }
  }
  if (capacity->size() > kCapacityMarketsMax) {
    return call->Respond(Refuse(Refusal::kInvalidField, "Capacity names too many markets."));
  }
  for (const auto& [market, slots] : capacity->items()) {
    if (!slots.is_number_integer() ||
        (slots.is_number_unsigned() && slots.get<uint64_t>() > 1'000'000)) {
      return call->Respond(Refuse(Refusal::kInvalidField,
                                  "Capacity is an integer number of slots per market, 0 to "
                                  "1,000,000."));
    }
    c.spec.capacity[market] = slots.get<int64_t>();
  }
  api.Submit(call, c, [](const core::Acked& acked) {
    if (!acked.output.result.accepted) return Refuse(acked.output.result);
    return JsonResponse(201, Json{{"machine", {{"id", acked.output.result.machine}}},
                                  {"sequence", acked.sequence}});
  });
}

void ListMachines(Api& api, const CallPtr& call) {
  uint64_t after = 0;
  size_t limit = 0;
  HttpResponse error;
  if (!PageParams(call->request, &after, &limit, &error)) return call->Respond(std::move(error));
  const auto view = api.deps().machines->Current();
  const auto records = view->After(after, limit);
  Json items = Json::array();
  for (const auto& record : records) {
    items.push_back(MachineRecordJson(*record, api.deps().exchange.markets));
  }
  Json page{{"items", std::move(items)}};
  page["next_after"] = records.size() == limit ? Json(records.back()->id) : Json();
  call->Respond(JsonResponse(200, page));
}

void GetMachine(Api& api, const CallPtr& call) {
  uint64_t id = 0;
  HttpResponse error;
  if (!IdParam(call->params[0], &id, &error)) return call->Respond(std::move(error));
  const auto view = api.deps().machines->Current();
  const core::MachineRecord* record = view->Find(id);
  if (record == nullptr) return call->Respond(Refuse(Refusal::kUnknownMachine));
  call->Respond(JsonResponse(
      200, Json{{"machine", MachineRecordJson(*record, api.deps().exchange.markets)}}));
}

}  // namespace

void AddMachineRoutes(std::vector<Route>* routes) {
  routes->insert(routes->end(),
                 {
                     {"POST", "/v1/machines", "Register a machine (provider)", Auth::kAccount, 201,
                      Body::kJson, false, &RegisterMachine},
                     {"GET", "/v1/machines", "Machines with attributes, capacity and status",
                      Auth::kNone, 200, Body::kNone, false, &ListMachines},
                     {"GET", "/v1/machines/{id}", "One machine", Auth::kNone, 200, Body::kNone,
                      false, &GetMachine},
                 });
}

}  // namespace ocx::api
