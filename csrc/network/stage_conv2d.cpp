// Conv2D on channels-last images: y (n, oh, ow, cout) = act(patches . W + b), W (kh, kw, cin, cout) read
// as a (kh*kw*cin, cout) matrix. The patch matrix (n*oh*ow, kh*kw*cin) never exists: the GEMM reads it
// through its gathers (row r = an output pixel's window corner, column k = a cell (i, j, c) of the window)
// from the input, or from a zero-padded copy when there is padding. dW = patchesᵀ . dY the same way;
// dX = dY . Wᵀ per chunk of samples into scratch, scattered back by col2im.
// Spec: ints (cin, cout, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, bias).
#include "stage.h"

namespace nc {
namespace {

// Patch-gradient rows per dX chunk: bounds the scratch (about 4 MB of floats), independent of threads.
constexpr index_t kChunkElems = index_t(1) << 20;

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
        // Column k of the patch matrix: the cell's offset from its window's corner in the (padded) image.
        col_off_.resize(k_);
        for (index_t i = 0; i < kh_; ++i)
            for (index_t j = 0; j < kw_; ++j)
                for (index_t c = 0; c < cin_; ++c) col_off_.data()[(i * kw_ + j) * cin_ + c] = (i * wp_ + j) * cin_;
        for (index_t k = 0; k < k_; ++k) col_off_.data()[k] += k % cin_;
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
    // A padded copy of the input, then (backward) one chunk of patch gradients.
    index_t temp_elems(index_t rows) const override {
        const index_t padded = padding() ? checked_mul(rows, hp_ * wp_ * cin_, "Conv2D") : 0;
        const index_t chunk = rows < chunk_ ? rows : chunk_;
        return checked_add(padded, checked_mul(chunk * g_.oh * g_.ow, k_, "Conv2D"), "Conv2D");
    }
    index_t gemm_workspace(const KernelTable<T>& kt, index_t rows, int threads) const override {
        const index_t pixels = checked_mul(rows, g_.oh * g_.ow, "Conv2D");
        const index_t chunk = (rows < chunk_ ? rows : chunk_) * g_.oh * g_.ow;
        const index_t forms[3] = {kt.gemm_workspace_elems(pixels, cout_, k_, threads),   // Y = P W
                                  kt.gemm_workspace_elems(k_, cout_, pixels, threads),   // dW = Pᵀ dY
                                  kt.gemm_workspace_elems(chunk, k_, cout_, threads)};   // dP = dY Wᵀ
        index_t need = 0;
        for (index_t f : forms) need = f > need ? f : need;
        return need;
    }
    void reserve(index_t rows) override { row_off_.resize(checked_mul(rows, g_.oh * g_.ow, "Conv2D")); }
    bool reads_gathered_input() const override { return true; }
    const TensorSlot* tracked_weight() const override { return &this->tensors[0]; }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const T* src = patch_source(p, x);
        const bool after = act_ == Act::softmax || act_ == Act::gelu;
        T* z = act_ == Act::gelu ? aux : y;
        const index_t pixels = p.rows * g_.oh * g_.ow;
        GemmCall<T> g{pixels, cout_, k_, src, 1, 1, p.params + weight_, cout_, 1, z, cout_,
                      bias_ >= 0 ? p.params + bias_ : nullptr, after ? Act::identity : act_, alpha_};
        g.gather_i = row_off_.data();
        g.gather_k = col_off_.data();
        p.kt->gemm(g, p.gemm_ws, p.gemm_ws_elems, p.threads);
        if (after) p.kt->act_forward(y, z, pixels, cout_, act_, alpha_, p.threads);
    }

    void backward(const Pass<T>& p, const T* x, const T* y, T* aux, T*& g, T*& spare, bool need_dx) override {
        const KernelTable<T>& kt = *p.kt;
        const index_t pixels = p.rows * g_.oh * g_.ow;
        if (act_ == Act::gelu) kt.gelu_backward(g, aux, g, pixels, cout_, p.threads);
        else if (act_ != Act::identity) kt.act_backward(g, y, g, pixels, cout_, act_, alpha_, p.threads);
        if (this->trainable) {
            if (bias_ >= 0) kt.bias_grad(p.grads + bias_, g, pixels, cout_, p.threads);
            const T* src = patch_source(p, x);   // the row offsets are the forward's; the padded copy is redone
            GemmCall<T> dw{k_, cout_, pixels, src, 1, 1, g, cout_, 1, p.grads + weight_, cout_, nullptr, Act::identity, T(0)};
            dw.gather_i = col_off_.data();   // op(A) = Pᵀ: rows are the window cells, columns the pixels
            dw.gather_k = row_off_.data();
            kt.gemm(dw, p.gemm_ws, p.gemm_ws_elems, p.threads);
        }
        if (!need_dx) return;
        T* dcols = p.temp + (padding() ? p.rows * hp_ * wp_ * cin_ : 0);
        const index_t per_sample = g_.oh * g_.ow;
        for (index_t s0 = 0; s0 < p.rows; s0 += chunk_) {
            const index_t n = p.rows - s0 < chunk_ ? p.rows - s0 : chunk_;
            GemmCall<T> dp{n * per_sample, k_, cout_, g + s0 * per_sample * cout_, cout_, 1, p.params + weight_, 1, cout_,
                           dcols, k_, nullptr, Act::identity, T(0)};
            kt.gemm(dp, p.gemm_ws, p.gemm_ws_elems, p.threads);
            kt.col2im(spare + s0 * this->in.size(), dcols, n, g_, p.threads);
        }
        std::swap(g, spare);
    }

  private:
    bool padding() const { return pt_ + pb_ + pl_ + pr_ > 0; }

    // The array the GEMM gathers patches from, with row_off_ set to each output pixel's window corner:
    // the input itself (its batch rows through p.in_rows), or a zero-padded copy in p.temp.
    const T* patch_source(const Pass<T>& p, const T* x) {
        const index_t img = padding() ? hp_ * wp_ * cin_ : this->in.size();
        const T* src = x;
        const std::int64_t* rows = p.in_rows;
        if (padding()) {
            p.kt->pad_images(p.temp, x, rows, p.rows, g_.h, g_.w, cin_, pt_, pb_, pl_, pr_, p.threads);
            src = p.temp;
            rows = nullptr;
        }
        std::int64_t* off = row_off_.data();
        for (index_t s = 0; s < p.rows; ++s) {
            const index_t base = (rows ? rows[s] : s) * img;
            for (index_t oy = 0; oy < g_.oh; ++oy)
                for (index_t ox = 0; ox < g_.ow; ++ox) *off++ = base + (oy * sh_ * wp_ + ox * sw_) * cin_;
        }
        return src;
    }

    index_t cin_, cout_, kh_, kw_, sh_, sw_, pt_, pb_, pl_, pr_;
    bool has_bias_;
    index_t hp_ = 0, wp_ = 0, k_ = 0, chunk_ = 1;
    Window2D g_{};
    index_t weight_ = -1, bias_ = -1;
    Act act_ = Act::identity;
    T alpha_ = T(0);
    AlignedBuffer<std::int64_t> col_off_, row_off_;
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_conv2d_stage(const LayerSpec& s) { return std::make_unique<Conv2DStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_conv2d_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_conv2d_stage<double>(const LayerSpec&);

}  // namespace nc
