// Packed, cache-blocked GEMM (BLIS's five loops) around a register-blocked micro-kernel, with the bias and
// activation applied as an epilogue on each finished tile while it is in registers.
// Included inside an ISA namespace after the Vec header; Tile<T> (mr, nv, mc, kc, nc) comes from the ISA file.
#pragma once
#include <stdint.h>
#include <string.h>

#include <stdexcept>

namespace gemm_detail {

inline index_t min_i(index_t a, index_t b) { return a < b ? a : b; }
inline index_t round_up(index_t a, index_t b) { return (a + b - 1) / b * b; }

// The largest step <= max that splits n into equal-sized blocks (a multiple of `align`): 784 = 4 x 196
// instead of 3 x 256 + 16, whose thin last slice would pay a full C-tile load/store for 16 FMAs.
inline index_t balanced_step(index_t n, index_t max, index_t align) {
    const index_t blocks = (n + max - 1) / max;
    return min_i(max, round_up((n + blocks - 1) / blocks, align));
}

template <typename T> constexpr int kMR = Tile<T>::mr;
template <typename T> constexpr int kNR = Tile<T>::nv * Vec<T>::lanes;

// dst is (kc, MR): rows [i, i + rows) and columns [pc, pc + kc) of op(A), zero-padded to MR rows.
// Rows and columns may go through the call's gathers (a mini-batch read in place from the data set).
template <typename T>
void pack_a_panel(T* dst, const nc::GemmCall<T>& g, index_t i, index_t pc, index_t rows, index_t kc) {
    constexpr int MR = kMR<T>;
    if (!g.gather_i && !g.gather_k) {   // the common case, with the strides known to be plain
        const T* a = g.a + i * g.rsa + pc * g.csa;
        if (g.csa == 1) {
            for (index_t k = 0; k < kc; ++k)
                for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[r * g.rsa + k] : T(0);
        } else {   // (masked vector copies of the MR contiguous values measured slower on Zen 4)
            for (index_t k = 0; k < kc; ++k) {
                const T* src = a + k * g.csa;
                for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? src[r * g.rsa] : T(0);
            }
        }
        return;
    }
    index_t row_off[MR];
    for (int r = 0; r < MR; ++r) row_off[r] = r < rows ? (g.gather_i ? g.gather_i[i + r] : i + r) * g.rsa : 0;
    for (index_t k = 0; k < kc; ++k) {
        const T* src = g.a + (g.gather_k ? g.gather_k[pc + k] : pc + k) * g.csa;
        for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? src[row_off[r]] : T(0);
    }
}

// dst is (kc, NR): columns [0, cols) of op(B) zero-padded to NR, for a transposed B or for the partial
// last panel of a B otherwise read in place (a whole row-major block goes through pack_b_rows).
template <typename T>
void pack_b_panel(T* dst, const T* b, index_t rsb, index_t csb, index_t cols, index_t kc) {
    constexpr int NR = kNR<T>;
    if (rsb == 1) {
        // op(B) = Bᵀ: each column is contiguous in memory, so read it as one stream (NR strided
        // streams at once defeat the prefetcher); the strided writes stay in the L1-sized panel.
        for (int c = 0; c < NR; ++c) {
            const T* src = b + c * csb;
            // the same column of the next panel: its first lines arrive while this one is copied
            // (a prefetch past the end of B is harmless)
            for (index_t k = 0; k < kc; k += 64 / index_t(sizeof(T))) __builtin_prefetch(src + NR * csb + k);
            if (c < cols) for (index_t k = 0; k < kc; ++k) dst[k * NR + c] = src[k];
            else for (index_t k = 0; k < kc; ++k) dst[k * NR + c] = T(0);
        }
    } else {
        for (index_t k = 0; k < kc; ++k) {
            for (int c = 0; c < NR; ++c) dst[k * NR + c] = c < cols ? b[k * rsb + c * csb] : T(0);
        }
    }
}

// dst is ceil(cols / NR) panels of (kc, NR): a row-major B block (kc, cols) packed row by row, so the
// reads are kc long contiguous streams (panel by panel they would be kc streams at once, one line
// each: 1.7x slower measured on a 4096-wide block); the last panel zero-padded.
template <typename T>
void pack_b_rows(T* dst, const T* b, index_t rsb, index_t cols, index_t kc) {
    constexpr int NR = kNR<T>;
    const index_t full = cols / NR, rem = cols - full * NR;
    for (index_t k = 0; k < kc; ++k) {
        const T* src = b + k * rsb;
        T* row = dst + k * NR;
        for (index_t p = 0; p < full; ++p) memcpy(row + p * NR * kc, src + p * NR, sizeof(T) * NR);
        if (rem) {
            T* edge = row + full * NR * kc;
            for (index_t c = 0; c < NR; ++c) edge[c] = c < rem ? src[full * NR + c] : T(0);
        }
    }
}

struct Epilogue {
    bool apply;       // last k block: add bias and apply the activation
    nc::Act act;
};

// c (MR, NR) = [c +] a (kc, MR panel) . b (kc, NR, row stride ldb); then optional bias (NR,) and activation.
// ldb is NR for a packed panel, or the row stride of an unpacked row-major B. With DIRECT_A, a is MR
// rows of a row-major op(A) read in place (row stride lda) instead of a packed (kc, MR) panel. An EDGE
// tile writes only its first `rows` rows and `cols` columns (the padded lanes never touch c).
template <typename T, bool EDGE, bool DIRECT_A>
void micro_kernel(index_t kc, const T* a, index_t lda, const T* b, index_t ldb, T* c, index_t ldc,
                  bool accumulate, const T* bias, Epilogue ep, T alpha, index_t rows, index_t cols) {
    using V = Vec<T>;
    constexpr int MR = kMR<T>, NV = Tile<T>::nv, L = V::lanes;
    // The C tile is read (accumulate) and written after the k loop: fetch its lines now, so that a C
    // too big for L2 (a 4096-wide layer) costs no stall at the end of every tile.
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + NV * L - 1, 1);
    }
    V acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
    for (index_t k = 0; k < kc; ++k) {
        V bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * L);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            const V ai = V::set1(DIRECT_A ? a[i * lda] : a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; ++v) acc[i][v] = fmadd(ai, bv[v], acc[i][v]);
        }
        a += DIRECT_A ? 1 : MR;
        b += ldb;
    }
    const V alpha_v = V::set1(alpha);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
        if (EDGE && i >= rows) break;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
            const int left = EDGE ? int(min_i(L, cols - index_t(v) * L)) : L;   // lanes of c in this vector
            if (EDGE && left <= 0) break;
            auto load = [&](const T* p) { return EDGE && left < L ? V::load_partial(p, left) : V::load(p); };
            T* dst = c + i * ldc + v * L;
            V r = accumulate ? acc[i][v] + load(dst) : acc[i][v];
            if (ep.apply) {
                if (bias) r = r + load(bias + v * L);
                r = act_apply(r, ep.act, alpha_v);
            }
            if (EDGE && left < L) r.store_partial(dst, left);
            else r.store(dst);
        }
    }
}

// One MR x NR tile of C; a partial tile at the edge of C takes the masked epilogue. lda > 0: ap is
// op(A) read in place with that row stride (full MR rows only); lda == 0: ap is a packed panel.
template <typename T>
void compute_tile(const nc::GemmCall<T>& g, const T* ap, index_t lda, const T* bp, index_t ldb, index_t i,
                  index_t j, index_t kc, bool accumulate, Epilogue ep) {
    constexpr int MR = kMR<T>, NR = kNR<T>;
    const index_t rows = min_i(MR, g.m - i), cols = min_i(NR, g.n - j);
    T* c = g.c + i * g.ldc + j;
    const T* bias = (ep.apply && g.bias) ? g.bias + j : nullptr;
    const bool edge = rows < MR || cols < NR;
    if (lda > 0) {
        if (edge) micro_kernel<T, true, true>(kc, ap, lda, bp, ldb, c, g.ldc, accumulate, bias, ep, g.alpha, rows, cols);
        else micro_kernel<T, false, true>(kc, ap, lda, bp, ldb, c, g.ldc, accumulate, bias, ep, g.alpha, rows, cols);
    } else {
        if (edge) micro_kernel<T, true, false>(kc, ap, 0, bp, ldb, c, g.ldc, accumulate, bias, ep, g.alpha, rows, cols);
        else micro_kernel<T, false, false>(kc, ap, 0, bp, ldb, c, g.ldc, accumulate, bias, ep, g.alpha, rows, cols);
    }
}

// Up to this many rows of A, a row-major B is read in place instead of packed (measured, bench_gemm.py).
constexpr index_t kDirectBMaxRows = 64;
// Up to this many column panels of C, a row-major A is read in place instead of packed (measured: 64^3
// 78 -> 93 GFLOP/s, 32x64x32 65 -> 85; neutral from 512^3 up).
constexpr index_t kDirectAMaxPanels = 16;

// Threads only pay off with enough work each: about 2 MFLOP per extra thread (measured, see benchmarks/).
inline int gemm_threads(index_t m, index_t n, index_t k, int threads) {
    const double flops = 2.0 * double(m) * double(n) * double(k);
    const double per_thread = 2.0e6;
    int t = threads;
    while (t > 1 && flops / t < per_thread) --t;
    return t;
}

}  // namespace gemm_detail

// Elements of workspace one thread's share of a gemm needs: a packed A block (mc x kc) and a packed
// B block (kc x nc), plus room to align the B block.
template <typename T>
index_t gemm_thread_workspace(index_t m, index_t n, index_t k) {
    using namespace gemm_detail;
    const index_t kc = min_i(Tile<T>::kc, k < 1 ? 1 : k);
    const index_t mc = min_i(Tile<T>::mc, round_up(m < 1 ? 1 : m, kMR<T>));
    const index_t ncb = min_i(Tile<T>::nc, round_up(n < 1 ? 1 : n, kNR<T>));
    return round_up(mc * kc + kc * ncb + 64 / index_t(sizeof(T)), 64 / index_t(sizeof(T)));
}

// Elements of workspace a gemm call with up to `threads` threads needs: every thread packs its own.
template <typename T>
index_t gemm_workspace_elems(index_t m, index_t n, index_t k, int threads) {
    return gemm_thread_workspace<T>(m, n, k) * (threads < 1 ? 1 : threads);
}

namespace gemm_detail {

// The five BLIS loops, serially, over the block C[i0:i1, j0:j1] (i0, j0 multiples of MR, NR) with one
// thread's packing buffers.
template <typename T>
void gemm_block(const nc::GemmCall<T>& g, index_t i0, index_t i1, index_t j0, index_t j1, T* a_pack, T* b_pack) {
    constexpr int MR = kMR<T>, NR = kNR<T>;
    // With few rows of A each B panel is used only a few times, so packing it costs more than it
    // saves: a row-major B is then read in place (ldb = its row stride) and only a partial edge
    // panel is packed, zero-padded.
    const bool direct_b = g.csb == 1 && i1 - i0 <= kDirectBMaxRows;
    // A row-major op(A) with few column panels to serve is read in place too: packing it would cost
    // about as much as the few passes over it (only a partial last panel of rows is packed).
    const bool direct_a = g.csa == 1 && !g.gather_i && !g.gather_k && (j1 - j0 + NR - 1) / NR <= kDirectAMaxPanels;
    // loop 5: jc over NC-wide column blocks of C
    for (index_t jc = j0; jc < j1; jc += Tile<T>::nc) {
        const index_t ncb = min_i(Tile<T>::nc, j1 - jc);
        const index_t n_panels = (ncb + NR - 1) / NR;
        // loop 4: pc over KC-deep slices of the shared dimension; the last one runs the epilogue
        const index_t kc_step = balanced_step(g.k, Tile<T>::kc, 8);
        for (index_t pc = 0; pc < g.k; pc += kc_step) {
            const index_t kc = min_i(kc_step, g.k - pc);
            const bool first = pc == 0;
            const Epilogue ep{pc + kc == g.k, g.act};
            if (g.csb == 1 && !direct_b) {
                pack_b_rows(b_pack, g.b + pc * g.rsb + jc, g.rsb, ncb, kc);
            } else {
                for (index_t p = 0; p < n_panels; ++p) {
                    const index_t j = jc + p * NR;
                    const index_t cols = min_i(NR, g.n - j);
                    if (direct_b && cols == NR) continue;
                    pack_b_panel(b_pack + p * NR * kc, g.b + pc * g.rsb + j * g.csb, g.rsb, g.csb, cols, kc);
                }
            }
            // loop 3: ic over MC-tall row blocks of C
            const index_t mc_step = balanced_step(i1 - i0, Tile<T>::mc, MR);
            for (index_t ic = i0; ic < i1; ic += mc_step) {
                const index_t mc = min_i(mc_step, i1 - ic);
                const index_t m_panels = (mc + MR - 1) / MR;
                for (index_t p = 0; p < m_panels; ++p) {
                    const index_t i = ic + p * MR;
                    if (direct_a && g.m - i >= MR) continue;
                    pack_a_panel(a_pack + p * MR * kc, g, i, pc, min_i(MR, g.m - i), kc);
                }
                // loops 2 and 1: jr over NR panels of B (kept in L1), ir over MR panels of A (in L2)
                for (index_t jr = 0; jr < n_panels; ++jr) {
                    const index_t j = jc + jr * NR;
                    const bool in_place = direct_b && g.n - j >= NR;
                    const T* bp = in_place ? g.b + pc * g.rsb + j : b_pack + jr * NR * kc;
                    for (index_t ir = 0; ir < m_panels; ++ir) {
                        const index_t i = ic + ir * MR;
                        const bool a_in_place = direct_a && g.m - i >= MR;
                        compute_tile(g, a_in_place ? g.a + i * g.rsa + pc : a_pack + ir * MR * kc,
                                     a_in_place ? g.rsa : index_t(0), bp, in_place ? g.rsb : index_t(NR), i, j, kc,
                                     !first, ep);
                    }
                }
            }
        }
    }
}

// Columns [j0, j0 + cols) of c (1, n) = act(a (1, k) . b (k, n) + bias), cols in ((NV-1)*L, NV*L]: NV
// accumulators in registers, the last one masked when PARTIAL. Sums run in the micro-kernel's order
// (within each KC slice from zero, then added to the slices before), so a row's result is bitwise the
// same whether it is alone or inside a batch.
template <typename T, int NV, bool PARTIAL>
void gemv_columns(const nc::GemmCall<T>& g, index_t j0, index_t cols) {
    using V = Vec<T>;
    constexpr int L = V::lanes;
    const int last = int(cols - index_t(NV - 1) * L);   // lanes used in the last vector
    auto load = [&](const T* p, int v) { return PARTIAL && v == NV - 1 ? V::load_partial(p, last) : V::load(p); };
    V total[NV];
    const index_t kc_step = balanced_step(g.k, Tile<T>::kc, 8);   // the same slices as gemm_block
    for (index_t pc = 0; pc < g.k; pc += kc_step) {
        const index_t kc = min_i(kc_step, g.k - pc);
        V acc[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[v] = V::zero();
        const T* x = g.a + pc * g.csa;
        const T* row = g.b + pc * g.rsb + j0;
        for (index_t k = 0; k < kc; ++k, row += g.rsb) {
            const V xk = V::set1(x[k * g.csa]);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[v] = fmadd(xk, load(row + v * L, v), acc[v]);
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) total[v] = pc == 0 ? acc[v] : acc[v] + total[v];
    }
    const V alpha_v = V::set1(g.alpha);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
        V r = total[v];
        if (g.bias) r = r + load(g.bias + j0 + v * L, v);
        r = act_apply(r, g.act, alpha_v);
        if (PARTIAL && v == NV - 1) r.store_partial(g.c + j0 + v * L, last);
        else r.store(g.c + j0 + v * L);
    }
}

// c (1, n) = act(a (1, k) . b (k, n) + bias) for a row-major b: one input row (batch-1 inference) needs
// no packing. Up to 8 vectors of columns per pass over b, each a chain of FMAs in its own register.
template <typename T>
void gemv_row(const nc::GemmCall<T>& g) {
    constexpr int L = Vec<T>::lanes, NV = 8;
    for (index_t j0 = 0; j0 < g.n; j0 += NV * L) {
        const index_t cols = min_i(NV * L, g.n - j0);
        const int nv = int((cols + L - 1) / L);
        const bool partial = cols % L != 0;
        switch (nv * 2 + partial) {
#define NC_GEMV_CASE(n) \
            case 2 * n: gemv_columns<T, n, false>(g, j0, cols); break; \
            case 2 * n + 1: gemv_columns<T, n, true>(g, j0, cols); break;
            NC_GEMV_CASE(1) NC_GEMV_CASE(2) NC_GEMV_CASE(3) NC_GEMV_CASE(4)
            NC_GEMV_CASE(5) NC_GEMV_CASE(6) NC_GEMV_CASE(7) NC_GEMV_CASE(8)
#undef NC_GEMV_CASE
        }
    }
}

// Estimated cost of one slice of C (rows x cols) computed by gemm_block: its FLOPs plus ~32 FLOPs per
// element it packs (a packed element costs about as long as 32 FLOPs of the micro-kernel). A column
// slice packs its own copy of A (none when read in place) and a row slice its own copy of B.
template <typename T>
double slice_cost(const nc::GemmCall<T>& g, index_t rows, index_t cols) {
    constexpr int NR = kNR<T>;
    const bool direct_b = g.csb == 1 && rows <= kDirectBMaxRows;
    const bool direct_a = g.csa == 1 && !g.gather_i && !g.gather_k && (cols + NR - 1) / NR <= kDirectAMaxPanels;
    const double k = double(g.k), col_blocks = double((cols + Tile<T>::nc - 1) / Tile<T>::nc);
    const double packed = (direct_a ? 0.0 : double(rows) * k * col_blocks) + (direct_b ? 0.0 : k * double(cols));
    return 2.0 * double(rows) * double(cols) * k + 32.0 * packed;
}

// How C is cut into tasks: slices of `per` panels (NR columns or MR rows) along one dimension.
struct Split {
    bool columns;
    index_t per, slices;
};

// Estimated time of a split on nt threads on a quiet machine: equal slices taken in order (round
// robin), the last one possibly smaller.
template <typename T>
double split_time(const nc::GemmCall<T>& g, bool columns, index_t per, int nt) {
    constexpr int MR = kMR<T>, NR = kNR<T>;
    const index_t len = columns ? g.n : g.m, step = per * (columns ? NR : MR);
    const index_t slices = (len + step - 1) / step, last_len = len - (slices - 1) * step;
    const double full = columns ? slice_cost(g, g.m, step) : slice_cost(g, step, g.n);
    const double last = columns ? slice_cost(g, g.m, last_len) : slice_cost(g, last_len, g.n);
    const index_t q = slices / nt, r = slices % nt;
    const double most = double(r ? q + 1 : q) * full;   // the busiest threads' share
    return (r ? r : nt) == 1 ? most - (full - last) : most;   // one busiest thread: it holds the last slice
}

// The split for nt threads: the fastest estimate, and among those within 2% of it the one with the
// most slices, so that a thread that loses its core for a while leaves little for the others to wait
// on. Every element's sum runs in the same order whatever the split (tiles start at multiples of MR
// and NR, K is cut into the same KC slices), so this choice never changes a result.
template <typename T>
Split choose_split(const nc::GemmCall<T>& g, int nt) {
    constexpr int MR = kMR<T>, NR = kNR<T>;
    Split best{true, (g.n + NR - 1) / NR, 1};
    if (nt <= 1) return best;
    double best_time = 1e300;
    Split cand[2 * 6];
    double cand_time[2 * 6];
    int count = 0;
    for (const bool columns : {true, false}) {
        const index_t panels = columns ? (g.n + NR - 1) / NR : (g.m + MR - 1) / MR;
        for (const int mult : {1, 2, 3, 4, 6, 8}) {
            const index_t target = parallel_detail::min_i(panels, index_t(nt) * mult);
            const index_t per = (panels + target - 1) / target;
            cand[count] = Split{columns, per, (panels + per - 1) / per};
            cand_time[count] = split_time<T>(g, columns, per, nt);
            best_time = cand_time[count] < best_time ? cand_time[count] : best_time;
            ++count;
        }
    }
    best.slices = 0;
    for (int c = 0; c < count; ++c)
        if (cand_time[c] <= best_time * 1.02 && cand[c].slices > best.slices) best = cand[c];
    return best;
}

}  // namespace gemm_detail

// C (m, n) = act(op(A) (m, k) . op(B) (k, n) + bias). The workspace belongs to the caller (the network's
// preallocated one, or a per-call buffer) and must hold gemm_workspace_elems(m, n, k, threads) elements.
// C is cut into column or row slices (choose_split), each computed start to finish by one thread with
// its own packing buffers; the threads take slices from a shared counter (parallel_tasks). No barrier
// inside the product: a thread that loses its core for a while just takes fewer slices, and every
// element's sum runs in the same order whoever computes it.
template <typename T>
void gemm(const nc::GemmCall<T>& g, T* workspace, index_t workspace_elems, int threads) {
    using namespace gemm_detail;
    constexpr int MR = kMR<T>, NR = kNR<T>;
    if (g.m <= 0 || g.n <= 0 || g.k <= 0) return;  // callers reject k = 0 (a layer needs inputs)
    if (g.m == 1 && g.csb == 1 && g.gather_k == nullptr) {
        nc::GemmCall<T> row = g;   // the one row of A, wherever its gather puts it
        if (g.gather_i) row.a = g.a + g.gather_i[0] * g.rsa;
        row.gather_i = nullptr;
        gemv_row(row);
        return;
    }
    int nt = gemm_threads(g.m, g.n, g.k, threads);
    const index_t per_thread = gemm_thread_workspace<T>(g.m, g.n, g.k);
    while (nt > 1 && workspace_elems < per_thread * nt) --nt;   // a workspace sized for fewer threads
    if (workspace == nullptr || workspace_elems < per_thread)   // a caller's bug: never compute garbage
        throw std::logic_error("gemm: workspace smaller than gemm_workspace_elems()");
    const Split split = choose_split<T>(g, nt);
    parallel_tasks(split.slices, nt, [&](index_t s, int thread) {
        T* a_pack = workspace + per_thread * thread;
        T* b_pack = a_pack + min_i(Tile<T>::mc, round_up(g.m, MR)) * min_i(Tile<T>::kc, g.k);
        b_pack += (64 - reinterpret_cast<uintptr_t>(b_pack) % 64) % 64 / sizeof(T);
        const index_t p0 = s * split.per, p1 = p0 + split.per;
        if (split.columns) gemm_block(g, 0, g.m, p0 * NR, min_i(p1 * NR, g.n), a_pack, b_pack);
        else gemm_block(g, p0 * MR, min_i(p1 * MR, g.m), 0, g.n, a_pack, b_pack);
    });
}
