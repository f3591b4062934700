// GRU (torch.nn.GRU, one layer, batch-first, gates r, z, n; the reset gate scales W_hn h + b_hn): the
// input projection of all steps as one GEMM, then per step h_{t-1} W_hh + b_hh and the fused gate kernel;
// backward in reverse time, then the weight gradients and dL/dx as one GEMM each (stage_recurrent.h).
// Spec: ints (F, H, return_sequences, bias).
#include "stage_recurrent.h"

namespace nc {
namespace {

template <typename T>
class GruStage final : public RecurrentStage<T> {
    using Base = RecurrentStage<T>;
    using typename Base::Scratch;

  public:
    explicit GruStage(const LayerSpec& s) : Base(s, 3, "GRU") {}

    // Kept per sample: the gate activations (T, 3H), W_hn h_{t-1} + b_hn (T, H), h with the initial step (T+1, H).
    index_t aux_per_sample() const override {
        return this->steps_ * (this->gh() + this->hidden_) + this->state_stride();
    }
    index_t temp_elems(index_t rows) const override {
        const index_t n = rows, H = this->hidden_;
        const index_t forward = Scratch::pad(n * this->gh());
        const index_t backward = 2 * Scratch::pad(n * this->steps_ * this->gh()) + 2 * Scratch::pad(n * H) + this->backward_common_elems(n);
        return forward > backward ? forward : backward;
    }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const index_t n = p.rows, H = this->hidden_, gh = this->gh(), steps = this->steps_;
        const Kept k = kept(aux, n);
        Scratch s(p.temp);
        T* hh = s.take(n * gh);
        this->zero_initial_state(k.h, n);
        this->input_projection(p, x, this->bias_ih(p), k.gates);
        for (index_t t = 0; t < steps; ++t) {
            // h_{-1} = 0: the recurrent part of step 0 is b_hh alone, read as one row for every sample
            const T* hh_t = this->bias_hh(p);
            index_t ld_hh = 0;
            if (t > 0) {
                this->recurrent_product(p, k.h + t * H, this->bias_hh(p), hh);
                hh_t = hh;
                ld_hh = gh;
            }
            p.kt->recurrent.gru_step_forward(k.gates + t * gh, k.hn + t * H, k.h + (t + 1) * H, hh_t, k.h + t * H,
                                             steps * gh, ld_hh, steps * H, this->state_stride(), n, H, p.threads);
        }
        this->write_output(p, k.h, y);
    }

    void backward(const Pass<T>& p, const T* x, const T*, T* aux, T*& g, T*& spare, bool need_dx) override {
        const index_t n = p.rows, H = this->hidden_, gh = this->gh(), steps = this->steps_;
        const Kept k = kept(aux, n);
        Scratch s(p.temp);
        T* da_x = s.take(n * steps * gh);
        T* da_h = s.take(n * steps * gh);
        T* carry = s.take(n * H);
        T* dh = s.take(n * H);
        T* w_hh_t = s.take(gh * H);
        this->transpose_w_hh(p, w_hh_t);
        for (index_t t = steps; t-- > 0;) {
            index_t ld_dy;
            const T* dy = this->output_grad_at(g, t, ld_dy);
            const bool last = t == steps - 1;
            p.kt->recurrent.gru_step_backward(da_x + t * gh, da_h + t * gh, carry, k.gates + t * gh, k.hn + t * H,
                                              k.h + t * H, last ? nullptr : dh, dy, steps * gh, steps * gh, steps * H,
                                              this->state_stride(), ld_dy, last, n, H, p.threads);
            if (t > 0) this->recurrent_grad(p, da_h + t * gh, w_hh_t, dh);
        }
        if (this->trainable) this->weight_grads(p, x, k.h, da_x, da_h);
        if (!need_dx) return;
        this->input_grad(p, da_x, spare);
        std::swap(g, spare);
    }

  private:
    struct Kept {
        T *gates, *hn, *h;
    };
    Kept kept(T* aux, index_t rows) const {
        Kept k;
        k.gates = aux;
        k.hn = k.gates + rows * this->steps_ * this->gh();
        k.h = k.hn + rows * this->steps_ * this->hidden_;
        return k;
    }
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_gru_stage(const LayerSpec& s) { return std::make_unique<GruStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_gru_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_gru_stage<double>(const LayerSpec&);

}  // namespace nc
