// Autocast's CUDA dtype: tch can switch autocast on but not choose bf16 (its default is fp16,
// which needs loss scaling; bf16 has fp32's range and does not).
#include <ATen/autocast_mode.h>

extern "C" void nls_autocast_use_bf16() {
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
}
