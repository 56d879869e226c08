// The discovery query language (docs/formats/query.md): the filter that buyers write to find
// machines, e.g.
//   gpu.count >= 1 && region in ["eu", "us"] && !(label.tier == "spot")
// It is used three ways: by the exchange to search registered machines (GET /v1/offers?q=),
// by the CLI (`ocx offers '...' --sort price --explain`), and as the constraint of a buy order
// inside the deterministic matching core. So evaluation is deterministic and uses no floating
// point: numbers are exact int64 micro-units, regular expressions are RE2 (linear time).
//
// Queries come from untrusted users and are evaluated on the exchange's sequencer thread, so
// the parser bounds everything that could make a query expensive (k...Max below) and reports
// each violation, like every other mistake, as a SyntaxError with the 1-based byte column.
//
// Thread-safety: a Query is immutable after Parse; copies share the parsed tree (shared_ptr,
// read-only), and Matches/Canonical may run concurrently from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/function_ref.h"
#include "src/query/value.h"

namespace ocx::query {

// ---- Named bounds ---------------------------------------------------------------------------
inline constexpr size_t kQueryBytesMax = 4096;
inline constexpr int kQueryDepthMax = 64;           // Nested '(' and '!' together.
inline constexpr size_t kQueryConditionsMax = 256;  // Comparisons, `in` and `=~` together.
inline constexpr size_t kInListItemsMax = 256;
inline constexpr size_t kRegexPatternBytesMax = 256;      // After unescaping the string literal.
inline constexpr size_t kRegexesMax = 16;                 // `=~` conditions in one query.
inline constexpr int64_t kRegexMemoryBytesMax = 1 << 20;  // RE2 max_mem of each pattern.
inline constexpr size_t kSortKeysMax = 8;
inline constexpr size_t kSortBytesMax = 1024;

// What is wrong with a query (or sort) text and where: `column` is the 1-based byte offset
// into the whole text (one past the end for "unexpected end of query").
struct SyntaxError {
  int column = 1;
  std::string message;
  bool operator==(const SyntaxError&) const = default;
};

// The text, a caret under the column and the message, for people:
//   gpu.count >= && region == "eu"
//                ^ column 14: expected a number or a string after '>='
// Only the line holding the column is shown, and a long line is cut to a window around it
// ("..."). Control characters are shown as '?'; the caret accounts for UTF-8 and tabs.
std::string FormatSyntaxError(std::string_view text, const SyntaxError& error);

enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
std::string_view CompareOpText(CompareOp op);  // "==", "!=", ...

namespace internal {
struct Node;  // src/query/ast.h: the parsed tree, private to this module.
struct Tree;
}  // namespace internal

struct Clause;

// A parsed, type-checked query. Cheap to copy (shared_ptr to the immutable tree: copies are
// handed to other threads and kept by resting buy orders, and the tree owns compiled RE2s
// that must not be copied).
class Query {
 public:
  // The empty query: matches every machine; Canonical() is "". Parse("") gives the same.
  Query() = default;

  // Parses and type-checks `text`. Never throws; every problem is a SyntaxError.
  static std::variant<Query, SyntaxError> Parse(std::string_view text);

  // Whether a machine matches. `lookup(name)` returns the machine's attribute or nullptr when
  // it has none; it lets the caller add derived attributes (price, reputation) without copying
  // a map. A condition on a missing attribute, or on a value of the other type, is false (so
  // `region != "eu"` is false for a machine without a region, and `!(region == "eu")` true).
  bool Matches(absl::FunctionRef<const Value*(std::string_view)> lookup) const;
  bool Matches(const Attributes& attributes) const;

  // The normalized text: single spaces, shortest exact numbers, `in` lists sorted and without
  // duplicates, literals on the right, nested && and || flattened, `!(...)` always
  // parenthesized. Parse(Canonical()) gives an equal query and Canonical() of that is the same
  // text, so it is what a journal records.
  std::string Canonical() const;

  // The conjuncts of the top-level && (or the whole query as one clause), in source order,
  // for --explain. Empty for the empty query.
  std::vector<Clause> TopLevelClauses() const;

  bool empty() const { return root_ == nullptr; }
  size_t conditions() const;  // Comparisons, `in` and `=~` conditions.

  // Structural equality: same tree after normalization (source spans and spacing ignored).
  friend bool operator==(const Query& a, const Query& b);

  // The module's own tree, for MachineIndex; nullptr for the empty query.
  const internal::Node* root() const { return root_; }

 private:
  Query(std::shared_ptr<const internal::Tree> tree, const internal::Node* root)
      : tree_(std::move(tree)), root_(root) {}

  // Shared, read-only: see the class comment. Null for the empty query.
  std::shared_ptr<const internal::Tree> tree_;
  const internal::Node* root_ = nullptr;  // Inside *tree_.
};

// One top-level conjunct of a query.
struct Clause {
  std::string text;       // As written in the query (with its parentheses, if it had them).
  std::string canonical;  // Its Canonical().
  Query query;            // The clause alone, sharing the parsed tree.
};

// ---- Sort -----------------------------------------------------------------------------------
// One key of a result order: "price" ascending, "-reputation" descending. Machines without
// the attribute sort last in either direction; ties are broken by machine id ascending.
struct SortKey {
  std::string attribute;
  bool descending = false;
  bool operator==(const SortKey&) const = default;
};

// Parses "price,-reputation": comma-separated attribute names, each optionally preceded by
// '-' (descending) or '+' (ascending); spaces around items are allowed. "" gives no keys.
// At most kSortKeysMax keys, each attribute once, text at most kSortBytesMax bytes.
std::variant<std::vector<SortKey>, SyntaxError> ParseSort(std::string_view text);

// The canonical sort text: "price,-reputation".
std::string FormatSort(const std::vector<SortKey>& keys);

// Whether `name` is a valid attribute name: [A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)* and not
// the keyword "in".
bool IsAttributeName(std::string_view name);

}  // namespace ocx::query
