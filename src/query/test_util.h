// Test helpers for src/query: parsing that fails the test loudly, and seeded random machines
// and query texts over a small domain (so that random queries match some machines).
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/base/decimal.h"
#include "src/base/rng.h"
#include "src/query/query.h"
#include "src/query/value.h"

namespace ocx::query::testing {

inline Query MustParse(std::string_view text) {
  auto parsed = Query::Parse(text);
  if (const auto* error = std::get_if<SyntaxError>(&parsed)) {
    ADD_FAILURE() << "does not parse:\n" << FormatSyntaxError(text, *error);
    return Query();
  }
  return std::get<Query>(std::move(parsed));
}

inline SyntaxError MustFail(std::string_view text) {
  auto parsed = Query::Parse(text);
  if (std::holds_alternative<Query>(parsed)) {
    ADD_FAILURE() << "parses, but should not: " << text;
    return SyntaxError{};
  }
  return std::get<SyntaxError>(std::move(parsed));
}

// ---- Random machines and queries over a small domain ---------------------------------------

inline std::string RandomText(base::Rng& rng) {
  static constexpr std::string_view kTexts[] = {"eu", "us", "asia", "a", "b", ""};
  return std::string(kTexts[rng.Below(6)]);
}

inline Value RandomNumber(base::Rng& rng) {
  // Small integers and a few fractions, so that equality and ranges both hit.
  return Value::Number(rng.Between(-1, 6) * 500'000);
}

inline Attributes RandomMachine(base::Rng& rng) {
  Attributes a;
  if (rng.Percent(85)) a["cpu.cores"] = RandomNumber(rng);
  if (rng.Percent(85)) a["price"] = RandomNumber(rng);
  if (rng.Percent(70)) a["gpu.count"] = RandomNumber(rng);
  if (rng.Percent(85)) a["region"] = Value::Text(RandomText(rng));
  if (rng.Percent(50)) a["gpu.model"] = Value::Text(RandomText(rng));
  // Labels of either type.
  if (rng.Percent(60)) {
    a["label.tier"] = rng.Percent(50) ? Value::Text(RandomText(rng)) : RandomNumber(rng);
  }
  if (rng.Percent(40))
    a["label.n"] = rng.Percent(50) ? Value::Text(RandomText(rng)) : RandomNumber(rng);
  if (rng.Percent(5)) a[absl::StrCat("label.rare", rng.Below(4))] = RandomNumber(rng);
  return a;
}

inline std::string RandomLiteral(base::Rng& rng, bool number) {
  if (number) return base::FormatMicros(RandomNumber(rng).number_micros);
  std::string text = rng.Percent(5) ? std::string("zzz") : RandomText(rng);
  return absl::StrCat("\"", text, "\"");
}

inline std::string RandomCondition(base::Rng& rng) {
  static constexpr std::string_view kNumberAttrs[] = {"cpu.cores", "price", "gpu.count"};
  static constexpr std::string_view kTextAttrs[] = {"region", "gpu.model"};
  static constexpr std::string_view kLabels[] = {"label.tier", "label.n", "label.rare1",
                                                 "label.none"};
  static constexpr const char* kOps[] = {"==", "!=", "<", "<=", ">", ">="};
  std::string attr;
  bool number;
  const uint64_t which = rng.Below(10);
  if (which < 4) {
    attr = std::string(kNumberAttrs[rng.Below(3)]);
    number = true;
  } else if (which < 7) {
    attr = std::string(kTextAttrs[rng.Below(2)]);
    number = false;
  } else {
    attr = std::string(kLabels[rng.Below(4)]);
    number = rng.Percent(50);
  }
  switch (rng.Below(number ? 10 : 8)) {
    case 0:
    case 1: {  // in
      std::string list;
      const uint64_t items = 1 + rng.Below(3);
      for (uint64_t i = 0; i < items; ++i) {
        const bool item_number = attr.starts_with("label.") ? rng.Percent(50) : number;
        absl::StrAppend(&list, i > 0 ? ", " : "", RandomLiteral(rng, item_number));
      }
      return absl::StrCat(attr, " in [", list, "]");
    }
    case 2:
      if (!number) {
        static constexpr const char* kPatterns[] = {"^e", "s", "^(a|b)$", "^$", "x"};
        return absl::StrCat(attr, " =~ \"", kPatterns[rng.Below(5)], "\"");
      }
      [[fallthrough]];
    default: {
      const std::string op = number ? kOps[rng.Below(6)] : kOps[rng.Below(2)];
      const std::string literal = RandomLiteral(rng, number);
      if (rng.Percent(15)) {
        // Literal on the left: mirror the operator.
        std::string mirrored = op;
        if (op == "<") mirrored = ">";
        if (op == "<=") mirrored = ">=";
        if (op == ">") mirrored = "<";
        if (op == ">=") mirrored = "<=";
        return absl::StrCat(literal, " ", mirrored, " ", attr);
      }
      return absl::StrCat(attr, " ", op, " ", literal);
    }
  }
}

inline std::string RandomExpression(base::Rng& rng, int depth) {
  const uint64_t roll = depth >= 3 ? 0 : rng.Below(10);
  if (roll < 4) return RandomCondition(rng);
  // Compound expressions come back parenthesized, so '!' applies to the whole of them.
  if (roll < 5) return absl::StrCat("!", RandomExpression(rng, depth + 1));
  const char* op = roll < 8 ? " && " : " || ";
  std::string out = absl::StrCat("(", RandomExpression(rng, depth + 1));
  const uint64_t operands = 2 + rng.Below(2);
  for (uint64_t i = 1; i < operands; ++i)
    absl::StrAppend(&out, op, RandomExpression(rng, depth + 1));
  out.push_back(')');
  return out;
}

// A random query text: conditions joined by && at the top, each possibly a nested group.
inline std::string RandomQueryText(base::Rng& rng) {
  std::string out = RandomExpression(rng, 0);
  const uint64_t more = rng.Below(3);
  for (uint64_t i = 0; i < more; ++i) absl::StrAppend(&out, " && ", RandomExpression(rng, 1));
  return out;
}

}  // namespace ocx::query::testing
