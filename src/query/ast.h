// The parsed form of a discovery query: private to src/query (Query and MachineIndex). Other
// modules use Query's methods, never these structs.
//
// Invariants (established by the parser, asserted where they are relied on):
//   - kAnd and kOr have at least two children, and none of the same kind (nested && and ||
//     are flattened); kNot has exactly one child; conditions have none.
//   - A kCompare with an ordering operator (< <= > >=) has a number literal.
//   - A kIn list is non-empty, sorted by ValueLess and free of duplicates.
//   - A kMatch has a compiled regex, and `literal` holds its pattern as text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "re2/re2.h"
#include "src/query/query.h"
#include "src/query/value.h"

namespace ocx::query::internal {

enum class NodeKind : uint8_t { kAnd, kOr, kNot, kCompare, kIn, kMatch };

// `a op b` on exact numbers: the one comparison of Query::Matches and MachineIndex.
inline bool CompareNumbers(CompareOp op, int64_t a, int64_t b) {
  switch (op) {
    case CompareOp::kEq:
      return a == b;
    case CompareOp::kNe:
      return a != b;
    case CompareOp::kLt:
      return a < b;
    case CompareOp::kLe:
      return a <= b;
    case CompareOp::kGt:
      return a > b;
    case CompareOp::kGe:
      return a >= b;
  }
  return false;
}

struct Node {
  NodeKind kind = NodeKind::kCompare;
  std::vector<Node> children;  // kAnd, kOr, kNot.
  std::string attribute;       // Conditions.
  CompareOp op = CompareOp::kEq;
  Value literal;                     // kCompare; kMatch: the pattern.
  std::vector<Value> list;           // kIn.
  std::unique_ptr<const RE2> regex;  // kMatch.
  // Source span [begin, end) in bytes, including the parentheses the node was written in.
  uint32_t begin = 0;
  uint32_t end = 0;
};

// What a Query shares: the text it was parsed from and the tree.
struct Tree {
  std::string text;
  Node root;
};

// Numbers (by value) before texts (bytewise): the order of `in` lists.
bool ValueLess(const Value& a, const Value& b);

// Same normalized tree (spans ignored).
bool SameTree(const Node& a, const Node& b);

}  // namespace ocx::query::internal
