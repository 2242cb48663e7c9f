/* Fused slot-machine score update: one pass over each connection's K scores.
 *
 * Per connection i with dense gradient d = dL/dW_i and for every k:
 *     g = d * v_k;  g = fma(s_k, wd, g);  buf_k = buf_k * momentum + g;  s_k = fma(buf_k, -lr, s_k)
 * then W_i = v_argmax(s). The order and rounding of every operation are those of the PyTorch
 * reference (score_gradient, Tensor.add(alpha=) which ATen computes as one fused multiply-add,
 * mul_ then add_ for the momentum), so this file must be built with -ffp-contract=off: a
 * contracted buf * momentum + g would round once where PyTorch rounds twice.
 *
 * The argmax compares integer keys, not floats, so that the reductions vectorise without
 * -ffast-math and keep torch.argmax's rules exactly: the first maximum wins, -0 equals +0, and
 * a NaN counts as larger than anything (the first NaN wins).
 *
 * Plain C with no PyTorch headers so that it compiles in about a second; loaded with ctypes by
 * slotsweep/nn/native.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define TILE 64            /* scores handled per argmax step: keys of one tile stay in L1 */
#define PARALLEL_MIN 32768 /* below this many scores a thread team costs more than it saves */

enum { MODE_PLAIN = 0, MODE_FIRST = 1, MODE_MOMENTUM = 2 };

typedef struct {
    float *scores;        /* (rows, k) */
    const float *values;  /* (rows, k), or (k) when shared */
    float *buffer;        /* (rows, k); unused in MODE_PLAIN */
    const float *grad;    /* (rows) */
    float *weight;        /* (rows) */
    int64_t rows, k;
    float neg_lr, momentum, wd;
} job_t;

/* A key whose signed-integer order is the float order, with -0 == +0 and every NaN the maximum. */
ALWAYS_INLINE int32_t order_key(float x) {
    int32_t bits;
    const float canonical = x + 0.0f; /* turns -0 into +0; not folded without -ffast-math */
    memcpy(&bits, &canonical, sizeof bits);
    const int32_t key = bits ^ ((bits >> 31) & 0x7fffffff);
    return x != x ? INT32_MAX : key;
}

/* Updates scores [k0, k0 + n) of one connection; returns the tile's first argmax (offset). */
ALWAYS_INLINE int32_t update_tile(float *restrict s, const float *restrict v, float *restrict b,
                                  float d, const job_t *job, const int64_t n, const int mode,
                                  const int use_wd, int32_t *best_key) {
    int32_t key[TILE];
    const float neg_lr = job->neg_lr, momentum = job->momentum, wd = job->wd;
    for (int64_t k = 0; k < n; k++) {
        float g = d * v[k];
        if (use_wd) g = fmaf(s[k], wd, g);
        if (mode == MODE_FIRST) b[k] = g;
        if (mode == MODE_MOMENTUM) {
            g = b[k] * momentum + g;
            b[k] = g;
        }
        const float t = fmaf(g, neg_lr, s[k]);
        s[k] = t;
        key[k] = order_key(t);
    }
    int32_t top = INT32_MIN;
    for (int64_t k = 0; k < n; k++) top = key[k] > top ? key[k] : top;
    int32_t first = (int32_t)n;
    for (int64_t k = 0; k < n; k++) {
        const int32_t here = key[k] == top ? (int32_t)k : (int32_t)n;
        first = here < first ? here : first;
    }
    *best_key = top;
    return first;
}

/* Rows [lo, hi); K, shared, mode and use_wd are literals at every call site, so each call
 * inlines into a loop specialised for them (a short constant K unrolls and vectorises). */
ALWAYS_INLINE void update_rows(const job_t *job, int64_t lo, int64_t hi, const int64_t K,
                               const int shared, const int mode, const int use_wd) {
    for (int64_t i = lo; i < hi; i++) {
        float *s = job->scores + i * K;
        const float *v = shared ? job->values : job->values + i * K;
        float *b = mode == MODE_PLAIN ? 0 : job->buffer + i * K;
        const float d = job->grad[i];
        int32_t best_key = INT32_MIN, best = 0;
        for (int64_t k0 = 0; k0 < K; k0 += TILE) {
            const int64_t n = K - k0 < TILE ? K - k0 : TILE;
            int32_t tile_key;
            const int32_t at = update_tile(s + k0, v + k0, mode == MODE_PLAIN ? 0 : b + k0, d,
                                           job, n, mode, use_wd, &tile_key);
            if (k0 == 0 || tile_key > best_key) { /* strict: an equal later tile loses */
                best_key = tile_key;
                best = (int32_t)k0 + at;
            }
        }
        job->weight[i] = v[best];
    }
}

#define ROWS(K, SHARED)                                                                    \
    switch (variant) {                                                                     \
    case 0: update_rows(job, lo, hi, K, SHARED, MODE_PLAIN, 0); break;                     \
    case 1: update_rows(job, lo, hi, K, SHARED, MODE_PLAIN, 1); break;                     \
    case 2: update_rows(job, lo, hi, K, SHARED, MODE_FIRST, 0); break;                     \
    case 3: update_rows(job, lo, hi, K, SHARED, MODE_FIRST, 1); break;                     \
    case 4: update_rows(job, lo, hi, K, SHARED, MODE_MOMENTUM, 0); break;                  \
    default: update_rows(job, lo, hi, K, SHARED, MODE_MOMENTUM, 1); break;                 \
    }

#define SHARING(K)                    \
    if (shared) {                     \
        ROWS(K, 1)                    \
    } else {                          \
        ROWS(K, 0)                    \
    }

static void dispatch(const job_t *job, int64_t lo, int64_t hi, int shared, int variant) {
    switch (job->k) {
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
    const job_t job = {scores, values, buffer, grad, weight, rows, k, -lr, momentum, weight_decay};
    const int variant = mode * 2 + (use_wd != 0);
    if (threads < 1 || rows * k < PARALLEL_MIN) threads = 1;
    /* One contiguous block of rows per thread, each a whole number of 64-byte lines of the
     * weight, so that no two threads write the same cache line. */
#pragma omp parallel num_threads(threads)
    {
        int64_t team = 1, me = 0;
#ifdef _OPENMP
        team = omp_get_num_threads();
        me = omp_get_thread_num();
#endif
        const int64_t lines = (rows + 15) / 16;
        const int64_t lo = rows < 16 * (lines * me / team) ? rows : 16 * (lines * me / team);
        const int64_t end = 16 * (lines * (me + 1) / team);
        const int64_t hi = rows < end ? rows : end;
        dispatch(&job, lo, hi, shared, variant);
    }
    return 0;
}
