// Gated triangle attention (AF2 suppl. Alg. 13/14) for inference on the CPU, float32, one call per chunk of rows.
//
// Why: at ESMFold's widths (4 heads of 32, L = 256) the attention products are the largest non-matmul share of a
// trunk block, and PyTorch's CPU flash kernel runs them at about half the float32 matmul rate (docs/structure.md).
// Every row's attention shares one bias [H, J, J] (triangle bias + key mask), so a (row, head) unit is a small
// dense problem: scores for a block of queries against all keys (J fits in cache at the lengths the trunk meets),
// an exact two-pass softmax, then the product with the values. The gate is applied as the output is written, in
// place of the gate's own columns (their only reader is this unit).
//
// Portable across x86 widths: GCC vector extensions of W floats, W = 16 with AVX-512, else 8 (AVX2); the build
// uses -march=native, so the tile sizes below follow the register file of the machine that builds it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <omp.h>

#if defined(__AVX512F__)
constexpr int W = 16;
constexpr int QT = 6, KT = 4;   // scores: 6 queries x 4 key vectors = 24 of 32 registers
constexpr int QO = 12, DT = 2;  // output: 12 queries x 2 value vectors (a 32-wide head) = 24 accumulators
#else
constexpr int W = 8;
constexpr int QT = 4, KT = 2;   // 8 accumulators + 2 keys + a broadcast of 16 registers
constexpr int QO = 6, DT = 2;   // 12 accumulators
#endif
constexpr int QB = 12;  // queries per block: a multiple of QT and QO

typedef float vf __attribute__((vector_size(W * 4)));
typedef int32_t vi __attribute__((vector_size(W * 4)));

static inline vf splat(float x) { return vf{} + x; }
static inline vf load(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf load_part(const float* p, int n, float fill) {  // the first n lanes from p, the rest fill
  if (n >= W) return load(p);
  vf v = splat(fill);
  std::memcpy(&v, p, sizeof(float) * std::max(n, 0));
  return v;
}
static inline void store_part(float* p, vf v, int n) {
  if (n >= W) store(p, v); else std::memcpy(p, &v, sizeof(float) * std::max(n, 0));
}
static inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// exp(x) as 2^n * p(r), x = n ln2 + r, |r| <= ln2 / 2, Cephes' expf polynomial (relative error about 1e-7);
// 0 below -87.3 (where float32 underflows), as the reference's exp does for masked keys
static inline vf exp_v(vf x) {
  const vf lo = splat(-87.3f), hi = splat(88.3f);
  vf xc = x < lo ? lo : (x > hi ? hi : x);
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer kept in the low bits
  vf t = xc * 1.44269504088896341f + magic;
  vf n = t - magic;
  vi ni = (vi)t - (vi)magic;
  vf r = xc - n * 0.693359375f - n * -2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  vf y = (vf)((vi)p + (ni << 23));
  return x < lo ? vf{} : y;
}

static inline float hmax(vf v) { float m = v[0]; for (int i = 1; i < W; ++i) m = std::max(m, v[i]); return m; }
static inline float hsum(vf v) { float s = 0; for (int i = 0; i < W; ++i) s += v[i]; return s; }

// S[qi, j] = sum_d Qs[qi, d] Kt[d, j] + bias[qi, j] for NQ queries and NK key vectors from j0; keys >= J get -inf
template <int NQ, int NK>
static inline void scores(const float* Qs, int D, const float* Kt, int Jp, int j0, const float* bias, int J,
                          float* S) {
  vf acc[NQ][NK];
  for (int q = 0; q < NQ; ++q)
    for (int v = 0; v < NK; ++v) acc[q][v] = load_part(bias + (size_t)q * J + j0 + v * W, J - j0 - v * W, -INFINITY);
  for (int d = 0; d < D; ++d) {
    vf k[NK];
    for (int v = 0; v < NK; ++v) k[v] = load(Kt + (size_t)d * Jp + j0 + v * W);
    for (int q = 0; q < NQ; ++q) {
      vf b = splat(Qs[q * D + d]);
      for (int v = 0; v < NK; ++v) acc[q][v] += b * k[v];
    }
  }
  for (int q = 0; q < NQ; ++q)
    for (int v = 0; v < NK; ++v) store(S + (size_t)q * Jp + j0 + v * W, acc[q][v]);
}

// O[qi, d0 : d0 + ND W] = sum_j P[qi, j] V[j, d0 : ...] for NQ queries
template <int NQ, int ND>
static inline void mix(const float* P, int Jp, const float* V, int Dv, int d0, int J, float* O) {
  vf acc[NQ][ND] = {};
  for (int j = 0; j < J; ++j) {
    vf x[ND];
    for (int v = 0; v < ND; ++v) x[v] = load(V + (size_t)j * Dv + d0 + v * W);
    for (int q = 0; q < NQ; ++q) {
      vf p = splat(P[(size_t)q * Jp + j]);
      for (int v = 0; v < ND; ++v) acc[q][v] += p * x[v];
    }
  }
  for (int q = 0; q < NQ; ++q)
    for (int v = 0; v < ND; ++v) store(O + (size_t)q * Dv + d0 + v * W, acc[q][v]);
}

struct Buffers {
  float *kt, *v, *q, *s, *o;
  Buffers(int J, int D) {
    int Jp = round_up(J, W), Dv = round_up(D, W * DT);
    kt = alloc((size_t)D * Jp); v = alloc((size_t)Jp * Dv); q = alloc((size_t)J * D);
    s = alloc((size_t)QB * Jp); o = alloc((size_t)QB * Dv);
    std::memset(kt, 0, sizeof(float) * (size_t)D * Jp);  // padding keys stay 0 (their scores are -inf by the bias)
    std::memset(v, 0, sizeof(float) * (size_t)Jp * Dv);  // and padding lanes of the values 0
  }
  ~Buffers() { for (float* p : {kt, v, q, s, o}) std::free(p); }
  static float* alloc(size_t n) { return (float*)std::aligned_alloc(64, (n * sizeof(float) + 127) / 64 * 64); }
};

// one (row, head): x holds the row's J positions, each `ld` floats: q | k | v | gate, each H * D wide
static void unit(float* x, int64_t ld, int J, int H, int D, int h, const float* bias, const float* gate_bias,
                 float scale, Buffers& b) {
  const int Jp = round_up(J, W), Dv = round_up(D, W * DT), HD = H * D;
  for (int j = 0; j < J; ++j) {
    const float* row = x + j * ld + h * D;
    for (int d = 0; d < D; ++d) {
      b.q[j * D + d] = row[d] * scale;
      b.kt[(size_t)d * Jp + j] = row[HD + d];
      b.v[(size_t)j * Dv + d] = row[2 * HD + d];
    }
  }
  for (int q0 = 0; q0 < J; q0 += QB) {
    const int nq = std::min(QB, J - q0);
    const float* bq = bias + (size_t)q0 * J;
    for (int qi = 0; qi < nq;) {
      const float* Qs = b.q + (q0 + qi) * D;
      float* S = b.s + (size_t)qi * Jp;
      const float* bb = bq + (size_t)qi * J;
      int j0 = 0;
      if (nq - qi >= QT) {
        for (; j0 + KT * W <= Jp; j0 += KT * W) scores<QT, KT>(Qs, D, b.kt, Jp, j0, bb, J, S);
        for (; j0 < Jp; j0 += W) scores<QT, 1>(Qs, D, b.kt, Jp, j0, bb, J, S);
        qi += QT;
      } else {
        for (; j0 + KT * W <= Jp; j0 += KT * W) scores<1, KT>(Qs, D, b.kt, Jp, j0, bb, J, S);
        for (; j0 < Jp; j0 += W) scores<1, 1>(Qs, D, b.kt, Jp, j0, bb, J, S);
        qi += 1;
      }
    }
    float inv[QB];
    for (int qi = 0; qi < nq; ++qi) {  // exact softmax over the whole row: max, exp, sum
      float* S = b.s + (size_t)qi * Jp;
      vf m = splat(-INFINITY);
      for (int j = 0; j < Jp; j += W) m = load(S + j) > m ? load(S + j) : m;
      const float mx = hmax(m);
      vf sum{};
      for (int j = 0; j < Jp; j += W) {
        vf e = exp_v(load(S + j) - mx);
        store(S + j, e);
        sum += e;
      }
      inv[qi] = 1.0f / hsum(sum);
    }
    for (int d0 = 0; d0 < Dv; d0 += DT * W) {
      int qi = 0;
      for (; qi + QO <= nq; qi += QO) mix<QO, DT>(b.s + (size_t)qi * Jp, Jp, b.v, Dv, d0, J, b.o + qi * Dv);
      for (; qi < nq; ++qi) mix<1, DT>(b.s + (size_t)qi * Jp, Jp, b.v, Dv, d0, J, b.o + qi * Dv);
    }
    for (int qi = 0; qi < nq; ++qi) {  // gate in place: g <- sigmoid(g + gate bias) * attention output
      float* g = x + (q0 + qi) * ld + 3 * HD + h * D;
      const float* gb = gate_bias + h * D;
      const vf s = splat(inv[qi]);
      for (int d = 0; d < D; d += W) {
        const int n = D - d;
        vf gv = load_part(g + d, n, 0.0f) + load_part(gb + d, n, 0.0f);
        vf o = load(b.o + qi * Dv + d) * s;
        store_part(g + d, o / (1.0f + exp_v(-gv)), n);
      }
    }
  }
}

extern "C" {
// x: [R, J, ld] floats (q | k | v | gate columns, H * D each, from column 0); bias: [H, J, J] contiguous;
// gate_bias: [H * D]. Writes the gated attention output over the gate columns.
void xt_triangle_attention(float* x, int64_t ld, int R, int J, int H, int D, const float* bias,
                           const float* gate_bias, float scale, int threads) {
#pragma omp parallel num_threads(threads)
  {
    Buffers b(J, D);
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < R * H; ++u) {
      const int r = u / H, h = u % H;
      unit(x + (size_t)r * J * ld, ld, J, H, D, h, bias + (size_t)h * J * J, gate_bias, scale, b);
    }
  }
}
}  // extern "C"
