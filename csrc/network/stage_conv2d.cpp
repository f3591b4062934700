// Conv2D on channels-last images: y (n, oh, ow, cout) = act(P . W + b), W (kh, kw, cin, cout) read as a
// (kh*kw*cin, cout) matrix and P the patch matrix (n*oh*ow, kh*kw*cin). P is built by im2col one chunk
// of samples at a time into scratch (bounded, so it stays in cache and nothing grows with the batch),
// and read in place by the GEMM; bias and activation run in its epilogue. Backward per chunk:
// dW += Pᵀ . dY (a chunk's product into scratch, then added: a fixed order for any thread count), and
// dP = dY . Wᵀ scattered back onto the image by col2im.
// (The GEMM's row/column gathers can also read P straight from the image, with no copy; measured slower:
// the gathered packing loads one element at a time, im2col copies whole runs of kw*cin values.)
// Spec: ints (cin, cout, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, bias).
#include <cstring>

#include "../dispatch.h"
#include "stage.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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
    // Per thread one chunk of the patch matrix and one of patch gradients; then every chunk's dW.
    index_t temp_elems(index_t rows) const override {
        return checked_add(checked_mul(2 * index_t(max_threads()), chunk_elems(rows), "Conv2D"),
                           checked_mul(chunks(rows), k_ * cout_, "Conv2D"), "Conv2D");
    }
    // Each thread runs whole chunks with its own packing workspace.
    index_t gemm_workspace(const KernelTable<T>& kt, index_t rows, int threads) const override {
        return checked_mul(gemm_per_thread(kt, rows), index_t(threads > max_threads() ? threads : max_threads()), "Conv2D");
    }
    bool reads_gathered_input() const override { return true; }
    const TensorSlot* tracked_weight() const override { return &this->tensors[0]; }

    // Threads split the batch into whole chunks (one parallel region per pass: a fork/join per GEMM costs
    // a scheduler slice on a loaded machine); a single chunk runs its GEMMs with all threads instead.
    // Every chunk's arithmetic is the same either way, so results do not depend on the thread count.
    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        const bool after = act_ == Act::softmax || act_ == Act::gelu;
        T* z = act_ == Act::gelu ? aux : y;
        const index_t per_sample = g_.oh * g_.ow;
        for_chunks(p, [&](index_t s0, index_t n, const Lane& l) {
            patches(p, x, s0, n, l.cols, l.threads);
            GemmCall<T> g{n * per_sample, cout_, k_, l.cols, k_, 1, p.params + weight_, cout_, 1,
                          z + s0 * per_sample * cout_, cout_, bias_ >= 0 ? p.params + bias_ : nullptr,
                          after ? Act::identity : act_, alpha_};
            p.kt->gemm(g, l.ws, l.ws_elems, l.threads);
        });
        if (after) p.kt->act_forward(y, z, p.rows * per_sample, cout_, act_, alpha_, p.threads);
    }

    void backward(const Pass<T>& p, const T* x, const T* y, T* aux, T*& g, T*& spare, bool need_dx) override {
        const KernelTable<T>& kt = *p.kt;
        const index_t per_sample = g_.oh * g_.ow, pixels = p.rows * per_sample;
        if (act_ == Act::gelu) kt.gelu_backward(g, aux, g, pixels, cout_, p.threads);
        else if (act_ != Act::identity) kt.act_backward(g, y, g, pixels, cout_, act_, alpha_, p.threads);
        const bool want_dw = this->trainable;
        if (want_dw && bias_ >= 0) kt.bias_grad(p.grads + bias_, g, pixels, cout_, p.threads);
        if (!want_dw && !need_dx) return;
        T* dw_parts = p.temp + 2 * index_t(max_threads()) * chunk_elems(p.rows);   // (chunks, K, cout)
        const T* dy_all = g;
        T* dx_all = spare;
        for_chunks(p, [&](index_t s0, index_t n, const Lane& l) {
            const T* dy = dy_all + s0 * per_sample * cout_;
            if (want_dw) {   // this chunk's Pᵀ dY
                patches(p, x, s0, n, l.cols, l.threads);
                GemmCall<T> gw{k_, cout_, n * per_sample, l.cols, 1, k_, dy, cout_, 1, dw_parts + (s0 / chunk_) * k_ * cout_,
                               cout_, nullptr, Act::identity, T(0)};
                kt.gemm(gw, l.ws, l.ws_elems, l.threads);
            }
            if (need_dx) {   // dP = dY Wᵀ, scattered back onto the image
                GemmCall<T> gp{n * per_sample, k_, cout_, dy, cout_, 1, p.params + weight_, 1, cout_, l.dcols, k_,
                               nullptr, Act::identity, T(0)};
                kt.gemm(gp, l.ws, l.ws_elems, l.threads);
                kt.col2im(dx_all + s0 * this->in.size(), l.dcols, n, g_, l.threads);
            }
        });
        if (want_dw) {   // the chunks' sum in chunk order
            T* dw = p.grads + weight_;
            std::memcpy(dw, dw_parts, sizeof(T) * size_t(k_ * cout_));
            for (index_t c = 1; c < chunks(p.rows); ++c) kt.add(dw, dw, dw_parts + c * k_ * cout_, k_ * cout_);
        }
        if (need_dx) std::swap(g, spare);
    }

  private:
    struct Lane {   // one thread's scratch
        T* cols;
        T* dcols;
        T* ws;
        index_t ws_elems;
        int threads;   // threads inside the chunk's kernels
    };

    static int max_threads() { return num_threads(); }
    index_t chunks(index_t rows) const { return (rows + chunk_ - 1) / chunk_; }
    index_t chunk_elems(index_t rows) const {
        return checked_mul(checked_mul(rows < chunk_ ? rows : chunk_, g_.oh * g_.ow, "Conv2D"), k_, "Conv2D");
    }
    index_t gemm_per_thread(const KernelTable<T>& kt, index_t rows) const {
        const index_t chunk = checked_mul(rows < chunk_ ? rows : chunk_, g_.oh * g_.ow, "Conv2D");
        const index_t forms[3] = {kt.gemm_workspace_elems(chunk, cout_, k_, 1),   // Y = P W
                                  kt.gemm_workspace_elems(k_, cout_, chunk, 1),   // dW = Pᵀ dY
                                  kt.gemm_workspace_elems(chunk, k_, cout_, 1)};  // dP = dY Wᵀ
        index_t need = 0;
        for (index_t f : forms) need = f > need ? f : need;
        return need;
    }

    // f(first sample, samples, lane) for every chunk: chunks spread over threads, or one chunk with all.
    template <typename F>
    void for_chunks(const Pass<T>& p, F f) const {
        const index_t n_chunks = chunks(p.rows), per = gemm_per_thread(*p.kt, p.rows), ce = chunk_elems(p.rows);
        index_t nt = p.threads < n_chunks ? p.threads : n_chunks;
        while (nt > 1 && (per * nt > p.gemm_ws_elems || 2 * ce * nt > p.temp_elems - n_chunks * k_ * cout_)) --nt;
        auto lane = [&](int t, int inner) { return Lane{p.temp + 2 * t * ce, p.temp + (2 * t + 1) * ce, p.gemm_ws + t * per, per, inner}; };
        if (nt <= 1) {
            const Lane l{p.temp, p.temp + ce, p.gemm_ws, p.gemm_ws_elems, p.threads};
            for (index_t c = 0; c < n_chunks; ++c) f(c * chunk_, p.rows - c * chunk_ < chunk_ ? p.rows - c * chunk_ : chunk_, l);
            return;
        }
#pragma omp parallel for num_threads(int(nt)) schedule(static)
        for (index_t c = 0; c < n_chunks; ++c) {
#ifdef _OPENMP
            const int t = omp_get_thread_num();
#else
            const int t = 0;
#endif
            f(c * chunk_, p.rows - c * chunk_ < chunk_ ? p.rows - c * chunk_ : chunk_, lane(t, 1));
        }
    }

    // cols = the patch matrix of samples [s0, s0 + n) (through the batch's rows for a first stage).
    void patches(const Pass<T>& p, const T* x, index_t s0, index_t n, T* cols, int threads) const {
        if (p.in_rows) p.kt->im2col(cols, x, p.in_rows + s0, n, g_, threads);
        else p.kt->im2col(cols, x + s0 * this->in.size(), nullptr, n, g_, threads);
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
