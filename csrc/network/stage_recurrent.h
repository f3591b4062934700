// What the three recurrent stages (stage_rnn.cpp, stage_lstm.cpp, stage_gru.cpp) share: the spec and
// shapes, the parameters (weight_ih (F, G·H), weight_hh (H, G·H), bias_ih and bias_hh (G·H,)), and the
// GEMMs around the per-step kernels: the input projection of all T steps as one product over N·T rows,
// h_{t-1} W_hh per step, dL/dh_{t-1} per step in reverse time, and the weight gradients and dL/dx as one
// product each over all steps. Buffers are sample-major like x (N, T, F), so a step reads its slice of each
// with a row stride. Hidden (and cell) states are kept with one extra leading step per sample, the zero
// initial state: h_ext[n, t] = h_{t-1}, so every step (t = 0 too) finds its previous state in place.
// Spec: ints (input_size, hidden_size, return_sequences, bias[, relu for RNN]).
#pragma once
#include <cstring>

#include "stage.h"

namespace nc {

template <typename T>
class RecurrentStage : public Stage<T> {
  public:
    RecurrentStage(const LayerSpec& s, index_t gates, const char* name)
        : name_(name), gates_(gates), n_in_(spec_int(s, 0)), hidden_(spec_int(s, 1)),
          return_sequences_(spec_int(s, 2) != 0), has_bias_(spec_int(s, 3) != 0) {
        if (n_in_ < 1 || hidden_ < 1) throw std::invalid_argument(std::string(name) + " sizes must be >= 1");
    }

    void build(TensorPlanner& planner) override {
        const Shape& in = this->in;
        if (in.dims.size() != 2)
            throw std::invalid_argument(std::string(name_) + " takes sequences (batch, steps, features), got per-sample shape " + in.str());
        if (in.dims[1] != n_in_)
            throw std::invalid_argument(std::string(name_) + " input_size " + std::to_string(n_in_) +
                                        " does not match the previous layer's " + std::to_string(in.dims[1]) + " features");
        steps_ = in.dims[0];
        if (steps_ < 1) throw std::invalid_argument(std::string(name_) + " needs at least one time step");
        this->out.dims = return_sequences_ ? std::vector<index_t>{steps_, hidden_} : std::vector<index_t>{hidden_};
        const index_t gh = checked_mul(gates_, hidden_, name_);
        w_ih_ = planner.param(this->tensors, "weight_ih", {n_in_, gh});
        w_hh_ = planner.param(this->tensors, "weight_hh", {hidden_, gh});
        if (has_bias_) {
            b_ih_ = planner.param(this->tensors, "bias_ih", {gh});
            b_hh_ = planner.param(this->tensors, "bias_hh", {gh});
        }
        // track_gradients reports the norm of both weight gradients: one range over weight_ih, its padding
        // (whose gradient stays zero) and weight_hh.
        weights_ = TensorSlot{"weights", w_ih_, {w_hh_ + hidden_ * gh - w_ih_}, false};
    }
    const TensorSlot* tracked_weight() const override { return &weights_; }

    index_t gemm_workspace(const KernelTable<T>& kt, index_t rows, int threads) const override {
        const index_t nt = rows * steps_, gh = gates_ * hidden_;
        const index_t forms[] = {kt.gemm_workspace_elems(nt, gh, n_in_, threads),       // X W_ih
                                 kt.gemm_workspace_elems(rows, gh, hidden_, threads),   // h_{t-1} W_hh
                                 kt.gemm_workspace_elems(rows, hidden_, gh, threads),   // dA_t W_hhᵀ
                                 kt.gemm_workspace_elems(n_in_, gh, nt, threads),       // Xᵀ dA
                                 kt.gemm_workspace_elems(hidden_, gh, nt, threads),     // H_prevᵀ dA
                                 kt.gemm_workspace_elems(nt, n_in_, gh, threads)};      // dA W_ihᵀ
        index_t need = 0;
        for (index_t f : forms) need = f > need ? f : need;
        return need;
    }

  protected:
    index_t gh() const { return gates_ * hidden_; }
    index_t state_stride() const { return (steps_ + 1) * hidden_; }   // per sample in h_ext / c_ext

    // Carves a pass's scratch out of Pass::temp in order (each piece 64-byte aligned).
    class Scratch {
      public:
        explicit Scratch(T* base) : top_(base) {}
        T* take(index_t elems) {
            T* p = top_;
            top_ += pad(elems);
            return p;
        }
        static index_t pad(index_t elems) {
            const index_t align = index_t(64 / sizeof(T));
            return (elems + align - 1) / align * align;
        }
      private:
        T* top_;
    };
    // Scratch every backward takes besides its gate gradients: W_hhᵀ.
    index_t backward_common_elems(index_t) const { return Scratch::pad(gh() * hidden_); }

    // The row-index table of the dW_hh product: sample r's step t reads h_{t-1} at row r·(T+1) + t of h_ext.
    // It depends on neither the batch nor its size, so it is filled once per capacity.
    void reserve(index_t rows) override {
        prev_rows_.resize(checked_mul(rows, steps_, name_));
        for (index_t r = 0; r < rows; ++r)
            for (index_t t = 0; t < steps_; ++t) prev_rows_.data()[r * steps_ + t] = r * (steps_ + 1) + t;
    }

    // The zero initial state: step 0 of every sample's extended state block.
    void zero_initial_state(T* ext, index_t rows) const {
        for (index_t r = 0; r < rows; ++r) std::memset(ext + r * state_stride(), 0, sizeof(T) * size_t(hidden_));
    }

    // out (N·T, G·H) = X (N·T, F) W_ih + bias: the input's share of every gate at every step, one product.
    void input_projection(const Pass<T>& p, const T* x, const T* bias, T* out) const {
        const index_t nt = p.rows * steps_;
        GemmCall<T> g{nt, gh(), n_in_, x, n_in_, 1, p.params + w_ih_, gh(), 1, out, gh(), bias, Act::identity, T(0)};
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
    }

    // hh (N, G·H) = h_prev (N, H; row stride state_stride()) W_hh + bias: one step's recurrent part.
    void recurrent_product(const Pass<T>& p, const T* h_prev, const T* bias, T* hh) const {
        GemmCall<T> g{p.rows, gh(), hidden_, h_prev, state_stride(), 1, p.params + w_hh_, gh(), 1, hh, gh(), bias,
                      Act::identity, T(0)};
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
    }

    // w_hh_t (G·H, H) = W_hhᵀ, once per backward: the per-step products below then read a row-major B in
    // place instead of packing the transpose at every step.
    void transpose_w_hh(const Pass<T>& p, T* w_hh_t) const {
        const T* w = p.params + w_hh_;
        for (index_t i = 0; i < hidden_; ++i)
            for (index_t j = 0; j < gh(); ++j) w_hh_t[j * hidden_ + i] = w[i * gh() + j];
    }

    // dh (N, H) = da_t (N, G·H; row stride T·G·H) W_hhᵀ, from w_hh_t = W_hhᵀ (G·H, H): dL/dh_{t-1}
    // through the recurrent weights.
    void recurrent_grad(const Pass<T>& p, const T* da_t, const T* w_hh_t, T* dh) const {
        GemmCall<T> g{p.rows, hidden_, gh(), da_t, steps_ * gh(), 1, w_hh_t, hidden_, 1, dh, hidden_, nullptr,
                      Act::identity, T(0)};
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
    }

    // The parameter gradients from every step's gate gradients: da_x = d(x_t W_ih + b_ih) and da_h =
    // d(h_{t-1} W_hh + b_hh), both (N·T, G·H). dW_ih = Xᵀ da_x and dW_hh = H_prevᵀ da_h, each one product
    // over all N·T rows (H_prev read from h_ext through the row-index table); biases are column sums.
    void weight_grads(const Pass<T>& p, const T* x, const T* h_ext, const T* da_x, const T* da_h) const {
        const KernelTable<T>& kt = *p.kt;
        const index_t nt = p.rows * steps_;
        GemmCall<T> dwi{n_in_, gh(), nt, x, 1, n_in_, da_x, gh(), 1, p.grads + w_ih_, gh(), nullptr, Act::identity, T(0)};
        kt.gemm(dwi, p.gemm_ws, p.gemm_ws_elems, p.threads);
        GemmCall<T> dwh{hidden_, gh(), nt, h_ext, 1, hidden_, da_h, gh(), 1, p.grads + w_hh_, gh(), nullptr,
                        Act::identity, T(0)};
        dwh.gather_k = prev_rows_.data();
        kt.gemm(dwh, p.gemm_ws, p.gemm_ws_elems, p.threads);
        if (has_bias_) {
            kt.bias_grad(p.grads + b_ih_, da_x, nt, gh(), p.threads);
            if (da_h == da_x) std::memcpy(p.grads + b_hh_, p.grads + b_ih_, sizeof(T) * size_t(gh()));
            else kt.bias_grad(p.grads + b_hh_, da_h, nt, gh(), p.threads);
        }
    }

    // dx (N·T, F) = da_x (N·T, G·H) W_ihᵀ, one product.
    void input_grad(const Pass<T>& p, const T* da_x, T* dx) const {
        const index_t nt = p.rows * steps_;
        GemmCall<T> g{nt, n_in_, gh(), da_x, gh(), 1, p.params + w_ih_, 1, gh(), dx, n_in_, nullptr, Act::identity, T(0)};
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
    }

    // y = every step's h (N, T, H) or the last one (N, H), from h_ext.
    void write_output(const Pass<T>& p, const T* h_ext, T* y) const {
        for (index_t r = 0; r < p.rows; ++r) {
            const T* src = h_ext + r * state_stride();
            if (return_sequences_) std::memcpy(y + r * steps_ * hidden_, src + hidden_, sizeof(T) * size_t(steps_ * hidden_));
            else std::memcpy(y + r * hidden_, src + steps_ * hidden_, sizeof(T) * size_t(hidden_));
        }
    }

    // The output gradient at step t (nullptr: none reaches this step directly) and its row stride.
    const T* output_grad_at(const T* dy, index_t t, index_t& ld) const {
        if (return_sequences_) {
            ld = steps_ * hidden_;
            return dy + t * hidden_;
        }
        ld = hidden_;
        return t == steps_ - 1 ? dy : nullptr;
    }

    // The input projection's bias: b_ih + b_hh (RNN, LSTM: both biases act on the same sum), into dst.
    const T* summed_bias(const Pass<T>& p, T* dst) const {
        if (!has_bias_) return nullptr;
        for (index_t j = 0; j < gh(); ++j) dst[j] = p.params[b_ih_ + j] + p.params[b_hh_ + j];
        return dst;
    }
    const T* bias_ih(const Pass<T>& p) const { return has_bias_ ? p.params + b_ih_ : nullptr; }
    const T* bias_hh(const Pass<T>& p) const { return has_bias_ ? p.params + b_hh_ : nullptr; }

    const char* name_;
    index_t gates_, n_in_, hidden_, steps_ = 0;
    bool return_sequences_, has_bias_;
    index_t w_ih_ = -1, w_hh_ = -1, b_ih_ = -1, b_hh_ = -1;
    TensorSlot weights_;
    AlignedBuffer<std::int64_t> prev_rows_;
};

}  // namespace nc
