// A thin C ABI over libtorch's own c10d (TCPStore, PrefixStore, ProcessGroupGloo) so that the Rust
// trainer joins exactly the process group a Python `torch.distributed` process would build.
//
// Conventions: every function returns 0 on success; on failure it returns non-zero and stores a
// malloc'd message in *err (free it with nls_free_string). No C++ exception crosses the boundary.
// Tensors cross as `at::Tensor*`, the same representation tch uses for its tensors.

#include "c10d_shim.h"
#include "guarded.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>

namespace {

using nls::dup_string;
using nls::guarded;

c10d::ReduceOp to_reduce_op(int op) {
  switch (op) {
    case NLS_SUM:
      return c10d::ReduceOp::SUM;
    case NLS_MAX:
      return c10d::ReduceOp::MAX;
    case NLS_MIN:
      return c10d::ReduceOp::MIN;
    default:
      throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}

// Issues a collective and waits for it. NCCL: the current CUDA stream waits, the CPU thread does
// not (a timeout here would make c10d poll the work from this thread every millisecond); NCCL's
// watchdog enforces the group's timeout instead. Gloo: the CPU waits, bounded by the timeout.
template <typename Issue>
void issue_and_wait(nls_group* group, Issue&& issue) {
  try {
    auto work = issue();
    if (group->stream_ordered) {
      work->wait();
    } else {
      work->wait(group->timeout);
    }
  } catch (...) {
    group->failed = true;
    throw;
  }
}

void allreduce_in_place(nls_group* group, at::Tensor& t, c10d::ReduceOp op) {
  std::vector<at::Tensor> tensors{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = op;
  opts.timeout = group->timeout;
  issue_and_wait(group, [&] { return group->backend->allreduce(tensors, opts); });
}

at::Tensor allgather_flat(nls_group* group, const at::Tensor& input) {
  auto in = input.contiguous();
  auto sizes = in.sizes().vec();
  sizes[0] *= group->world;
  auto out = at::empty(sizes, in.options());
  c10d::AllgatherOptions opts;
  opts.timeout = group->timeout;
  issue_and_wait(group, [&] { return group->backend->_allgather_base(out, in, opts); });
  return out;
}

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

nls_group* group_of(AutogradContext* ctx) {
  return reinterpret_cast<nls_group*>(ctx->saved_data["group"].toInt());
}

// Gather along dim 0 with gradient: the local slice receives the sum over ranks of the gradient
// flowing into it (the reference FullGather), so each rank may compute the loss on the global batch.
struct AllGatherWithGrad : public torch::autograd::Function<AllGatherWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, int64_t group) {
    ctx->saved_data["group"] = group;
    ctx->saved_data["rows"] = input.size(0);
    return allgather_flat(reinterpret_cast<nls_group*>(group), input);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* group = group_of(ctx);
    auto rows = ctx->saved_data["rows"].toInt();
    auto grad = grads[0].contiguous().clone();
    allreduce_in_place(group, grad, c10d::ReduceOp::SUM);
    return {grad.narrow(0, group->rank * rows, rows), at::Tensor()};
  }
};

// Sum over ranks with gradient: the gradient is summed over ranks too (each rank's loss depends on
// every rank's input). Used for synchronized batch-norm statistics.
struct AllReduceSumWithGrad : public torch::autograd::Function<AllReduceSumWithGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, int64_t group) {
    ctx->saved_data["group"] = group;
    auto out = input.contiguous().clone();
    allreduce_in_place(reinterpret_cast<nls_group*>(group), out, c10d::ReduceOp::SUM);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto grad = grads[0].contiguous().clone();
    allreduce_in_place(group_of(ctx), grad, c10d::ReduceOp::SUM);
    return {grad, at::Tensor()};
  }
};

std::vector<uint8_t> bytes_of(const char* s) {
  return std::vector<uint8_t>(s, s + std::strlen(s));
}

}  // namespace

extern "C" {

void nls_free_string(char* s) { std::free(s); }

int nls_store_new(const char* host, uint16_t port, int is_server, int world, int64_t timeout_ms,
                  nls_store** out, char** err) {
  return guarded(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<size_t>(world);
    // Waiting for the workers is a separate call, so that rank 0 can record the job's identity in
    // the store before any other process is let through.
    opts.waitWorkers = false;
    opts.multiTenant = true;  // as Python's env:// rendezvous does
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(host, opts);
    *out = new nls_store{tcp, tcp};
  });
}

int nls_store_wait_workers(nls_store* store, char** err) {
  return guarded(err, [&] {
    auto* tcp = dynamic_cast<c10d::TCPStore*>(store->tcp.get());
    if (tcp == nullptr) throw std::logic_error("not a TCPStore");
    tcp->waitForWorkers();
  });
}

int nls_store_clone(nls_store* store, nls_store** out, char** err) {
  return guarded(err, [&] {
    auto copy = store->store->clone();
    *out = new nls_store{copy, copy};
  });
}

void nls_store_free(nls_store* store) { delete store; }

int nls_store_set(nls_store* store, const char* key, const char* value, char** err) {
  return guarded(err, [&] { store->store->set(key, bytes_of(value)); });
}

int nls_store_compare_set(nls_store* store, const char* key, const char* expected,
                          const char* desired, char** current, char** err) {
  return guarded(err, [&] {
    auto v = store->store->compareSet(key, bytes_of(expected), bytes_of(desired));
    *current = dup_string(std::string(v.begin(), v.end()));
  });
}

int nls_store_add(nls_store* store, const char* key, int64_t delta, int64_t* value, char** err) {
  return guarded(err, [&] { *value = store->store->add(key, delta); });
}

int nls_store_check(nls_store* store, const char* key, int* exists, char** err) {
  return guarded(err, [&] { *exists = store->store->check({key}) ? 1 : 0; });
}

int nls_group_new_gloo(nls_store* store, int rank, int world, int64_t timeout_ms, nls_group** out,
                       char** err) {
  return guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    // Python's default group: PrefixStore("default_pg") → "0/" (group name) → "cpu/" (device).
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(
        "cpu/", c10::make_intrusive<c10d::PrefixStore>(
                    "0/", c10::make_intrusive<c10d::PrefixStore>("default_pg", store->store)));
    auto opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, opts);
    backend->setSequenceNumberForGroup();
    *out = new nls_group{backend, rank, world, timeout};
  });
}

// A clean exit shuts the backend down (PyTorch's destroy_process_group: NCCL finalizes its
// communicators); after a failure it is only dropped.
void nls_group_free(nls_group* group) {
  if (!group->failed) {
    try {
      group->backend->shutdown();
    } catch (...) {
    }
  }
  delete group;
}

int nls_allreduce(nls_group* group, at::Tensor* tensor, int op, char** err) {
  return guarded(err, [&] { allreduce_in_place(group, *tensor, to_reduce_op(op)); });
}

int nls_broadcast(nls_group* group, at::Tensor* tensor, int root, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = group->timeout;
    issue_and_wait(group, [&] { return group->backend->broadcast(tensors, opts); });
  });
}

int nls_allgather(nls_group* group, at::Tensor* input, at::Tensor** out, char** err) {
  return guarded(err, [&] { *out = new at::Tensor(allgather_flat(group, *input)); });
}

int nls_barrier(nls_group* group, char** err) {
  return guarded(err, [&] {
    c10d::BarrierOptions opts;
    opts.timeout = group->timeout;
    issue_and_wait(group, [&] { return group->backend->barrier(opts); });
  });
}

int nls_allgather_with_grad(nls_group* group, at::Tensor* input, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    auto handle = reinterpret_cast<int64_t>(group);
    *out = new at::Tensor(AllGatherWithGrad::apply(*input, handle));
  });
}

int nls_allreduce_sum_with_grad(nls_group* group, at::Tensor* input, at::Tensor** out,
                                char** err) {
  return guarded(err, [&] {
    auto handle = reinterpret_cast<int64_t>(group);
    *out = new at::Tensor(AllReduceSumWithGrad::apply(*input, handle));
  });
}

}  // extern "C"
