/* Conv2D(1 -> C, 3x3, valid) + bias -> MaxPool2D(2x2, stride 2) -> ReLU, channels last.
   The 4x-larger conv output is never stored. The forward keeps the pooled, rectified value
   and which of the four window positions held the maximum (the first one on ties, as
   TensorFlow's pooling gradient does), or RELU_ZERO where ReLU cut it to 0; the backward
   sends each pooled gradient to that position only and sums the weight and bias gradients. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
#endif

#define MAXC 512
#define RELU_ZERO 255

/* Threads: the OpenMP runtime this library links (libgomp.so.1) is the one torch has already
   loaded, so the kernels share torch's thread pool and its torch.set_num_threads setting.

   x: (N, H, W); wt: (9, C) = kernel taps x channels; b: (C);
   out: (N, PH, PW, C); idx: (N, PH, PW, C). */
void convpool_forward(const float *restrict x, const float *restrict wt, const float *restrict b,
                      float *restrict out, uint8_t *restrict idx, int64_t N, int64_t threads,
                      int64_t H, int64_t W, int64_t C) {
    const int64_t PH = (H - 2) / 2, PW = (W - 2) / 2;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++) {
        float v[4][MAXC];
        const float *xn = x + n * H * W;
        for (int64_t i = 0; i < PH; i++) {
            for (int64_t j = 0; j < PW; j++) {
                for (int p = 0; p < 4; p++) {
                    const float *q = xn + (2 * i + (p >> 1)) * W + 2 * j + (p & 1);
                    const float t0 = q[0], t1 = q[1], t2 = q[2], t3 = q[W], t4 = q[W + 1],
                                t5 = q[W + 2], t6 = q[2 * W], t7 = q[2 * W + 1], t8 = q[2 * W + 2];
                    float *restrict vp = v[p];
                    for (int64_t ch = 0; ch < C; ch++)
                        vp[ch] = b[ch] + t0 * wt[ch] + t1 * wt[C + ch] + t2 * wt[2 * C + ch]
                               + t3 * wt[3 * C + ch] + t4 * wt[4 * C + ch] + t5 * wt[5 * C + ch]
                               + t6 * wt[6 * C + ch] + t7 * wt[7 * C + ch] + t8 * wt[8 * C + ch];
                }
                const int64_t cell = ((n * PH + i) * PW + j) * C;
                for (int64_t ch = 0; ch < C; ch++) {
                    float best = v[0][ch];
                    uint8_t bi = 0;
                    if (v[1][ch] > best) { best = v[1][ch]; bi = 1; }
                    if (v[2][ch] > best) { best = v[2][ch]; bi = 2; }
                    if (v[3][ch] > best) { best = v[3][ch]; bi = 3; }
                    out[cell + ch] = best > 0.0f ? best : 0.0f;
                    idx[cell + ch] = best > 0.0f ? bi : RELU_ZERO;
                }
            }
        }
    }
}

/* g: (N, PH, PW, C) gradient of the output. Thread t adds its samples' gradients into
   dwt[t]: (9, C) and db[t]: (C), zeroed by the caller (float within a sample, double across
   samples); a static schedule gives each thread the same samples every call, so the sums
   are deterministic for a given thread count. */
void convpool_backward(const float *restrict x, const float *restrict g,
                       const uint8_t *restrict idx, double *restrict dwt_all,
                       double *restrict db_all, int64_t N, int64_t threads, int64_t H,
                       int64_t W, int64_t C) {
    const int64_t PH = (H - 2) / 2, PW = (W - 2) / 2;
#pragma omp parallel num_threads(threads)
    {
    double *restrict dwt = dwt_all + omp_get_thread_num() * 9 * C;
    double *restrict db = db_all + omp_get_thread_num() * C;
    float acc[9][MAXC], accb[MAXC], gv[MAXC];
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * H * W;
        memset(acc, 0, sizeof(acc));
        memset(accb, 0, sizeof(accb));
        for (int64_t i = 0; i < PH; i++) {
            for (int64_t j = 0; j < PW; j++) {
                const int64_t cell = ((n * PH + i) * PW + j) * C;
                const uint8_t *restrict ic = idx + cell;
                for (int64_t ch = 0; ch < C; ch++) {  /* nothing flows through ReLU's zeros */
                    gv[ch] = ic[ch] == RELU_ZERO ? 0.0f : g[cell + ch];
                    accb[ch] += gv[ch];
                }
                float t[4][9];
                for (int p = 0; p < 4; p++) {
                    const float *q = xn + (2 * i + (p >> 1)) * W + 2 * j + (p & 1);
                    for (int k = 0; k < 9; k++) t[p][k] = q[(k / 3) * W + k % 3];
                }
                for (int k = 0; k < 9; k++) {  /* each channel's tap at its max position */
                    const float t0 = t[0][k], t1 = t[1][k], t2 = t[2][k], t3 = t[3][k];
                    float *restrict a = acc[k];
                    for (int64_t ch = 0; ch < C; ch++) {
                        const uint8_t p = ic[ch];
                        a[ch] += gv[ch] * (p == 0 ? t0 : p == 1 ? t1 : p == 2 ? t2 : t3);
                    }
                }
            }
        }
        for (int k = 0; k < 9; k++)
            for (int64_t ch = 0; ch < C; ch++) dwt[k * C + ch] += acc[k][ch];
        for (int64_t ch = 0; ch < C; ch++) db[ch] += accb[ch];
    }
}
}
