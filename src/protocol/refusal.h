// Every refusal the exchange can answer, in one table: the stable code clients match on, the
// HTTP status it is answered with, and a default sentence for people.
//
// The core refuses commands with these (CommandResult::refusal, with a sentence that may be
// more specific than the default), and the API answers bad requests, authentication,
// limits and failures with them, over HTTP ({"error":{"code","message"}} with the status)
// and on the WebSocket channels ({"type":"error","error":{...}}). Codes are part of the
// public API (docs/api.md lists them): never rename one; add new ones at the end of their
// group. The engine's own reasons (engine::RejectReason) keep their codes in the replay
// format; the core maps them here.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace ocx::protocol {

// X(enumerator, code, HTTP status, default sentence)
#define OCX_REFUSALS(X)                                                                        \
  X(kNone, "none", 200, "Accepted.")                                                           \
  /* ---- The request itself (400). */                                                         \
  X(kBadRequest, "bad_request", 400, "The request is not valid.")                              \
  X(kInvalidJson, "invalid_json", 400, "The body is not valid JSON.")                          \
  X(kMissingField, "missing_field", 400, "A required field is missing.")                       \
  X(kInvalidField, "invalid_field", 400, "A field has a value of the wrong type or range.")    \
  X(kUnknownField, "unknown_field", 400, "The request has a field this call does not take.")   \
  X(kInvalidText, "invalid_text", 400, "Text must be valid UTF-8.")                            \
  X(kInvalidQuery, "invalid_query", 400, "The discovery query is not valid.")                  \
  X(kInvalidSort, "invalid_sort", 400, "The sort is not valid.")                               \
  X(kInvalidConstraints, "invalid_constraints", 400, "The constraints are not a valid query.") \
  X(kInvalidTask, "invalid_task", 400, "The task spec is not valid.")                          \
  X(kInvalidIdempotencyKey, "invalid_idempotency_key", 400,                                    \
    "An idempotency key is 1 to 64 printable ASCII characters, not starting with \"auto-\".")  \
  X(kDigestMismatch, "digest_mismatch", 400,                                                   \
    "The body's SHA-256 is not the digest in the path; nothing was kept.")                     \
  X(kInvalidMessage, "invalid_message", 400, "The message is not valid.")                      \
  X(kUnknownChannel, "unknown_channel", 400,                                                   \
    "Channels are book:MARKET, trades:MARKET, orders and leases.")                             \
  /* ---- Who is asking (401, 403). */                                                         \
  X(kUnauthenticated, "unauthenticated", 401, "This call needs a valid API token.")            \
  X(kBadSignature, "bad_signature", 401, "The signature does not verify with this key.")       \
  X(kTokenRevoked, "token_revoked", 401,                                                       \
    "This account's API token was replaced; connect again with the new one.")                  \
  X(kForbidden, "forbidden", 403, "The caller may not do this.")                               \
  X(kSignupDisabled, "signup_disabled", 403,                                                   \
    "This exchange creates accounts only for its operator.")                                   \
  X(kNotAuthorized, "not_authorized", 403, "The caller may not do this.")                      \
  /* ---- What is asked for (404, 405, 409, 426). */                                           \
  X(kNotFound, "not_found", 404, "No resource has this path.")                                 \
  X(kDashboardNotBuilt, "dashboard_not_built", 404, "This exchange serves no dashboard.")      \
  X(kUnknownAccount, "unknown_account", 404, "No account has this id.")                        \
  X(kUnknownMachine, "unknown_machine", 404, "No machine has this id.")                        \
  X(kUnknownMarket, "unknown_market", 404, "No market has this name.")                         \
  X(kUnknownOrder, "unknown_order", 404, "No order has this id.")                              \
  X(kUnknownLease, "unknown_lease", 404, "No lease has this id.")                              \
  X(kUnknownTask, "unknown_task", 404, "No task has this id.")                                 \
  X(kUnknownJob, "unknown_job", 404, "No job has this id.")                                    \
  X(kUnknownBlob, "unknown_blob", 404, "No blob you may read has this digest.")                \
  X(kMethodNotAllowed, "method_not_allowed", 405,                                              \
    "This resource does not support this method.")                                             \
  X(kNameTaken, "name_taken", 409, "An account with this name already exists.")                \
  X(kDuplicateClientOrderId, "duplicate_client_order_id", 409,                                 \
    "This account already used this client order id.")                                         \
  X(kDuplicateId, "duplicate_id", 409, "An order with this id already exists.")                \
  X(kTaskAlreadyAssigned, "task_already_assigned", 409, "This lease already has its task.")    \
  X(kJobOrder, "job_order", 409, "This order belongs to a job; cancel the job instead.")       \
  X(kDuplicateClientJobId, "duplicate_client_job_id", 409,                                     \
    "This account already used this client job id.")                                           \
  X(kIdempotencyKeyReused, "idempotency_key_reused", 409,                                      \
    "This Idempotency-Key was already used for a different request.")                          \
  X(kUpgradeRequired, "upgrade_required", 426, "This path is a WebSocket endpoint.")           \
  /* ---- Size and storage (413, 415, 431, 507). */                                            \
  X(kBodyTooLarge, "body_too_large", 413, "The request body exceeds this path's limit.")       \
  X(kTooLarge, "too_large", 413, "The request asks for more than the exchange answers.")       \
  X(kTaskTooLarge, "task_too_large", 413, "The task document is longer than the exchange accepts.") \
  X(kBlobQuotaExceeded, "blob_quota_exceeded", 413,                                            \
    "The upload would take the account past its blob storage quota.")                          \
  X(kUnsupportedMediaType, "unsupported_media_type", 415,                                      \
    "The body must be JSON (Content-Type: application/json).")                                 \
  X(kHeadersTooLarge, "headers_too_large", 431, "The request headers are too large.")          \
  X(kInsufficientStorage, "insufficient_storage", 507,                                         \
    "The exchange is low on disk space and takes no uploads now.")                             \
  /* ---- Limits and availability (429, 500, 503). */                                          \
  X(kRateLimited, "rate_limited", 429, "Too many requests; retry after the given seconds.")    \
  X(kTooManyConnections, "too_many_connections", 429,                                          \
    "This address has too many connections open.")                                             \
  X(kTooManyChannels, "too_many_channels", 429, "A connection has at most 64 channels.")       \
  X(kInternalError, "internal_error", 500,                                                     \
    "The exchange failed to answer this request; it was logged with the incident id.")         \
  X(kUnavailable, "unavailable", 503, "The exchange is not accepting this now; retry shortly.") \
  X(kServerBusy, "server_busy", 503, "The exchange has no room for another connection now.")   \
  /* ---- The core's refusals of a well-formed command (422 unless said above). */             \
  X(kInsufficientFunds, "insufficient_funds", 422, "The available balance does not cover this.") \
  X(kInsufficientCapacity, "insufficient_capacity", 422,                                       \
    "The machine has no free capacity for this.")                                              \
  X(kInvalidAmount, "invalid_amount", 422, "The amount must be positive and at most 1e9 credits.") \
  X(kInvalidAttributes, "invalid_attributes", 422, "The machine's attributes are not valid.")  \
  X(kInvalidBalance, "invalid_balance", 422, "Withdrawals come from available or earnings.")   \
  X(kInvalidCapacity, "invalid_capacity", 422, "Capacity is 0 to 1,000,000 slots per market.") \
  X(kInvalidClientJobId, "invalid_client_job_id", 422, "A client job id is 1 to 64 characters.") \
  X(kInvalidClientOrderId, "invalid_client_order_id", 422,                                     \
    "A client order id is 1 to 64 characters.")                                                \
  X(kInvalidMachine, "invalid_machine", 422, "The order names a machine it may not.")          \
  X(kInvalidMaxHours, "invalid_max_hours", 422, "max_hours is out of range.")                  \
  X(kInvalidName, "invalid_name", 422, "The name is not valid.")                               \
  X(kInvalidPrice, "invalid_price", 422,                                                       \
    "The price must be a positive decimal with at most 6 fractional digits.")                  \
  X(kInvalidPublicKey, "invalid_public_key", 422,                                              \
    "A public key is 64 lowercase hex digits (Ed25519).")                                      \
  X(kInvalidReason, "invalid_reason", 422, "A lease cannot be ended for this reason.")         \
  X(kInvalidSlots, "invalid_slots", 422, "slots_per_task is out of range.")                    \
  X(kInvalidTaskResult, "invalid_task_result", 422, "The task result is not valid.")           \
  X(kInvalidTasks, "invalid_tasks", 422, "A job's task count is out of range.")                \
  X(kInvalidTokenHash, "invalid_token_hash", 422, "A token hash is 64 lowercase hex characters.") \
  X(kInvalidUsage, "invalid_usage", 422, "Usage figures cannot be negative.")                  \
  X(kLimitReached, "limit_reached", 422, "The exchange holds its maximum of these.")           \
  X(kMachineOffline, "machine_offline", 422, "The machine is offline.")                        \
  X(kOrderTooLarge, "order_too_large", 422, "The order's value exceeds 1e9 credits.")          \
  X(kStaleUsage, "stale_usage", 422, "A later report for this lease was already recorded.")    \
  X(kTooManyOrders, "too_many_orders", 422, "The account has its maximum number of open orders.") \
  X(kTooManyMachines, "too_many_machines", 422,                                                \
    "The account has registered its maximum number of machines.")                              \
  X(kUsageAheadOfClock, "usage_ahead_of_clock", 422,                                           \
    "The report claims more time than has passed.")                                            \
  X(kUsageExceedsAllocation, "usage_exceeds_allocation", 422,                                  \
    "The report claims more than the lease's allocation.")                                     \
  /* ---- The matching engine's refusals (engine::RejectReason; 422). */                       \
  X(kOffTick, "off_tick", 422, "The price is not a multiple of the market's tick size.")       \
  X(kInvalidQuantity, "invalid_quantity", 422,                                                 \
    "The quantity must be a whole number of slots from 1 to the market's maximum.")            \
  X(kInvalidLot, "invalid_lot", 422,                                                           \
    "The lot must be a positive whole number, and only buy orders may carry one.")             \
  X(kLotMismatch, "lot_mismatch", 422, "The quantity is not a multiple of the order's lot.")   \
  X(kMissingExpiry, "missing_expiry", 422, "A gtd order needs an expiry time.")                \
  X(kExpiryInPast, "expiry_in_past", 422, "The gtd expiry is not after the current time.")     \
  X(kFokUnfillable, "fok_unfillable", 422,                                                     \
    "The fill-or-kill order cannot be filled completely at once; nothing happened.")           \
  X(kBookFull, "book_full", 422, "The order book is at its capacity of resting orders.")

enum class Refusal : uint8_t {
#define OCX_REFUSAL_ENUMERATOR(name, code, status, sentence) name,
  OCX_REFUSALS(OCX_REFUSAL_ENUMERATOR)
#undef OCX_REFUSAL_ENUMERATOR
};

struct RefusalInfo {
  std::string_view code;      // Stable snake_case, e.g. "insufficient_funds".
  int http_status = 422;
  std::string_view sentence;  // Default one-sentence explanation.
};

const RefusalInfo& Info(Refusal refusal);
inline std::string_view Code(Refusal refusal) { return Info(refusal).code; }
inline int HttpStatus(Refusal refusal) { return Info(refusal).http_status; }
inline std::string_view Sentence(Refusal refusal) { return Info(refusal).sentence; }
// The refusal with this code, for clients that read an answer back.
std::optional<Refusal> RefusalFromCode(std::string_view code);
// Every refusal, kNone excluded, in table order (docs and tests iterate over them).
const std::vector<Refusal>& AllRefusals();

}  // namespace ocx::protocol
