// Status helpers used everywhere in Squeeze (Abseil 20220623 exports no
// RETURN_IF_ERROR / ASSIGN_OR_RETURN of its own).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SQ_CONCAT_INNER_(a, b) a##b
#define SQ_CONCAT_(a, b) SQ_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define SQ_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::absl::Status sq_status_ = (expr);           \
    if (!sq_status_.ok()) return sq_status_;      \
  } while (0)

// `lhs = value of rexpr`, or returns its status from the enclosing function.
// `lhs` may be a declaration: SQ_ASSIGN_OR_RETURN(auto x, MakeX());
#define SQ_ASSIGN_OR_RETURN(lhs, rexpr) \
  SQ_ASSIGN_OR_RETURN_IMPL_(SQ_CONCAT_(sq_statusor_, __LINE__), lhs, rexpr)
#define SQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()
