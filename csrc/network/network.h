// A Sequential network of Dense layers and activations over flat parameter/gradient buffers.
// Each Dense layer is fused with the activation that follows it (bias + activation run as the GEMM's
// epilogue); workspaces grow to the largest batch seen and are then reused, so a forward/backward/step
// at a batch size already seen allocates nothing.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "../aligned_buffer.h"
#include "../core_types.h"

namespace nc {

enum class LayerKind : int { dense = 0, activation = 1 };

struct LayerSpec {
    LayerKind kind = LayerKind::dense;
    index_t in = 0, out = 0;       // dense
    bool bias = true;              // dense
    Act act = Act::identity;       // activation
    double alpha = 0.01;           // leaky ReLU slope
};

// Where one layer's parameters live in the flat buffers (element offsets; -1 when absent).
struct ParamSlot {
    index_t weight = -1, bias = -1, in = 0, out = 0;
};

// One call's worth of an epoch: steps [first_step, first_step + max_steps) of the epoch's batches.
template <typename T>
struct TrainRequest {
    const T* x = nullptr;                 // (n, in)
    const T* y_values = nullptr;          // (n, out) for mse / bce*, else nullptr
    const std::int64_t* y_labels = nullptr;  // (n,) for cross-entropy, else nullptr
    const std::int64_t* order = nullptr;  // (n,) the epoch's visiting order
    index_t n = 0, batch_size = 1, first_step = 0, max_steps = 0;
    double time_budget_s = 0.1;           // return after this long so Python can see Ctrl-C
    double loss_sum = 0.0;                // running sum of the epoch's batch losses so far (fixed order)
    LossKind loss = LossKind::mse;
    SgdParams sgd{};
    T* velocity = nullptr;                // (n_params,) momentum buffer, or nullptr
};

struct TrainProgress {
    index_t steps = 0;           // completed steps (each one updated the parameters)
    double loss_sum = 0.0;       // the request's running sum plus these steps' losses, added in step order
    index_t correct = 0;         // correct predictions in those steps (classification losses)
    bool nonfinite = false;      // the next step's loss was NaN/Inf: stopped before updating
    double bad_loss = 0.0;
    index_t bad_label_row = -1;  // a label outside [0, out) at this data row: stopped before updating
};

template <typename T>
class Network {
  public:
    explicit Network(const std::vector<LayerSpec>& layers);

    index_t in_features() const { return in_features_; }
    index_t out_features() const { return out_features_; }
    index_t n_params() const { return n_params_; }
    const std::vector<ParamSlot>& slots() const { return slots_; }
    T* params() { return params_.data(); }
    T* grads() { return grads_.data(); }
    bool has_forward() const { return forward_rows_ > 0; }
    index_t forward_rows() const { return forward_rows_; }

    // x (rows, in) -> output (rows, out), kept with every activation for backward.
    const T* forward(const T* x, index_t rows);
    // dy (rows, out) of the last forward -> fills the gradients; returns dx (rows, in).
    const T* backward(const T* dy);
    // out (rows, out) = network(x) in chunks of `chunk` rows; invalidates the kept forward.
    void predict(const T* x, index_t rows, index_t chunk, T* out);
    void zero_grad();
    void sgd_step(const SgdParams& p, T* velocity);
    TrainProgress train(const TrainRequest<T>& req);

    // Refuses concurrent use of one network from several threads (the GIL is released in every call).
    class Lock {
      public:
        explicit Lock(Network& n);
        ~Lock() { net_.busy_.store(false, std::memory_order_release); }
      private:
        Network& net_;
    };

  private:
    struct Stage {                 // a Dense layer (+ the activation after it), or a lone activation
        bool dense;
        index_t in, out;
        index_t weight, bias;      // offsets into the flat buffers
        Act act;
        T alpha;
        index_t act_offset;        // column offset of this stage's output in the activation block
    };

    void reserve(index_t rows);
    T* stage_output(std::size_t s) { return acts_.data() + cap_rows_ * stages_[s].act_offset; }
    const T* run_forward(index_t rows);                 // from input_
    const T* run_backward(index_t rows, bool want_dx);  // from grad_a_
    index_t count_correct(const T* out, index_t rows, const TrainRequest<T>& req) const;

    std::vector<Stage> stages_;
    std::vector<ParamSlot> slots_;
    index_t in_features_ = 0, out_features_ = 0, n_params_ = 0, max_width_ = 0, act_width_ = 0;
    AlignedBuffer<T> params_, grads_;

    index_t cap_rows_ = 0, forward_rows_ = 0;
    AlignedBuffer<T> input_, acts_, grad_a_, grad_b_, targets_, gemm_ws_;
    AlignedBuffer<std::int64_t> labels_;
    const void* ws_table_ = nullptr;   // the kernel table gemm_ws_ was sized for
    index_t ws_rows_ = 0;
    std::atomic<bool> busy_{false};
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace nc
