// Inverted dropout on any shape: in training each element is zeroed with probability p, the rest scaled
// by 1/(1-p) (the mask is kept for backward); a copy in inference. Spec: reals (p).
#include <cstring>

#include "stage.h"

namespace nc {
namespace {

template <typename T>
class DropoutStage final : public Stage<T> {
  public:
    explicit DropoutStage(const LayerSpec& s) : p_(spec_real(s, 0)) {
        if (!(p_ >= 0.0 && p_ < 1.0)) throw std::invalid_argument("dropout p must be in [0, 1)");
    }

    void build(TensorPlanner&) override { this->out = this->in; }
    index_t aux_per_sample() const override { return this->in.size(); }

    void forward(const Pass<T>& p, const T* x, T* y, T* mask) override {
        const index_t cols = this->in.size();
        if (p.training && p_ > 0)
            p.kt->dropout_forward(y, mask, x, p.rows, cols, p_, p.key ^ std::uint64_t(this->index) * 0x9e3779b97f4a7c15ULL,
                                  p.threads);
        else std::memcpy(y, x, sizeof(T) * size_t(p.rows * cols));
    }
    void backward(const Pass<T>& p, const T*, const T*, T* mask, T*& g, T*&, bool) override {
        if (p.training && p_ > 0) p.kt->multiply(g, g, mask, p.rows * this->in.size());
    }

  private:
    double p_;
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_dropout_stage(const LayerSpec& s) { return std::make_unique<DropoutStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_dropout_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_dropout_stage<double>(const LayerSpec&);

}  // namespace nc
