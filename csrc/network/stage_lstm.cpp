// LSTM (torch.nn.LSTM, one layer, batch-first, gates i, f, g, o): the input projection of all steps as
// one GEMM, then per step h_{t-1} W_hh and the fused gate kernel; backward in reverse time, then the
// weight gradients and dL/dx as one GEMM each (stage_recurrent.h). Spec: ints (F, H, return_sequences, bias).
#include "stage_recurrent.h"

namespace nc {
namespace {

template <typename T>
class LstmStage final : public RecurrentStage<T> {
    using Base = RecurrentStage<T>;
    using typename Base::Scratch;

  public:
    explicit LstmStage(const LayerSpec& s) : Base(s, 4, "LSTM") {}

    // Kept per sample: the gate activations (T, 4H), then c, tanh(c) and h with the initial step (T+1, H).
    index_t aux_per_sample() const override { return this->steps_ * this->gh() + 3 * this->state_stride(); }
    index_t temp_elems(index_t rows) const override {
        const index_t n = rows, H = this->hidden_;
        const index_t forward = Scratch::pad(this->gh()) + Scratch::pad(n * this->gh());
        const index_t backward = Scratch::pad(n * this->steps_ * this->gh()) + 2 * Scratch::pad(n * H) + this->backward_common_elems(n);
        return forward > backward ? forward : backward;
    }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const index_t n = p.rows, H = this->hidden_, gh = this->gh(), steps = this->steps_, ss = this->state_stride();
        const Kept k = kept(aux, n);
        Scratch s(p.temp);
        T* bias = s.take(gh);
        T* hh = s.take(n * gh);
        this->zero_initial_state(k.c, n);
        this->zero_initial_state(k.h, n);
        this->input_projection(p, x, this->summed_bias(p, bias), k.gates);
        for (index_t t = 0; t < steps; ++t) {
            if (t > 0) this->recurrent_product(p, k.h + t * H, nullptr, hh);
            p.kt->recurrent.lstm_step_forward(k.gates + t * gh, k.c + (t + 1) * H, k.tanh_c + (t + 1) * H, k.h + (t + 1) * H,
                                              t > 0 ? hh : nullptr, k.c + t * H, steps * gh, gh, ss, n, H, p.threads);
        }
        this->write_output(p, k.h, y);
    }

    void backward(const Pass<T>& p, const T* x, const T*, T* aux, T*& g, T*& spare, bool need_dx) override {
        const index_t n = p.rows, H = this->hidden_, gh = this->gh(), steps = this->steps_, ss = this->state_stride();
        const Kept k = kept(aux, n);
        Scratch s(p.temp);
        T* da = s.take(n * steps * gh);
        T* dc = s.take(n * H);
        T* dh = s.take(n * H);
        T* w_hh_t = s.take(gh * H);
        this->transpose_w_hh(p, w_hh_t);
        for (index_t t = steps; t-- > 0;) {
            index_t ld_dy;
            const T* dy = this->output_grad_at(g, t, ld_dy);
            const bool last = t == steps - 1;
            p.kt->recurrent.lstm_step_backward(da + t * gh, dc, k.gates + t * gh, k.c + t * H, k.tanh_c + (t + 1) * H,
                                               last ? nullptr : dh, dy, steps * gh, steps * gh, ss, ld_dy, last, n, H,
                                               p.threads);
            if (t > 0) this->recurrent_grad(p, da + t * gh, w_hh_t, dh);
        }
        if (this->trainable) this->weight_grads(p, x, k.h, da, da);
        if (!need_dx) return;
        this->input_grad(p, da, spare);
        std::swap(g, spare);
    }

  private:
    struct Kept {
        T *gates, *c, *tanh_c, *h;
    };
    Kept kept(T* aux, index_t rows) const {
        Kept k;
        k.gates = aux;
        k.c = k.gates + rows * this->steps_ * this->gh();
        k.tanh_c = k.c + rows * this->state_stride();
        k.h = k.tanh_c + rows * this->state_stride();
        return k;
    }
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_lstm_stage(const LayerSpec& s) { return std::make_unique<LstmStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_lstm_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_lstm_stage<double>(const LayerSpec&);

}  // namespace nc
