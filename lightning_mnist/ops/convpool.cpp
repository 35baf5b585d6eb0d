// Conv2D(1 -> C, 3x3, valid) + bias -> MaxPool2D(2x2, stride 2) -> ReLU, channels last, CPU.
//
// The 4x-larger conv output is never stored. The forward keeps the pooled, rectified value and
// which of the four window positions held the maximum (the first one on ties, as TensorFlow's
// pooling gradient does), or RELU_ZERO where ReLU cut it to 0; the backward sends each pooled
// gradient to that position only and sums the weight and bias gradients.
//
// Registered as the operators lightning_mnist::convpool_relu_fwd / _bwd (TORCH_LIBRARY), so
// torch.compile and torch.export see them; their fake (meta) kernels and the autograd formula
// are registered from Python (lightning_mnist/ops/convpool.py). Work is split with
// at::parallel_for, which runs in torch's own intra-op thread pool.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cstring>
#include <tuple>

namespace {

constexpr int64_t MAXC = 512;
constexpr uint8_t RELU_ZERO = 255;

void check_inputs(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat,
              "convpool_relu: x must be a float32 CPU tensor");
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1, "convpool_relu: x must be (N, 1, H, W)");
  TORCH_CHECK(weight.dim() == 4 && weight.size(1) == 1 && weight.size(2) == 3 &&
                  weight.size(3) == 3 && weight.size(0) <= MAXC,
              "convpool_relu: weight must be (C, 1, 3, 3) with C <= 512");
}

// Samples [begin, end): plain pointers and values, so the compiler can keep everything in
// registers and vectorise the channel loops (no aliasing through captured references).
void forward_samples(const float* __restrict__ xp, const float* __restrict__ w,
                     const float* __restrict__ bp, float* __restrict__ op,
                     uint8_t* __restrict__ ip, int64_t begin, int64_t end, int64_t H, int64_t W,
                     int64_t C) {
  const int64_t PH = (H - 2) / 2, PW = (W - 2) / 2;
  float v[4][MAXC];
  for (int64_t n = begin; n < end; n++) {
    const float* xn = xp + n * H * W;
    for (int64_t i = 0; i < PH; i++) {
      for (int64_t j = 0; j < PW; j++) {
        for (int p = 0; p < 4; p++) {
          const float* q = xn + (2 * i + (p >> 1)) * W + 2 * j + (p & 1);
          const float t0 = q[0], t1 = q[1], t2 = q[2], t3 = q[W], t4 = q[W + 1], t5 = q[W + 2],
                      t6 = q[2 * W], t7 = q[2 * W + 1], t8 = q[2 * W + 2];
          float* __restrict__ vp = v[p];
          for (int64_t ch = 0; ch < C; ch++)
            vp[ch] = bp[ch] + t0 * w[ch] + t1 * w[C + ch] + t2 * w[2 * C + ch] +
                     t3 * w[3 * C + ch] + t4 * w[4 * C + ch] + t5 * w[5 * C + ch] +
                     t6 * w[6 * C + ch] + t7 * w[7 * C + ch] + t8 * w[8 * C + ch];
        }
        const int64_t cell = ((n * PH + i) * PW + j) * C;
        for (int64_t ch = 0; ch < C; ch++) {
          float best = v[0][ch];
          uint8_t bi = 0;
          if (v[1][ch] > best) { best = v[1][ch]; bi = 1; }
          if (v[2][ch] > best) { best = v[2][ch]; bi = 2; }
          if (v[3][ch] > best) { best = v[3][ch]; bi = 3; }
          op[cell + ch] = best > 0.0f ? best : 0.0f;
          ip[cell + ch] = best > 0.0f ? bi : RELU_ZERO;
        }
      }
    }
  }
}

// Samples [begin, end) added into dw (9, C) and db (C).
void backward_samples(const float* __restrict__ xp, const float* __restrict__ gp,
                      const uint8_t* __restrict__ ip, double* __restrict__ dw,
                      double* __restrict__ db, int64_t begin, int64_t end, int64_t H, int64_t W,
                      int64_t C) {
  const int64_t PH = (H - 2) / 2, PW = (W - 2) / 2;
  float acc[9][MAXC], accb[MAXC], gv[MAXC];
  for (int64_t n = begin; n < end; n++) {
    const float* xn = xp + n * H * W;
    std::memset(acc, 0, sizeof(acc));
    std::memset(accb, 0, sizeof(accb));
    for (int64_t i = 0; i < PH; i++) {
      for (int64_t j = 0; j < PW; j++) {
        const int64_t cell = ((n * PH + i) * PW + j) * C;
        const uint8_t* __restrict__ ic = ip + cell;
        for (int64_t ch = 0; ch < C; ch++) {  // nothing flows through ReLU's zeros
          gv[ch] = ic[ch] == RELU_ZERO ? 0.0f : gp[cell + ch];
          accb[ch] += gv[ch];
        }
        float t[4][9];
        for (int p = 0; p < 4; p++) {
          const float* q = xn + (2 * i + (p >> 1)) * W + 2 * j + (p & 1);
          for (int tap = 0; tap < 9; tap++) t[p][tap] = q[(tap / 3) * W + tap % 3];
        }
        for (int tap = 0; tap < 9; tap++) {  // each channel's tap at its max position
          const float t0 = t[0][tap], t1 = t[1][tap], t2 = t[2][tap], t3 = t[3][tap];
          float* __restrict__ a = acc[tap];
          for (int64_t ch = 0; ch < C; ch++) {
            const uint8_t p = ic[ch];
            a[ch] += gv[ch] * (p == 0 ? t0 : p == 1 ? t1 : p == 2 ? t2 : t3);
          }
        }
      }
    }
    for (int tap = 0; tap < 9; tap++)
      for (int64_t ch = 0; ch < C; ch++) dw[tap * C + ch] += acc[tap][ch];
    for (int64_t ch = 0; ch < C; ch++) db[ch] += accb[ch];
  }
}

// x: (N, 1, H, W) -> out: (N, PH, PW, C) float, idx: (N, PH, PW, C) uint8.
std::tuple<at::Tensor, at::Tensor> convpool_relu_fwd(const at::Tensor& x_, const at::Tensor& weight,
                                                     const at::Tensor& bias) {
  check_inputs(x_, weight);
  const at::Tensor x = x_.contiguous();
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3), C = weight.size(0);
  const int64_t PH = (H - 2) / 2, PW = (W - 2) / 2;
  const at::Tensor wt = weight.reshape({C, 9}).t().contiguous();  // (9, C): taps x channels
  const at::Tensor b = bias.contiguous();
  at::Tensor out = at::empty({N, PH, PW, C}, x.options());
  at::Tensor idx = at::empty({N, PH, PW, C}, x.options().dtype(at::kByte));
  const float* xp = x.data_ptr<float>();
  const float* w = wt.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* op = out.data_ptr<float>();
  uint8_t* ip = idx.data_ptr<uint8_t>();
  at::parallel_for(0, N, 1, [=](int64_t begin, int64_t end) {
    forward_samples(xp, w, bp, op, ip, begin, end, H, W, C);
  });
  return {out, idx};
}

// grad: (N, PH, PW, C) -> grad_weight (C, 1, 3, 3), grad_bias (C).
std::tuple<at::Tensor, at::Tensor> convpool_relu_bwd(const at::Tensor& grad_, const at::Tensor& x_,
                                                     const at::Tensor& idx_) {
  const at::Tensor x = x_.contiguous(), g = grad_.contiguous(), idx = idx_.contiguous();
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3), C = idx.size(3);
  TORCH_CHECK(C <= MAXC && g.sizes() == idx.sizes(), "convpool_relu_bwd: bad shapes");
  // A fixed split into K chunks, each summed into its own row (float within a sample, double
  // across samples) and the rows added in order: deterministic for a given thread count.
  const int64_t K = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), N));
  at::Tensor dwt = at::zeros({K, 9, C}, x.options().dtype(at::kDouble));
  at::Tensor db = at::zeros({K, C}, x.options().dtype(at::kDouble));
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  const uint8_t* ip = idx.data_ptr<uint8_t>();
  double* dwp = dwt.data_ptr<double>();
  double* dbp = db.data_ptr<double>();
  at::parallel_for(0, K, 1, [=](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; k++)
      backward_samples(xp, gp, ip, dwp + k * 9 * C, dbp + k * C, k * N / K, (k + 1) * N / K, H, W,
                       C);
  });
  at::Tensor grad_w = dwt.sum(0).t().reshape({C, 1, 3, 3}).to(at::kFloat).contiguous();
  return {grad_w, db.sum(0).to(at::kFloat)};
}

}  // namespace

TORCH_LIBRARY(lightning_mnist, m) {
  m.def("convpool_relu_fwd(Tensor x, Tensor weight, Tensor bias) -> (Tensor, Tensor)");
  m.def("convpool_relu_bwd(Tensor grad, Tensor x, Tensor idx) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lightning_mnist, CPU, m) {
  m.impl("convpool_relu_fwd", &convpool_relu_fwd);
  m.impl("convpool_relu_bwd", &convpool_relu_bwd);
}
