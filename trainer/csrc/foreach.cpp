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

enum { NLS_ADD = 0, NLS_SUB = 1, NLS_MUL = 2 };

}  // namespace

extern "C" {

// The 2-norm of each tensor, stacked into one 1-D tensor on the tensors' device.
int nls_foreach_norm(at::Tensor** xs, size_t n, at::Tensor** out, char** err) {
  return nls::guarded(err, [&] { *out = new at::Tensor(at::stack(at::_foreach_norm(list(xs, n)))); });
}

// xs[i] * s, into `out` (n new tensors), or in place when `out` is null.
int nls_foreach_mul_scalar(at::Tensor** xs, size_t n, double s, at::Tensor** out, char** err) {
  return nls::guarded(err, [&] {
    auto xl = list(xs, n);
    if (out == nullptr) {
      at::_foreach_mul_(xl, s);
    } else {
      hand_out(at::_foreach_mul(xl, s), out);
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
