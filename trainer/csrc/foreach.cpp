// ATen's multi-tensor ("foreach") ops behind the C ABI, which tch does not generate: on CUDA one
// fused kernel updates a whole list of variables; on CPU ATen runs the same ops tensor by tensor.
// Lists cross as arrays of `at::Tensor*` (tch's representation) with their length; new tensors
// come back as `new at::Tensor`, owned by the caller (tch's Tensor::from_ptr).
#include "guarded.h"

#include <ATen/ATen.h>

#include <vector>

namespace {

std::vector<at::Tensor> list(at::Tensor** xs, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*xs[i]);
  return out;
}

void hand_out(const std::vector<at::Tensor>& ts, at::Tensor** out) {
  for (size_t i = 0; i < ts.size(); ++i) out[i] = new at::Tensor(ts[i]);
}

enum { NLS_ADD = 0, NLS_SUB = 1, NLS_MUL = 2, NLS_DIV = 3 };

enum { NLS_LERP = 0, NLS_ADDCMUL = 1, NLS_ADDCDIV = 2 };

}  // namespace

extern "C" {

// The 2-norm of each tensor, stacked into one 1-D tensor on the tensors' device.
int nls_foreach_norm(at::Tensor** xs, size_t n, at::Tensor** out, char** err) {
  return nls::guarded(err, [&] { *out = new at::Tensor(at::stack(at::_foreach_norm(list(xs, n)))); });
}

// xs[i] (op) s for op add, mul or div, into `out` (n new tensors), or in place when `out` is
// null.
int nls_foreach_scalar(int op, at::Tensor** xs, size_t n, double s, at::Tensor** out, char** err) {
  return nls::guarded(err, [&] {
    auto xl = list(xs, n);
    bool in_place = out == nullptr;
    switch (op) {
      case NLS_ADD:
        if (in_place) return at::_foreach_add_(xl, s);
        return hand_out(at::_foreach_add(xl, s), out);
      case NLS_MUL:
        if (in_place) return at::_foreach_mul_(xl, s);
        return hand_out(at::_foreach_mul(xl, s), out);
      case NLS_DIV:
        if (in_place) return at::_foreach_div_(xl, s);
        return hand_out(at::_foreach_div(xl, s), out);
      default:
        throw std::invalid_argument("unknown foreach scalar op " + std::to_string(op));
    }
  });
}

// The square root of each tensor, into `out` (n new tensors).
int nls_foreach_sqrt(at::Tensor** xs, size_t n, at::Tensor** out, char** err) {
  return nls::guarded(err, [&] { hand_out(at::_foreach_sqrt(list(xs, n)), out); });
}

// In place on xs: lerp_(xs[i], ys[i], s) (zs unused), addcmul_(xs[i], ys[i], zs[i], s) or
// addcdiv_(xs[i], ys[i], zs[i], s).
int nls_foreach_pointwise_(int op, at::Tensor** xs, at::Tensor** ys, at::Tensor** zs, size_t n,
                           double s, char** err) {
  return nls::guarded(err, [&] {
    auto xl = list(xs, n);
    auto yl = list(ys, n);
    switch (op) {
      case NLS_LERP:
        return at::_foreach_lerp_(xl, yl, s);
      case NLS_ADDCMUL:
        return at::_foreach_addcmul_(xl, yl, list(zs, n), s);
      case NLS_ADDCDIV:
        return at::_foreach_addcdiv_(xl, yl, list(zs, n), s);
      default:
        throw std::invalid_argument("unknown foreach pointwise op " + std::to_string(op));
    }
  });
}

// xs[i] (op) ys[i] for op add, sub or mul (ys[i] may broadcast, e.g. a 0-d scale per tensor),
// into `out` (n new tensors), or in place when `out` is null.
int nls_foreach_binary(int op, at::Tensor** xs, at::Tensor** ys, size_t n, at::Tensor** out,
                       char** err) {
  return nls::guarded(err, [&] {
    auto xl = list(xs, n);
    auto yl = list(ys, n);
    bool in_place = out == nullptr;
    switch (op) {
      case NLS_ADD:
        if (in_place) return at::_foreach_add_(xl, yl);
        return hand_out(at::_foreach_add(xl, yl), out);
      case NLS_SUB:
        if (in_place) return at::_foreach_sub_(xl, yl);
        return hand_out(at::_foreach_sub(xl, yl), out);
      case NLS_MUL:
        if (in_place) return at::_foreach_mul_(xl, yl);
        return hand_out(at::_foreach_mul(xl, yl), out);
      default:
        throw std::invalid_argument("unknown foreach op " + std::to_string(op));
    }
  });
}

}  // extern "C"
