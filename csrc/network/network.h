// A Sequential network over flat parameter / gradient / state buffers.
// Stages: a Dense layer (fused with the activation that follows it: bias + activation run as the GEMM's
// epilogue), a lone activation, dropout, batch normalisation, and residual block markers (y = x + f(x)).
// Workspaces grow to the largest batch seen and are then reused: a forward/backward/step at a batch size
// already seen allocates nothing.
#pragma once
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "../aligned_buffer.h"
#include "../core_types.h"

namespace nc {

enum class LayerKind : int { dense = 0, activation = 1, dropout = 2, batchnorm = 3, residual_begin = 4, residual_end = 5 };

struct LayerSpec {
    LayerKind kind = LayerKind::dense;
    index_t in = 0, out = 0;       // dense (in, out); batchnorm features in `out`
    bool bias = true;              // dense
    Act act = Act::identity;       // activation
    double alpha = 0.01;           // leaky ReLU slope, ELU alpha
    double p = 0.5;                // dropout probability
    double momentum = 0.1, eps = 1e-5;  // batchnorm
};

// Where one layer's arrays live (element offsets; -1 when absent). Dense: weight, bias. BatchNorm:
// weight = gamma, bias = beta in the parameters, state = running mean then running variance.
struct ParamSlot {
    index_t weight = -1, bias = -1, state = -1, in = 0, out = 0;
};

// The optimizer as the training loop sees it: the rule, its flat state and its step counter.
template <typename T>
struct OptimizerRef {
    OptimParams params{};
    T* state1 = nullptr;          // (n_params,) momentum / first moment, or nullptr
    T* state2 = nullptr;          // (n_params,) second moment, or nullptr
    const T* decay = nullptr;     // (n_params,) per-parameter factor on weight_decay (0 exempts biases), or nullptr
    std::int64_t* step = nullptr; // steps taken so far (Adam's t): the optimizer's own counter, updated
                                  // in place with each step so an interrupt can never desynchronise it
    double clip_norm = 0.0;       // > 0: scale gradients to this global norm at most
};

// One call's worth of an epoch: steps [first_step, first_step + max_steps) of the epoch's batches.
template <typename T>
struct TrainRequest {
    const T* x = nullptr;                    // (n, in)
    const T* y_values = nullptr;             // (n, out) for mse / bce*, else nullptr
    const std::int64_t* y_labels = nullptr;  // (n,) for cross-entropy, else nullptr
    const std::int64_t* order = nullptr;     // (n,) the epoch's visiting order
    index_t n = 0, batch_size = 1, first_step = 0, max_steps = 0;
    double time_budget_s = 0.1;              // return after this long so Python can see Ctrl-C
    double loss_sum = 0.0;                   // running sum of the epoch's batch losses so far (fixed order)
    LossKind loss = LossKind::mse;
    OptimizerRef<T> opt{};
    const double* lr_per_step = nullptr;     // (n_steps,) learning rate of each step of the epoch, or nullptr
    double input_noise = 0.0;                // stddev of Gaussian noise added to each batch's inputs
    double* grad_norm_sums = nullptr;        // (n_dense,) += ||dW|| of each Dense layer per step, or nullptr
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
    index_t n_state() const { return n_state_; }
    index_t n_dense() const { return n_dense_; }
    const std::vector<ParamSlot>& slots() const { return slots_; }
    T* params() { return params_.data(); }
    T* grads() { return grads_.data(); }
    T* state() { return state_.data(); }
    bool has_forward() const { return forward_rows_ > 0; }
    index_t forward_rows() const { return forward_rows_; }

    void set_trainable(index_t layer, bool trainable);
    void set_seed(std::uint64_t seed) { seed_ = seed; draws_ = 0; }

    // x (rows, in) -> output (rows, out), kept with every activation for backward.
    const T* forward(const T* x, index_t rows, bool training);
    // dy (rows, out) of the last forward -> fills the gradients of trainable layers; returns dx (rows, in).
    const T* backward(const T* dy);
    // out (rows, out) = network(x) in inference mode, in chunks of `chunk` rows; drops the kept forward.
    void predict(const T* x, index_t rows, index_t chunk, T* out);
    void zero_grad();
    // One optimizer step from the current gradients (trainable layers only); returns the gradient norm
    // before clipping when want_norm or clipping (else 0).
    double optimizer_step(OptimizerRef<T>& opt, double lr, bool want_norm);
    TrainProgress train(TrainRequest<T>& req);

    // Refuses concurrent use of one network from several threads (the GIL is released in every call).
    class Lock {
      public:
        explicit Lock(Network& n);
        ~Lock() { net_.busy_.store(false, std::memory_order_release); }
      private:
        Network& net_;
    };

  private:
    struct Stage {
        LayerKind kind;
        index_t layer;           // the LayerSpec this stage came from (a fused activation's Dense)
        index_t in, out;
        index_t weight = -1, bias = -1, state = -1;
        Act act = Act::identity;
        T alpha = T(0);
        double p = 0.0, momentum = 0.1, eps = 1e-5;
        index_t out_col = -1;    // column offset of its output in acts_ (-1: aliases its input)
        index_t aux_col = -1;    // column offset in aux_: GELU pre-activation, dropout mask, BN xhat, skip grad
        index_t cols_off = -1;   // offset in col_scratch_: BN mean, invstd, dgamma, dbeta
        index_t partner = -1;    // residual markers: the matching marker
        index_t dense_ordinal = -1;
        bool trainable = true;
    };

    void reserve(index_t rows);
    const T* run_forward(index_t rows, bool training);    // from stage0_in_ (input_, or the caller's rows)
    const T* run_backward(index_t rows, bool want_dx);    // from grad_a_
    void update_trainable_ranges();
    index_t count_correct(const T* out, index_t rows, LossKind loss) const;
    std::uint64_t next_key(std::uint64_t stream);

    std::vector<Stage> stages_;
    std::vector<ParamSlot> slots_;
    std::vector<char> grad_needed_below_;                 // per stage: a trainable layer sits before it
    std::vector<std::pair<index_t, index_t>> trainable_ranges_;  // (offset, length) in the flat buffers
    std::vector<const T*> outs_;                          // per stage output of the last forward
    index_t in_features_ = 0, out_features_ = 0, n_params_ = 0, n_state_ = 0, n_dense_ = 0;
    index_t max_width_ = 0, act_width_ = 0, aux_width_ = 0;
    AlignedBuffer<T> params_, grads_, state_, col_scratch_;

    index_t cap_rows_ = 0, forward_rows_ = 0;
    bool forward_training_ = false;
    AlignedBuffer<T> input_, acts_, aux_, grad_a_, grad_b_, targets_, gemm_ws_;
    // The first stage's input: input_, or rows the caller owns for the duration of the call (predict's
    // chunk in place; in training, the data set itself with stage0_rows_ as the batch's row indices,
    // which the first Dense layer's products read through their gathers instead of a copied batch).
    const T* stage0_in_ = nullptr;
    const std::int64_t* stage0_rows_ = nullptr;
    AlignedBuffer<std::int64_t> labels_;
    const KernelTable<T>* kt_ = nullptr;  // the table of the call in progress (pinned by reserve)
    const void* ws_table_ = nullptr;      // the kernel table gemm_ws_ was sized for
    index_t ws_rows_ = 0;
    int ws_threads_ = 0;
    std::uint64_t seed_ = 0, draws_ = 0;
    std::atomic<bool> busy_{false};

    // Threads the kernels use: num_threads(), unless the training loop's tuner picked fewer.
    int threads() const;
    int thread_choice_ = 0;

    // Adaptive threading in the training loop: fork/join only pays when every thread gets a core and
    // enough work. The tuner times steps with all threads and with one (results are bitwise identical
    // either way), keeps the faster and re-checks now and then, since machine load changes.
    struct ThreadTuner {
        static constexpr int kWindow = 4;
        double recent_s[2][kWindow] = {};   // last step times: [0] one thread, [1] all threads
        index_t samples[2] = {0, 0};
        index_t step = 0;
        int pick(int max_threads);
        void record(int option, double seconds);
        double best_recent(int option) const;
        int option_of(int threads) const { return threads > 1 ? 1 : 0; }
    } tuner_;
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace nc
