// Dense: y = act(x W + b), W (in, out). The activation after it runs as the GEMM's epilogue (GELU and
// softmax, which are not tile-local, right after the product). On sequences (steps, in) it applies to the
// last axis at every step, as torch.nn.Linear does: the batch is then N·steps rows. Spec: ints (in, out, bias).
#include "stage.h"

namespace nc {
namespace {

template <typename T>
class DenseStage final : public Stage<T> {
  public:
    explicit DenseStage(const LayerSpec& s) : n_in_(spec_int(s, 0)), n_out_(spec_int(s, 1)), has_bias_(spec_int(s, 2) != 0) {
        if (n_in_ < 1 || n_out_ < 1) throw std::invalid_argument("Dense sizes must be >= 1");
    }

    void build(TensorPlanner& planner) override {
        if (this->in.dims.size() != 1 && this->in.dims.size() != 2)
            throw std::invalid_argument("Dense takes (batch, features) or (batch, steps, features) inputs, got per-sample shape " + this->in.str());
        if (this->in.dims.back() != n_in_) throw std::invalid_argument("Dense input size does not match the previous layer");
        steps_ = this->in.dims.size() == 2 ? this->in.dims[0] : 1;
        this->out.dims = this->in.dims;
        this->out.dims.back() = n_out_;
        weight_ = planner.param(this->tensors, "weight", {n_in_, n_out_});
        if (has_bias_) bias_ = planner.param(this->tensors, "bias", {n_out_});
    }
    bool fuse_activation(Act act, T alpha) override {
        if (act_ != Act::identity) return false;
        act_ = act;
        alpha_ = alpha;
        return true;
    }
    index_t aux_per_sample() const override { return act_ == Act::gelu ? steps_ * n_out_ : 0; }
    index_t gemm_workspace(const KernelTable<T>& kt, index_t samples, int threads) const override {
        const index_t rows = samples * steps_;
        const index_t forms[3] = {kt.gemm_workspace_elems(rows, n_out_, n_in_, threads),   // Y = X W
                                  kt.gemm_workspace_elems(n_in_, n_out_, rows, threads),   // dW = X^T dY
                                  kt.gemm_workspace_elems(rows, n_in_, n_out_, threads)};  // dX = dY W^T
        index_t need = 0;
        for (index_t f : forms) need = f > need ? f : need;
        return need;
    }
    bool reads_gathered_input() const override { return steps_ == 1; }   // a gathered row is one sample
    const TensorSlot* tracked_weight() const override { return &this->tensors[0]; }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        // GELU keeps its input for backward; softmax is row-wise: both run after the product.
        const bool after = act_ == Act::softmax || act_ == Act::gelu;
        T* z = act_ == Act::gelu ? aux : y;
        const index_t rows = p.rows * steps_;
        GemmCall<T> g{rows, n_out_, n_in_, x, n_in_, 1, p.params + weight_, n_out_, 1, z, n_out_,
                      bias_ >= 0 ? p.params + bias_ : nullptr, after ? Act::identity : act_, alpha_};
        g.gather_i = p.in_rows;
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
        if (after) p.kt->act_forward(y, z, rows, n_out_, act_, alpha_, p.threads);
    }

    void backward(const Pass<T>& p, const T* x, const T* y, T* aux, T*& g, T*& spare, bool need_dx) override {
        const KernelTable<T>& kt = *p.kt;
        const index_t rows = p.rows * steps_;
        if (act_ == Act::gelu) kt.gelu_backward(g, aux, g, rows, n_out_, p.threads);
        else if (act_ != Act::identity) kt.act_backward(g, y, g, rows, n_out_, act_, alpha_, p.threads);
        if (this->trainable) {
            if (bias_ >= 0) kt.bias_grad(p.grads + bias_, g, rows, n_out_, p.threads);
            GemmCall<T> dw{n_in_, n_out_, rows, x, 1, n_in_, g, n_out_, 1, p.grads + weight_, n_out_,
                           nullptr, Act::identity, T(0)};
            dw.gather_k = p.in_rows;   // op(A) = Xᵀ: its columns are the batch's rows
            kt.gemm(dw, p.gemm_ws, p.gemm_ws_elems, p.threads);
        }
        if (!need_dx) return;
        GemmCall<T> dx{rows, n_in_, n_out_, g, n_out_, 1, p.params + weight_, 1, n_out_, spare, n_in_,
                       nullptr, Act::identity, T(0)};
        kt.gemm(dx, p.gemm_ws, p.gemm_ws_elems, p.threads);
        std::swap(g, spare);
    }

  private:
    index_t n_in_, n_out_;
    index_t steps_ = 1;   // rows per sample: the steps of a sequence
    bool has_bias_;
    index_t weight_ = -1, bias_ = -1;
    Act act_ = Act::identity;
    T alpha_ = T(0);
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_dense_stage(const LayerSpec& s) { return std::make_unique<DenseStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_dense_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_dense_stage<double>(const LayerSpec&);

}  // namespace nc
