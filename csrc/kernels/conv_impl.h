// The parts of a convolution around the GEMM (stage_conv2d.cpp): im2col, which copies each output pixel's
// window into a row of the patch matrix, and col2im, which sums patch gradients back onto the image.
// Included inside an ISA namespace.
#pragma once

namespace conv_detail {

// dst[0:n) = src[0:n), 0 < n: a first layer's runs are a few values (kw * cin), too short for a memcpy
// call or a one-value loop; whole vectors, the last one overlapping the previous (a run shorter than a
// vector is one masked copy). Only src is read, so overlapping stores cost no store forwarding.
template <typename T>
inline void copy_run(T* dst, const T* src, index_t n) {
    using V = Vec<T>;
    constexpr int L = V::lanes;
    if (n > 256) { memcpy(dst, src, sizeof(T) * size_t(n)); return; }
    if (n < L) { V::load_partial(src, int(n)).store_partial(dst, int(n)); return; }
    index_t i = 0;
    for (; i + L <= n; i += L) V::load(src + i).store(dst + i);
    if (i < n) V::load(src + n - L).store(dst + n - L);
}

}  // namespace conv_detail

// cols (n * oh * ow, kh * kw * c) = the patch of every output pixel, columns in (i, j, c) order, zeros
// where the window covers padding; sample s is x's sample rows[s] (a batch read in place from the data
// set) or s. For each kernel row i the cells (j, c) are one contiguous run of the image row.
template <typename T>
void im2col(T* cols, const T* x, const int64_t* rows, index_t n, const nc::Window2D& g, int threads) {
    const index_t img = g.h * g.w * g.c, k = g.kh * g.kw * g.c, run = g.kw * g.c;
    parallel_rows(n * g.oh, g.ow * k, threads, [&](index_t so0, index_t so1) {
        for (index_t so = so0; so < so1; ++so) {
            const index_t s = so / g.oh, oy = so % g.oh;
            const T* src = x + (rows ? rows[s] : s) * img;
            T* dst = cols + so * g.ow * k;
            for (index_t ox = 0; ox < g.ow; ++ox, dst += k) {
                const index_t x0 = ox * g.sw - g.pl;
                const bool inside_x = x0 >= 0 && x0 + g.kw <= g.w;
                for (index_t i = 0; i < g.kh; ++i) {
                    const index_t y = oy * g.sh + i - g.pt;
                    T* out = dst + i * run;
                    if (y < 0 || y >= g.h) {
                        memset(out, 0, sizeof(T) * size_t(run));
                    } else if (inside_x) {
                        conv_detail::copy_run(out, src + (y * g.w + x0) * g.c, run);
                    } else {
                        for (index_t j = 0; j < g.kw; ++j) {
                            const index_t xx = x0 + j;
                            if (xx < 0 || xx >= g.w) memset(out + j * g.c, 0, sizeof(T) * size_t(g.c));
                            else conv_detail::copy_run(out + j * g.c, src + (y * g.w + xx) * g.c, g.c);
                        }
                    }
                }
            }
        }
    });
}

// dx (n, h, w, c) = the sum over every patch of its gradient, dcols (n * oh * ow, kh * kw * c) with
// columns in (i, j, c) order; patch cells in the padding are dropped. Each image cell gathers its
// patches' gradients in registers, in patch order (oy, then ox, rising: i and j falling), so the sums
// are the ones a scatter in patch order would make, without adding into memory just stored.
template <typename T>
void col2im(T* dx, const T* dcols, index_t n, const nc::Window2D& g, int threads) {
    using V = Vec<T>;
    constexpr int L = V::lanes;
    const index_t k = g.kh * g.kw * g.c;
    parallel_rows(n * g.h, g.w * g.c * g.kh * g.kw, threads, [&](index_t sy0, index_t sy1) {
        for (index_t sy = sy0; sy < sy1; ++sy) {
            const index_t s = sy / g.h, y = sy % g.h;
            const index_t ty = y + g.pt - (g.kh - 1);   // patches oy with 0 <= y + pt - oy * sh < kh
            const index_t oy0 = ty <= 0 ? 0 : (ty + g.sh - 1) / g.sh;
            const index_t oy1 = parallel_detail::min_i(g.oh, (y + g.pt) / g.sh + 1);
            T* out = dx + sy * g.w * g.c;
            for (index_t x = 0; x < g.w; ++x) {
                const index_t tx = x + g.pl - (g.kw - 1);
                const index_t ox0 = tx <= 0 ? 0 : (tx + g.sw - 1) / g.sw;
                const index_t ox1 = parallel_detail::min_i(g.ow, (x + g.pl) / g.sw + 1);
                for (index_t c0 = 0; c0 < g.c; c0 += L) {
                    const int lanes = int(parallel_detail::min_i(L, g.c - c0));
                    V sum = V::zero();
                    for (index_t oy = oy0; oy < oy1; ++oy) {
                        const index_t i = y + g.pt - oy * g.sh;
                        for (index_t ox = ox0; ox < ox1; ++ox) {
                            const index_t j = x + g.pl - ox * g.sw;
                            const T* src = dcols + ((s * g.oh + oy) * g.ow + ox) * k + (i * g.kw + j) * g.c + c0;
                            sum = sum + (lanes == L ? V::load(src) : V::load_partial(src, lanes));
                        }
                    }
                    if (lanes == L) sum.store(out + x * g.c + c0);
                    else sum.store_partial(out + x * g.c + c0, lanes);
                }
            }
        }
    });
}
