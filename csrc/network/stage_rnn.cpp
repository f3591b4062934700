// Elman RNN (torch.nn.RNN, one layer, batch-first): h_t = act(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh),
// act tanh or relu. The input projection of all steps as one GEMM, then per step h_{t-1} W_hh and the
// activation; backward in reverse time, then the weight gradients and dL/dx as one GEMM each
// (stage_recurrent.h). Spec: ints (F, H, return_sequences, bias, relu).
#include "stage_recurrent.h"

namespace nc {
namespace {

template <typename T>
class RnnStage final : public RecurrentStage<T> {
    using Base = RecurrentStage<T>;
    using typename Base::Scratch;

  public:
    explicit RnnStage(const LayerSpec& s) : Base(s, 1, "RNN"), act_(spec_int(s, 4) != 0 ? Act::relu : Act::tanh) {}

    // Kept per sample: h with the initial step (T+1, H); the derivative of tanh/relu is a function of h.
    index_t aux_per_sample() const override { return this->state_stride(); }
    // The pre-activations (forward) or their gradients (backward), (N, T, H); one step's products (N, H).
    index_t temp_elems(index_t rows) const override {
        return Scratch::pad(this->hidden_) + Scratch::pad(rows * this->steps_ * this->hidden_) +
               2 * Scratch::pad(rows * this->hidden_) + this->backward_common_elems(rows);
    }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const index_t n = p.rows, H = this->hidden_, steps = this->steps_;
        T* h = aux;
        Scratch s(p.temp);
        T* bias = s.take(H);
        T* pre = s.take(n * steps * H);
        T* hh = s.take(n * H);
        this->zero_initial_state(h, n);
        this->input_projection(p, x, this->summed_bias(p, bias), pre);
        for (index_t t = 0; t < steps; ++t) {
            if (t > 0) this->recurrent_product(p, h + t * H, nullptr, hh);
            p.kt->recurrent.rnn_step_forward(h + (t + 1) * H, pre + t * H, t > 0 ? hh : nullptr, this->state_stride(),
                                             steps * H, H, n, H, act_, p.threads);
        }
        this->write_output(p, h, y);
    }

    void backward(const Pass<T>& p, const T* x, const T*, T* aux, T*& g, T*& spare, bool need_dx) override {
        const index_t n = p.rows, H = this->hidden_, steps = this->steps_;
        const T* h = aux;
        Scratch s(p.temp);
        s.take(H);
        T* da = s.take(n * steps * H);
        T* dh = s.take(n * H);
        s.take(n * H);
        T* w_hh_t = s.take(H * H);
        this->transpose_w_hh(p, w_hh_t);
        for (index_t t = steps; t-- > 0;) {
            index_t ld_dy;
            const T* dy = this->output_grad_at(g, t, ld_dy);
            p.kt->recurrent.rnn_step_backward(da + t * H, h + (t + 1) * H, t == steps - 1 ? nullptr : dh, dy, steps * H,
                                              this->state_stride(), ld_dy, n, H, act_, p.threads);
            if (t > 0) this->recurrent_grad(p, da + t * H, w_hh_t, dh);
        }
        if (this->trainable) this->weight_grads(p, x, h, da, da);
        if (!need_dx) return;
        this->input_grad(p, da, spare);
        std::swap(g, spare);
    }

  private:
    Act act_;
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_rnn_stage(const LayerSpec& s) { return std::make_unique<RnnStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_rnn_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_rnn_stage<double>(const LayerSpec&);

}  // namespace nc
