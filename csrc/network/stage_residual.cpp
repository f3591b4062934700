// Residual block markers, y = x + f(x): the begin marker passes its input through (its output is the
// block's input); the end marker adds that input to the block's output. In backward the end marker keeps
// the incoming gradient (the skip path's) and the begin marker adds it to the block's. Spec: no arguments.
#include <cstring>

#include "stage.h"

namespace nc {
namespace {

template <typename T>
class ResidualBeginStage final : public Stage<T> {
  public:
    void build(TensorPlanner&) override { this->out = this->in; }
    bool aliases_input() const override { return true; }
    void set_partner(index_t end) override { end_ = end; }
    void forward(const Pass<T>&, const T*, T*, T*) override {}
    void backward(const Pass<T>& p, const T*, const T*, T*, T*& g, T*&, bool) override {
        p.kt->add(g, g, p.auxs[end_], p.rows * this->in.size());
    }

  private:
    index_t end_ = -1;
};

template <typename T>
class ResidualEndStage final : public Stage<T> {
  public:
    void build(TensorPlanner&) override { this->out = this->in; }
    index_t aux_per_sample() const override { return this->in.size(); }
    void set_partner(index_t begin) override { begin_ = begin; }
    void forward(const Pass<T>& p, const T* x, T* y, T*) override {
        p.kt->add(y, x, p.outs[begin_], p.rows * this->in.size());
    }
    void backward(const Pass<T>& p, const T*, const T*, T* skip, T*& g, T*&, bool) override {
        std::memcpy(skip, g, sizeof(T) * size_t(p.rows * this->in.size()));
    }

  private:
    index_t begin_ = -1;
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_residual_stage(bool begin) {
    if (begin) return std::make_unique<ResidualBeginStage<T>>();
    return std::make_unique<ResidualEndStage<T>>();
}
template std::unique_ptr<Stage<float>> make_residual_stage<float>(bool);
template std::unique_ptr<Stage<double>> make_residual_stage<double>(bool);

}  // namespace nc
