// Conv2D on channels-last images: y (n, oh, ow, cout) = act(P . W + b), W (kh, kw, cin, cout) read as a
// (kh*kw*cin, cout) matrix and P the patch matrix (n*oh*ow, kh*kw*cin). P is built by im2col one chunk
// of samples at a time into scratch (bounded, so it stays in cache and nothing grows with the batch),
// and read in place by the GEMM; bias and activation run in its epilogue. Backward per chunk:
// dW += Pᵀ . dY (a chunk's product into scratch, then added: a fixed order for any thread count), and
// dP = dY . Wᵀ scattered back onto the image by col2im.
// (The GEMM's row/column gathers can also read P straight from the image, with no copy; measured slower:
// the gathered packing loads one element at a time, im2col copies whole runs of kw*cin values.)
// Spec: ints (cin, cout, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, bias).
#include "stage.h"

namespace nc {
namespace {

// Patch-matrix elements per chunk (about 1 MB of floats): about L2-sized; independent of threads.
constexpr index_t kChunkElems = index_t(1) << 18;

template <typename T>
class Conv2DStage final : public Stage<T> {
  public:
    explicit Conv2DStage(const LayerSpec& s)
        : cin_(spec_int(s, 0)), cout_(spec_int(s, 1)), kh_(spec_int(s, 2)), kw_(spec_int(s, 3)), sh_(spec_int(s, 4)),
          sw_(spec_int(s, 5)), pt_(spec_int(s, 6)), pb_(spec_int(s, 7)), pl_(spec_int(s, 8)), pr_(spec_int(s, 9)),
          has_bias_(spec_int(s, 10) != 0) {
        if (cin_ < 1 || cout_ < 1 || kh_ < 1 || kw_ < 1 || sh_ < 1 || sw_ < 1)
            throw std::invalid_argument("Conv2D channels, kernel size and stride must be >= 1");
        if (pt_ < 0 || pb_ < 0 || pl_ < 0 || pr_ < 0) throw std::invalid_argument("Conv2D padding must be >= 0");
    }

    void build(TensorPlanner& planner) override {
        const std::vector<index_t>& d = this->in.dims;
        if (d.size() != 3) throw std::invalid_argument("Conv2D takes (batch, H, W, C) images, got per-sample shape " + this->in.str());
        if (d[2] != cin_) throw std::invalid_argument("Conv2D input channels do not match: expected " + std::to_string(cin_) + ", got " + this->in.str());
        hp_ = checked_add(d[0], pt_ + pb_, "Conv2D");
        wp_ = checked_add(d[1], pl_ + pr_, "Conv2D");
        if (hp_ < kh_ || wp_ < kw_) throw std::invalid_argument("Conv2D kernel is larger than the padded image " + this->in.str());
        g_ = Window2D{d[0], d[1], cin_, kh_, kw_, sh_, sw_, pt_, pl_, (hp_ - kh_) / sh_ + 1, (wp_ - kw_) / sw_ + 1};
        this->out.dims = {g_.oh, g_.ow, cout_};
        k_ = checked_mul(checked_mul(kh_, kw_, "Conv2D"), cin_, "Conv2D");
        weight_ = planner.param(this->tensors, "weight", {kh_, kw_, cin_, cout_});
        if (has_bias_) bias_ = planner.param(this->tensors, "bias", {cout_});
        chunk_ = kChunkElems / checked_mul(g_.oh * g_.ow, k_, "Conv2D");
        if (chunk_ < 1) chunk_ = 1;
    }
    bool fuse_activation(Act act, T alpha) override {
        if (act_ != Act::identity) return false;
        act_ = act;
        alpha_ = alpha;
        return true;
    }
    index_t aux_per_sample() const override { return act_ == Act::gelu ? this->out.size() : 0; }
    // One chunk of the patch matrix, one of patch gradients, and a chunk's dW.
    index_t temp_elems(index_t rows) const override {
        const index_t chunk = checked_mul((rows < chunk_ ? rows : chunk_) * g_.oh * g_.ow, k_, "Conv2D");
        return checked_add(checked_mul(2, chunk, "Conv2D"), checked_mul(k_, cout_, "Conv2D"), "Conv2D");
    }
    index_t gemm_workspace(const KernelTable<T>& kt, index_t rows, int threads) const override {
        const index_t chunk = checked_mul(rows < chunk_ ? rows : chunk_, g_.oh * g_.ow, "Conv2D");
        const index_t forms[3] = {kt.gemm_workspace_elems(chunk, cout_, k_, threads),   // Y = P W
                                  kt.gemm_workspace_elems(k_, cout_, chunk, threads),   // dW = Pᵀ dY
                                  kt.gemm_workspace_elems(chunk, k_, cout_, threads)};  // dP = dY Wᵀ
        index_t need = 0;
        for (index_t f : forms) need = f > need ? f : need;
        return need;
    }
    bool reads_gathered_input() const override { return true; }
    const TensorSlot* tracked_weight() const override { return &this->tensors[0]; }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const bool after = act_ == Act::softmax || act_ == Act::gelu;
        T* z = act_ == Act::gelu ? aux : y;
        const index_t per_sample = g_.oh * g_.ow;
        T* cols = p.temp;
        for (index_t s0 = 0; s0 < p.rows; s0 += chunk_) {
            const index_t n = p.rows - s0 < chunk_ ? p.rows - s0 : chunk_;
            patches(p, x, s0, n, cols);
            GemmCall<T> g{n * per_sample, cout_, k_, cols, k_, 1, p.params + weight_, cout_, 1,
                          z + s0 * per_sample * cout_, cout_, bias_ >= 0 ? p.params + bias_ : nullptr,
                          after ? Act::identity : act_, alpha_};
            p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
        }
        if (after) p.kt->act_forward(y, z, p.rows * per_sample, cout_, act_, alpha_, p.threads);
    }

    void backward(const Pass<T>& p, const T* x, const T* y, T* aux, T*& g, T*& spare, bool need_dx) override {
        const KernelTable<T>& kt = *p.kt;
        const index_t per_sample = g_.oh * g_.ow, pixels = p.rows * per_sample;
        if (act_ == Act::gelu) kt.gelu_backward(g, aux, g, pixels, cout_, p.threads);
        else if (act_ != Act::identity) kt.act_backward(g, y, g, pixels, cout_, act_, alpha_, p.threads);
        if (this->trainable && bias_ >= 0) kt.bias_grad(p.grads + bias_, g, pixels, cout_, p.threads);
        const index_t chunk_elems = (p.rows < chunk_ ? p.rows : chunk_) * per_sample * k_;
        T* cols = p.temp;
        T* dcols = p.temp + chunk_elems;
        T* dw_chunk = p.temp + 2 * chunk_elems;
        for (index_t s0 = 0; s0 < p.rows; s0 += chunk_) {
            const index_t n = p.rows - s0 < chunk_ ? p.rows - s0 : chunk_;
            const T* dy = g + s0 * per_sample * cout_;
            if (this->trainable) {   // dW (+)= Pᵀ dY: the first chunk writes the gradient, later ones add to it
                patches(p, x, s0, n, cols);
                T* dw = s0 == 0 ? p.grads + weight_ : dw_chunk;
                GemmCall<T> gw{k_, cout_, n * per_sample, cols, 1, k_, dy, cout_, 1, dw, cout_, nullptr, Act::identity, T(0)};
                kt.gemm(gw, p.gemm_ws, p.gemm_ws_elems, p.threads);
                if (s0 > 0) kt.add(p.grads + weight_, p.grads + weight_, dw_chunk, k_ * cout_);
            }
            if (need_dx) {
                GemmCall<T> gp{n * per_sample, k_, cout_, dy, cout_, 1, p.params + weight_, 1, cout_, dcols, k_,
                               nullptr, Act::identity, T(0)};
                kt.gemm(gp, p.gemm_ws, p.gemm_ws_elems, p.threads);
                kt.col2im(spare + s0 * this->in.size(), dcols, n, g_, p.threads);
            }
        }
        if (need_dx) std::swap(g, spare);
    }

  private:
    // cols = the patch matrix of samples [s0, s0 + n) (through the batch's rows for a first stage).
    void patches(const Pass<T>& p, const T* x, index_t s0, index_t n, T* cols) const {
        if (p.in_rows) p.kt->im2col(cols, x, p.in_rows + s0, n, g_, p.threads);
        else p.kt->im2col(cols, x + s0 * this->in.size(), nullptr, n, g_, p.threads);
    }

    index_t cin_, cout_, kh_, kw_, sh_, sw_, pt_, pb_, pl_, pr_;
    bool has_bias_;
    index_t hp_ = 0, wp_ = 0, k_ = 0, chunk_ = 1;
    Window2D g_{};
    index_t weight_ = -1, bias_ = -1;
    Act act_ = Act::identity;
    T alpha_ = T(0);
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_conv2d_stage(const LayerSpec& s) { return std::make_unique<Conv2DStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_conv2d_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_conv2d_stage<double>(const LayerSpec&);

}  // namespace nc
