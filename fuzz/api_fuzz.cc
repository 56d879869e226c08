// An HTTP request through the whole API into a real core (docs/fuzzing.md): the input picks a
// method, a credential and a route of the table (its {captures} filled from the input), then
// gives the rest of the target (path suffix and query) and the body. Every answer is checked
// (CheckAnswer: a documented status, a refusal of the table in JSON, never a 500), and every
// few hundred inputs the whole ledger must still sum to zero.
//
// Input layout: [method][credential][route][content type][target suffix]\n[body]
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/exchange_fixture.h"

namespace {

using ocx::fuzz::ExchangeFixture;

constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
constexpr const char* kContentTypes[] = {"application/json", "application/octet-stream",
                                         "text/plain", ""};

// The route's pattern with each {capture} replaced by `fill` (the same text for each).
std::string FillPattern(const std::string& pattern, std::string_view fill) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{') {
      out.append(fill);
      i = pattern.find('}', i);
      if (i == std::string::npos) break;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ExchangeFixture& fixture = ExchangeFixture::Get();
  if (size < 4) return 0;
  const std::string_view input = ocx::fuzz::AsText(data, size);
  const std::string method = kMethods[static_cast<uint8_t>(input[0]) % std::size(kMethods)];
  const std::string tokens[] = {"", fixture.operator_token(), fixture.consumer_token(),
                                fixture.provider_token(), "ocx_" + std::string(64, 'f')};
  const std::string& token = tokens[static_cast<uint8_t>(input[1]) % std::size(tokens)];
  const auto& routes = ocx::api::Api::Routes();
  const size_t route = static_cast<uint8_t>(input[2]) % (routes.size() + 1);
  const std::string content_type =
      kContentTypes[static_cast<uint8_t>(input[3]) % std::size(kContentTypes)];
  std::string_view rest = input.substr(4);
  const size_t newline = rest.find('\n');
  const std::string_view target_part = rest.substr(0, newline);
  const std::string body(newline == std::string_view::npos ? std::string_view()
                                                           : rest.substr(newline + 1));
  std::string target;
  if (route == routes.size()) {
    target = std::string(target_part);  // A target of the input's own.
    if (target.empty() || target[0] != '/') target = "/" + target;
  } else {
    // The capture is the target part up to '?', the rest is the query.
    const size_t question = target_part.find('?');
    target = FillPattern(routes[route].pattern, target_part.substr(0, question));
    if (question != std::string_view::npos) target += target_part.substr(question);
  }
  ocx::api::HttpRequest request =
      ocx::fuzz::Request(method, std::move(target), body, token, content_type);
  if (request.path.empty()) return 0;  // The server answers such a target 400 itself.
  const ocx::api::HttpResponse response = ocx::fuzz::Call(fixture.api(), std::move(request));
  ocx::fuzz::CheckAnswer(response);
  fixture.FollowTokenRotation(response);
  static uint64_t calls = 0;
  if (++calls % 256 == 0) OCX_ASSERT_MSG(fixture.LedgerBalanced(), "the ledger does not balance");
  return 0;
}
