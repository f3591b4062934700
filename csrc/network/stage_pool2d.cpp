// Pooling on channels-last images: MaxPool2D (padding as -inf; the winning cell of each window kept for
// backward), AvgPool2D (padding counted as zeros, PyTorch's default) and GlobalAvgPool2D ((h, w, c) ->
// (c,): one average window over the whole image). Spec: ints (kh, kw, sh, sw, pad_top, pad_bottom,
// pad_left, pad_right); none for the global pool.
#include "stage.h"

namespace nc {
namespace {

enum class Pool { max, average, global_average };

template <typename T>
class Pool2DStage final : public Stage<T> {
  public:
    Pool2DStage(Pool kind, const LayerSpec& s) : kind_(kind) {
        if (kind == Pool::global_average) return;
        for (int i = 0; i < 8; ++i) a_[i] = spec_int(s, std::size_t(i));
        if (a_[0] < 1 || a_[1] < 1 || a_[2] < 1 || a_[3] < 1) throw std::invalid_argument("pool kernel size and stride must be >= 1");
        for (int i = 4; i < 8; ++i)
            if (a_[i] < 0 || a_[i] > a_[i < 6 ? 0 : 1] / 2) throw std::invalid_argument("pool padding must be in [0, kernel_size / 2]");
    }

    void build(TensorPlanner&) override {
        const std::vector<index_t>& d = this->in.dims;
        if (d.size() != 3) throw std::invalid_argument("pooling takes (batch, H, W, C) images, got per-sample shape " + this->in.str());
        if (kind_ == Pool::global_average) {
            g_ = Window2D{d[0], d[1], d[2], d[0], d[1], 1, 1, 0, 0, 1, 1};
            this->out.dims = {d[2]};
            return;
        }
        const index_t hp = d[0] + a_[4] + a_[5], wp = d[1] + a_[6] + a_[7];
        if (hp < a_[0] || wp < a_[1]) throw std::invalid_argument("pool window is larger than the padded image " + this->in.str());
        g_ = Window2D{d[0], d[1], d[2], a_[0], a_[1], a_[2], a_[3], a_[4], a_[6], (hp - a_[0]) / a_[2] + 1, (wp - a_[1]) / a_[3] + 1};
        this->out.dims = {g_.oh, g_.ow, d[2]};
    }
    index_t aux_per_sample() const override { return kind_ == Pool::max ? this->out.size() : 0; }

    void forward(const Pass<T>& p, const T* x, T* y, T* aux) override {
        if (kind_ == Pool::max) p.kt->maxpool_forward(y, aux, x, p.rows, g_, p.threads);
        else p.kt->avgpool_forward(y, x, p.rows, g_, p.threads);
    }
    void backward(const Pass<T>& p, const T*, const T*, T* aux, T*& g, T*& spare, bool) override {
        if (kind_ == Pool::max) p.kt->maxpool_backward(spare, g, aux, p.rows, g_, p.threads);
        else p.kt->avgpool_backward(spare, g, p.rows, g_, p.threads);
        std::swap(g, spare);
    }

  private:
    Pool kind_;
    index_t a_[8] = {};
    Window2D g_{};
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_pool2d_stage(const LayerSpec& s) {
    const Pool kind = s.kind == "maxpool2d" ? Pool::max : s.kind == "avgpool2d" ? Pool::average : Pool::global_average;
    return std::make_unique<Pool2DStage<T>>(kind, s);
}
template std::unique_ptr<Stage<float>> make_pool2d_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_pool2d_stage<double>(const LayerSpec&);

}  // namespace nc
