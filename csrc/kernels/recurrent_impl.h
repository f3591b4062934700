// Per-step kernels of the recurrent layers (RNN, LSTM, GRU): the gate non-linearities and state update
// that follow each step's recurrent GEMM, and their backward. The GEMMs themselves (the input projection
// of all steps at once, h_{t-1} W_hh per step, the weight gradients over all steps) are the stage's, through
// gemm(). Every buffer is addressed per row (one sample) with its own row stride, so a step reads and
// writes its slice of sample-major (N, T, ...) buffers in place. Rows are independent: any thread count
// gives the same bits. Included inside an ISA namespace after math_impl.h.
#pragma once

namespace recurrent_detail {

// f(j, lanes) for each vector of a row of `cols` elements; the last one may be partial (lanes < L).
template <typename T, typename F>
inline void for_each_vector(index_t cols, F f) {
    constexpr int L = Vec<T>::lanes;
    for (index_t j = 0; j < cols; j += L) f(j, int(cols - j < L ? cols - j : L));
}

template <typename T>
inline Vec<T> load_n(const T* p, int n) { return n == Vec<T>::lanes ? Vec<T>::load(p) : Vec<T>::load_partial(p, n); }

template <typename T>
inline void store_n(Vec<T> v, T* p, int n) {
    if (n == Vec<T>::lanes) v.store(p);
    else v.store_partial(p, n);
}

// A row of an optional operand: nullptr reads as zeros.
template <typename T>
inline Vec<T> load_or_zero(const T* p, int n) { return p ? load_n(p, n) : Vec<T>::zero(); }

template <typename T>
inline const T* row_of(const T* p, index_t r, index_t ld) { return p ? p + r * ld : nullptr; }

}  // namespace recurrent_detail

// RNN step: h (rows, H) = act(pre + hh); pre (rows, H) is x_t W_ih + b_ih + b_hh, hh (rows, H) is
// h_{t-1} W_hh (nullptr at t = 0). Row strides ld_pre, ld_hh, ld_h. act is tanh or relu.
template <typename T>
void rnn_step_forward(T* h, const T* pre, const T* hh, index_t ld_h, index_t ld_pre, index_t ld_hh, index_t rows,
                      index_t hidden, nc::Act act, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    parallel_rows(rows, hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* pr = pre + r * ld_pre;
            const T* hr = row_of(hh, r, ld_hh);
            T* out = h + r * ld_h;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                const V a = load_n(pr + j, n) + load_or_zero(hr ? hr + j : nullptr, n);
                store_n(act == nc::Act::tanh ? vtanh(a) : vmax(V::zero(), a), out + j, n);
            });
        }
    });
}

// RNN step backward: da (rows, H) = dL/d(pre-activation) from h (rows, H) = the step's output and
// dL/dh_t = dh_rec (from step t+1's recurrent GEMM; nullptr at the last step) + dy (nullptr when the
// output at this step has no gradient).
template <typename T>
void rnn_step_backward(T* da, const T* h, const T* dh_rec, const T* dy, index_t ld_da, index_t ld_h, index_t ld_dy,
                       index_t rows, index_t hidden, nc::Act act, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    const V one = V::set1(T(1));
    parallel_rows(rows, hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* hr = h + r * ld_h;
            const T* rec = row_of(dh_rec, r, hidden);
            const T* dyr = row_of(dy, r, ld_dy);
            T* out = da + r * ld_da;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                const V dh = load_or_zero(rec ? rec + j : nullptr, n) + load_or_zero(dyr ? dyr + j : nullptr, n);
                const V y = load_n(hr + j, n);
                store_n(act == nc::Act::tanh ? dh * (one - y * y) : select(greater(y, V::zero()), dh, V::zero()), out + j, n);
            });
        }
    });
}

// LSTM step. gates (rows, 4H): x_t W_ih + b_ih + b_hh on entry, the activations i, f, g, o on return;
// hh (rows, 4H) = h_{t-1} W_hh (nullptr at t = 0). c_prev (rows, H) = c_{t-1}; out: c = f c_{t-1} + i g,
// tanh_c = tanh(c) (kept for backward) and h = o tanh(c). Row strides ld_g (gates), ld_hh, ld_s (states).
template <typename T>
void lstm_step_forward(T* gates, T* c, T* tanh_c, T* h, const T* hh, const T* c_prev, index_t ld_g, index_t ld_hh,
                       index_t ld_s, index_t rows, index_t hidden, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    parallel_rows(rows, 4 * hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            T* g = gates + r * ld_g;
            const T* hr = row_of(hh, r, ld_hh);
            const index_t s = r * ld_s;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                auto pre = [&](index_t gate) {
                    const index_t at = gate * hidden + j;
                    return load_n(g + at, n) + load_or_zero(hr ? hr + at : nullptr, n);
                };
                const V i = vsigmoid(pre(0)), f = vsigmoid(pre(1)), gg = vtanh(pre(2)), o = vsigmoid(pre(3));
                store_n(i, g + j, n);
                store_n(f, g + hidden + j, n);
                store_n(gg, g + 2 * hidden + j, n);
                store_n(o, g + 3 * hidden + j, n);
                const V cn = fmadd(f, load_n(c_prev + s + j, n), i * gg);
                const V tc = vtanh(cn);
                store_n(cn, c + s + j, n);
                store_n(tc, tanh_c + s + j, n);
                store_n(o * tc, h + s + j, n);
            });
        }
    });
}

// LSTM step backward. gates (rows, 4H) = this step's i, f, g, o; c_prev, tanh_c (rows, H) as kept by the
// forward (row stride ld_s). dL/dh_t = dh_rec (rows, H, contiguous; nullptr at the last step) + dy
// (nullptr: no output gradient at this step). dc (rows, H, contiguous): dL/dc_t from step t+1 on entry
// (ignored at the last step, first = true), dL/dc_{t-1} on return. da (rows, 4H): the gates'
// pre-activation gradients, which are both d(x_t W_ih + b_ih) and d(h_{t-1} W_hh + b_hh).
template <typename T>
void lstm_step_backward(T* da, T* dc, const T* gates, const T* c_prev, const T* tanh_c, const T* dh_rec, const T* dy,
                        index_t ld_da, index_t ld_g, index_t ld_s, index_t ld_dy, bool first, index_t rows,
                        index_t hidden, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    const V one = V::set1(T(1));
    parallel_rows(rows, 4 * hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* g = gates + r * ld_g;
            const T* rec = row_of(dh_rec, r, hidden);
            const T* dyr = row_of(dy, r, ld_dy);
            T* d = da + r * ld_da;
            T* dcr = dc + r * hidden;
            const index_t s = r * ld_s;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                const V dh = load_or_zero(rec ? rec + j : nullptr, n) + load_or_zero(dyr ? dyr + j : nullptr, n);
                const V i = load_n(g + j, n), f = load_n(g + hidden + j, n);
                const V gg = load_n(g + 2 * hidden + j, n), o = load_n(g + 3 * hidden + j, n);
                const V tc = load_n(tanh_c + s + j, n);
                const V dct = fmadd(dh * o, one - tc * tc, first ? V::zero() : load_n(dcr + j, n));
                store_n(dct * gg * i * (one - i), d + j, n);
                store_n(dct * load_n(c_prev + s + j, n) * f * (one - f), d + hidden + j, n);
                store_n(dct * i * (one - gg * gg), d + 2 * hidden + j, n);
                store_n(dh * tc * o * (one - o), d + 3 * hidden + j, n);
                store_n(dct * f, dcr + j, n);
            });
        }
    });
}

// GRU step. gates (rows, 3H): x_t W_ih + b_ih on entry, the activations r, z, n on return; hh (rows, 3H) =
// h_{t-1} W_hh + b_hh (at t = 0: b_hh alone, ld_hh = 0, or nullptr without biases). hn (rows, H) keeps
// W_hn h_{t-1} + b_hn for backward. h = (1 - z) n + z h_{t-1} from h_prev (rows, H). Row strides ld_g,
// ld_hh, ld_n (hn), ld_s (h, h_prev).
template <typename T>
void gru_step_forward(T* gates, T* hn, T* h, const T* hh, const T* h_prev, index_t ld_g, index_t ld_hh, index_t ld_n,
                      index_t ld_s, index_t rows, index_t hidden, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    parallel_rows(rows, 3 * hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            T* g = gates + r * ld_g;
            const T* hr = row_of(hh, r, ld_hh);
            const index_t s = r * ld_s;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                const V rg = vsigmoid(load_n(g + j, n) + load_or_zero(hr ? hr + j : nullptr, n));
                const V z = vsigmoid(load_n(g + hidden + j, n) + load_or_zero(hr ? hr + hidden + j : nullptr, n));
                const V hnv = load_or_zero(hr ? hr + 2 * hidden + j : nullptr, n);
                const V nn = vtanh(fmadd(rg, hnv, load_n(g + 2 * hidden + j, n)));
                store_n(rg, g + j, n);
                store_n(z, g + hidden + j, n);
                store_n(nn, g + 2 * hidden + j, n);
                store_n(hnv, hn + r * ld_n + j, n);
                store_n(fmadd(z, load_n(h_prev + s + j, n) - nn, nn), h + s + j, n);
            });
        }
    });
}

// GRU step backward. gates (rows, 3H) = this step's r, z, n; hn (rows, H) and h_prev (rows, H) as kept by
// the forward. dL/dh_t = dh_rec (rows, H, contiguous; nullptr at the last step) + carry (rows, H,
// contiguous: z_{t+1} dL/dh_{t+1}, ignored when first) + dy (nullptr: no output gradient at this step); on
// return carry holds z_t dL/dh_t for the step before. da_x (rows, 3H) = d(x_t W_ih + b_ih) and da_h
// (rows, 3H) = d(h_{t-1} W_hh + b_hh), which differ in the n block by the reset gate.
template <typename T>
void gru_step_backward(T* da_x, T* da_h, T* carry, const T* gates, const T* hn, const T* h_prev, const T* dh_rec,
                       const T* dy, index_t ld_da, index_t ld_g, index_t ld_n, index_t ld_s, index_t ld_dy, bool first,
                       index_t rows, index_t hidden, int threads) {
    using namespace recurrent_detail;
    using V = Vec<T>;
    const V one = V::set1(T(1));
    parallel_rows(rows, 3 * hidden, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* g = gates + r * ld_g;
            const T* rec = row_of(dh_rec, r, hidden);
            const T* dyr = row_of(dy, r, ld_dy);
            T* cr = carry + r * hidden;
            T* dx = da_x + r * ld_da;
            T* dhh = da_h + r * ld_da;
            for_each_vector<T>(hidden, [&](index_t j, int n) {
                V dh = load_or_zero(rec ? rec + j : nullptr, n) + load_or_zero(dyr ? dyr + j : nullptr, n);
                if (!first) dh = dh + load_n(cr + j, n);
                const V rg = load_n(g + j, n), z = load_n(g + hidden + j, n), nn = load_n(g + 2 * hidden + j, n);
                const V dn_pre = dh * (one - z) * (one - nn * nn);
                const V dz_pre = dh * (load_n(h_prev + r * ld_s + j, n) - nn) * z * (one - z);
                const V dr_pre = dn_pre * load_n(hn + r * ld_n + j, n) * rg * (one - rg);
                store_n(dr_pre, dx + j, n);
                store_n(dz_pre, dx + hidden + j, n);
                store_n(dn_pre, dx + 2 * hidden + j, n);
                store_n(dr_pre, dhh + j, n);
                store_n(dz_pre, dhh + hidden + j, n);
                store_n(dn_pre * rg, dhh + 2 * hidden + j, n);
                store_n(dh * z, cr + j, n);
            });
        }
    });
}
