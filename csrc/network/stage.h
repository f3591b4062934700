// The interface every stage kind implements (one file per kind: stage_<kind>.cpp), and what a stage sees
// of the network: its per-sample shapes, its tensors in the flat parameter/state buffers, and the buffers
// of one forward or backward pass. network.cpp is the plumbing around it: buffer plan, training loop.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../aligned_buffer.h"
#include "../core_types.h"
#include "collective.h"

namespace nc {

// A layer as Python describes it: a kind name and its integer and real arguments (see each stage file).
struct LayerSpec {
    std::string kind;
    std::vector<index_t> ints;
    std::vector<double> reals;
};

// Per-sample shape: (features), (T, F) or (H, W, C). A batch of `rows` samples is one contiguous
// row-major block of rows * size() elements.
struct Shape {
    std::vector<index_t> dims;
    index_t size() const {
        index_t n = 1;
        for (index_t d : dims) n = checked_mul(n, d, "shape");
        return n;
    }
    std::string str() const;   // "(8, 8, 3)"
    bool operator==(const Shape& o) const { return dims == o.dims; }
    bool operator!=(const Shape& o) const { return dims != o.dims; }
};

// One named tensor of a layer in the flat buffers: parameters (with a gradient at the same offset), or
// state (BatchNorm's running statistics: saved, never optimised).
struct TensorSlot {
    std::string name;
    index_t offset = 0;
    std::vector<index_t> shape;
    bool state = false;
    index_t size() const { index_t n = 1; for (index_t d : shape) n *= d; return n; }
};

// Hands out 64-byte aligned offsets in the flat parameter and state buffers while stages are built.
class TensorPlanner {
  public:
    explicit TensorPlanner(std::size_t elem) : elem_(elem) {}
    index_t param(std::vector<TensorSlot>& slots, const char* name, std::vector<index_t> shape) {
        return add(slots, name, std::move(shape), false, n_params_);
    }
    index_t state(std::vector<TensorSlot>& slots, const char* name, std::vector<index_t> shape) {
        return add(slots, name, std::move(shape), true, n_state_);
    }
    index_t padded(index_t n) const {
        const index_t align = index_t(64 / elem_);
        return checked_add(n, align - 1, "parameters") / align * align;
    }
    index_t n_params() const { return n_params_; }
    index_t n_state() const { return n_state_; }

  private:
    index_t add(std::vector<TensorSlot>& slots, const char* name, std::vector<index_t> shape, bool state, index_t& top) {
        TensorSlot t{name, top, std::move(shape), state};
        index_t n = 1;
        for (index_t d : t.shape) n = checked_mul(n, d, name);
        top = checked_add(top, padded(n), state ? "state" : "parameters");
        slots.push_back(t);
        return t.offset;
    }
    std::size_t elem_;
    index_t n_params_ = 0, n_state_ = 0;
};

// Everything one forward or backward pass shares between stages.
template <typename T>
struct Pass {
    const KernelTable<T>* kt = nullptr;
    int threads = 1;
    index_t rows = 0;                     // samples in this batch
    bool training = false;                // forward: training mode; backward: the forward's mode
    std::uint64_t key = 0;                // the pass's random key (dropout)
    T* params = nullptr;
    T* grads = nullptr;
    T* state = nullptr;
    T* gemm_ws = nullptr;                 // packing workspace, gemm_workspace() elements at least
    index_t gemm_ws_elems = 0;
    T* temp = nullptr;                    // scratch not kept across stages, temp_elems() at least
    index_t temp_elems = 0;
    const std::int64_t* in_rows = nullptr;  // stage 0 only: the batch's rows in its input (a gather), or null
    const Collective* comm = nullptr;     // data-parallel training: sums over the ranks (BatchNorm's statistics)
    const T* const* outs = nullptr;       // per stage: its output of this forward
    T* const* auxs = nullptr;             // per stage: its kept workspace (aux_per_sample() per sample)
};

// A stage kind. Built from its LayerSpec and the input shape (build throws std::invalid_argument naming
// the rule), then run by the network. A stage's parameter tensors are allocated contiguously, so its
// trainable range is [first offset, end of the last).
template <typename T>
class Stage {
  public:
    virtual ~Stage() = default;

    index_t layer = -1;                   // the LayerSpec this stage came from
    index_t index = -1;                   // position among the network's stages
    bool trainable = true;
    Shape in, out;                        // per sample
    std::vector<TensorSlot> tensors;      // parameters then state, in the order Python lists them

    // Sets `out` from `in` and allocates the tensors. Called once, with `in` already set.
    virtual void build(TensorPlanner& planner) = 0;
    // An activation layer right after this stage; true when absorbed (e.g. as the GEMM's epilogue).
    virtual bool fuse_activation(Act, T) { return false; }
    // Initial values of the state tensors (BatchNorm's running variance starts at 1).
    virtual void init_state(T*) const {}
    // Elements per sample kept from forward to backward (GELU pre-activation, dropout mask, BN xhat).
    virtual index_t aux_per_sample() const { return 0; }
    // Scratch a pass needs for `rows` samples, not kept after the stage (im2col patches).
    virtual index_t temp_elems(index_t) const { return 0; }
    // Packing workspace its GEMMs need for `rows` samples and `threads` threads.
    virtual index_t gemm_workspace(const KernelTable<T>&, index_t, int) const { return 0; }
    // Called when the network's capacity grows to `rows` samples: size stage-owned per-sample buffers.
    virtual void reserve(index_t) {}
    // The output is the input itself (no copy, no buffer): residual markers, Flatten.
    virtual bool aliases_input() const { return false; }
    // As the first stage in training, reads the batch's rows in place through Pass::in_rows.
    virtual bool reads_gathered_input() const { return false; }
    // The weight whose gradient norm track_gradients reports (Dense, Conv2D), else nullptr.
    virtual const TensorSlot* tracked_weight() const { return nullptr; }
    // A residual marker's matching marker (the network links them), else unused.
    virtual void set_partner(index_t) {}

    // Data-parallel training, a step in which this rank has no rows: the collectives its forward and
    // backward would make (with p.comm set), so that the ranks' sums still pair up.
    virtual void idle_forward(const Pass<T>&) {}
    virtual void idle_backward(const Pass<T>&) {}

    // out (rows, out) = f(in (rows, in)); aux is this stage's kept workspace (nullptr if none).
    virtual void forward(const Pass<T>& p, const T* x, T* y, T* aux) = 0;
    // g holds dL/dy (rows, out) on entry and dL/dx (rows, in) on return: in place, or written to spare
    // and then swapped. Fills the parameter gradients when trainable. need_dx false: the caller stops
    // after this stage, so dL/dx may be skipped.
    virtual void backward(const Pass<T>& p, const T* x, const T* y, T* aux, T*& g, T*& spare, bool need_dx) = 0;

    const TensorSlot& tensor(std::size_t i) const { return tensors[i]; }
};

// Builds a stage from its spec (stage_registry.cpp lists the kinds); throws std::invalid_argument for an
// unknown kind or bad arguments.
template <typename T>
std::unique_ptr<Stage<T>> make_stage(const LayerSpec& spec);

// The activation named `name` (identity, sigmoid, tanh, relu, leaky_relu, softmax, elu, gelu), if any.
bool parse_activation(const std::string& name, Act& act);

// Argument access with arity checks, for the stage constructors.
inline index_t spec_int(const LayerSpec& s, std::size_t i) {
    if (i >= s.ints.size()) throw std::invalid_argument(s.kind + ": missing integer argument " + std::to_string(i));
    return s.ints[i];
}
inline double spec_real(const LayerSpec& s, std::size_t i) {
    if (i >= s.reals.size()) throw std::invalid_argument(s.kind + ": missing real argument " + std::to_string(i));
    return s.reals[i];
}

}  // namespace nc
