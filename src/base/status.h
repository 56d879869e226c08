// Helpers for absl::Status / absl::StatusOr, the carrier of operating errors (house style,
// kind 2). Our code throws nothing; these keep propagation short and always checked.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define OCX_STATUS_CONCAT_INNER_(a, b) a##b
#define OCX_STATUS_CONCAT_(a, b) OCX_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function with the status of `expr` when it is not OK.
#define OCX_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status ocx_status_ = (expr);           \
    if (!ocx_status_.ok()) return ocx_status_;     \
  } while (0)

// `OCX_ASSIGN_OR_RETURN(auto x, F())`: assigns the value of a StatusOr or returns its error.
#define OCX_ASSIGN_OR_RETURN(lhs, expr) \
  OCX_ASSIGN_OR_RETURN_IMPL_(OCX_STATUS_CONCAT_(ocx_statusor_, __LINE__), lhs, expr)
#define OCX_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()
