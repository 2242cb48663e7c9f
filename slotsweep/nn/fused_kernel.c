/* Fused slot-machine score update: one pass over each connection's K scores.
 *
 * Per connection i with dense gradient d = dL/dW_i and for every k:
 *     g = d * v_k;  g = fma(s_k, wd, g);  buf_k = buf_k * momentum + g;  s_k = fma(buf_k, -lr, s_k)
 * then W_i = v_argmax(s). The order and rounding of every operation are those of the PyTorch
 * reference (score_gradient, Tensor.add(alpha=) which ATen computes as one fused multiply-add,
 * mul_ then add_ for the momentum), so this file must be built with -ffp-contract=off: a
 * contracted buf * momentum + g would round once where PyTorch rounds twice.
 *
 * The argmax compares integer keys, not floats, so that it vectorises without -ffast-math and
 * keeps torch.argmax's rules exactly: the first maximum wins, -0 equals +0, and a NaN counts as
 * larger than anything (the first NaN wins).
 *
 * With AVX2 and FMA (x86 built with -march=native) the step is written with intrinsics, because
 * GCC unrolls a short constant-K loop into scalar code before it can vectorise it; elsewhere a
 * portable loop does the same arithmetic. Plain C with no PyTorch headers so that it compiles in
 * a second or two, once per machine; loaded with ctypes by slotsweep/nn/native.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define TILE 64            /* scores per argmax step: the keys of one tile stay in registers */
#define PARALLEL_MIN 32768 /* below this many scores a thread team costs more than it saves */
#define PREFETCH 512       /* floats ahead (2 KB) that each stream is prefetched */

enum { MODE_PLAIN = 0, MODE_FIRST = 1, MODE_MOMENTUM = 2 };

typedef struct {
    float *scores;       /* (rows, k) */
    const float *values; /* (rows, k), or (k) when shared */
    float *buffer;       /* (rows, k); in MODE_PLAIN the scores, never touched */
    const float *grad;   /* (rows) */
    float *weight;       /* (rows) */
    int64_t rows, k;
    float neg_lr, momentum, wd;
} job_t;

/* A key whose signed-integer order is the float order, with -0 == +0 and every NaN the maximum;
 * no float has the key INT32_MIN. */
ALWAYS_INLINE int32_t order_key(float x) {
    int32_t bits;
    const float canonical = x + 0.0f; /* turns -0 into +0; not folded without -ffast-math */
    memcpy(&bits, &canonical, sizeof bits);
    const int32_t key = bits ^ ((bits >> 31) & 0x7fffffff);
    return x != x ? INT32_MAX : key;
}

/* Asks for the lines PREFETCH floats past n scores (values, momenta) in flight. The state is
 * usually far larger than the cache and cold after forward and backward; the hardware
 * prefetcher alone left 15-25% of the memory bandwidth unused (bench/bench_kernel.py --cold).
 * Prefetches past the end of an array are harmless: they never fault. */
ALWAYS_INLINE void prefetch(const float *s, const float *v, const float *b, const int64_t n,
                            const int shared, const int mode) {
    for (int64_t k = 0; k < n; k += 16) {
        __builtin_prefetch(s + PREFETCH + k, 1);
        if (!shared) __builtin_prefetch(v + PREFETCH + k, 0);
        if (mode != MODE_PLAIN) __builtin_prefetch(b + PREFETCH + k, 1);
    }
}

/* Steps one score; returns its key. */
ALWAYS_INLINE int32_t scalar_step(float *s, const float *v, float *b, float d, const job_t *job,
                                  const int mode, const int use_wd) {
    float g = d * *v;
    if (use_wd) g = fmaf(*s, job->wd, g);
    if (mode == MODE_MOMENTUM) g = *b * job->momentum + g;
    if (mode != MODE_PLAIN) *b = g;
    *s = fmaf(g, job->neg_lr, *s);
    return order_key(*s);
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VECTOR_WIDTH 8

/* order_key of 8 floats. */
ALWAYS_INLINE __m256i vector_keys(__m256 x) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(x, _mm256_setzero_ps()));
    const __m256i sign =
        _mm256_and_si256(_mm256_srai_epi32(bits, 31), _mm256_set1_epi32(0x7fffffff));
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_epi8(_mm256_xor_si256(bits, sign), _mm256_set1_epi32(INT32_MAX),
                              _mm256_castps_si256(nan));
}

/* Steps 8 scores at s (values vv, gradients vd); returns their keys. */
ALWAYS_INLINE __m256i vector_step(float *s, __m256 vv, float *b, __m256 vd, const job_t *job,
                                  const int mode, const int use_wd) {
    const __m256 vs = _mm256_loadu_ps(s);
    __m256 g = _mm256_mul_ps(vd, vv);
    if (use_wd) g = _mm256_fmadd_ps(vs, _mm256_set1_ps(job->wd), g);
    if (mode == MODE_MOMENTUM)
        g = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(b), _mm256_set1_ps(job->momentum)), g);
    if (mode != MODE_PLAIN) _mm256_storeu_ps(b, g);
    const __m256 t = _mm256_fmadd_ps(g, _mm256_set1_ps(job->neg_lr), vs);
    _mm256_storeu_ps(s, t);
    return vector_keys(t);
}

/* Each lane set to the largest key of its aligned group of `group` lanes (1, 2, 4 or 8). */
ALWAYS_INLINE __m256i segment_top(__m256i x, const int64_t group) {
    if (group >= 2) x = _mm256_max_epi32(x, _mm256_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
    if (group >= 4) x = _mm256_max_epi32(x, _mm256_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
    if (group >= 8) x = _mm256_max_epi32(x, _mm256_permute2x128_si256(x, x, 1));
    return x;
}

/* Steps the first 8 * vectors (<= TILE) scores of one connection, whole vectors at a time; sets
 * their first argmax and its key. */
ALWAYS_INLINE void vector_tile(float *s, const float *v, float *b, float d, const job_t *job,
                               const int64_t vectors, const int mode, const int use_wd,
                               int32_t *best, int32_t *best_key) {
    const __m256 vd = _mm256_set1_ps(d);
    __m256i keys[TILE / 8], top = _mm256_set1_epi32(INT32_MIN);
    for (int64_t j = 0; j < vectors; j++) {
        keys[j] = vector_step(s + 8 * j, _mm256_loadu_ps(v + 8 * j),
                              b + 8 * j, vd, job, mode, use_wd);
        top = _mm256_max_epi32(top, keys[j]);
    }
    top = segment_top(top, 8);
    uint64_t hits = 0;
    for (int64_t j = 0; j < vectors; j++) {
        const __m256 equal = _mm256_castsi256_ps(_mm256_cmpeq_epi32(keys[j], top));
        hits |= (uint64_t)_mm256_movemask_ps(equal) << (8 * j);
    }
    *best = (int32_t)__builtin_ctzll(hits);
    *best_key = _mm256_cvtsi256_si32(top);
}

/* K in {1, 2, 4}: one vector holds 8 / K whole connections; steps the 8 connections from row i
 * with whole vectors. `tiled` is the shared values repeated across a vector. */
ALWAYS_INLINE void packed_rows(const job_t *job, int64_t i, const int64_t K, const int shared,
                               const int mode, const int use_wd, __m256 tiled) {
    const int64_t per = 8 / K;
    const __m256 grads = _mm256_loadu_ps(job->grad + i);
    prefetch(job->scores + i * K, shared ? job->values : job->values + i * K,
             job->buffer + i * K, 8 * K, shared, mode);
    const __m256i lane_row = K == 4   ? _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
                             : K == 2 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                                      : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t j = 0; j < K; j++) {
        const int64_t first = i * K + 8 * j, row = i + j * per;
        const __m256i lanes = _mm256_add_epi32(lane_row, _mm256_set1_epi32((int)(j * per)));
        const __m256 vd = _mm256_permutevar8x32_ps(grads, lanes); /* each lane's gradient */
        const __m256 vv = shared ? tiled : _mm256_loadu_ps(job->values + first);
        const __m256i keys = vector_step(job->scores + first, vv,
                                         job->buffer + first, vd, job,
                                         mode, use_wd);
        const __m256i top = segment_top(keys, K); /* each connection's largest key, its lanes */
        const uint32_t hits =
            (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(keys, top)));
        for (int64_t r = 0; r < per; r++) {
            const int64_t at = __builtin_ctz(hits >> (r * K)); /* each connection has a hit */
            const float *v = shared ? job->values : job->values + (row + r) * K;
            job->weight[row + r] = v[at];
        }
    }
}
#else
#define VECTOR_WIDTH 1
#endif

/* Steps n <= TILE scores of one connection; returns the first argmax, its key in *top_key.
 * Whole vectors first, then the rest one by one: masked vector loads right after masked stores
 * to the neighbouring connection would stall on store forwarding. */
ALWAYS_INLINE int32_t update_tile(float *s, const float *v, float *b, float d, const job_t *job,
                                  const int64_t n, const int mode, const int use_wd,
                                  int32_t *top_key) {
    int32_t best = 0, best_key = INT32_MIN;
    int64_t k = 0;
#if VECTOR_WIDTH == 8
    if (n >= 8) vector_tile(s, v, b, d, job, n / 8, mode, use_wd, &best, &best_key);
    k = n / 8 * 8;
#endif
    for (; k < n; k++) {
        const int32_t key =
            scalar_step(s + k, v + k, b + k, d, job, mode, use_wd);
        best = key > best_key ? (int32_t)k : best; /* strict: the first maximum wins */
        best_key = key > best_key ? key : best_key;
    }
    *top_key = best_key;
    return best;
}

/* One connection, tile by tile. */
ALWAYS_INLINE void update_row(const job_t *job, int64_t i, const int64_t K, const int shared,
                              const int mode, const int use_wd) {
    float *s = job->scores + i * K;
    const float *v = shared ? job->values : job->values + i * K;
    float *b = job->buffer + i * K;
    const float d = job->grad[i];
    prefetch(s, v, b, K, shared, mode);
    int32_t best_key = INT32_MIN, best = 0;
    for (int64_t k0 = 0; k0 < K; k0 += TILE) {
        const int64_t n = K - k0 < TILE ? K - k0 : TILE;
        int32_t tile_key;
        const int32_t at = update_tile(s + k0, v + k0, b + k0, d, job,
                                       n, mode, use_wd, &tile_key);
        if (tile_key > best_key) { /* strict: an equal later tile loses */
            best_key = tile_key;
            best = (int32_t)k0 + at;
        }
    }
    job->weight[i] = v[best];
}

/* Rows [lo, hi); K, shared, mode and use_wd are literals at every call site, so each call
 * inlines into a loop specialised for them. */
ALWAYS_INLINE void update_rows(const job_t *job, int64_t lo, int64_t hi, const int64_t K,
                               const int shared, const int mode, const int use_wd) {
    int64_t i = lo;
#if VECTOR_WIDTH == 8
    if (K == 1 || K == 2 || K == 4) {
        __m256 tiled = _mm256_setzero_ps();
        if (shared) {
            float repeated[8];
            for (int l = 0; l < 8; l++) repeated[l] = job->values[l % K];
            tiled = _mm256_loadu_ps(repeated);
        }
        for (; i + 8 <= hi; i += 8) packed_rows(job, i, K, shared, mode, use_wd, tiled);
    }
#endif
    for (; i < hi; i++) update_row(job, i, K, shared, mode, use_wd);
}

#define ROWS(K, SHARED)                                                                   \
    switch (variant) {                                                                    \
    case 0: update_rows(job, lo, hi, K, SHARED, MODE_PLAIN, 0); break;                    \
    case 1: update_rows(job, lo, hi, K, SHARED, MODE_PLAIN, 1); break;                    \
    case 2: update_rows(job, lo, hi, K, SHARED, MODE_FIRST, 0); break;                    \
    case 3: update_rows(job, lo, hi, K, SHARED, MODE_FIRST, 1); break;                    \
    case 4: update_rows(job, lo, hi, K, SHARED, MODE_MOMENTUM, 0); break;                 \
    default: update_rows(job, lo, hi, K, SHARED, MODE_MOMENTUM, 1); break;                \
    }

#define SHARING(K)     \
    if (shared) {      \
        ROWS(K, 1)     \
    } else {           \
        ROWS(K, 0)     \
    }

static void dispatch(const job_t *job, int64_t lo, int64_t hi, int shared, int variant) {
    switch (job->k) {
    case 1: SHARING(1) break;
    case 2: SHARING(2) break;
    case 4: SHARING(4) break;
    case 8: SHARING(8) break;
    case 16: SHARING(16) break;
    case 32: SHARING(32) break;
    case 64: SHARING(64) break;
    default: SHARING(job->k) break;
    }
}

/* The fused update of one layer; returns 0, or -1 for arguments it cannot serve. */
int slot_update(float *scores, const float *values, float *buffer, const float *grad,
                float *weight, int64_t rows, int64_t k, int shared, float lr, float momentum,
                float weight_decay, int mode, int use_wd, int threads) {
    if (rows < 0 || k < 1 || mode < MODE_PLAIN || mode > MODE_MOMENTUM ||
        (mode != MODE_PLAIN && !buffer))
        return -1;
    if (mode == MODE_PLAIN)
        buffer = scores; /* never read or written without momentum; keeps pointer sums defined */
    const job_t job = {scores, values, buffer, grad, weight, rows, k, -lr, momentum, weight_decay};
    const int variant = mode * 2 + (use_wd != 0);
    if (threads < 1 || rows * k < PARALLEL_MIN) threads = 1;
    /* One contiguous block of rows per thread, a multiple of 16 rows so that no two threads
     * write the same 64-byte line of the weight. */
#pragma omp parallel num_threads(threads)
    {
        int64_t team = 1, me = 0;
#ifdef _OPENMP
        team = omp_get_num_threads();
        me = omp_get_thread_num();
#endif
        const int64_t blocks = (rows + 15) / 16;
        const int64_t start = 16 * (blocks * me / team), end = 16 * (blocks * (me + 1) / team);
        dispatch(&job, start < rows ? start : rows, end < rows ? end : rows, shared, variant);
    }
    return 0;
}

/* ---- The default path (autograd and any torch optimizer): the greedy selection and the
 * straight-through score gradient, each one pass, for slotsweep.nn.native.GreedyWeight. ---- */

/* The first argmax of the K scores at s (torch.argmax's rules, by order_key): whole vectors a
 * tile at a time, their keys kept in registers, then the rest one by one. */
ALWAYS_INLINE int64_t first_argmax(const float *s, const int64_t K) {
    int64_t best = 0, k = 0;
    int32_t best_key = INT32_MIN;
#if VECTOR_WIDTH == 8
    while (K - k >= 8) {
        const int64_t vectors = (K - k) / 8 < TILE / 8 ? (K - k) / 8 : TILE / 8;
        __m256i keys[TILE / 8], top = _mm256_set1_epi32(INT32_MIN);
        for (int64_t j = 0; j < vectors; j++) {
            keys[j] = vector_keys(_mm256_loadu_ps(s + k + 8 * j));
            top = _mm256_max_epi32(top, keys[j]);
        }
        top = segment_top(top, 8);
        const int32_t tile_key = _mm256_cvtsi256_si32(top);
        if (tile_key > best_key) { /* strict: an equal later tile loses */
            uint64_t hits = 0;
            for (int64_t j = 0; j < vectors; j++) {
                const __m256 equal = _mm256_castsi256_ps(_mm256_cmpeq_epi32(keys[j], top));
                hits |= (uint64_t)_mm256_movemask_ps(equal) << (8 * j);
            }
            best_key = tile_key;
            best = k + __builtin_ctzll(hits);
        }
        k += 8 * vectors;
    }
#endif
    for (; k < K; k++) { /* strict: an equal later score loses */
        const int32_t key = order_key(s[k]);
        best = key > best_key ? k : best;
        best_key = key > best_key ? key : best_key;
    }
    return best;
}

/* Rows [lo, hi) of the selection: weight[i] = values[i, argmax scores[i]], and the index. */
ALWAYS_INLINE void select_rows(const float *scores, const float *values, float *weight,
                               int64_t *indices, int64_t lo, int64_t hi, const int64_t K,
                               const int shared) {
    int64_t i = lo;
#if VECTOR_WIDTH == 8
    if (K == 2 || K == 4) { /* 8 / K connections per vector */
        const int64_t per = 8 / K;
        for (; i + per <= hi; i += per) {
            const __m256i keys = vector_keys(_mm256_loadu_ps(scores + i * K));
            const __m256i top = segment_top(keys, K);
            const uint32_t hits =
                (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(keys, top)));
            for (int64_t r = 0; r < per; r++) {
                const int64_t at = __builtin_ctz(hits >> (r * K)), row = i + r;
                weight[row] = shared ? values[at] : values[row * K + at];
                if (indices) indices[row] = at;
            }
        }
    }
#endif
    for (; i < hi; i++) {
        __builtin_prefetch(scores + i * K + PREFETCH, 0);
        if (!shared) __builtin_prefetch(values + i * K + PREFETCH, 0);
        const int64_t at = first_argmax(scores + i * K, K);
        weight[i] = shared ? values[at] : values[i * K + at];
        if (indices) indices[i] = at;
    }
}

/* Rows [lo, hi) of the score gradient: out[i, k] = grad[i] * values[i, k] (one rounding, as
 * PyTorch's broadcast multiply). */
ALWAYS_INLINE void gradient_rows(const float *grad, const float *values, float *out, int64_t lo,
                                 int64_t hi, const int64_t K, const int shared) {
    int64_t i = lo;
#if VECTOR_WIDTH == 8
    if (K == 1 || K == 2 || K == 4) { /* 8 connections' gradients spread over K vectors */
        const int64_t per = 8 / K;
        const __m256i lane_row = K == 4   ? _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
                                 : K == 2 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                                          : _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        float repeated[8];
        for (int l = 0; l < 8; l++) repeated[l] = shared ? values[l % K] : 0.0f;
        const __m256 tiled = _mm256_loadu_ps(repeated);
        for (; i + 8 <= hi; i += 8) {
            const __m256 grads = _mm256_loadu_ps(grad + i);
            for (int64_t j = 0; j < K; j++) {
                const __m256i lanes = _mm256_add_epi32(lane_row, _mm256_set1_epi32((int)(j * per)));
                const __m256 vd = _mm256_permutevar8x32_ps(grads, lanes);
                const __m256 vv = shared ? tiled : _mm256_loadu_ps(values + i * K + 8 * j);
                _mm256_storeu_ps(out + i * K + 8 * j, _mm256_mul_ps(vd, vv));
            }
        }
    } else if (K % 8 == 0) {
        for (; i < hi; i++) {
            const __m256 vd = _mm256_set1_ps(grad[i]);
            const float *v = shared ? values : values + i * K;
            if (!shared) __builtin_prefetch(v + PREFETCH, 0);
            for (int64_t k = 0; k < K; k += 8)
                _mm256_storeu_ps(out + i * K + k, _mm256_mul_ps(vd, _mm256_loadu_ps(v + k)));
        }
    }
#endif
    for (; i < hi; i++) {
        const float d = grad[i];
        const float *v = shared ? values : values + i * K;
        for (int64_t k = 0; k < K; k++) out[i * K + k] = d * v[k];
    }
}

#define BY_K(CALL)                                                    \
    switch (k) {                                                      \
    case 1: CALL(1); break;                                           \
    case 2: CALL(2); break;                                           \
    case 4: CALL(4); break;                                           \
    case 8: CALL(8); break;                                           \
    case 16: CALL(16); break;                                         \
    case 32: CALL(32); break;                                         \
    case 64: CALL(64); break;                                         \
    default: CALL(k); break;                                          \
    }

/* Runs BODY(lo, hi) over rows split into blocks of 16 (no two threads write one 64-byte line
 * of a float output), on one thread below PARALLEL_MIN elements. */
#define OVER_ROWS(BODY)                                                                   \
    if (threads < 1 || rows * k < PARALLEL_MIN) threads = 1;                              \
    _Pragma("omp parallel num_threads(threads)") {                                       \
        int64_t team = 1, me = 0;                                                         \
        OMP_TEAM(team, me);                                                               \
        const int64_t blocks = (rows + 15) / 16;                                          \
        int64_t lo = 16 * (blocks * me / team), hi = 16 * (blocks * (me + 1) / team);     \
        lo = lo < rows ? lo : rows;                                                       \
        hi = hi < rows ? hi : rows;                                                       \
        BODY;                                                                             \
    }

#ifdef _OPENMP
#define OMP_TEAM(team, me) (team = omp_get_num_threads(), me = omp_get_thread_num())
#else
#define OMP_TEAM(team, me) ((void)0)
#endif

/* The greedy selection of one layer: weight (rows) and, unless indices is NULL, the chosen
 * index (rows, int64). Returns 0, or -1 for arguments it cannot serve. */
int slot_select(const float *scores, const float *values, float *weight, int64_t *indices,
                int64_t rows, int64_t k, int shared, int threads) {
    if (rows < 0 || k < 1) return -1;
#define SELECT(K)                                                                         \
    if (shared) select_rows(scores, values, weight, indices, lo, hi, K, 1);               \
    else select_rows(scores, values, weight, indices, lo, hi, K, 0)
    OVER_ROWS(BY_K(SELECT))
#undef SELECT
    return 0;
}

/* The straight-through score gradient of one layer: out (rows, k) = grad (rows) x values.
 * Returns 0, or -1 for arguments it cannot serve. */
int slot_score_gradient(const float *grad, const float *values, float *out, int64_t rows,
                        int64_t k, int shared, int threads) {
    if (rows < 0 || k < 1) return -1;
#define GRADIENT(K)                                                                       \
    if (shared) gradient_rows(grad, values, out, lo, hi, K, 1);                           \
    else gradient_rows(grad, values, out, lo, hi, K, 0)
    OVER_ROWS(BY_K(GRADIENT))
#undef GRADIENT
    return 0;
}

/* The install-time build (setup.py) defines the digest of its source, flags and CPU, so that a
 * prebuilt library made for another CPU or from an older source is not used (native.py). */
#ifndef SLOT_KERNEL_IDENTITY
#define SLOT_KERNEL_IDENTITY ""
#endif
const char *slot_kernel_identity(void) { return SLOT_KERNEL_IDENTITY; }
