// Gradient averaging that overlaps the backward pass, as PyTorch DDP's reducer does: each
// trainable variable gets a post-accumulate-grad hook; when every variable of a bucket has its
// gradient, the bucket's all-reduce is issued without waiting, while autograd goes on with the
// earlier layers. Buckets are issued strictly in index order (a ready bucket waits for the ones
// before it), so every rank issues the same collectives in the same order. `finish` issues what
// is left (variables without a gradient count as zero), waits, and writes the averages back.
//
// Hooks act only between `arm` and `finish`: any other backward (a meta-gradient, say) runs
// through them untouched. Without `arm`, `finish` averages the same buckets after the fact.
#include "c10d_shim.h"
#include "guarded.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <mutex>
#include <stdexcept>
#include <vector>

struct nls_grad_sync;

namespace {

struct Bucket {
  std::vector<size_t> members;
  at::Tensor flat;
  size_t pending = 0;
  c10::intrusive_ptr<c10d::Work> work;
};

struct Arrival : public torch::autograd::PostAccumulateGradHook {
  Arrival(nls_grad_sync* sync, size_t index) : sync(sync), index(index) {}
  void operator()(const torch::autograd::Variable& param) override;
  nls_grad_sync* sync;
  size_t index;
};

}  // namespace

struct nls_grad_sync {
  nls_group* group;
  std::vector<at::Tensor> params;
  std::vector<size_t> bucket_of;
  std::vector<int64_t> offset_of;
  std::vector<bool> arrived;
  std::vector<Bucket> buckets;
  size_t next = 0;  // the next bucket to issue
  size_t issued_in_backward = 0;
  bool armed = false;
  std::mutex mu;  // hooks run on autograd's device threads

  at::Tensor slice(size_t i) {
    return buckets[bucket_of[i]].flat.narrow(0, offset_of[i], params[i].numel());
  }

  void copy_in(size_t i) {
    auto grad = params[i].grad();
    if (grad.defined()) slice(i).copy_(grad.reshape({-1}));
  }

  void issue(Bucket& b) {
    std::vector<at::Tensor> tensors{b.flat};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = group->timeout;
    try {
      b.work = group->backend->allreduce(tensors, opts);
    } catch (...) {
      group->failed = true;
      throw;
    }
  }

  void issue_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) issue(buckets[next++]);
  }

  void on_gradient(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) return;
    if (arrived[i]) {
      throw std::runtime_error(
          "a variable's gradient arrived twice in one backward while gradient averaging was "
          "armed: arm it only for the last backward of a step");
    }
    arrived[i] = true;
    copy_in(i);
    if (--buckets[bucket_of[i]].pending == 0) {
      size_t before = next;
      issue_ready();
      issued_in_backward += next - before;
    }
  }

  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& b : buckets) {
      b.flat.zero_();
      b.pending = b.members.size();
      b.work.reset();
    }
    std::fill(arrived.begin(), arrived.end(), false);
    next = 0;
    issued_in_backward = 0;
    armed = true;
  }

  // Issues what backward did not, waits, and writes the averages into the gradients.
  size_t finish() {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) {
      for (auto& b : buckets) b.flat.zero_();
      for (size_t i = 0; i < params.size(); ++i) copy_in(i);
      next = 0;
      issued_in_backward = 0;
    }
    armed = false;
    for (; next < buckets.size(); ++next) issue(buckets[next]);
    for (auto& b : buckets) {
      try {
        if (group->stream_ordered) {
          b.work->wait();
        } else {
          b.work->wait(group->timeout);
        }
      } catch (...) {
        group->failed = true;
        throw;
      }
      b.work.reset();
      b.flat.div_(group->world);
      for (auto i : b.members) {
        auto grad = params[i].grad();
        if (grad.defined()) grad.copy_(slice(i).view(grad.sizes()));
      }
    }
    return issued_in_backward;
  }
};

void Arrival::operator()(const torch::autograd::Variable&) { sync->on_gradient(index); }

extern "C" {

// Buckets: `bucket[i]` is the bucket of params[i]; buckets hold one dtype and device each and
// are numbered in the order gradients are expected to complete.
int nls_grad_sync_new(nls_group* group, at::Tensor** params, size_t n, const int64_t* bucket,
                      size_t buckets, nls_grad_sync** out, char** err) {
  return nls::guarded(err, [&] {
    auto sync = std::make_unique<nls_grad_sync>();
    sync->group = group;
    sync->buckets.resize(buckets);
    std::vector<int64_t> sizes(buckets, 0);
    for (size_t i = 0; i < n; ++i) {
      auto b = static_cast<size_t>(bucket[i]);
      if (b >= buckets) throw std::invalid_argument("bucket index out of range");
      sync->params.push_back(*params[i]);
      sync->bucket_of.push_back(b);
      sync->offset_of.push_back(sizes[b]);
      sizes[b] += params[i]->numel();
      sync->buckets[b].members.push_back(i);
    }
    for (size_t b = 0; b < buckets; ++b) {
      auto& first = sync->params.at(sync->buckets[b].members.at(0));
      sync->buckets[b].flat = at::zeros({sizes[b]}, first.options());
    }
    sync->arrived.assign(n, false);
    // A variable has one such hook: a second GradSync over it would silently replace the first.
    for (auto& p : sync->params) {
      if (torch::autograd::impl::post_acc_grad_hooks(p) != nullptr) {
        throw std::invalid_argument(
            "a variable already has a post-accumulate-grad hook (two gradient averagers over "
            "one variable?)");
      }
    }
    for (size_t i = 0; i < n; ++i) {
      torch::autograd::impl::set_post_acc_grad_hooks(
          sync->params[i], std::make_unique<Arrival>(sync.get(), i));
    }
    *out = sync.release();
  });
}

int nls_grad_sync_arm(nls_grad_sync* sync, char** err) {
  return nls::guarded(err, [&] { sync->arm(); });
}

int nls_grad_sync_finish(nls_grad_sync* sync, size_t* issued_in_backward, char** err) {
  return nls::guarded(err, [&] { *issued_in_backward = sync->finish(); });
}

void nls_grad_sync_free(nls_grad_sync* sync) {
  for (auto& p : sync->params) {
    try {
      torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
    } catch (...) {
    }
  }
  delete sync;
}

}  // extern "C"
