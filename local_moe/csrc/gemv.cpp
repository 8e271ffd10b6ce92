// Decode-sized matmuls for local_moe on CPU: y[M, N] = x[M, K] . W[N, K]^T for a few rows (M <= 8).
//
// Decode multiplies one row (or a few) by every weight it touches, so its speed is how fast weights
// stream from memory. The library kernels are tuned for many rows: at one row oneDNN's packed bf16
// kernel read a 2 MB weight at ~17 GB/s on a 2-core EPYC whose plain read loop reaches ~27 GB/s
// on a buffer of that size. Here each output is one weight row read front to back, so a call's
// weights are one sequential stream the hardware prefetcher follows (reading several rows
// interleaved, to share activation loads, was slower at every row count: 0.099 vs 0.075 ms for a
// 1024x1024 bf16 weight at one row, and at eight rows the extra accumulators spill).
//
// Compiled on the machine that runs it (-march=native, local_moe/native.py), so it uses the widest
// dot-product instructions that CPU has; `kernels.choose` times it against the library kernels and
// keeps whichever is faster. Plain C ABI, called through ctypes: the OpenMP runtime it links is
// the one torch already loaded (same soname), so the two share one thread pool.
//
// Weights: bf16 [N, K] as stored, or int8 [N, K] with one fp32 scale per output row. int8 weights
// meet activations rounded to 16-bit fixed point where the CPU has AVX-512 VNNI (Int8Acts below),
// elsewhere the bf16 activations themselves, every product formed in fp32 (weight-only).
// Activations and outputs are bf16; sums are fp32, rounded once to bf16 (nearest even).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int kMaxRows = 8;

inline float bf16_to_f32(uint16_t v) {
    uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

#if defined(__AVX512F__)
inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

inline __m512 load_bf16_as_f32(const uint16_t* p, __mmask16 m) {
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

// What an int8 weight row is multiplied with: the call's activation rows, prepared once per call
// (not once per weight row). With AVX-512 VNNI, each row as 16-bit fixed point with one fp32 scale
// (q * s ~= x, |q| <= 32767): a weight group widened to int16 then meets it in one vpdpwssd, exact
// int32 products and sums, where forming the same products from bf16 took ten instructions per 64
// weights and left int8 slower than bf16 at one row (1024x1024: 0.058 vs 0.033 ms from cache on a
// Zen 4 EPYC). The rounding this adds is at most s/2 per element, s = max|x| / 32767: below a bf16
// step for every element within 1/128 of the row's largest. Without VNNI: the bf16 rows (b) and
// fp32 copies (f), and every product is formed exactly, as before.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define BK_INT16_ACTS 1
#endif

#if defined(BK_INT16_ACTS)

// One bf16 row as 16-bit fixed point: q = round(x * 32767 / max|x|), returning the scale
// max|x| / 32767. A row of zeros gets scale 0; one holding inf or NaN gets a NaN scale (and zeros),
// so its outputs are NaN, as the exact path's are.
inline float to_int16(const uint16_t* x, int64_t K, int16_t* q) {
    auto load = [&](int64_t k) { return load_bf16_as_f32(x + k, tail_mask(K - k)); };
    // max |x| as bit patterns: ordered like the values for finite ones, and above every finite one
    // for inf and NaN (which a float max would drop)
    __m512i top = _mm512_setzero_si512();
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    for (int64_t k = 0; k < K; k += 16)
        top = _mm512_max_epu32(top, _mm512_and_si512(_mm512_castps_si512(load(k)), magnitude));
    const uint32_t bits = _mm512_reduce_max_epu32(top);
    if (bits == 0 || bits >= 0x7f800000u) {
        std::fill(q, q + K, int16_t{0});
        return bits == 0 ? 0.f : NAN;
    }
    float t;
    std::memcpy(&t, &bits, 4);
    const __m512 inv = _mm512_set1_ps(32767.f / t);
    for (int64_t k = 0; k < K; k += 16) {
        // nearest (even) rounding, then a saturating narrow: |x * inv| <= 32767 up to rounding
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(load(k), inv));
        _mm256_mask_storeu_epi16(q + k, tail_mask(K - k), _mm512_cvtsepi32_epi16(v));
    }
    return t / 32767.f;
}
#endif

struct Int8Acts {
    const uint16_t* b = nullptr;  // the rows as given (bf16)
    const float* f = nullptr;     // fp32 copies (without VNNI)
    const int16_t* q = nullptr;   // 16-bit fixed point (with VNNI)
    const float* s = nullptr;     // one scale per row (with VNNI)
    Int8Acts at(int64_t row, int64_t K) const {  // the same from row `row` on
        return {b + row * K, f ? f + row * K : nullptr, q ? q + row * K : nullptr, s ? s + row : nullptr};
    }
};

struct Int8Buffers {
    std::vector<float> f;
    std::vector<int16_t> q;
    std::vector<float> s;

    Int8Acts prepare(const uint16_t* x, int64_t M, int64_t K) {
#if defined(BK_INT16_ACTS)
        q.resize(static_cast<size_t>(M * K));
        s.resize(static_cast<size_t>(M));
        for (int64_t m = 0; m < M; ++m) s[m] = to_int16(x + m * K, K, q.data() + m * K);
        return {x, nullptr, q.data(), s.data()};
#else
        f.resize(static_cast<size_t>(M * K));
        for (int64_t i = 0; i < M * K; ++i) f[i] = bf16_to_f32(x[i]);
        return {x, f.data(), nullptr, nullptr};
#endif
    }
};

#if defined(__AVX512F__)

// Weight row w [K] against M activation rows x [M, K] -> out [M].
template <int M>
inline void bf16_row(const uint16_t* x, int64_t K, const uint16_t* w, float* out) {
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    int64_t k = 0;
#if defined(__AVX512BF16__)
    if (M == 1) {
        // four independent sums over four consecutive cache lines: no wait on one sum's latency
        __m512 a1 = _mm512_setzero_ps(), a2 = a1, a3 = a1;
        for (; k + 128 <= K; k += 128) {
            acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(x + k));
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32), (__m512bh)_mm512_loadu_si512(x + k + 32));
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w + k + 64), (__m512bh)_mm512_loadu_si512(x + k + 64));
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w + k + 96), (__m512bh)_mm512_loadu_si512(x + k + 96));
        }
        acc[0] = _mm512_add_ps(_mm512_add_ps(acc[0], a1), _mm512_add_ps(a2, a3));
    }
    for (; k + 32 <= K; k += 32) {
        __m512bh wv = (__m512bh)_mm512_loadu_si512(w + k);
        for (int m = 0; m < M; ++m)
            acc[m] = _mm512_dpbf16_ps(acc[m], wv, (__m512bh)_mm512_loadu_si512(x + m * K + k));
    }
#endif
    for (; k < K; k += 16) {
        __mmask16 mask = tail_mask(K - k);
        __m512 wv = load_bf16_as_f32(w + k, mask);
        for (int m = 0; m < M; ++m)
            acc[m] = _mm512_fmadd_ps(wv, load_bf16_as_f32(x + m * K + k, mask), acc[m]);
    }
    for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
}

#if defined(BK_INT16_ACTS)

// Columns per block of int32 sums: a lane adds at most 4096 / 16 products of |w| <= 127 and
// |q| <= 32767, under 2^31; each block's lanes go to fp32 before they are added.
constexpr int64_t kInt16Block = 4096;

// int8 weight row against M activation rows in 16-bit fixed point: each group of 32 weights is
// widened to int16 once for all M rows, and one vpdpwssd per row forms and adds their products.
template <int M>
inline void int8_row(const Int8Acts& a, int64_t K, const int8_t* w, float* out) {
    float sum[M] = {};
    for (int64_t k0 = 0; k0 < K; k0 += kInt16Block) {
        const int64_t k1 = std::min(K, k0 + kInt16Block);
        __m512i acc[M];
        for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
        int64_t k = k0;
        if (M == 1) {  // two independent sums, as in bf16_row
            __m512i a1 = _mm512_setzero_si512();
            for (; k + 64 <= k1; k += 64) {
                __m512i q = _mm512_loadu_si512(w + k);
                __m512i w0 = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(q));
                __m512i w1 = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(q, 1));
                acc[0] = _mm512_dpwssd_epi32(acc[0], w0, _mm512_loadu_si512(a.q + k));
                a1 = _mm512_dpwssd_epi32(a1, w1, _mm512_loadu_si512(a.q + k + 32));
            }
            acc[0] = _mm512_add_epi32(acc[0], a1);
        }
        for (; k + 32 <= k1; k += 32) {
            __m512i wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k)));
            for (int m = 0; m < M; ++m) acc[m] = _mm512_dpwssd_epi32(acc[m], wv, _mm512_loadu_si512(a.q + m * K + k));
        }
        if (k < k1) {
            const __mmask32 mask = static_cast<__mmask32>((1u << (k1 - k)) - 1);
            __m512i wv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, w + k));
            for (int m = 0; m < M; ++m)
                acc[m] = _mm512_dpwssd_epi32(acc[m], wv, _mm512_maskz_loadu_epi16(mask, a.q + m * K + k));
        }
        for (int m = 0; m < M; ++m) sum[m] += _mm512_reduce_add_ps(_mm512_cvtepi32_ps(acc[m]));
    }
    for (int m = 0; m < M; ++m) out[m] = sum[m] * a.s[m];
}

#else

// int8 weight row against M activation rows (bf16, and the same values in fp32): each weight group
// is widened once for all M rows. An int8 value is exact in bf16, so the bf16 dot-product
// instruction forms the same exact products as the fp32 path, with fewer instructions per weight.
template <int M>
inline void int8_row(const Int8Acts& a, int64_t K, const int8_t* w, float* out) {
    const uint16_t* xb = a.b;
    const float* x = a.f;
    __m512 acc[M];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    int64_t k = 0;
#if defined(__AVX512BF16__)
    if (M == 1) {
        // as in bf16_row: independent sums, so one row is not one long chain of dependent adds
        __m512 a1 = _mm512_setzero_ps();
        for (; k + 64 <= K; k += 64) {
            __m512i q = _mm512_loadu_si512(w + k);
            __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_castsi512_si128(q)));
            __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(q, 1)));
            __m512 f2 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(q, 2)));
            __m512 f3 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(q, 3)));
            acc[0] = _mm512_dpbf16_ps(acc[0], _mm512_cvtne2ps_pbh(f1, f0), (__m512bh)_mm512_loadu_si512(xb + k));
            a1 = _mm512_dpbf16_ps(a1, _mm512_cvtne2ps_pbh(f3, f2), (__m512bh)_mm512_loadu_si512(xb + k + 32));
        }
        acc[0] = _mm512_add_ps(acc[0], a1);
    }
    for (; k + 32 <= K; k += 32) {
        __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
        __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
        __m512bh wv = _mm512_cvtne2ps_pbh(hi, lo);
        for (int m = 0; m < M; ++m)
            acc[m] = _mm512_dpbf16_ps(acc[m], wv, (__m512bh)_mm512_loadu_si512(xb + m * K + k));
    }
#else
    (void)xb;
#endif
    for (; k < K; k += 16) {
        __mmask16 mask = tail_mask(K - k);
        __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, w + k)));
        for (int m = 0; m < M; ++m)
            acc[m] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, x + m * K + k), acc[m]);
    }
    for (int m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
}

#endif  // BK_INT16_ACTS

#else  // without AVX-512: plain loops the compiler vectorizes for what -march=native offers

template <int M>
inline void bf16_row(const uint16_t* x, int64_t K, const uint16_t* w, float* out) {
    for (int m = 0; m < M; ++m) {
        float s = 0.f;
        const uint16_t* xr = x + m * K;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += bf16_to_f32(w[k]) * bf16_to_f32(xr[k]);
        out[m] = s;
    }
}

template <int M>
inline void int8_row(const Int8Acts& a, int64_t K, const int8_t* w, float* out) {
    for (int m = 0; m < M; ++m) {
        float s = 0.f;
        const float* xr = a.f + m * K;
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += static_cast<float>(w[k]) * xr[k];
        out[m] = s;
    }
}

#endif

// One weight row of either kind against M activation rows: bf16 rows for bf16 weights, the
// prepared rows for int8.
template <int M>
inline void dot_row(const uint16_t* x, int64_t K, const uint16_t* w, float* out) {
    bf16_row<M>(x, K, w, out);
}
template <int M>
inline void dot_row(const Int8Acts& a, int64_t K, const int8_t* w, float* out) {
    int8_row<M>(a, K, w, out);
}

template <typename X, typename W>
inline void dot_rows(int64_t M, const X& x, int64_t K, const W* w, float* out) {
    switch (M) {
        case 1: dot_row<1>(x, K, w, out); break;
        case 2: dot_row<2>(x, K, w, out); break;
        case 3: dot_row<3>(x, K, w, out); break;
        case 4: dot_row<4>(x, K, w, out); break;
        case 5: dot_row<5>(x, K, w, out); break;
        case 6: dot_row<6>(x, K, w, out); break;
        case 7: dot_row<7>(x, K, w, out); break;
        default: dot_row<8>(x, K, w, out); break;
    }
}

// y[M, N] = x . W^T for either weight kind; an int8 row's scale is applied to its fp32 sum. Output
// rows are split into contiguous ranges, one per thread: each thread streams one block of W. M is a
// template argument (by_rows picks it once per call): dispatching on it per weight row instead was
// measured slower at eight rows (1024x1024 bf16: 0.145 vs 0.120 ms).
template <int M, typename X, typename W>
void gemv(const X& x, int64_t K, const W* w, const float* scale, int64_t N, uint16_t* y, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        float out[M];
        dot_row<M>(x, K, w + n * K, out);
        float s = scale ? scale[n] : 1.f;
        for (int m = 0; m < M; ++m) y[m * N + n] = f32_to_bf16(out[m] * s);
    }
}

template <typename F>
int by_rows(int64_t M, F&& f) {
    switch (M) {
        case 1: f.template operator()<1>(); return 0;
        case 2: f.template operator()<2>(); return 0;
        case 3: f.template operator()<3>(); return 0;
        case 4: f.template operator()<4>(); return 0;
        case 5: f.template operator()<5>(); return 0;
        case 6: f.template operator()<6>(); return 0;
        case 7: f.template operator()<7>(); return 0;
        case 8: f.template operator()<8>(); return 0;
        default: return -1;
    }
}


inline float rnd(float f) { return bf16_to_f32(f32_to_bf16(f)); }  // what storing as bf16 keeps

inline float activate(float g, int act) {
    if (act == 1) return 0.5f * g * (1.f + std::erf(g * 0.70710678118654752f));  // exact gelu
    return g / (1.f + std::exp(-g));                                              // silu
}

// A layer's routed experts for a few tokens (n <= 8), in one call: per token, the sum over its k
// experts of weight * w2_e(act(gate) * up), with w13_e = [gate; up] ([2I, H]) and w2_e ([H, I]).
// Every intermediate is rounded to bf16 where the per-expert path stores a bf16 tensor, and each
// token's terms are added in the order and precision that path adds them (one token: its k experts
// in routing order, each sum rounded; several: by expert id, summed in fp32 as index_add_ does), so
// the two paths agree to the rounding of the activation.
//
// Work is split so each thread streams contiguous weight rows: the active experts' gate/up rows,
// then (after one barrier) their down rows, each output row's terms kept by the thread that owns it.
template <typename W>
int moe(const uint16_t* x, int64_t n, int64_t H, int64_t I, int64_t k, const int64_t* idx, const uint16_t* wts,
        const int64_t* w13, const int64_t* s13, const int64_t* w2, const int64_t* s2, int act, uint16_t* y,
        int threads) {
    if (n < 1 || n > kMaxRows || k < 1 || k > kMaxRows) return -1;
    // group the (token, slot) pairs by expert: one group per active expert, its tokens in order
    int64_t pairs = n * k;
    std::vector<int64_t> order(pairs);
    for (int64_t p = 0; p < pairs; ++p) order[p] = p;
    if (n > 1)  // several tokens: by expert id, stable (one token keeps routing order)
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
    std::vector<int64_t> group_start, group_expert;
    for (int64_t i = 0; i < pairs; ++i) {
        if (i == 0 || n == 1 || idx[order[i]] != idx[order[i - 1]]) {
            group_start.push_back(i);
            group_expert.push_back(idx[order[i]]);
        }
    }
    const int64_t G = static_cast<int64_t>(group_start.size());
    group_start.push_back(pairs);
    // each group's input rows, contiguous: x of its tokens (and, for int8, prepared as int8 takes them)
    constexpr bool kInt8 = std::is_same_v<W, int8_t>;
    std::vector<uint16_t> xb(pairs * H);
    for (int64_t i = 0; i < pairs; ++i) std::memcpy(&xb[i * H], x + (order[i] / k) * H, H * sizeof(uint16_t));
    Int8Buffers xbuf, hbuf;
    Int8Acts xa, ha;
    if constexpr (kInt8) xa = xbuf.prepare(xb.data(), pairs, H);
    std::vector<float> gu(pairs * 2 * I);    // gate/up sums, [pair][2I]
    std::vector<uint16_t> hb(pairs * I);     // act(gate) * up as bf16, [pair][I]
    std::vector<float> down(pairs * H);      // each pair's expert output, rounded to bf16
#pragma omp parallel num_threads(threads)
    {
        float out[kMaxRows];
#pragma omp for schedule(static)
        for (int64_t item = 0; item < G * 2 * I; ++item) {
            int64_t g = item / (2 * I), row = item % (2 * I);
            int64_t b = group_start[g], m = group_start[g + 1] - b;
            const W* wr = reinterpret_cast<const W*>(w13[group_expert[g]]) + row * H;
            if constexpr (kInt8)
                dot_rows(m, xa.at(b, H), H, wr, out);
            else
                dot_rows(m, &xb[b * H], H, wr, out);
            float scale = s13 ? reinterpret_cast<const float*>(s13[group_expert[g]])[row] : 1.f;
            for (int64_t r = 0; r < m; ++r) gu[(b + r) * 2 * I + row] = rnd(out[r] * scale);
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < pairs * I; ++i) {
            int64_t p = i / I, c = i % I;
            float h = rnd(rnd(activate(gu[p * 2 * I + c], act)) * gu[p * 2 * I + I + c]);
            hb[i] = f32_to_bf16(h);
        }
        if constexpr (kInt8) {
#pragma omp single
            ha = hbuf.prepare(hb.data(), pairs, I);  // the barrier after it publishes ha
        }
#pragma omp for schedule(static)
        for (int64_t item = 0; item < G * H; ++item) {
            int64_t g = item / H, row = item % H;
            int64_t b = group_start[g], m = group_start[g + 1] - b;
            const W* wr = reinterpret_cast<const W*>(w2[group_expert[g]]) + row * I;
            if constexpr (kInt8)
                dot_rows(m, ha.at(b, I), I, wr, out);
            else
                dot_rows(m, &hb[b * I], I, wr, out);
            float scale = s2 ? reinterpret_cast<const float*>(s2[group_expert[g]])[row] : 1.f;
            for (int64_t r = 0; r < m; ++r) down[(b + r) * H + row] = rnd(out[r] * scale);
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n * H; ++i) {
            int64_t t = i / H, c = i % H;
            bool first = true;
            float acc = 0.f;
            for (int64_t j = 0; j < pairs; ++j) {  // this token's pairs, in the grouped order
                int64_t p = order[j];
                if (p / k != t) continue;
                float term = rnd(down[j * H + c] * bf16_to_f32(wts[p]));
                // one token: bf16 tensor adds, each rounded; several: index_add_, which sums in fp32
                acc = first ? term : (n == 1 ? rnd(acc + term) : acc + term);
                first = false;
            }
            y[i] = f32_to_bf16(acc);
        }
    }
    return 0;
}

}  // namespace

extern "C" {

int bk_max_rows() { return kMaxRows; }

// Which instruction path this build took, for the log.
const char* bk_isa() {
#if defined(__AVX512BF16__)
    return "avx512-bf16";
#elif defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#else
    return "generic";
#endif
}

// How int8 weights meet their activations in this build, for the log and the bench.
const char* bk_int8_acts() {
#if defined(BK_INT16_ACTS)
    return "int16 per row (vnni)";
#else
    return "exact";
#endif
}

// x [M, K] bf16, w [N, K] bf16 -> y [M, N] bf16. Returns -1 (nothing written) unless 1 <= M <= 8.
int bk_gemv_bf16(const uint16_t* x, int64_t M, int64_t K, const uint16_t* w, int64_t N, uint16_t* y,
                 int threads) {
    return by_rows(M, [&]<int Rows>() { gemv<Rows>(x, K, w, nullptr, N, y, threads); });
}

// x [M, K] bf16, w [N, K] int8, scale [N] fp32 -> y [M, N] bf16. Returns -1 unless 1 <= M <= 8.
int bk_gemv_int8(const uint16_t* x, int64_t M, int64_t K, const int8_t* w, const float* scale, int64_t N,
                 uint16_t* y, int threads) {
    if (M < 1 || M > kMaxRows) return -1;
    // the activations prepared once per call, not once per weight row (a thread's own buffers: the
    // runtime may call from several Python threads)
    thread_local Int8Buffers buffers;
    const Int8Acts acts = buffers.prepare(x, M, K);
    return by_rows(M, [&]<int Rows>() { gemv<Rows>(acts, K, w, scale, N, y, threads); });
}

// A layer's routed experts for n tokens (1 <= n <= 8, k <= 8): x [n, H] bf16, idx [n, k] expert ids,
// wts [n, k] bf16 routing weights, per expert the addresses of w13 [2I, H] and w2 [H, I] (bf16), act
// 0 silu / 1 gelu -> y [n, H] bf16. Returns -1 (nothing written) outside those sizes.
int bk_moe_bf16(const uint16_t* x, int64_t n, int64_t H, int64_t I, int64_t k, const int64_t* idx,
                const uint16_t* wts, const int64_t* w13, const int64_t* w2, int act, uint16_t* y, int threads) {
    return moe<uint16_t>(x, n, H, I, k, idx, wts, w13, nullptr, w2, nullptr, act, y, threads);
}

// The same over int8 experts: w13 and w2 int8, with the addresses of their fp32 row scales.
int bk_moe_int8(const uint16_t* x, int64_t n, int64_t H, int64_t I, int64_t k, const int64_t* idx,
                const uint16_t* wts, const int64_t* w13, const int64_t* s13, const int64_t* w2, const int64_t* s2,
                int act, uint16_t* y, int threads) {
    return moe<int8_t>(x, n, H, I, k, idx, wts, w13, s13, w2, s2, act, y, threads);
}

// RMSNorm over rows of x [rows, dim] bf16 with weight [dim] bf16 -> y bf16, as the model computes it:
// x * rsqrt(mean(x^2) + eps) in fp32, rounded to bf16, times the weight, rounded again. Decode calls
// it a few times per layer on one token; one call replaces the eight tensor ops of the torch form.
void bk_rmsnorm_bf16(const uint16_t* x, int64_t rows, int64_t dim, const uint16_t* weight, float eps, uint16_t* y,
                     int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (rows * dim >= (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
        const uint16_t* xr = x + r * dim;
        float ss = 0.f;
#pragma omp simd reduction(+ : ss)
        for (int64_t c = 0; c < dim; ++c) {
            float v = bf16_to_f32(xr[c]);
            ss += v * v;
        }
        float inv = 1.f / std::sqrt(ss / static_cast<float>(dim) + eps);
        uint16_t* yr = y + r * dim;
        for (int64_t c = 0; c < dim; ++c) yr[c] = f32_to_bf16(bf16_to_f32(weight[c]) * rnd(bf16_to_f32(xr[c]) * inv));
    }
}

// Rotary embedding of one new token per batch row, and its keys and values written to the cache
// (decode): q [B, H, D] and k, v [B, n_kv, D] bf16, each batch row `*_row` elements after the last
// (heads and dims contiguous within a row); cos, sin [B, D/2] bf16; the cache [slots, n_kv,
// max_seq, D]; slot and pos [B]. -> q_out [B, H, D] = rope(q); cache[slot, h, pos] = rope(k), v.
// Rounded where the torch form (model.apply_rope) stores bf16: each product, then their
// difference or sum; so the two paths agree bit for bit. One call replaces ~16 tensor ops a layer
// (two rotations of seven ops each, two indexed cache writes), which at a few microseconds each
// were a tenth of an int8 decode token.
void bk_rope_cache_decode_bf16(const uint16_t* q, int64_t q_row, const uint16_t* k, int64_t k_row, const uint16_t* v,
                               int64_t v_row, const uint16_t* cos, const uint16_t* sin, uint16_t* kc, uint16_t* vc,
                               const int64_t* slot, const int64_t* pos, int64_t B, int64_t H, int64_t n_kv, int64_t D,
                               int64_t max_seq, uint16_t* q_out) {
    const int64_t half = D / 2;
    auto rotate = [&](const uint16_t* x, const uint16_t* c, const uint16_t* s, uint16_t* y) {
        for (int64_t d = 0; d < half; ++d) {
            float x1 = bf16_to_f32(x[d]), x2 = bf16_to_f32(x[d + half]);
            float cd = bf16_to_f32(c[d]), sd = bf16_to_f32(s[d]);
            y[d] = f32_to_bf16(rnd(x1 * cd) - rnd(x2 * sd));
            y[d + half] = f32_to_bf16(rnd(x2 * cd) + rnd(x1 * sd));
        }
    };
    for (int64_t b = 0; b < B; ++b) {
        const uint16_t* c = cos + b * half;
        const uint16_t* s = sin + b * half;
        for (int64_t h = 0; h < H; ++h) rotate(q + b * q_row + h * D, c, s, q_out + (b * H + h) * D);
        for (int64_t h = 0; h < n_kv; ++h) {
            const int64_t at = ((slot[b] * n_kv + h) * max_seq + pos[b]) * D;
            rotate(k + b * k_row + h * D, c, s, kc + at);
            std::memcpy(vc + at, v + b * v_row + h * D, D * sizeof(uint16_t));
        }
    }
}

// Attention of one new token per batch row over its slot's cached keys and values (decode):
// q [B, H, D] bf16; k and v caches [slots, n_kv, max_seq, D] bf16; slot [B]; mask [B, L] (nonzero
// = may attend); -> out [B, H, D] bf16. Query head h reads kv head h / (H / n_kv), as grouped-query
// attention repeats kv heads. Scores and softmax in fp32 from exact bf16 products, the weighted sum
// of values in fp32, rounded once. One (row, head) pair per work item.
void bk_attn_decode_bf16(const uint16_t* q, const uint16_t* kc, const uint16_t* vc, const int64_t* slot, int64_t B,
                         int64_t H, int64_t n_kv, int64_t D, int64_t max_seq, int64_t L, const uint8_t* mask,
                         float scale, uint16_t* out, int threads) {
    const int64_t group = H / n_kv;
#pragma omp parallel num_threads(threads)
    {
        std::vector<float> p(L);
        std::vector<float> acc(D);
#pragma omp for schedule(static)
        for (int64_t item = 0; item < B * H; ++item) {
            int64_t b = item / H, h = item % H;
            const uint16_t* qv = q + item * D;
            const int64_t base = ((slot[b] * n_kv) + h / group) * max_seq * D;
            const uint8_t* mb = mask + b * L;
            float top = -INFINITY;
            for (int64_t i = 0; i < L; ++i) {
                if (!mb[i]) {
                    p[i] = -INFINITY;
                    continue;
                }
                float sdot;
                bf16_row<1>(qv, D, kc + base + i * D, &sdot);
                p[i] = sdot * scale;
                top = std::max(top, p[i]);
            }
            float total = 0.f;
            for (int64_t i = 0; i < L; ++i) {
                p[i] = mb[i] ? std::exp(p[i] - top) : 0.f;
                total += p[i];
            }
            std::fill(acc.begin(), acc.end(), 0.f);
            for (int64_t i = 0; i < L; ++i) {
                if (p[i] == 0.f) continue;
                const uint16_t* vr = vc + base + i * D;
                float w = p[i] / total;
#pragma omp simd
                for (int64_t d = 0; d < D; ++d) acc[d] += w * bf16_to_f32(vr[d]);
            }
            uint16_t* o = out + item * D;
            for (int64_t d = 0; d < D; ++d) o[d] = f32_to_bf16(acc[d]);
        }
    }
}
}
