#include "src/query/query.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/base/assert.h"
#include "src/base/decimal.h"
#include "src/query/ast.h"

namespace ocx::query {

using internal::Node;
using internal::NodeKind;
using internal::Tree;

std::string_view CompareOpText(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "==";
    case CompareOp::kNe:
      return "!=";
    case CompareOp::kLt:
      return "<";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kGe:
      return ">=";
  }
  OCX_ASSERT_MSG(false, "unknown CompareOp");
  return "";
}

namespace internal {

bool ValueLess(const Value& a, const Value& b) {
  if (a.is_number != b.is_number) return a.is_number;
  if (a.is_number) return a.number_micros < b.number_micros;
  return a.text < b.text;
}

namespace {
bool SameValue(const Value& a, const Value& b) { return !ValueLess(a, b) && !ValueLess(b, a); }
}  // namespace

bool SameTree(const Node& a, const Node& b) {
  if (a.kind != b.kind || a.attribute != b.attribute || a.children.size() != b.children.size()) {
    return false;
  }
  switch (a.kind) {
    case NodeKind::kAnd:
    case NodeKind::kOr:
    case NodeKind::kNot:
      break;
    case NodeKind::kCompare:
      if (a.op != b.op || !SameValue(a.literal, b.literal)) return false;
      break;
    case NodeKind::kIn:
      if (a.list.size() != b.list.size()) return false;
      for (size_t i = 0; i < a.list.size(); ++i) {
        if (!SameValue(a.list[i], b.list[i])) return false;
      }
      break;
    case NodeKind::kMatch:
      if (a.literal.text != b.literal.text) return false;
      break;
  }
  for (size_t i = 0; i < a.children.size(); ++i) {
    if (!SameTree(a.children[i], b.children[i])) return false;
  }
  return true;
}

}  // namespace internal

namespace {

// ---- Lexical rules shared by queries and sort texts -----------------------------------------

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
bool IsSegmentChar(char c) { return IsIdentChar(c) || c == '-'; }

// The end of the attribute name starting at `pos`, or `pos` when none starts there:
// [A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*
size_t ScanAttributeName(std::string_view text, size_t pos) {
  if (pos >= text.size() || !IsIdentStart(text[pos])) return pos;
  size_t end = pos + 1;
  while (end < text.size() && IsIdentChar(text[end])) ++end;
  while (end + 1 < text.size() && text[end] == '.' && IsSegmentChar(text[end + 1])) {
    end += 2;
    while (end < text.size() && IsSegmentChar(text[end])) ++end;
  }
  return end;
}

constexpr std::string_view kInKeyword = "in";

// This Abseil's string_view is its own type, not std::string_view: convert for StrCat.
absl::string_view Av(std::string_view text) { return absl::string_view(text.data(), text.size()); }

std::string DescribeByte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x21 && byte < 0x7f) return absl::StrCat("'", absl::string_view(&c, 1), "'");
  static constexpr char kHex[] = "0123456789abcdef";
  return absl::StrCat("byte 0x", absl::string_view(&kHex[byte >> 4], 1),
                      absl::string_view(&kHex[byte & 15], 1));
}

void AppendQuoted(std::string_view text, std::string* out) {
  out->push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        out->push_back(c);
    }
  }
  out->push_back('"');
}

void AppendValue(const Value& value, std::string* out) {
  if (value.is_number) {
    base::AppendMicros(value.number_micros, out);
  } else {
    AppendQuoted(value.text, out);
  }
}

// ---- Lexer ----------------------------------------------------------------------------------

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kIn,
  kNumber,
  kString,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kMatch,
  kAnd,
  kOr,
  kNot,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
};

bool IsCompare(Tok t) { return t >= Tok::kEq && t <= Tok::kGe; }
bool IsLiteral(Tok t) { return t == Tok::kNumber || t == Tok::kString; }

CompareOp ToCompareOp(Tok t) {
  switch (t) {
    case Tok::kEq:
      return CompareOp::kEq;
    case Tok::kNe:
      return CompareOp::kNe;
    case Tok::kLt:
      return CompareOp::kLt;
    case Tok::kLe:
      return CompareOp::kLe;
    case Tok::kGt:
      return CompareOp::kGt;
    case Tok::kGe:
      return CompareOp::kGe;
    default:
      break;
  }
  OCX_ASSERT_MSG(false, "not a comparison token");
  return CompareOp::kEq;
}

// `4 <= cpu.cores` is `cpu.cores >= 4`.
CompareOp Mirror(CompareOp op) {
  switch (op) {
    case CompareOp::kLt:
      return CompareOp::kGt;
    case CompareOp::kLe:
      return CompareOp::kGe;
    case CompareOp::kGt:
      return CompareOp::kLt;
    case CompareOp::kGe:
      return CompareOp::kLe;
    default:
      return op;
  }
}

bool IsOrdering(CompareOp op) { return op != CompareOp::kEq && op != CompareOp::kNe; }

struct Token {
  Tok kind = Tok::kEnd;
  uint32_t begin = 0;
  uint32_t end = 0;
  std::string text;    // kIdent: the name; kString: the unescaped contents.
  int64_t micros = 0;  // kNumber.

  Value literal() const { return kind == Tok::kNumber ? Value::Number(micros) : Value::Text(text); }
};

// ---- Parser ---------------------------------------------------------------------------------

// Recursive descent over the grammar of docs/formats/query.md. Each method returns false
// after recording the first error in error_; the caller stops there.
// Recursion is bounded by kQueryDepthMax: only '(' and '!' recurse, and each adds a level.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  // Parses the whole text into *root; false (see error()) on any mistake. *empty is set when
  // the text holds no tokens at all.
  bool ParseQuery(Node* root, bool* empty) {
    if (!Next()) return false;
    *empty = tok_.kind == Tok::kEnd;
    if (*empty) return true;
    if (!ParseOr(root, 0)) return false;
    if (tok_.kind == Tok::kRParen) return Fail(tok_.begin, "unmatched ')'");
    if (tok_.kind != Tok::kEnd) {
      return Fail(tok_.begin, "expected '&&', '||' or the end of the query");
    }
    return true;
  }

  const SyntaxError& error() const { return error_; }

 private:
  bool Fail(size_t offset, std::string message) {
    error_ = SyntaxError{static_cast<int>(offset) + 1, std::move(message)};
    return false;
  }

  // Reads the next token into tok_.
  bool Next() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
    tok_ = Token();
    tok_.begin = static_cast<uint32_t>(pos_);
    if (pos_ == text_.size()) {
      tok_.end = tok_.begin;
      return true;
    }
    const char c = text_[pos_];
    const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    auto single = [&](Tok kind, size_t length) {
      tok_.kind = kind;
      pos_ += length;
      tok_.end = static_cast<uint32_t>(pos_);
      return true;
    };
    if (IsIdentStart(c)) {
      const size_t end = ScanAttributeName(text_, pos_);
      tok_.text = std::string(text_.substr(pos_, end - pos_));
      return single(tok_.text == kInKeyword ? Tok::kIn : Tok::kIdent, end - pos_);
    }
    if (IsDigit(c) || c == '-') return LexNumber();
    switch (c) {
      case '"':
        return LexString();
      case '=':
        if (next == '=') return single(Tok::kEq, 2);
        if (next == '~') return single(Tok::kMatch, 2);
        return Fail(pos_, "'=' is not an operator: write '==' to compare");
      case '!':
        return next == '=' ? single(Tok::kNe, 2) : single(Tok::kNot, 1);
      case '<':
        return next == '=' ? single(Tok::kLe, 2) : single(Tok::kLt, 1);
      case '>':
        return next == '=' ? single(Tok::kGe, 2) : single(Tok::kGt, 1);
      case '&':
        if (next == '&') return single(Tok::kAnd, 2);
        return Fail(pos_, "write '&&' for \"and\"");
      case '|':
        if (next == '|') return single(Tok::kOr, 2);
        return Fail(pos_, "write '||' for \"or\"");
      case '(':
        return single(Tok::kLParen, 1);
      case ')':
        return single(Tok::kRParen, 1);
      case '[':
        return single(Tok::kLBracket, 1);
      case ']':
        return single(Tok::kRBracket, 1);
      case ',':
        return single(Tok::kComma, 1);
      default:
        break;
    }
    return Fail(pos_, absl::StrCat("unexpected character ", DescribeByte(c)));
  }

  bool LexNumber() {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    if (pos_ == text_.size() || !IsDigit(text_[pos_])) {
      return Fail(start, "expected a digit after '-'");
    }
    while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (pos_ == text_.size() || !IsDigit(text_[pos_])) {
        return Fail(pos_, "expected a digit after the decimal point");
      }
      while (pos_ < text_.size() && IsDigit(text_[pos_])) ++pos_;
    }
    if (pos_ < text_.size() && (IsIdentChar(text_[pos_]) || text_[pos_] == '.')) {
      return Fail(start, "malformed number: numbers are decimals like 4, -2 or 1.25 (no exponent)");
    }
    const base::ParsedMicros parsed = base::ParseMicros(text_.substr(start, pos_ - start));
    switch (parsed.error) {
      case base::DecimalError::kNone:
        break;
      case base::DecimalError::kTooManyDigits:
        return Fail(start, "too many digits after the decimal point: at most 6");
      case base::DecimalError::kOutOfRange:
        return Fail(start,
                    "number out of range: numbers lie between -9223372036854.775808 and "
                    "9223372036854.775807");
      case base::DecimalError::kSyntax:
        return Fail(start, "malformed number");
    }
    tok_.kind = Tok::kNumber;
    tok_.micros = parsed.micros;
    tok_.end = static_cast<uint32_t>(pos_);
    return true;
  }

  bool LexString() {
    const size_t start = pos_;
    ++pos_;
    std::string contents;
    for (;;) {
      if (pos_ >= text_.size()) {
        return Fail(start, "unterminated string: the closing '\"' is missing");
      }
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) {
          return Fail(start, "unterminated string: the closing '\"' is missing");
        }
        switch (text_[pos_ + 1]) {
          case '"':
            contents.push_back('"');
            break;
          case '\\':
            contents.push_back('\\');
            break;
          case 'n':
            contents.push_back('\n');
            break;
          case 't':
            contents.push_back('\t');
            break;
          default:
            return Fail(pos_, absl::StrCat("unknown escape '\\", DescribeByte(text_[pos_ + 1]),
                                           "': the escapes are \\\" \\\\ \\n \\t (so a regular "
                                           "expression's \\d is written \\\\d)"));
        }
        pos_ += 2;
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return Fail(pos_, "control character in a string: write \\n or \\t");
      }
      contents.push_back(c);
      ++pos_;
    }
    tok_.kind = Tok::kString;
    tok_.text = std::move(contents);
    tok_.end = static_cast<uint32_t>(pos_);
    return true;
  }

  // Adds `child` to the && or || node `parent`, flattening a child of the same kind.
  static void Append(Node* parent, Node child) {
    if (child.kind == parent->kind) {
      for (Node& grandchild : child.children) parent->children.push_back(std::move(grandchild));
    } else {
      parent->children.push_back(std::move(child));
    }
  }

  bool ParseBinary(Node* out, int depth, Tok op_token, NodeKind kind) {
    auto parse_operand = [&](Node* operand) {
      return kind == NodeKind::kOr ? ParseAnd(operand, depth) : ParseUnary(operand, depth);
    };
    Node first;
    if (!parse_operand(&first)) return false;
    if (tok_.kind != op_token) {
      *out = std::move(first);
      return true;
    }
    Node node;
    node.kind = kind;
    node.begin = first.begin;
    Append(&node, std::move(first));
    while (tok_.kind == op_token) {
      if (!Next()) return false;
      Node operand;
      if (!parse_operand(&operand)) return false;
      node.end = operand.end;
      Append(&node, std::move(operand));
    }
    *out = std::move(node);
    return true;
  }

  bool ParseOr(Node* out, int depth) { return ParseBinary(out, depth, Tok::kOr, NodeKind::kOr); }
  bool ParseAnd(Node* out, int depth) { return ParseBinary(out, depth, Tok::kAnd, NodeKind::kAnd); }

  bool ParseUnary(Node* out, int depth) {
    if (tok_.kind == Tok::kNot || tok_.kind == Tok::kLParen) {
      if (depth + 1 > kQueryDepthMax) {
        return Fail(tok_.begin,
                    absl::StrCat("nested deeper than ", kQueryDepthMax, " levels of '(' and '!'"));
      }
    }
    if (tok_.kind == Tok::kNot) {
      const uint32_t begin = tok_.begin;
      if (!Next()) return false;
      Node child;
      if (!ParseUnary(&child, depth + 1)) return false;
      out->kind = NodeKind::kNot;
      out->begin = begin;
      out->end = child.end;
      out->children.push_back(std::move(child));
      return true;
    }
    if (tok_.kind == Tok::kLParen) {
      const uint32_t open = tok_.begin;
      if (!Next()) return false;
      if (!ParseOr(out, depth + 1)) return false;
      if (tok_.kind != Tok::kRParen) {
        return Fail(tok_.begin, absl::StrCat("expected ')' to close the '(' at column ", open + 1));
      }
      out->begin = open;
      out->end = tok_.end;
      return Next();
    }
    return ParseCondition(out);
  }

  bool ParseCondition(Node* out) {
    if (conditions_ == kQueryConditionsMax && (tok_.kind == Tok::kIdent || IsLiteral(tok_.kind))) {
      return Fail(tok_.begin, absl::StrCat("more than ", kQueryConditionsMax, " conditions"));
    }
    switch (tok_.kind) {
      case Tok::kIdent:
        break;
      case Tok::kNumber:
      case Tok::kString:
        return ParseLiteralFirst(out);
      case Tok::kIn:
        return Fail(tok_.begin, "'in' is a keyword, not an attribute");
      case Tok::kEnd:
        return Fail(tok_.begin,
                    "unexpected end of query: expected a condition such as region == \"eu\"");
      default:
        return Fail(tok_.begin, "expected a condition such as region == \"eu\", '(' or '!'");
    }
    ++conditions_;
    const Token attribute = std::move(tok_);
    if (!Next()) return false;
    out->attribute = attribute.text;
    out->begin = attribute.begin;
    if (IsCompare(tok_.kind)) {
      const Token op = std::move(tok_);
      if (!Next()) return false;
      if (tok_.kind == Tok::kIdent) {
        return Fail(tok_.begin,
                    "compare an attribute with a number or a string, not with another attribute");
      }
      if (!IsLiteral(tok_.kind)) {
        return Fail(tok_.begin, absl::StrCat("expected a number or a string after '",
                                             Av(CompareOpText(ToCompareOp(op.kind))), "'"));
      }
      out->kind = NodeKind::kCompare;
      out->op = ToCompareOp(op.kind);
      out->literal = tok_.literal();
      out->end = tok_.end;
      if (!CheckCompare(attribute.text, out->op, op.begin, tok_)) return false;
      return Next();
    }
    if (tok_.kind == Tok::kIn) return ParseInList(attribute.text, out);
    if (tok_.kind == Tok::kMatch) return ParseMatch(attribute.text, out);
    return Fail(tok_.begin, absl::StrCat("expected an operator (== != < <= > >= in =~) after '",
                                         attribute.text, "'"));
  }

  // `4 <= cpu.cores`: stored as `cpu.cores >= 4`.
  bool ParseLiteralFirst(Node* out) {
    ++conditions_;
    const Token literal = std::move(tok_);
    if (!Next()) return false;
    if (!IsCompare(tok_.kind)) {
      return Fail(tok_.begin,
                  "expected a comparison operator (== != < <= > >=) after the literal; 'in' "
                  "and '=~' need the attribute on their left");
    }
    const Token op = std::move(tok_);
    if (!Next()) return false;
    if (tok_.kind != Tok::kIdent) {
      return Fail(tok_.begin, absl::StrCat("expected an attribute after '",
                                           Av(CompareOpText(ToCompareOp(op.kind))),
                                           "': one side of a comparison is an attribute"));
    }
    out->kind = NodeKind::kCompare;
    out->attribute = tok_.text;
    out->op = Mirror(ToCompareOp(op.kind));
    out->literal = literal.literal();
    out->begin = literal.begin;
    out->end = tok_.end;
    // Ordering is kept by mirroring; the messages quote the operator as written.
    if (!CheckCompare(out->attribute, ToCompareOp(op.kind), op.begin, literal)) return false;
    return Next();
  }

  // The static type rules of docs/formats/query.md, "Types".
  bool CheckCompare(const std::string& attribute, CompareOp op, uint32_t op_begin,
                    const Token& literal) {
    const AttributeType type = KnownAttributeType(attribute);
    if (IsOrdering(op) && type == AttributeType::kText) {
      return Fail(op_begin, absl::StrCat("'", Av(CompareOpText(op)), "' compares numbers, and ",
                                         attribute, " is a string"));
    }
    if (IsOrdering(op) && literal.kind == Tok::kString) {
      return Fail(literal.begin,
                  absl::StrCat("'", Av(CompareOpText(op)), "' compares numbers, not strings"));
    }
    return CheckLiteralType(attribute, type, literal);
  }

  bool CheckLiteralType(const std::string& attribute, AttributeType type, const Token& literal) {
    if (type == AttributeType::kNumber && literal.kind == Tok::kString) {
      return Fail(literal.begin, absl::StrCat(attribute,
                                              " is a number: compare it with a "
                                              "number like 4 or 1.5, not a string"));
    }
    if (type == AttributeType::kText && literal.kind == Tok::kNumber) {
      return Fail(literal.begin, absl::StrCat(attribute,
                                              " is a string: compare it with a "
                                              "string in double quotes, not a number"));
    }
    return true;
  }

  bool ParseInList(const std::string& attribute, Node* out) {
    if (!Next()) return false;
    if (tok_.kind != Tok::kLBracket) return Fail(tok_.begin, "expected '[' after 'in'");
    if (!Next()) return false;
    if (tok_.kind == Tok::kRBracket) {
      return Fail(tok_.begin, "an empty list matches nothing: give at least one value");
    }
    const AttributeType type = KnownAttributeType(attribute);
    out->kind = NodeKind::kIn;
    for (;;) {
      if (!IsLiteral(tok_.kind)) {
        return Fail(tok_.begin, "expected a number or a string in the list");
      }
      if (out->list.size() == kInListItemsMax) {
        return Fail(tok_.begin, absl::StrCat("more than ", kInListItemsMax, " items in the list"));
      }
      if (!CheckLiteralType(attribute, type, tok_)) return false;
      out->list.push_back(tok_.literal());
      if (!Next()) return false;
      if (tok_.kind == Tok::kComma) {
        if (!Next()) return false;
        continue;
      }
      if (tok_.kind == Tok::kRBracket) break;
      return Fail(tok_.begin, "expected ',' or ']' in the list");
    }
    out->end = tok_.end;
    std::sort(out->list.begin(), out->list.end(), internal::ValueLess);
    out->list.erase(std::unique(out->list.begin(), out->list.end(),
                                [](const Value& a, const Value& b) {
                                  return !internal::ValueLess(a, b) && !internal::ValueLess(b, a);
                                }),
                    out->list.end());
    return Next();
  }

  bool ParseMatch(const std::string& attribute, Node* out) {
    const uint32_t op_begin = tok_.begin;
    if (KnownAttributeType(attribute) == AttributeType::kNumber) {
      return Fail(op_begin, absl::StrCat("'=~' matches strings, and ", attribute, " is a number"));
    }
    if (regexes_ == kRegexesMax) {
      return Fail(op_begin,
                  absl::StrCat("more than ", kRegexesMax, " regular expressions in one query"));
    }
    ++regexes_;
    if (!Next()) return false;
    if (tok_.kind != Tok::kString) {
      return Fail(tok_.begin, "expected a regular expression in double quotes after '=~'");
    }
    if (tok_.text.size() > kRegexPatternBytesMax) {
      return Fail(tok_.begin,
                  absl::StrCat("regular expression longer than ", kRegexPatternBytesMax, " bytes"));
    }
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kRegexMemoryBytesMax);
    options.set_never_capture(true);
    auto regex = std::make_unique<const RE2>(tok_.text, options);
    if (!regex->ok()) {
      return Fail(tok_.begin, absl::StrCat("bad regular expression: ", regex->error()));
    }
    out->kind = NodeKind::kMatch;
    out->literal = Value::Text(tok_.text);
    out->regex = std::move(regex);
    out->end = tok_.end;
    return Next();
  }

  std::string_view text_;
  size_t pos_ = 0;
  Token tok_;
  size_t conditions_ = 0;
  size_t regexes_ = 0;
  SyntaxError error_;
};

// ---- Evaluation -----------------------------------------------------------------------------

bool CompareValue(const Value& value, CompareOp op, const Value& literal) {
  if (value.is_number != literal.is_number) return false;
  if (!literal.is_number) {
    OCX_ASSERT(!IsOrdering(op));
    return (value.text == literal.text) == (op == CompareOp::kEq);
  }
  return internal::CompareNumbers(op, value.number_micros, literal.number_micros);
}

bool Evaluate(const Node& node, absl::FunctionRef<const Value*(std::string_view)> lookup) {
  switch (node.kind) {
    case NodeKind::kAnd:
      for (const Node& child : node.children) {
        if (!Evaluate(child, lookup)) return false;
      }
      return true;
    case NodeKind::kOr:
      for (const Node& child : node.children) {
        if (Evaluate(child, lookup)) return true;
      }
      return false;
    case NodeKind::kNot:
      return !Evaluate(node.children[0], lookup);
    case NodeKind::kCompare: {
      const Value* value = lookup(node.attribute);
      return value != nullptr && CompareValue(*value, node.op, node.literal);
    }
    case NodeKind::kIn: {
      const Value* value = lookup(node.attribute);
      return value != nullptr &&
             std::binary_search(node.list.begin(), node.list.end(), *value, internal::ValueLess);
    }
    case NodeKind::kMatch: {
      const Value* value = lookup(node.attribute);
      return value != nullptr && !value->is_number && RE2::PartialMatch(value->text, *node.regex);
    }
  }
  return false;
}

// ---- Canonical text -------------------------------------------------------------------------

void AppendCanonical(const Node& node, std::string* out) {
  switch (node.kind) {
    case NodeKind::kAnd:
    case NodeKind::kOr: {
      const bool is_and = node.kind == NodeKind::kAnd;
      for (size_t i = 0; i < node.children.size(); ++i) {
        if (i > 0) out->append(is_and ? " && " : " || ");
        const Node& child = node.children[i];
        // An || inside && needs parentheses; an && inside || gets them for the reader.
        const bool parenthesize = child.kind == NodeKind::kAnd || child.kind == NodeKind::kOr;
        if (parenthesize) out->push_back('(');
        AppendCanonical(child, out);
        if (parenthesize) out->push_back(')');
      }
      return;
    }
    case NodeKind::kNot:
      out->append("!(");
      AppendCanonical(node.children[0], out);
      out->push_back(')');
      return;
    case NodeKind::kCompare:
      absl::StrAppend(out, node.attribute, " ", Av(CompareOpText(node.op)), " ");
      AppendValue(node.literal, out);
      return;
    case NodeKind::kIn:
      absl::StrAppend(out, node.attribute, " in [");
      for (size_t i = 0; i < node.list.size(); ++i) {
        if (i > 0) out->append(", ");
        AppendValue(node.list[i], out);
      }
      out->push_back(']');
      return;
    case NodeKind::kMatch:
      absl::StrAppend(out, node.attribute, " =~ ");
      AppendQuoted(node.literal.text, out);
      return;
  }
}

size_t CountConditions(const Node& node) {
  if (node.children.empty()) return 1;
  size_t count = 0;
  for (const Node& child : node.children) count += CountConditions(child);
  return count;
}

}  // namespace

// ---- Query ----------------------------------------------------------------------------------

// The canonical text is what a journal records, so it must parse again (Parse(Canonical())
// gives an equal query), within the same limits as the query. It can nest deeper than the
// query (each '!' is written "!(...)", and an && inside || gets parentheses) and be longer
// (spaces around operators). Returns the first node, in source order, whose canonical text
// opens more than kQueryDepthMax levels of '(' and '!', with `depth` levels open around it;
// nullptr when there is none.
const Node* FindCanonicalTooDeep(const Node& node, int depth) {
  switch (node.kind) {
    case NodeKind::kNot:
      if (depth + 2 > kQueryDepthMax) return &node;
      return FindCanonicalTooDeep(node.children[0], depth + 2);
    case NodeKind::kAnd:
    case NodeKind::kOr:
      for (const Node& child : node.children) {
        const bool parenthesized = child.kind == NodeKind::kAnd || child.kind == NodeKind::kOr;
        const int child_depth = depth + (parenthesized ? 1 : 0);
        if (child_depth > kQueryDepthMax) return &child;
        if (const Node* deep = FindCanonicalTooDeep(child, child_depth)) return deep;
      }
      return nullptr;
    case NodeKind::kCompare:
    case NodeKind::kIn:
    case NodeKind::kMatch:
      return nullptr;
  }
  return nullptr;
}

std::variant<Query, SyntaxError> Query::Parse(std::string_view text) {
  if (text.size() > kQueryBytesMax) {
    return SyntaxError{static_cast<int>(kQueryBytesMax) + 1,
                       absl::StrCat("query is ", text.size(), " bytes long; at most ",
                                    kQueryBytesMax, " are allowed")};
  }
  auto tree = std::make_shared<Tree>();
  tree->text = std::string(text);
  Parser parser(tree->text);
  bool empty = false;
  if (!parser.ParseQuery(&tree->root, &empty)) return parser.error();
  if (empty) return Query();
  const Node* root = &tree->root;
  if (const Node* deep = FindCanonicalTooDeep(*root, 0)) {
    return SyntaxError{static_cast<int>(deep->begin) + 1,
                       absl::StrCat("nested deeper than ", kQueryDepthMax,
                                    " levels of '(' and '!' in canonical form, where each '!' is "
                                    "written '!(...)'")};
  }
  std::string canonical;
  AppendCanonical(*root, &canonical);
  if (canonical.size() > kQueryBytesMax) {
    return SyntaxError{1, absl::StrCat("query is ", canonical.size(),
                                       " bytes long in canonical form (spaces around operators); "
                                       "at most ",
                                       kQueryBytesMax, " are allowed")};
  }
  return Query(std::move(tree), root);
}

bool Query::Matches(absl::FunctionRef<const Value*(std::string_view)> lookup) const {
  return root_ == nullptr || Evaluate(*root_, lookup);
}

bool Query::Matches(const Attributes& attributes) const {
  return Matches([&attributes](std::string_view name) -> const Value* {
    const auto it = attributes.find(std::string(name));
    return it == attributes.end() ? nullptr : &it->second;
  });
}

std::string Query::Canonical() const {
  std::string out;
  if (root_ != nullptr) AppendCanonical(*root_, &out);
  return out;
}

std::vector<Clause> Query::TopLevelClauses() const {
  std::vector<Clause> clauses;
  if (root_ == nullptr) return clauses;
  auto add = [&](const Node& node) {
    Clause clause;
    clause.text = tree_->text.substr(node.begin, node.end - node.begin);
    clause.query = Query(tree_, &node);
    clause.canonical = clause.query.Canonical();
    clauses.push_back(std::move(clause));
  };
  if (root_->kind == NodeKind::kAnd) {
    for (const Node& child : root_->children) add(child);
  } else {
    add(*root_);
  }
  return clauses;
}

size_t Query::conditions() const { return root_ == nullptr ? 0 : CountConditions(*root_); }

bool operator==(const Query& a, const Query& b) {
  if (a.root_ == nullptr || b.root_ == nullptr) return a.root_ == b.root_;
  return internal::SameTree(*a.root_, *b.root_);
}

// ---- Errors ---------------------------------------------------------------------------------

std::string FormatSyntaxError(std::string_view text, const SyntaxError& error) {
  constexpr size_t kWindowBytes = 120;
  const size_t offset = std::min(static_cast<size_t>(std::max(error.column, 1) - 1), text.size());
  // The line holding the offset.
  const size_t newline_before = offset == 0 ? std::string_view::npos : text.rfind('\n', offset - 1);
  size_t begin = newline_before == std::string_view::npos ? 0 : newline_before + 1;
  size_t end = text.find('\n', offset);
  if (end == std::string_view::npos) end = text.size();
  // A window around the offset on a long line, not cutting a UTF-8 sequence at its start.
  bool cut_front = false;
  bool cut_back = false;
  if (end - begin > kWindowBytes) {
    if (offset - begin > kWindowBytes / 2) {
      begin = offset - kWindowBytes / 2;
      cut_front = true;
    }
    while (begin < offset && (static_cast<unsigned char>(text[begin]) & 0xc0) == 0x80) ++begin;
    if (end - begin > kWindowBytes) {
      end = begin + kWindowBytes;
      cut_back = true;
    }
  }
  std::string out;
  std::string caret;
  if (cut_front) {
    out.append("...");
    caret.append("   ");
  }
  for (size_t i = begin; i < end; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c == '\t' || (c >= 0x20 && c != 0x7f) ? static_cast<char>(c) : '?');
    if (i < offset) {
      if (c == '\t') {
        caret.push_back('\t');
      } else if ((c & 0xc0) != 0x80) {
        caret.push_back(' ');
      }
    }
  }
  if (cut_back) out.append("...");
  absl::StrAppend(&out, "\n", caret, "^ column ", error.column, ": ", error.message);
  return out;
}

// ---- Sort -----------------------------------------------------------------------------------

bool IsAttributeName(std::string_view name) {
  return !name.empty() && ScanAttributeName(name, 0) == name.size() && name != kInKeyword;
}

std::variant<std::vector<SortKey>, SyntaxError> ParseSort(std::string_view text) {
  auto fail = [](size_t offset, std::string message) {
    return SyntaxError{static_cast<int>(offset) + 1, std::move(message)};
  };
  if (text.size() > kSortBytesMax) {
    return fail(kSortBytesMax, absl::StrCat("sort is ", text.size(), " bytes long; at most ",
                                            kSortBytesMax, " are allowed"));
  }
  std::vector<SortKey> keys;
  size_t pos = 0;
  auto skip_spaces = [&] {
    while (pos < text.size() && IsSpace(text[pos])) ++pos;
  };
  skip_spaces();
  if (pos == text.size()) return keys;
  for (;;) {
    skip_spaces();
    const size_t item = pos;
    SortKey key;
    if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
      key.descending = text[pos] == '-';
      ++pos;
    }
    const size_t end = ScanAttributeName(text, pos);
    if (end == pos) {
      return fail(pos, "expected an attribute name, optionally preceded by '-' (descending)");
    }
    key.attribute = std::string(text.substr(pos, end - pos));
    if (key.attribute == kInKeyword) return fail(pos, "'in' is a keyword, not an attribute");
    if (keys.size() == kSortKeysMax) {
      return fail(item, absl::StrCat("more than ", kSortKeysMax, " sort keys"));
    }
    for (const SortKey& previous : keys) {
      if (previous.attribute == key.attribute) {
        return fail(pos, absl::StrCat("'", key.attribute, "' is already a sort key"));
      }
    }
    keys.push_back(std::move(key));
    pos = end;
    skip_spaces();
    if (pos == text.size()) return keys;
    if (text[pos] != ',') return fail(pos, "expected ',' between sort keys");
    ++pos;
  }
}

std::string FormatSort(const std::vector<SortKey>& keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (keys[i].descending) out.push_back('-');
    out.append(keys[i].attribute);
  }
  return out;
}

}  // namespace ocx::query
