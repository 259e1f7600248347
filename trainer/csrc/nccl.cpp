// The NCCL backend, compiled only when CUDA and NCCL headers are found (NLS_WITH_NCCL); otherwise
// nls_group_new_nccl explains how to get a build that has it. Kept apart so the CPU build never
// needs CUDA.
#include "c10d_shim.h"
#include "guarded.h"

#include <cstdlib>

#ifdef NLS_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

extern "C" {

int nls_nccl_compiled() {
#ifdef NLS_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

int nls_group_new_nccl(nls_store* store, int rank, int world, int64_t timeout_ms, int device,
                       nls_group** out, char** err) {
#ifdef NLS_WITH_NCCL
  return nls::guarded(err, [&] {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto timeout = std::chrono::milliseconds(timeout_ms);
    // Python's default NCCL group: PrefixStore("default_pg") → "0/" → "cuda/".
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(
        "cuda/", c10::make_intrusive<c10d::PrefixStore>(
                     "0/", c10::make_intrusive<c10d::PrefixStore>("default_pg", store->store)));
    // A failed or timed-out collective aborts the communicators without killing the process
    // (PyTorch's default, 3, kills it), so the error reaches the trainer, which names the ranks
    // that stopped sending heartbeats. A value set by the user wins.
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", 0);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;  // the watchdog's, per collective
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, opts);
    backend->setSequenceNumberForGroup();
    *out = new nls_group{backend, rank, world, timeout};
    (*out)->stream_ordered = true;
  });
#else
  (void)store, (void)rank, (void)world, (void)timeout_ms, (void)device, (void)out;
  *err = nls::dup_string(
      "this trainer was built without NCCL (no CUDA headers were found at build time): install "
      "them into the venv with `pip install \"cuda-toolkit[crt,cccl]==13.0.3\"`, rebuild, or use "
      "--backend gloo");
  return 1;
#endif
}

}  // extern "C"
