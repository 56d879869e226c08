// MachineIndex: the exchange's searchable set of registered machines, for discovery queries
// (src/query/query.h, docs/formats/query.md). Search gives exactly what a scan evaluating
// Query::Matches on every machine would give, ordered by the sort keys and then by machine
// id; the index only makes it fast at 100,000+ machines.
//
// How: machines live in slots. The known attributes (kKnownAttributes) are dense columns,
// one 16-byte cell per slot; other attributes (provider labels) are a short sorted list per
// slot. Every attribute has a column with an ordered index of its numbers, (micros, slot),
// and a dictionary of its texts with an ordered index of (text code, slot). A search binds
// the query to the columns once (attribute names to column ids, texts to codes, regexes
// evaluated once per distinct text), estimates from the indexes how many machines each
// indexable condition can match, and, when the best plan is selective enough, evaluates the
// full query only on the candidates of the most selective top-level conjunct (or the union
// over an || of indexable conditions); otherwise it scans all slots, which is cheap because
// bound evaluation compares integers.
//
// Owned by the exchange (one per exchange), fed by registration and price updates.
// Thread-compatible: const methods (Search, Explain, size, MemoryBytesEstimate) may run
// concurrently with each other; Upsert and Remove need exclusive access.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "src/query/query.h"
#include "src/query/value.h"

namespace ocx::query {

namespace internal {
struct Bound;  // A query bound to one index: index.cc.
}  // namespace internal

class MachineIndex {
 public:
  MachineIndex();
  ~MachineIndex();
  MachineIndex(const MachineIndex&) = delete;
  MachineIndex& operator=(const MachineIndex&) = delete;
  MachineIndex(MachineIndex&&) = default;
  MachineIndex& operator=(MachineIndex&&) = default;

  // Adds the machine, or replaces all attributes of the machine with this id.
  void Upsert(uint64_t machine_id, Attributes attributes);
  // Removes the machine; nothing happens when there is none with this id.
  void Remove(uint64_t machine_id);
  size_t size() const { return slot_of_.size(); }
  bool contains(uint64_t machine_id) const { return slot_of_.contains(machine_id); }

  struct SearchOptions {
    std::vector<SortKey> sort;  // Empty: by machine id.
    size_t limit = 100;
    size_t offset = 0;
  };
  struct SearchResult {
    std::vector<uint64_t> machines;  // Matching machines [offset, offset + limit) in order.
    size_t total_matching = 0;
    size_t examined = 0;      // Machines the full query was evaluated on (the plan's cost).
    bool used_index = false;  // False: all machines were scanned.
  };
  // Machines matching `query`, ordered by the sort keys (missing values last in either
  // direction; numbers before texts ascending, texts before numbers descending) and then by
  // machine id ascending.
  SearchResult Search(const Query& query, const SearchOptions& options) const;

  // "Why does nothing match?": for each top-level clause of the query in order, how many
  // machines it matches alone, how many it rules out alone, and how many match it and every
  // clause before it.
  struct ClauseReport {
    std::string clause;  // As written in the query.
    size_t matching_alone = 0;
    size_t ruled_out_alone = 0;
    size_t remaining_after = 0;
    bool operator==(const ClauseReport&) const = default;
  };
  std::vector<ClauseReport> Explain(const Query& query) const;

  // Approximate heap bytes held by the index (for benchmarks and metrics).
  size_t MemoryBytesEstimate() const;

 private:
  // A value in a slot: tag is kMissing, kNumberTag (number in `number`) or a text code of
  // the column `attr`.
  struct Cell {
    int64_t number = 0;
    uint32_t tag = kMissing;
    uint32_t attr = 0;
  };
  static constexpr uint32_t kMissing = 0xffffffff;
  static constexpr uint32_t kNumberTag = 0xfffffffe;
  static constexpr uint32_t kDenseColumns = kKnownAttributes.size();

  struct TextEntry {
    std::string text;
    uint32_t machines = 0;  // 0: a free code.
  };
  // One attribute. Invariants: `machines` is the number of slots with a cell in it, equal to
  // number_postings.size() + text_postings.size(); texts[c].machines counts the
  // (c, slot) entries of text_postings; `codes` maps exactly the texts with machines > 0.
  struct Column {
    std::string name;
    uint32_t machines = 0;
    absl::flat_hash_map<std::string, uint32_t> codes;
    std::vector<TextEntry> texts;  // By code.
    std::vector<uint32_t> free_codes;
    absl::btree_set<std::pair<int64_t, uint32_t>> number_postings;  // (micros, slot)
    absl::btree_set<std::pair<uint32_t, uint32_t>> text_postings;   // (code, slot)
  };

  uint32_t AllocateSlot(uint64_t machine_id);
  uint32_t ColumnFor(const std::string& name);       // Creates it when absent.
  uint32_t FindColumn(std::string_view name) const;  // kMissing when absent.
  uint32_t AcquireText(Column* column, const std::string& text);
  void ReleaseText(Column* column, uint32_t code);
  void AddPosting(uint32_t slot, const Cell& cell);
  void RemovePosting(uint32_t slot, const Cell& cell);
  void ReleaseColumnIfUnused(uint32_t attr);
  std::vector<Cell> CellsOf(uint32_t slot) const;  // Sorted by attr.
  const Cell* Lookup(uint32_t slot, uint32_t attr) const;

  internal::Bound Bind(const internal::Node& node) const;
  static bool CellMatches(const internal::Bound& bound, const Cell& cell);
  void Filter(const internal::Bound& bound, std::vector<uint32_t>* slots) const;
  void FilterDense(const internal::Bound& bound, std::vector<uint32_t>* slots) const;
  template <typename Keep>
  static void KeepIf(std::vector<uint32_t>* slots, Keep&& keep);
  static void SubtractSorted(const std::vector<uint32_t>& remove, std::vector<uint32_t>* slots);
  std::vector<uint64_t> LabelBitmap(const internal::Bound& bound) const;
  std::vector<uint32_t> LiveSlots() const;  // Ascending.
  size_t Estimate(const internal::Bound& bound, size_t cap,
                  std::vector<const internal::Bound*>* leaves, bool* indexable) const;
  void Collect(const internal::Bound& leaf, std::vector<uint32_t>* slots) const;
  template <typename F>
  void ForEachNumber(const Column& column, CompareOp op, int64_t micros, F&& f) const;
  template <typename F>
  void ForEachText(const Column& column, uint32_t code, F&& f) const;
  std::vector<uint32_t> Matching(const internal::Bound* bound, SearchResult* result) const;

  // Slots: machine ids, liveness, dense cells and label cells, all indexed by slot.
  std::vector<uint64_t> slot_machine_;
  std::vector<uint8_t> slot_live_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<uint64_t, uint32_t> slot_of_;     // Live machines only.
  std::array<std::vector<Cell>, kDenseColumns> dense_;  // [attr][slot]
  std::vector<std::vector<Cell>> labels_;               // [slot], sorted by attr.

  // Columns by attribute id; ids below kDenseColumns are the known attributes and always
  // exist; a null entry is a free id.
  std::vector<std::unique_ptr<Column>> columns_;
  absl::flat_hash_map<std::string, uint32_t> column_ids_;
  std::vector<uint32_t> free_column_ids_;
};

}  // namespace ocx::query
