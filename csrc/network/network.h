// A Sequential network over flat parameter / gradient / state buffers: a list of stages (stage.h, one
// file per kind), each with a per-sample input and output shape. Every stage's activations are one
// contiguous block per batch, so the buffer plan, the optimizer and the training loop do not depend on
// the kinds. Workspaces grow to the largest batch seen and are then reused: a forward/backward/step at a
// batch size already seen allocates nothing.
#pragma once
#include <atomic>
#include <memory>
#include <cstdint>
#include <utility>
#include <vector>

#include "../aligned_buffer.h"
#include "../core_types.h"
#include "stage.h"
#include "collective.h"
#include "input_source.h"

namespace nc {

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
    InputSource<T> x{};                      // (rows, in), read in place
    const T* y_values = nullptr;             // (n, out) for mse / bce*, else nullptr
    const std::int64_t* y_labels = nullptr;  // (n,) for cross-entropy, else nullptr
    const std::int64_t* order = nullptr;     // (n,) the epoch's visiting order
    index_t n = 0, batch_size = 1, first_step = 0, max_steps = 0;
    // Data-parallel training (the network has a collective): a step's batch is batch_size x split rows of
    // `order`, of which this rank takes its even share (split = world size; 1 when each rank passes its own
    // shard); n_steps steps per epoch (0: ceil(n / (batch_size x split))).
    index_t split = 1, n_steps = 0;
    double time_budget_s = 0.1;              // return after this long so Python can see Ctrl-C
    double loss_sum = 0.0;                   // running sum of the epoch's batch losses so far (fixed order)
    LossKind loss = LossKind::mse;
    OptimizerRef<T> opt{};
    const double* lr_per_step = nullptr;     // (n_steps,) learning rate of each step of the epoch, or nullptr
    double input_noise = 0.0;                // stddev of Gaussian noise added to each batch's inputs
    double* grad_norm_sums = nullptr;        // (n_tracked,) += ||dW|| of each Dense/Conv2D per step, or nullptr
};

struct TrainProgress {
    index_t steps = 0;           // completed steps (each one updated the parameters)
    double loss_sum = 0.0;       // the request's running sum plus these steps' losses, added in step order
    index_t correct = 0;         // correct predictions in those steps (classification losses)
    bool nonfinite = false;      // the next step's loss was NaN/Inf: stopped before updating
    double bad_loss = 0.0;
    index_t bad_label_row = -1;  // a label outside [0, out) at this data row: stopped before updating
    // Data-parallel training: the steps' rows over all ranks, and why the ranks stopped together.
    index_t rows = 0;
    index_t bad_label_rank = -1;  // the rank whose data held bad_label_row
    index_t stops = 0, stop_rank = -1, stop_kind = 0;   // ranks that asked to stop (sync_point), one of them
};

template <typename T>
class Network {
  public:
    // input: the per-sample shape of x; layers in order (residual blocks as begin/end markers).
    Network(const Shape& input, const std::vector<LayerSpec>& layers);

    const Shape& input_shape() const { return in_shape_; }
    const Shape& output_shape() const { return out_shape_; }
    index_t in_features() const { return in_features_; }     // per-sample sizes
    index_t out_features() const { return out_features_; }
    index_t n_params() const { return n_params_; }
    index_t n_state() const { return n_state_; }
    index_t n_tracked() const { return index_t(tracked_.size()); }
    index_t n_layers() const { return n_layers_; }
    // The stage built from layer `layer`, or nullptr (an activation fused into the stage before it).
    const Stage<T>* stage_of(index_t layer) const;
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
    void predict(const InputSource<T>& x, index_t rows, index_t chunk, T* out);
    void zero_grad();
    // One optimizer step from the current gradients (trainable layers only); returns the gradient norm
    // before clipping when want_norm or clipping (else 0).
    double optimizer_step(OptimizerRef<T>& opt, double lr, bool want_norm);
    TrainProgress train(TrainRequest<T>& req);

    // Data-parallel training (distributed.cpp): train() sums gradients and BatchNorm statistics over the
    // collective's ranks. A Collective{} turns it off.
    void set_collective(const Collective& comm);
    const Collective& collective() const { return comm_; }
    // A synchronisation point outside a step, shaped like a step's first collectives (BatchNorm's with
    // no rows, then the status sum), so a rank stopping between steps meets its peers wherever they wait:
    // status (kStatusSize,) is summed over the ranks in place.
    void sync_point(double* status);

    // Refuses concurrent use of one network from several threads (the GIL is released in every call).
    class Lock {
      public:
        explicit Lock(Network& n);
        ~Lock() { net_.busy_.store(false, std::memory_order_release); }
      private:
        Network& net_;
    };

  private:
    void reserve(index_t rows);
    // distributed.cpp: the per-step collectives.
    bool exchange_status(TrainProgress& prog, index_t rows, double& loss, index_t& correct, index_t bad_row,
                         index_t& total_rows);
    void idle_forward();
    void idle_backward();
    void sum_gradients();
    const T* run_forward(index_t rows, bool training);    // from stage0_in_ (input_, or the caller's rows)
    // run_forward with predict/forward's thread choice (infer_tuner_); `timed`: a call that counts for it.
    const T* run_forward_tuned(index_t rows, bool training, bool timed);
    const T* run_backward(index_t rows, bool want_dx);    // from grad_a_
    Pass<T> make_pass(index_t rows, bool training);
    void update_trainable_ranges();
    index_t count_correct(const T* out, index_t rows, LossKind loss) const;
    std::uint64_t next_key(std::uint64_t stream);

    std::vector<std::unique_ptr<Stage<T>>> stages_;
    std::vector<index_t> tracked_;                        // stages whose weight-gradient norm is tracked
    std::vector<char> grad_needed_below_;                 // per stage: a trainable layer sits before it
    std::vector<std::pair<index_t, index_t>> trainable_ranges_;  // (offset, length) in the flat buffers
    std::vector<const T*> outs_;                          // per stage output of the last forward
    std::vector<T*> auxs_;                                // per stage kept workspace (or nullptr)
    std::vector<index_t> out_col_, aux_col_;              // per stage offsets per sample in acts_ / aux_ (-1: none)
    Shape in_shape_, out_shape_;
    index_t in_features_ = 0, out_features_ = 0, n_params_ = 0, n_state_ = 0, n_layers_ = 0;
    index_t max_width_ = 0, act_width_ = 0, aux_width_ = 0;
    AlignedBuffer<T> params_, grads_, state_;

    index_t cap_rows_ = 0, forward_rows_ = 0;
    bool forward_training_ = false;
    AlignedBuffer<T> input_, acts_, aux_, grad_a_, grad_b_, targets_, gemm_ws_, temp_;
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
    Collective comm_{};
    bool in_step_ = false;           // inside train(): BatchNorm syncs (a callback's forward() never does)
    bool syncing() const { return in_step_ && comm_.active(); }
    std::uint64_t rank_salt() const;  // mixed into dropout/noise keys: each rank draws its own masks

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
        int preferred(int max_threads) const;   // the faster option so far (all threads until both timed)
    } tuner_;
    // predict and forward make the same choice, timing calls of one row count (infer_rows_).
    ThreadTuner infer_tuner_;
    index_t infer_rows_ = 0;
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace nc
