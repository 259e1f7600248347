// Shared between the shim's translation units: the handles behind the C ABI.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

enum { NLS_SUM = 0, NLS_MAX = 1, NLS_MIN = 2 };

struct nls_store {
  c10::intrusive_ptr<c10d::Store> store;  // what collectives and keys use (maybe prefixed)
  c10::intrusive_ptr<c10d::Store> tcp;    // the TCPStore underneath, for waitForWorkers
};

struct nls_group {
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank;
  int world;
  std::chrono::milliseconds timeout;
  // NCCL: collectives are ordered on the CUDA stream; the CPU never waits for them.
  bool stream_ordered = false;
  // A collective failed: the group is freed without a shutdown, which could wait on dead peers.
  bool failed = false;
};
