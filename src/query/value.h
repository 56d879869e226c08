// Attribute values of machines, as the discovery query language (docs/formats/query.md) sees
// them. A value is a number or a text, never a floating-point number: numbers are exact int64
// micro-units (1.5 -> 1'500'000), so that evaluating a query inside the deterministic matching
// core gives the same answer on every machine (RULEBOOK section 1).
// Plain data; thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace ocx::query {

// The core aliases its AttributeValue to this type: keep exactly these fields.
struct Value {
  bool is_number = false;
  int64_t number_micros = 0;  // Meaningful when is_number.
  std::string text;           // Meaningful when !is_number.

  bool operator==(const Value&) const = default;

  static Value Number(int64_t micros) {
    Value value;
    value.is_number = true;
    value.number_micros = micros;
    return value;
  }
  static Value Text(std::string text) {
    Value value;
    value.text = std::move(text);
    return value;
  }
};

// A machine's attributes by name ("cpu.cores", "region", "label.tier", ...).
using Attributes = std::map<std::string, Value>;

// The type the query language knows an attribute to have. Known attributes are type-checked
// when a query is parsed; any other name is a provider label (kAny), whose type is only known
// per machine and checked when the query is evaluated.
enum class AttributeType : uint8_t { kNumber, kText, kAny };

struct KnownAttribute {
  std::string_view name;
  AttributeType type;
};

// The attributes every machine may have (docs/formats/query.md, "Attributes"). MachineIndex
// stores these in dense columns.
inline constexpr std::array<KnownAttribute, 13> kKnownAttributes = {{
    {"cpu.cores", AttributeType::kNumber},
    {"cpu.factor", AttributeType::kNumber},
    {"mem.gib", AttributeType::kNumber},
    {"disk.gib", AttributeType::kNumber},
    {"gpu.count", AttributeType::kNumber},
    {"gpu.mem_gib", AttributeType::kNumber},
    {"reputation", AttributeType::kNumber},
    {"price", AttributeType::kNumber},
    {"cpu.model", AttributeType::kText},
    {"gpu.model", AttributeType::kText},
    {"region", AttributeType::kText},
    {"os", AttributeType::kText},
    {"arch", AttributeType::kText},
}};

// The type of a known attribute; kAny for any other name (a provider label).
constexpr AttributeType KnownAttributeType(std::string_view name) {
  for (const KnownAttribute& known : kKnownAttributes) {
    if (known.name == name) return known.type;
  }
  return AttributeType::kAny;
}

}  // namespace ocx::query
