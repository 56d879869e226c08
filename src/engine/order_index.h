// OrderIndex: OrderId -> slot in the order pool, for O(1) cancel and replace by id.
// Open addressing with linear probing and backward-shift deletion, so erases leave no
// tombstones and the table never needs a clean-up pass. It allocates only when it grows
// past half full (the book reserves it up front), never per command once warm.
// Not thread-safe: owned by its OrderBook.
#pragma once

#include <cstdint>
#include <vector>

#include "src/base/assert.h"
#include "src/engine/types.h"

namespace ocx::engine {

class OrderIndex {
 public:
  static constexpr uint32_t kNotFound = UINT32_MAX;

  explicit OrderIndex(size_t expected_entries = 1024) { Rehash(CapacityFor(expected_entries)); }

  size_t size() const { return size_; }

  uint32_t Find(OrderId key) const {
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.value == kNotFound) return kNotFound;
      if (slot.key == key) return slot.value;
    }
  }

  // Inserts key -> value; the key must not be present.
  void Insert(OrderId key, uint32_t value) {
    OCX_ASSERT(value != kNotFound);
    if ((size_ + 1) * 2 > slots_.size()) Rehash(slots_.size() * 2);
    size_t i = Home(key);
    while (slots_[i].value != kNotFound) {
      OCX_ASSERT(slots_[i].key != key);
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{key, value};
    ++size_;
  }

  // Removes key; returns false when it was absent.
  bool Erase(OrderId key) {
    size_t i = Home(key);
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].value == kNotFound) return false;
      if (slots_[i].key == key) break;
    }
    // Backward-shift: pull later members of the probe run into the hole when their home
    // position does not lie strictly between the hole and themselves (cyclically).
    size_t hole = i;
    for (size_t j = (hole + 1) & mask_; slots_[j].value != kNotFound; j = (j + 1) & mask_) {
      const size_t home = Home(slots_[j].key);
      const bool home_in_gap = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!home_in_gap) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].value = kNotFound;
    --size_;
    return true;
  }

 private:
  struct Slot {
    OrderId key = 0;
    uint32_t value = kNotFound;
  };

  static size_t CapacityFor(size_t entries) {
    size_t capacity = 16;
    while (capacity < entries * 2) capacity *= 2;
    return capacity;
  }

  size_t Home(OrderId key) const {
    // Fibonacci hashing: sequential ids spread across the table.
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 64 - __builtin_ctzll(capacity);
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.value != kNotFound) Insert(slot.key, slot.value);
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 0;
  size_t size_ = 0;
};

}  // namespace ocx::engine
