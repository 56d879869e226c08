#include "src/query/index.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "src/base/assert.h"
#include "src/query/ast.h"

namespace ocx::query {

namespace internal {

// A query node bound to one MachineIndex: attribute names resolved to column ids, texts to
// codes of the column's dictionary, and a regex evaluated once per distinct text. Lives for
// one Search or Explain call.
struct Bound {
  NodeKind kind = NodeKind::kCompare;
  CompareOp op = CompareOp::kEq;
  uint32_t attr = 0xffffffff;  // Column id; 0xffffffff: no machine has the attribute.
  bool number_literal = false;
  int64_t number = 0;
  uint32_t code = 0xffffffff;       // Text literal's code; 0xffffffff: no machine has it.
  std::vector<int64_t> numbers;     // kIn, sorted.
  std::vector<uint32_t> codes;      // kIn, kMatch: the matching codes, sorted.
  std::vector<uint8_t> code_match;  // kIn, kMatch: whether each code matches.
  std::vector<Bound> children;
};

}  // namespace internal

using internal::Bound;
using internal::Node;
using internal::NodeKind;

namespace {

// A search whose best plan would evaluate more than size() / kScanDivisor candidates scans
// every slot instead: a sequential scan of integer cells beats collecting and then visiting
// that many scattered slots.
constexpr size_t kScanDivisor = 8;

constexpr uint32_t kNone = 0xffffffff;
constexpr uint32_t kSlotMax = 0xfffffff0;

}  // namespace

MachineIndex::MachineIndex() {
  for (const KnownAttribute& known : kKnownAttributes) {
    auto column = std::make_unique<Column>();
    column->name = std::string(known.name);
    column_ids_.emplace(column->name, static_cast<uint32_t>(columns_.size()));
    columns_.push_back(std::move(column));
  }
  OCX_ASSERT(columns_.size() == kDenseColumns);
}

MachineIndex::~MachineIndex() = default;

// ---- Mutation -------------------------------------------------------------------------------

uint32_t MachineIndex::AllocateSlot(uint64_t machine_id) {
  if (!free_slots_.empty()) {
    const uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    OCX_ASSERT(!slot_live_[slot]);
    slot_machine_[slot] = machine_id;
    slot_live_[slot] = 1;
    return slot;
  }
  OCX_ASSERT(slot_machine_.size() < kSlotMax);
  const auto slot = static_cast<uint32_t>(slot_machine_.size());
  slot_machine_.push_back(machine_id);
  slot_live_.push_back(1);
  for (std::vector<Cell>& column : dense_) column.emplace_back();
  labels_.emplace_back();
  return slot;
}

uint32_t MachineIndex::ColumnFor(const std::string& name) {
  const auto it = column_ids_.find(name);
  if (it != column_ids_.end()) return it->second;
  uint32_t attr;
  if (!free_column_ids_.empty()) {
    attr = free_column_ids_.back();
    free_column_ids_.pop_back();
  } else {
    OCX_ASSERT(columns_.size() < kSlotMax);
    attr = static_cast<uint32_t>(columns_.size());
    columns_.emplace_back();
  }
  OCX_ASSERT(columns_[attr] == nullptr);
  columns_[attr] = std::make_unique<Column>();
  columns_[attr]->name = name;
  column_ids_.emplace(name, attr);
  return attr;
}

uint32_t MachineIndex::FindColumn(std::string_view name) const {
  // This Abseil's string_view is its own type, not std::string_view.
  const auto it = column_ids_.find(absl::string_view(name.data(), name.size()));
  return it == column_ids_.end() ? kNone : it->second;
}

uint32_t MachineIndex::AcquireText(Column* column, const std::string& text) {
  const auto [it, inserted] = column->codes.try_emplace(text, 0);
  if (inserted) {
    uint32_t code;
    if (!column->free_codes.empty()) {
      code = column->free_codes.back();
      column->free_codes.pop_back();
    } else {
      OCX_ASSERT(column->texts.size() < kSlotMax);
      code = static_cast<uint32_t>(column->texts.size());
      column->texts.emplace_back();
    }
    OCX_ASSERT(column->texts[code].machines == 0);
    column->texts[code].text = text;
    it->second = code;
  }
  ++column->texts[it->second].machines;
  return it->second;
}

void MachineIndex::ReleaseText(Column* column, uint32_t code) {
  TextEntry& entry = column->texts[code];
  OCX_ASSERT(entry.machines > 0);
  if (--entry.machines > 0) return;
  column->codes.erase(entry.text);
  entry.text = std::string();
  column->free_codes.push_back(code);
}

void MachineIndex::AddPosting(uint32_t slot, const Cell& cell) {
  Column& column = *columns_[cell.attr];
  const bool inserted = cell.tag == kNumberTag
                            ? column.number_postings.insert({cell.number, slot}).second
                            : column.text_postings.insert({cell.tag, slot}).second;
  OCX_ASSERT(inserted);
  ++column.machines;
}

void MachineIndex::RemovePosting(uint32_t slot, const Cell& cell) {
  Column& column = *columns_[cell.attr];
  const size_t erased = cell.tag == kNumberTag ? column.number_postings.erase({cell.number, slot})
                                               : column.text_postings.erase({cell.tag, slot});
  OCX_ASSERT(erased == 1);
  OCX_ASSERT(column.machines > 0);
  --column.machines;
}

void MachineIndex::ReleaseColumnIfUnused(uint32_t attr) {
  if (attr < kDenseColumns || columns_[attr] == nullptr || columns_[attr]->machines > 0) return;
  Column& column = *columns_[attr];
  OCX_ASSERT(column.number_postings.empty() && column.text_postings.empty() &&
             column.codes.empty());
  column_ids_.erase(column.name);
  columns_[attr].reset();
  free_column_ids_.push_back(attr);
}

std::vector<MachineIndex::Cell> MachineIndex::CellsOf(uint32_t slot) const {
  std::vector<Cell> cells;
  for (uint32_t attr = 0; attr < kDenseColumns; ++attr) {
    if (dense_[attr][slot].tag != kMissing) cells.push_back(dense_[attr][slot]);
  }
  cells.insert(cells.end(), labels_[slot].begin(), labels_[slot].end());
  return cells;
}

void MachineIndex::Upsert(uint64_t machine_id, Attributes attributes) {
  uint32_t slot;
  if (const auto it = slot_of_.find(machine_id); it != slot_of_.end()) {
    slot = it->second;
  } else {
    slot = AllocateSlot(machine_id);
    slot_of_.emplace(machine_id, slot);
  }
  // The new cells, texts acquired first so that an unchanged text keeps its code.
  std::vector<Cell> fresh;
  fresh.reserve(attributes.size());
  for (const auto& [name, value] : attributes) {
    Cell cell;
    cell.attr = ColumnFor(name);
    if (value.is_number) {
      cell.tag = kNumberTag;
      cell.number = value.number_micros;
    } else {
      cell.tag = AcquireText(columns_[cell.attr].get(), value.text);
    }
    fresh.push_back(cell);
  }
  std::sort(fresh.begin(), fresh.end(),
            [](const Cell& a, const Cell& b) { return a.attr < b.attr; });
  const std::vector<Cell> old = CellsOf(slot);
  std::vector<uint32_t> dropped_columns;
  // Merge by attribute: postings change only where the value did.
  size_t i = 0;
  size_t j = 0;
  while (i < old.size() || j < fresh.size()) {
    if (j == fresh.size() || (i < old.size() && old[i].attr < fresh[j].attr)) {
      RemovePosting(slot, old[i]);
      if (old[i].tag != kNumberTag) ReleaseText(columns_[old[i].attr].get(), old[i].tag);
      dropped_columns.push_back(old[i].attr);
      ++i;
    } else if (i == old.size() || fresh[j].attr < old[i].attr) {
      AddPosting(slot, fresh[j]);
      ++j;
    } else {
      const Cell& before = old[i];
      const Cell& after = fresh[j];
      const bool same =
          before.tag == after.tag && (before.tag != kNumberTag || before.number == after.number);
      if (!same) {
        RemovePosting(slot, before);
        AddPosting(slot, after);
      }
      if (before.tag != kNumberTag) ReleaseText(columns_[before.attr].get(), before.tag);
      ++i;
      ++j;
    }
  }
  for (std::vector<Cell>& column : dense_) column[slot] = Cell();
  std::vector<Cell>& labels = labels_[slot];
  labels.clear();
  for (const Cell& cell : fresh) {
    if (cell.attr < kDenseColumns) {
      dense_[cell.attr][slot] = cell;
    } else {
      labels.push_back(cell);
    }
  }
  labels.shrink_to_fit();
  for (const uint32_t attr : dropped_columns) ReleaseColumnIfUnused(attr);
}

void MachineIndex::Remove(uint64_t machine_id) {
  const auto it = slot_of_.find(machine_id);
  if (it == slot_of_.end()) return;
  const uint32_t slot = it->second;
  slot_of_.erase(it);
  for (const Cell& cell : CellsOf(slot)) {
    RemovePosting(slot, cell);
    if (cell.tag != kNumberTag) ReleaseText(columns_[cell.attr].get(), cell.tag);
  }
  for (std::vector<Cell>& column : dense_) column[slot] = Cell();
  std::vector<Cell> labels = std::move(labels_[slot]);
  labels_[slot] = std::vector<Cell>();
  for (const Cell& cell : labels) ReleaseColumnIfUnused(cell.attr);
  slot_live_[slot] = 0;
  slot_machine_[slot] = 0;
  free_slots_.push_back(slot);
}

// ---- Evaluation -----------------------------------------------------------------------------

const MachineIndex::Cell* MachineIndex::Lookup(uint32_t slot, uint32_t attr) const {
  if (attr < kDenseColumns) {
    const Cell& cell = dense_[attr][slot];
    return cell.tag == kMissing ? nullptr : &cell;
  }
  for (const Cell& cell : labels_[slot]) {
    if (cell.attr == attr) return &cell;
    if (cell.attr > attr) break;
  }
  return nullptr;
}

Bound MachineIndex::Bind(const Node& node) const {
  Bound bound;
  bound.kind = node.kind;
  bound.op = node.op;
  for (const Node& child : node.children) bound.children.push_back(Bind(child));
  if (!node.children.empty()) return bound;
  bound.attr = FindColumn(node.attribute);
  if (bound.attr == kNone) return bound;  // No machine has it: the condition is false.
  const Column& column = *columns_[bound.attr];
  auto code_of = [&column](const std::string& text) {
    const auto it = column.codes.find(text);
    return it == column.codes.end() ? kNone : it->second;
  };
  switch (node.kind) {
    case NodeKind::kCompare:
      bound.number_literal = node.literal.is_number;
      bound.number = node.literal.number_micros;
      if (!bound.number_literal) bound.code = code_of(node.literal.text);
      break;
    case NodeKind::kIn:
      for (const Value& item : node.list) {
        if (item.is_number) {
          bound.numbers.push_back(item.number_micros);  // Sorted: the list is.
        } else if (const uint32_t code = code_of(item.text); code != kNone) {
          bound.codes.push_back(code);
        }
      }
      std::sort(bound.codes.begin(), bound.codes.end());
      bound.code_match.assign(column.texts.size(), 0);
      for (const uint32_t code : bound.codes) bound.code_match[code] = 1;
      break;
    case NodeKind::kMatch:
      OCX_ASSERT(node.regex != nullptr);
      bound.code_match.assign(column.texts.size(), 0);
      for (uint32_t code = 0; code < column.texts.size(); ++code) {
        if (column.texts[code].machines > 0 &&
            RE2::PartialMatch(column.texts[code].text, *node.regex)) {
          bound.code_match[code] = 1;
          bound.codes.push_back(code);
        }
      }
      break;
    default:
      OCX_ASSERT_MSG(false, "a condition node has children");
  }
  return bound;
}

// Whether a present cell satisfies the condition `bound` (attr bound, not kNone).
// With Filter, mirrors Query::Matches (query.cc, Evaluate) on bound cells: the
// randomized index test holds them equal.
bool MachineIndex::CellMatches(const Bound& bound, const Cell& cell) {
  const bool is_number = cell.tag == kNumberTag;
  switch (bound.kind) {
    case NodeKind::kCompare: {
      if (is_number != bound.number_literal) return false;
      if (!is_number) return (cell.tag == bound.code) == (bound.op == CompareOp::kEq);
      return internal::CompareNumbers(bound.op, cell.number, bound.number);
    }
    case NodeKind::kIn:
      if (is_number) {
        return std::binary_search(bound.numbers.begin(), bound.numbers.end(), cell.number);
      }
      [[fallthrough]];
    case NodeKind::kMatch:
      return !is_number && cell.tag < bound.code_match.size() && bound.code_match[cell.tag];
    default:
      OCX_ASSERT_MSG(false, "not a condition");
      return false;
  }
}

// Many slots, a column at a time: keeps the slots of *slots (ascending, live) that match.
// && filters in turn, || and ! combine sorted slot lists; a condition on a dense column is a
// tight loop over its cells, one on a label column marks its matches from the column's
// postings in a bitmap (no per-slot search of the label lists).
void MachineIndex::Filter(const Bound& bound, std::vector<uint32_t>* slots) const {
  switch (bound.kind) {
    case NodeKind::kAnd:
      for (const Bound& child : bound.children) {
        if (slots->empty()) return;
        Filter(child, slots);
      }
      return;
    case NodeKind::kOr: {
      std::vector<uint32_t> matched;
      std::vector<uint32_t> rest = *slots;
      std::vector<uint32_t> hits;
      std::vector<uint32_t> merged;
      for (const Bound& child : bound.children) {
        if (rest.empty()) break;
        hits = rest;
        Filter(child, &hits);
        if (hits.empty()) continue;
        merged.clear();
        std::merge(matched.begin(), matched.end(), hits.begin(), hits.end(),
                   std::back_inserter(merged));
        matched.swap(merged);
        SubtractSorted(hits, &rest);
      }
      slots->swap(matched);
      return;
    }
    case NodeKind::kNot: {
      std::vector<uint32_t> hits = *slots;
      Filter(bound.children[0], &hits);
      SubtractSorted(hits, slots);
      return;
    }
    default:
      break;
  }
  if (bound.attr == kNone) {
    slots->clear();
    return;
  }
  if (bound.attr < kDenseColumns) {
    FilterDense(bound, slots);
    return;
  }
  // A label column: few slots are looked up one by one (each a search of a short list that
  // is probably not in cache); many are marked from the column's postings.
  constexpr size_t kLookupsPerPosting = 32;
  if (slots->size() * kLookupsPerPosting < columns_[bound.attr]->machines) {
    KeepIf(slots, [&](uint32_t slot) {
      const Cell* cell = Lookup(slot, bound.attr);
      return cell != nullptr && CellMatches(bound, *cell);
    });
    return;
  }
  const std::vector<uint64_t> bits = LabelBitmap(bound);
  KeepIf(slots, [&bits](uint32_t slot) { return (bits[slot >> 6] >> (slot & 63)) & 1; });
}

template <typename Keep>
void MachineIndex::KeepIf(std::vector<uint32_t>* slots, Keep&& keep) {
  size_t kept = 0;
  for (const uint32_t slot : *slots) {
    if (keep(slot)) (*slots)[kept++] = slot;
  }
  slots->resize(kept);
}

// A condition on a dense column: one loop per operator, so that the loop body is a compare.
void MachineIndex::FilterDense(const Bound& bound, std::vector<uint32_t>* slots) const {
  const Cell* cells = dense_[bound.attr].data();
  if (bound.kind == NodeKind::kCompare && bound.number_literal) {
    const int64_t b = bound.number;
    auto keep_numbers = [&](auto&& compare) {
      KeepIf(slots, [&](uint32_t slot) {
        return cells[slot].tag == kNumberTag && compare(cells[slot].number, b);
      });
    };
    switch (bound.op) {
      case CompareOp::kEq:
        keep_numbers([](int64_t x, int64_t y) { return x == y; });
        return;
      case CompareOp::kNe:
        keep_numbers([](int64_t x, int64_t y) { return x != y; });
        return;
      case CompareOp::kLt:
        keep_numbers([](int64_t x, int64_t y) { return x < y; });
        return;
      case CompareOp::kLe:
        keep_numbers([](int64_t x, int64_t y) { return x <= y; });
        return;
      case CompareOp::kGt:
        keep_numbers([](int64_t x, int64_t y) { return x > y; });
        return;
      case CompareOp::kGe:
        keep_numbers([](int64_t x, int64_t y) { return x >= y; });
        return;
    }
  }
  if (bound.kind == NodeKind::kCompare) {
    // Text codes are below kNumberTag; kMissing and kNone are both 0xffffffff, so an
    // unknown text (kNone) must not be compared with the tag.
    const uint32_t code = bound.code;
    if (bound.op == CompareOp::kEq) {
      if (code == kNone) {
        slots->clear();
      } else {
        KeepIf(slots, [&](uint32_t slot) { return cells[slot].tag == code; });
      }
    } else {
      KeepIf(slots, [&](uint32_t slot) {
        return cells[slot].tag < kNumberTag && cells[slot].tag != code;
      });
    }
    return;
  }
  if (bound.numbers.empty()) {
    // kMatch, or kIn of texts only: a table lookup by code.
    const uint8_t* match = bound.code_match.data();
    const size_t codes = bound.code_match.size();
    KeepIf(slots, [&](uint32_t slot) { return cells[slot].tag < codes && match[cells[slot].tag]; });
    return;
  }
  KeepIf(slots, [&](uint32_t slot) {
    return cells[slot].tag != kMissing && CellMatches(bound, cells[slot]);
  });
}

// Removes the elements of `remove` (sorted, a subset of *slots) from *slots (sorted).
void MachineIndex::SubtractSorted(const std::vector<uint32_t>& remove,
                                  std::vector<uint32_t>* slots) {
  size_t kept = 0;
  size_t r = 0;
  for (const uint32_t slot : *slots) {
    while (r < remove.size() && remove[r] < slot) ++r;
    if (r < remove.size() && remove[r] == slot) continue;
    (*slots)[kept++] = slot;
  }
  slots->resize(kept);
}

// The slots matching the condition `bound` on a label column, as a bitmap over all slots,
// from the column's postings.
std::vector<uint64_t> MachineIndex::LabelBitmap(const Bound& bound) const {
  std::vector<uint64_t> bits((slot_live_.size() + 63) / 64, 0);
  const Column& column = *columns_[bound.attr];
  auto set = [&bits](uint32_t slot) {
    bits[slot >> 6] |= uint64_t{1} << (slot & 63);
    return true;
  };
  switch (bound.kind) {
    case NodeKind::kCompare:
      if (bound.number_literal) {
        if (bound.op == CompareOp::kNe) {
          ForEachNumber(column, CompareOp::kLt, bound.number, set);
          ForEachNumber(column, CompareOp::kGt, bound.number, set);
        } else {
          ForEachNumber(column, bound.op, bound.number, set);
        }
      } else if (bound.op == CompareOp::kEq) {
        if (bound.code != kNone) ForEachText(column, bound.code, set);
      } else {
        for (const auto& [code, slot] : column.text_postings) {
          if (code != bound.code) set(slot);
        }
      }
      break;
    case NodeKind::kIn:
      for (const int64_t number : bound.numbers) {
        ForEachNumber(column, CompareOp::kEq, number, set);
      }
      for (const uint32_t code : bound.codes) ForEachText(column, code, set);
      break;
    case NodeKind::kMatch:
      for (const uint32_t code : bound.codes) ForEachText(column, code, set);
      break;
    default:
      OCX_ASSERT_MSG(false, "not a condition");
  }
  return bits;
}

// ---- Planning -------------------------------------------------------------------------------

template <typename F>
void MachineIndex::ForEachNumber(const Column& column, CompareOp op, int64_t micros, F&& f) const {
  const auto& postings = column.number_postings;
  constexpr uint32_t kLast = std::numeric_limits<uint32_t>::max();
  auto first = postings.begin();
  auto last = postings.end();
  switch (op) {
    case CompareOp::kEq:
      first = postings.lower_bound({micros, 0});
      last = postings.upper_bound({micros, kLast});
      break;
    case CompareOp::kLt:
      last = postings.lower_bound({micros, 0});
      break;
    case CompareOp::kLe:
      last = postings.upper_bound({micros, kLast});
      break;
    case CompareOp::kGt:
      first = postings.upper_bound({micros, kLast});
      break;
    case CompareOp::kGe:
      first = postings.lower_bound({micros, 0});
      break;
    case CompareOp::kNe:
      OCX_ASSERT_MSG(false, "!= is not indexed");
      break;
  }
  for (auto it = first; it != last; ++it) {
    if (!f(it->second)) return;
  }
}

template <typename F>
void MachineIndex::ForEachText(const Column& column, uint32_t code, F&& f) const {
  const auto& postings = column.text_postings;
  auto last = postings.upper_bound({code, std::numeric_limits<uint32_t>::max()});
  for (auto it = postings.lower_bound({code, 0}); it != last; ++it) {
    if (!f(it->second)) return;
  }
}

// How many candidates the index gives for `bound`: exact when at most `cap`, otherwise some
// number above `cap` (counting stops there). *indexable is false when the index cannot
// narrow the node down (!=, !, an || with such a part). `leaves` receives the conditions
// whose postings, united, hold every matching slot.
size_t MachineIndex::Estimate(const Bound& bound, size_t cap, std::vector<const Bound*>* leaves,
                              bool* indexable) const {
  *indexable = true;
  switch (bound.kind) {
    case NodeKind::kAnd: {
      bool found = false;
      size_t best = 0;
      std::vector<const Bound*> best_leaves;
      // Conditions with exact counts at hand (texts, regexes) go first: they lower the cap
      // that stops the counting of numeric ranges, which walks the postings.
      auto counted_exactly = [](const Bound& child) {
        return child.children.empty() &&
               (child.attr == kNone || child.kind == NodeKind::kMatch ||
                (child.kind == NodeKind::kCompare && !child.number_literal) ||
                (child.kind == NodeKind::kIn && child.numbers.empty()));
      };
      for (const bool exact_pass : {true, false}) {
        for (const Bound& child : bound.children) {
          if (counted_exactly(child) != exact_pass || (found && best == 0)) continue;
          std::vector<const Bound*> child_leaves;
          bool child_indexable = false;
          const size_t estimate =
              Estimate(child, found ? std::min(cap, best) : cap, &child_leaves, &child_indexable);
          if (child_indexable && (!found || estimate < best)) {
            found = true;
            best = estimate;
            best_leaves = std::move(child_leaves);
          }
        }
      }
      *indexable = found;
      leaves->insert(leaves->end(), best_leaves.begin(), best_leaves.end());
      return best;
    }
    case NodeKind::kOr: {
      size_t total = 0;
      for (const Bound& child : bound.children) {
        total += Estimate(child, cap, leaves, indexable);
        if (!*indexable || total > cap) return total;
      }
      return total;
    }
    case NodeKind::kNot:
      *indexable = false;
      return 0;
    default:
      break;
  }
  if (bound.attr == kNone) {
    leaves->push_back(&bound);
    return 0;
  }
  const Column& column = *columns_[bound.attr];
  size_t count = 0;
  auto count_up_to_cap = [&count, cap](uint32_t) { return ++count <= cap; };
  switch (bound.kind) {
    case NodeKind::kCompare:
      if (bound.op == CompareOp::kNe) {
        *indexable = false;
        return 0;
      }
      if (bound.number_literal) {
        ForEachNumber(column, bound.op, bound.number, count_up_to_cap);
      } else if (bound.code != kNone) {
        count = column.texts[bound.code].machines;
      }
      break;
    case NodeKind::kIn:
      for (const int64_t number : bound.numbers) {
        if (count > cap) break;
        ForEachNumber(column, CompareOp::kEq, number, count_up_to_cap);
      }
      for (const uint32_t code : bound.codes) count += column.texts[code].machines;
      break;
    case NodeKind::kMatch:
      for (const uint32_t code : bound.codes) count += column.texts[code].machines;
      break;
    default:
      OCX_ASSERT_MSG(false, "unexpected node kind");
  }
  leaves->push_back(&bound);
  return count;
}

void MachineIndex::Collect(const Bound& leaf, std::vector<uint32_t>* slots) const {
  if (leaf.attr == kNone) return;
  const Column& column = *columns_[leaf.attr];
  auto add = [slots](uint32_t slot) {
    slots->push_back(slot);
    return true;
  };
  switch (leaf.kind) {
    case NodeKind::kCompare:
      if (leaf.number_literal) {
        ForEachNumber(column, leaf.op, leaf.number, add);
      } else if (leaf.code != kNone) {
        OCX_ASSERT(leaf.op == CompareOp::kEq);
        ForEachText(column, leaf.code, add);
      }
      return;
    case NodeKind::kIn:
      for (const int64_t number : leaf.numbers) ForEachNumber(column, CompareOp::kEq, number, add);
      for (const uint32_t code : leaf.codes) ForEachText(column, code, add);
      return;
    case NodeKind::kMatch:
      for (const uint32_t code : leaf.codes) ForEachText(column, code, add);
      return;
    default:
      OCX_ASSERT_MSG(false, "not a leaf");
  }
}

std::vector<uint32_t> MachineIndex::LiveSlots() const {
  std::vector<uint32_t> slots;
  slots.reserve(size());
  for (uint32_t slot = 0; slot < slot_live_.size(); ++slot) {
    if (slot_live_[slot]) slots.push_back(slot);
  }
  return slots;
}

// The slots matching `bound` (nullptr: every live slot), planned as the header describes.
std::vector<uint32_t> MachineIndex::Matching(const Bound* bound, SearchResult* result) const {
  std::vector<uint32_t> matched;
  const size_t cap = size() / kScanDivisor;
  if (bound != nullptr) {
    std::vector<const Bound*> leaves;
    bool indexable = false;
    const size_t estimate = Estimate(*bound, cap, &leaves, &indexable);
    if (indexable && estimate <= cap) {
      matched.reserve(estimate);
      for (const Bound* leaf : leaves) Collect(*leaf, &matched);
      std::sort(matched.begin(), matched.end());
      matched.erase(std::unique(matched.begin(), matched.end()), matched.end());
      result->examined = matched.size();
      result->used_index = true;
      Filter(*bound, &matched);
      return matched;
    }
  }
  matched = LiveSlots();
  if (bound != nullptr) Filter(*bound, &matched);
  result->examined = size();
  result->used_index = false;
  return matched;
}

// ---- Search ---------------------------------------------------------------------------------

MachineIndex::SearchResult MachineIndex::Search(const Query& query,
                                                const SearchOptions& options) const {
  SearchResult result;
  std::optional<Bound> bound;
  if (query.root() != nullptr) bound = Bind(*query.root());
  std::vector<uint32_t> matched = Matching(bound ? &*bound : nullptr, &result);
  result.total_matching = matched.size();
  const size_t end = options.limit > matched.size() - std::min(options.offset, matched.size())
                         ? matched.size()
                         : options.offset + options.limit;
  if (options.offset >= end) return result;

  // One row per matched machine with its first sort key extracted; further keys are looked
  // up only to break ties. A key part's rank orders presence and type for the key's direction
  // (missing is always last), then the number or text decides.
  struct KeyPart {
    uint8_t rank = 2;
    int64_t number = 0;
    const std::string* text = nullptr;
  };
  struct Row {
    KeyPart first;
    uint64_t id = 0;
    uint32_t slot = 0;
  };
  std::vector<uint32_t> key_attrs;
  for (const SortKey& key : options.sort) key_attrs.push_back(FindColumn(key.attribute));
  auto key_part = [&](uint32_t slot, size_t k) {
    KeyPart part;
    const uint32_t attr = key_attrs[k];
    const Cell* cell = attr == kNone          ? nullptr
                       : attr < kDenseColumns ? &dense_[attr][slot]
                                              : Lookup(slot, attr);
    if (cell != nullptr && cell->tag == kMissing) cell = nullptr;
    if (cell == nullptr) return part;
    const bool descending = options.sort[k].descending;
    if (cell->tag == kNumberTag) {
      part.rank = descending ? 1 : 0;
      part.number = cell->number;
    } else {
      part.rank = descending ? 0 : 1;
      part.text = &columns_[attr]->texts[cell->tag].text;
    }
    return part;
  };
  // -1, 0, 1 as a sorts before, with, after b under key k.
  auto compare = [&](const KeyPart& a, const KeyPart& b, size_t k) {
    if (a.rank != b.rank) return a.rank < b.rank ? -1 : 1;
    if (a.rank == 2) return 0;
    int c;
    if (a.text == nullptr) {
      c = a.number < b.number ? -1 : (a.number > b.number ? 1 : 0);
    } else {
      c = a.text->compare(*b.text);
      c = c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    return options.sort[k].descending ? -c : c;
  };
  auto row_of = [&](uint32_t slot) {
    Row row;
    row.slot = slot;
    row.id = slot_machine_[slot];
    if (!key_attrs.empty()) row.first = key_part(slot, 0);
    return row;
  };
  auto less = [&](const Row& a, const Row& b) {
    if (!key_attrs.empty()) {
      if (const int c = compare(a.first, b.first, 0); c != 0) return c < 0;
      for (size_t k = 1; k < key_attrs.size(); ++k) {
        if (const int c = compare(key_part(a.slot, k), key_part(b.slot, k), k); c != 0) {
          return c < 0;
        }
      }
    }
    return a.id < b.id;
  };
  std::vector<Row> rows;
  if (end <= matched.size() / 4) {
    // The first `end` rows in order, from a max-heap of the best seen so far: most rows lose
    // to the heap's top at once and are never stored.
    rows.reserve(end + 1);
    for (const uint32_t slot : matched) {
      if (rows.size() == end && !key_attrs.empty() &&
          compare(key_part(slot, 0), rows.front().first, 0) > 0) {
        continue;  // Loses on the first key: skip the rest of the row.
      }
      Row row = row_of(slot);
      if (rows.size() < end) {
        rows.push_back(row);
        std::push_heap(rows.begin(), rows.end(), less);
      } else if (less(row, rows.front())) {
        std::pop_heap(rows.begin(), rows.end(), less);
        rows.back() = row;
        std::push_heap(rows.begin(), rows.end(), less);
      }
    }
    std::sort_heap(rows.begin(), rows.end(), less);
  } else {
    rows.reserve(matched.size());
    for (const uint32_t slot : matched) rows.push_back(row_of(slot));
    std::partial_sort(rows.begin(), rows.begin() + static_cast<ptrdiff_t>(end), rows.end(), less);
  }
  for (size_t m = options.offset; m < end; ++m) result.machines.push_back(rows[m].id);
  return result;
}

std::vector<MachineIndex::ClauseReport> MachineIndex::Explain(const Query& query) const {
  std::vector<ClauseReport> reports;
  std::vector<uint32_t> remaining = LiveSlots();
  for (const Clause& clause : query.TopLevelClauses()) {
    const Bound bound = Bind(*clause.query.root());
    SearchResult ignored;
    ClauseReport report;
    report.clause = clause.text;
    report.matching_alone = Matching(&bound, &ignored).size();
    report.ruled_out_alone = size() - report.matching_alone;
    Filter(bound, &remaining);
    report.remaining_after = remaining.size();
    reports.push_back(std::move(report));
  }
  return reports;
}

size_t MachineIndex::MemoryBytesEstimate() const {
  // absl::btree nodes hold up to 256 bytes of values and are about 3/4 full on average.
  constexpr size_t kBtreeOverheadPercent = 140;
  size_t bytes = slot_machine_.capacity() * sizeof(uint64_t) + slot_live_.capacity() +
                 free_slots_.capacity() * sizeof(uint32_t) +
                 slot_of_.capacity() * (sizeof(uint64_t) + sizeof(uint32_t) + 1);
  for (const std::vector<Cell>& column : dense_) bytes += column.capacity() * sizeof(Cell);
  bytes += labels_.capacity() * sizeof(std::vector<Cell>);
  for (const std::vector<Cell>& labels : labels_) bytes += labels.capacity() * sizeof(Cell);
  for (const std::unique_ptr<Column>& column : columns_) {
    if (column == nullptr) continue;
    bytes += sizeof(Column) + column->name.capacity();
    bytes += column->number_postings.size() * sizeof(std::pair<int64_t, uint32_t>) *
             kBtreeOverheadPercent / 100;
    bytes += column->text_postings.size() * sizeof(std::pair<uint32_t, uint32_t>) *
             kBtreeOverheadPercent / 100;
    bytes += column->texts.capacity() * sizeof(TextEntry) +
             column->codes.capacity() * (sizeof(std::string) + sizeof(uint32_t) + 1);
    for (const TextEntry& entry : column->texts) {
      // The text is held twice: in the entry and as the dictionary's key.
      if (entry.text.size() >= sizeof(std::string)) bytes += 2 * (entry.text.capacity() + 1);
    }
  }
  bytes += column_ids_.capacity() * (sizeof(std::string) + sizeof(uint32_t) + 1);
  return bytes;
}

}  // namespace ocx::query
