#include "bench/http_response_reader.h"

#include <string>

#include "gtest/gtest.h"

namespace ocx::bench {
namespace {

using State = HttpResponseReader::State;

constexpr char kCreated[] =
    "HTTP/1.1 201 Created\r\nServer: ocx\r\nContent-Type: application/json\r\n"
    "Content-Length: 11\r\n\r\n{\"id\":1234}";

State AppendText(HttpResponseReader& reader, const std::string& text) {
  return reader.Append(text.data(), text.size());
}

TEST(HttpResponseReaderTest, FramesAWholeResponse) {
  HttpResponseReader reader;
  ASSERT_EQ(AppendText(reader, kCreated), State::kComplete);
  EXPECT_EQ(reader.status(), 201);
  EXPECT_EQ(reader.body(), "{\"id\":1234}");
  EXPECT_FALSE(reader.closes());
}

TEST(HttpResponseReaderTest, WaitsForEveryByteWhenSplitAnywhere) {
  const std::string text = kCreated;
  for (size_t split = 1; split < text.size(); ++split) {
    HttpResponseReader reader;
    ASSERT_EQ(AppendText(reader, text.substr(0, split)), State::kNeedMore) << "split " << split;
    ASSERT_EQ(AppendText(reader, text.substr(split)), State::kComplete) << "split " << split;
    EXPECT_EQ(reader.body(), "{\"id\":1234}");
  }
}

TEST(HttpResponseReaderTest, KeepsTheBytesOfTheNextResponse) {
  HttpResponseReader reader;
  const std::string second =
      "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\nConnection: Close\r\n\r\n{}";
  ASSERT_EQ(AppendText(reader, kCreated + second.substr(0, 10)), State::kComplete);
  reader.Consume();
  ASSERT_EQ(reader.Parse(), State::kNeedMore);
  ASSERT_EQ(AppendText(reader, second.substr(10)), State::kComplete);
  EXPECT_EQ(reader.status(), 429);
  EXPECT_EQ(reader.body(), "{}");
  EXPECT_TRUE(reader.closes());  // Header names and the value are case-insensitive.
  reader.Consume();
  EXPECT_EQ(reader.Parse(), State::kNeedMore);
}

TEST(HttpResponseReaderTest, BodilessStatusesNeedNoLength) {
  HttpResponseReader reader;
  ASSERT_EQ(AppendText(reader, "HTTP/1.1 204 No Content\r\nServer: ocx\r\n\r\n"), State::kComplete);
  EXPECT_EQ(reader.status(), 204);
  EXPECT_EQ(reader.body(), "");
}

TEST(HttpResponseReaderTest, RefusesWhatItCannotFrame) {
  const std::string cases[] = {
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nServer: ocx\r\n\r\n",         // No length.
      "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",  // Not a number.
      "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",  // Not a status code.
      "SMTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",   // Not HTTP.
  };
  for (const std::string& text : cases) {
    HttpResponseReader reader;
    EXPECT_EQ(AppendText(reader, text), State::kError) << text;
    EXPECT_FALSE(reader.error().empty()) << text;
    EXPECT_EQ(reader.Parse(), State::kError) << "an error is final: " << text;
  }
  HttpResponseReader endless;
  EXPECT_EQ(AppendText(endless,
                       "HTTP/1.1 200 OK\r\n" + std::string(HttpResponseReader::kHeadBytesMax, 'x')),
            State::kError);
}

}  // namespace
}  // namespace ocx::bench
