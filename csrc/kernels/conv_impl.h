// The parts of a convolution around the GEMM (stage_conv2d.cpp): a zero-padded copy of the input, so the
// GEMM can read patches through its row/column gathers (implicit im2col), and col2im, which scatters
// patch gradients back onto the image. Included inside an ISA namespace.
#pragma once

namespace conv_detail {

// Threads over samples: each sample's output is disjoint, so any split gives the same bits.
inline int sample_threads(index_t n, index_t per_sample, int threads) {
    index_t t = n * per_sample / 16384;
    if (t > threads) t = threads;
    if (t > n) t = n;
    return t < 1 ? 1 : int(t);
}

// dst[0:n) += src[0:n)
template <typename T>
inline void add_run(T* dst, const T* src, index_t n) {
    using V = Vec<T>;
    constexpr int L = V::lanes;
    index_t i = 0;
    for (; i + L <= n; i += L) (V::load(dst + i) + V::load(src + i)).store(dst + i);
    if (i < n) (V::load_partial(dst + i, int(n - i)) + V::load_partial(src + i, int(n - i))).store_partial(dst + i, int(n - i));
}

}  // namespace conv_detail

// dst (n, h + pt + pb, w + pl + pr, c) = x's samples with a zero border; sample i is x's sample rows[i]
// (a batch read in place from the data set) or i.
template <typename T>
void pad_images(T* dst, const T* x, const int64_t* rows, index_t n, index_t h, index_t w, index_t c, index_t pt,
                index_t pb, index_t pl, index_t pr, int threads) {
    const index_t hp = h + pt + pb, wp = w + pl + pr, in_size = h * w * c, out_size = hp * wp * c;
    const int nt = conv_detail::sample_threads(n, out_size, threads);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (index_t s = 0; s < n; ++s) {
        const T* src = x + (rows ? rows[s] : s) * in_size;
        T* out = dst + s * out_size;
        memset(out, 0, sizeof(T) * size_t(pt * wp * c));
        for (index_t y = 0; y < h; ++y) {
            T* line = out + (pt + y) * wp * c;
            memset(line, 0, sizeof(T) * size_t(pl * c));
            memcpy(line + pl * c, src + y * w * c, sizeof(T) * size_t(w * c));
            memset(line + (pl + w) * c, 0, sizeof(T) * size_t(pr * c));
        }
        memset(out + (pt + h) * wp * c, 0, sizeof(T) * size_t(pb * wp * c));
    }
}

// dx (n, h, w, c) = the sum over every patch of its gradient, dcols (n * oh * ow, kh * kw * c) with
// columns in (i, j, c) order; patch cells in the padding are dropped. Sums run in patch order.
template <typename T>
void col2im(T* dx, const T* dcols, index_t n, const nc::Window2D& g, int threads) {
    const index_t img = g.h * g.w * g.c, k = g.kh * g.kw * g.c;
    const int nt = conv_detail::sample_threads(n, g.oh * g.ow * k, threads);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (index_t s = 0; s < n; ++s) {
        T* out = dx + s * img;
        memset(out, 0, sizeof(T) * size_t(img));
        for (index_t oy = 0; oy < g.oh; ++oy)
            for (index_t ox = 0; ox < g.ow; ++ox) {
                const T* patch = dcols + ((s * g.oh + oy) * g.ow + ox) * k;
                for (index_t i = 0; i < g.kh; ++i) {
                    const index_t y = oy * g.sh + i - g.pt;
                    if (y < 0 || y >= g.h) continue;
                    for (index_t j = 0; j < g.kw; ++j) {
                        const index_t x = ox * g.sw + j - g.pl;
                        if (x < 0 || x >= g.w) continue;
                        conv_detail::add_run(out + (y * g.w + x) * g.c, patch + (i * g.kw + j) * g.c, g.c);
                    }
                }
            }
    }
}
