// Data-parallel training: the collectives of a step. Each step makes the same sequence of sums on every
// rank (BatchNorm's statistics in forward order, one status sum, BatchNorm's gradient sums in backward
// order, the gradients), so a rank with no rows, or one stopping between steps, can always take part.
#include <cstring>

#include "network.h"

namespace nc {

namespace {
std::uint64_t mix64(std::uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
}  // namespace

template <typename T>
void Network<T>::set_collective(const Collective& comm) {
    comm_ = comm;
}

template <typename T>
std::uint64_t Network<T>::rank_salt() const {
    return comm_.active() ? mix64(0x9e3779b97f4a7c15ULL * std::uint64_t(comm_.rank + 1)) : 0;
}

// The collectives of a forward pass with no rows of this rank's own (BatchNorm's sums).
template <typename T>
void Network<T>::idle_forward() {
    Pass<T> p = make_pass(0, true);
    p.comm = &comm_;
    for (auto& st : stages_) st->idle_forward(p);
}

// The backward pass of a rank with no rows: zero gradients, and the collectives run_backward makes (it
// stops where nothing below needs a gradient; so does this).
template <typename T>
void Network<T>::idle_backward() {
    for (const auto& [off, len] : trainable_ranges_) std::memset(grads_.data() + off, 0, sizeof(T) * std::size_t(len));
    Pass<T> p = make_pass(0, true);
    p.comm = &comm_;
    for (std::size_t s = stages_.size(); s-- > 0;) {
        stages_[s]->idle_backward(p);
        if (!grad_needed_below_[s]) break;
    }
}

// One sum of every rank's status. False when the ranks must stop (a bad label somewhere, a rank that
// stopped); else loss, correct and total_rows become the global batch's.
template <typename T>
bool Network<T>::exchange_status(TrainProgress& prog, index_t rows, double& loss, index_t& correct, index_t bad_row,
                                 index_t& total_rows) {
    double s[kStatusSize] = {};
    s[kStatusRows] = double(rows);
    s[kStatusLossSum] = rows > 0 ? loss * double(rows) : 0.0;
    s[kStatusCorrect] = double(correct);
    if (bad_row >= 0) {
        s[kStatusBadLabelRanks] = 1;
        s[kStatusBadLabelRank] = comm_.rank;
        s[kStatusBadLabelRow] = double(bad_row);
    }
    comm_.sum(s, kStatusSize);
    if (s[kStatusStops] > 0) {
        prog.stops = index_t(s[kStatusStops]);
        prog.stop_rank = index_t(s[kStatusStopRank]);
        prog.stop_kind = index_t(s[kStatusStopKind]);
        return false;
    }
    if (s[kStatusBadLabelRanks] > 0) {   // this rank's own bad row first; a peer's when it is the only one
        const bool own = bad_row >= 0, one = s[kStatusBadLabelRanks] == 1;
        prog.bad_label_rank = own ? comm_.rank : one ? index_t(s[kStatusBadLabelRank]) : -2;
        prog.bad_label_row = own ? bad_row : one ? index_t(s[kStatusBadLabelRow]) : 0;
        return false;
    }
    total_rows = index_t(s[kStatusRows]);
    loss = s[kStatusLossSum] / s[kStatusRows];
    correct = index_t(s[kStatusCorrect]);
    return true;
}

template <typename T>
void Network<T>::sum_gradients() {
    for (const auto& [off, len] : trainable_ranges_) comm_.sum(grads_.data() + off, len);
}

template <typename T>
void Network<T>::sync_point(double* status) {
    struct InStep {   // BatchNorm syncs as in a step
        bool& flag;
        explicit InStep(bool& f) : flag(f) { flag = true; }
        ~InStep() { flag = false; }
    } in_step{in_step_};
    idle_forward();
    comm_.sum(status, kStatusSize);
}

#define NC_DISTRIBUTED_MEMBERS(T)                                                                                  \
    template void Network<T>::set_collective(const Collective&);                                                    \
    template std::uint64_t Network<T>::rank_salt() const;                                                           \
    template void Network<T>::idle_forward();                                                                       \
    template void Network<T>::idle_backward();                                                                      \
    template bool Network<T>::exchange_status(TrainProgress&, index_t, double&, index_t&, index_t, index_t&);       \
    template void Network<T>::sum_gradients();                                                                      \
    template void Network<T>::sync_point(double*);
NC_DISTRIBUTED_MEMBERS(float)
NC_DISTRIBUTED_MEMBERS(double)
#undef NC_DISTRIBUTED_MEMBERS

}  // namespace nc
