#include "src/protocol/refusal.h"

#include <array>

namespace ocx::protocol {
namespace {

constexpr RefusalInfo kTable[] = {
#define OCX_REFUSAL_ROW(name, code, status, sentence) RefusalInfo{code, status, sentence},
    OCX_REFUSALS(OCX_REFUSAL_ROW)
#undef OCX_REFUSAL_ROW
};

}  // namespace

const RefusalInfo& Info(Refusal refusal) { return kTable[static_cast<size_t>(refusal)]; }

std::optional<Refusal> RefusalFromCode(std::string_view code) {
  for (size_t i = 0; i < std::size(kTable); ++i) {
    if (kTable[i].code == code) return static_cast<Refusal>(i);
  }
  return std::nullopt;
}

const std::vector<Refusal>& AllRefusals() {
  static const std::vector<Refusal> all = [] {
    std::vector<Refusal> out;
    for (size_t i = 1; i < std::size(kTable); ++i) out.push_back(static_cast<Refusal>(i));
    return out;
  }();
  return all;
}

}  // namespace ocx::protocol
