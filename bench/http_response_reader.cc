#include "bench/http_response_reader.h"

#include <charconv>

#include "src/base/strings.h"

namespace ocx::bench {
namespace {

// The value of header `name` (case-insensitive) in `head`, or nullopt-like empty + false.
bool FindHeader(std::string_view head, std::string_view name, std::string_view* value) {
  size_t line_start = head.find("\r\n");
  while (line_start != std::string_view::npos && line_start + 2 < head.size()) {
    line_start += 2;
    const size_t line_end = head.find("\r\n", line_start);
    const std::string_view line = head.substr(
        line_start, line_end == std::string_view::npos ? head.npos : line_end - line_start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && base::EqualsIgnoreCase(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      *value = v;
      return true;
    }
    line_start = line_end;
  }
  return false;
}

}  // namespace

HttpResponseReader::State HttpResponseReader::Append(const char* data, size_t size) {
  buffer_.append(data, size);
  return Parse();
}

HttpResponseReader::State HttpResponseReader::Parse() {
  if (!error_.empty()) return State::kError;
  if (head_bytes_ == 0) {
    const size_t end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buffer_.size() > kHeadBytesMax) return Fail("response head longer than 16 KiB");
      return State::kNeedMore;
    }
    const std::string_view head(buffer_.data(), end + 2);  // Ends with the last line's CRLF.
    // "HTTP/1.1 201 Created"
    if (!head.starts_with("HTTP/1.") || head.size() < 13 || head[8] != ' ') {
      return Fail("not an HTTP/1.x status line");
    }
    int status = 0;
    const auto [ptr, ec] = std::from_chars(head.data() + 9, head.data() + 12, status);
    // Three digits, then the space before the reason (or, leniently, the line's end).
    if (ec != std::errc() || ptr != head.data() + 12 || (head[12] != ' ' && head[12] != '\r') ||
        status < 100 || status > 599) {
      return Fail("bad status code");
    }
    std::string_view value;
    size_t length = 0;
    if (FindHeader(head, "Transfer-Encoding", &value)) {
      return Fail("chunked responses are not supported by the load generator");
    }
    const bool bodiless = status / 100 == 1 || status == 204 || status == 304;
    if (!bodiless) {
      if (!FindHeader(head, "Content-Length", &value)) {
        return Fail("response without Content-Length");
      }
      const auto [end_ptr, length_ec] =
          std::from_chars(value.data(), value.data() + value.size(), length);
      if (length_ec != std::errc() || end_ptr != value.data() + value.size()) {
        return Fail("bad Content-Length");
      }
    }
    closes_ = FindHeader(head, "Connection", &value) && base::EqualsIgnoreCase(value, "close");
    status_ = status;
    head_bytes_ = end + 4;
    body_bytes_ = length;
  }
  return buffer_.size() >= head_bytes_ + body_bytes_ ? State::kComplete : State::kNeedMore;
}

std::string_view HttpResponseReader::body() const {
  return std::string_view(buffer_).substr(head_bytes_, body_bytes_);
}

void HttpResponseReader::Consume() {
  buffer_.erase(0, head_bytes_ + body_bytes_);
  head_bytes_ = 0;
  body_bytes_ = 0;
  status_ = 0;
  closes_ = false;
}

HttpResponseReader::State HttpResponseReader::Fail(std::string why) {
  error_ = std::move(why);
  return State::kError;
}

}  // namespace ocx::bench
