// Pooling over channels-last images: max (with the winning window cell kept for backward) and average
// (padding counted as zeros, PyTorch's default), vectorised over channels. Global average pooling is the
// average over one window that covers the image. Included inside an ISA namespace.
#pragma once

namespace pool_detail {

// Calls f(V{}, c0) for each full vector of channels, then f(Scalar{}, c) for each remaining channel (masked
// vectors measured slower for the few-channel images of a first layer: every pixel is a tail).
struct Scalar {};
template <typename T, typename F>
inline void channel_vectors(index_t c, F f) {
    constexpr int L = Vec<T>::lanes;
    index_t c0 = 0;
    for (; c0 + L <= c; c0 += L) f(Vec<T>{}, c0);
    for (; c0 < c; ++c0) f(Scalar{}, c0);
}

// The same arithmetic on a vector of channels or on one channel.
template <typename T> inline Vec<T> ld(Vec<T>, const T* p) { return Vec<T>::load(p); }
template <typename T> inline T ld(Scalar, const T* p) { return *p; }
template <typename T> inline void st(Vec<T> v, T* p) { v.store(p); }
template <typename T> inline void st(T v, T* p) { *p = v; }
template <typename T> inline Vec<T> splat(Vec<T>, T x) { return Vec<T>::set1(x); }
template <typename T> inline T splat(Scalar, T x) { return x; }

}  // namespace pool_detail

// y (n, oh, ow, c) = the max over each window of x (n, h, w, c); argmax (n, oh, ow, c) = the winning
// cell i * kw + j (the first one on ties). Cells in the padding (-inf) never win: padding <= kernel / 2.
template <typename T>
void maxpool_forward(T* y, T* argmax, const T* x, index_t n, const nc::Window2D& g, int threads) {
    using namespace pool_detail;
    using V = Vec<T>;
    const index_t img = g.h * g.w * g.c, out_img = g.oh * g.ow * g.c;
    parallel_rows(n, img, threads, [&](index_t s0, index_t s1) {
        for (index_t s = s0; s < s1; ++s)
            for (index_t oy = 0; oy < g.oh; ++oy)
                for (index_t ox = 0; ox < g.ow; ++ox) {
                    const index_t o = s * out_img + (oy * g.ow + ox) * g.c;
                    index_t c0 = 0;
                    for (; c0 + V::lanes <= g.c; c0 += V::lanes) {
                        V best = V::zero(), where = V::zero();
                        bool first = true;
                        for (index_t i = 0; i < g.kh; ++i) {
                            const index_t yy = oy * g.sh + i - g.pt;
                            if (yy < 0 || yy >= g.h) continue;
                            for (index_t j = 0; j < g.kw; ++j) {
                                const index_t xx = ox * g.sw + j - g.pl;
                                if (xx < 0 || xx >= g.w) continue;
                                const V v = V::load(x + s * img + (yy * g.w + xx) * g.c + c0);
                                const V cell = V::set1(T(i * g.kw + j));
                                if (first) { best = v; where = cell; first = false; continue; }
                                const V win = greater(v, best);
                                best = select(win, v, best);
                                where = select(win, cell, where);
                            }
                        }
                        best.store(y + o + c0);
                        where.store(argmax + o + c0);
                    }
                    for (; c0 < g.c; ++c0) {   // branch-free: random data mispredicts every comparison
                        T best = -HUGE_VAL;
                        int where = 0;
                        for (index_t i = 0; i < g.kh; ++i) {
                            const index_t yy = oy * g.sh + i - g.pt;
                            if (yy < 0 || yy >= g.h) continue;
                            for (index_t j = 0; j < g.kw; ++j) {
                                const index_t xx = ox * g.sw + j - g.pl;
                                if (xx < 0 || xx >= g.w) continue;
                                const T v = x[s * img + (yy * g.w + xx) * g.c + c0];
                                const int win = v > best;
                                where = win * int(i * g.kw + j) + (1 - win) * where;
                                best = v > best ? v : best;
                            }
                        }
                        y[o + c0] = best;
                        argmax[o + c0] = T(where);
                    }
                }
    });
}

// dx (n, h, w, c) = dy (n, oh, ow, c) routed to each window's winning cell (summed where windows overlap).
template <typename T>
void maxpool_backward(T* dx, const T* dy, const T* argmax, index_t n, const nc::Window2D& g, int threads) {
    const index_t img = g.h * g.w * g.c, out_img = g.oh * g.ow * g.c;
    parallel_rows(n, img, threads, [&](index_t s0, index_t s1) {
        for (index_t s = s0; s < s1; ++s) {
            T* out = dx + s * img;
            memset(out, 0, sizeof(T) * size_t(img));
            for (index_t oy = 0; oy < g.oh; ++oy)
                for (index_t ox = 0; ox < g.ow; ++ox) {
                    const index_t o = s * out_img + (oy * g.ow + ox) * g.c;
                    for (index_t c = 0; c < g.c; ++c) {
                        const index_t cell = index_t(argmax[o + c]);
                        const index_t yy = oy * g.sh + cell / g.kw - g.pt, xx = ox * g.sw + cell % g.kw - g.pl;
                        out[(yy * g.w + xx) * g.c + c] += dy[o + c];
                    }
                }
        }
    });
}

// y (n, oh, ow, c) = the sum over each window of x (n, h, w, c) divided by kh * kw (padding counts as 0).
template <typename T>
void avgpool_forward(T* y, const T* x, index_t n, const nc::Window2D& g, int threads) {
    using namespace pool_detail;
    const index_t img = g.h * g.w * g.c, out_img = g.oh * g.ow * g.c;
    const T scale = T(1) / T(g.kh * g.kw);
    parallel_rows(n, img, threads, [&](index_t s0, index_t s1) {
        for (index_t s = s0; s < s1; ++s)
            for (index_t oy = 0; oy < g.oh; ++oy)
                for (index_t ox = 0; ox < g.ow; ++ox) {
                    const index_t o = s * out_img + (oy * g.ow + ox) * g.c;
                    channel_vectors<T>(g.c, [&](auto kind, index_t c0) {
                        auto sum = splat<T>(kind, T(0));
                        for (index_t i = 0; i < g.kh; ++i) {
                            const index_t yy = oy * g.sh + i - g.pt;
                            if (yy < 0 || yy >= g.h) continue;
                            for (index_t j = 0; j < g.kw; ++j) {
                                const index_t xx = ox * g.sw + j - g.pl;
                                if (xx < 0 || xx >= g.w) continue;
                                sum = sum + ld<T>(kind, x + s * img + (yy * g.w + xx) * g.c + c0);
                            }
                        }
                        st<T>(sum * splat<T>(kind, scale), y + o + c0);
                    });
                }
    });
}

// dx (n, h, w, c) = each window's dy (n, oh, ow, c) / (kh * kw) spread over its cells (summed on overlaps).
template <typename T>
void avgpool_backward(T* dx, const T* dy, index_t n, const nc::Window2D& g, int threads) {
    using namespace pool_detail;
    const index_t img = g.h * g.w * g.c, out_img = g.oh * g.ow * g.c;
    const T scale = T(1) / T(g.kh * g.kw);
    parallel_rows(n, img, threads, [&](index_t s0, index_t s1) {
        for (index_t s = s0; s < s1; ++s) {
            T* out = dx + s * img;
            memset(out, 0, sizeof(T) * size_t(img));
            for (index_t oy = 0; oy < g.oh; ++oy)
                for (index_t ox = 0; ox < g.ow; ++ox) {
                    const index_t o = s * out_img + (oy * g.ow + ox) * g.c;
                    for (index_t i = 0; i < g.kh; ++i) {
                        const index_t yy = oy * g.sh + i - g.pt;
                        if (yy < 0 || yy >= g.h) continue;
                        for (index_t j = 0; j < g.kw; ++j) {
                            const index_t xx = ox * g.sw + j - g.pl;
                            if (xx < 0 || xx >= g.w) continue;
                            T* cell = out + (yy * g.w + xx) * g.c;
                            channel_vectors<T>(g.c, [&](auto kind, index_t c0) {
                                st<T>(ld<T>(kind, cell + c0) + ld<T>(kind, dy + o + c0) * splat<T>(kind, scale), cell + c0);
                            });
                        }
                    }
                }
        }
    });
}
