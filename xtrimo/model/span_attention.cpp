// bf16 attention for narrow heads on x86 CPUs with AVX512_BF16 (forward and backward), built and loaded by
// xtrimo/model/span_attention.py.
//
// Why: at ESM-2 8M's 16-wide heads no attention kernel in PyTorch's CPU build is fast in bf16 (flash bf16 is slower
// than flash fp32 there, docs/training.md): the products of attention are tiny-K or tiny-N GEMMs, which generic
// GEMM code runs far below peak. Here every product is written around `vdpbf16ps` with one operand broadcast from
// memory (span_attention_simd.h), so that a 16-wide head is one register, and the softmax runs on fp32 scores.
// One job is one (batch row, head). The forward pass keeps the scores of FB query rows row by row (the softmax
// reduces along each row); the backward pass puts RB query rows in the lanes of each vector and walks the keys (the
// faster of the two arrangements for each pass, measured at head widths 16-32).
//
// Tensors (bf16 stored as uint16_t, d contiguous):
//   q, k, v: [B, L, H, D] with strides (sb, si, sh) in elements; out, dout, dq, dk, dv: [B, L, H, D] contiguous;
//   lse: [B, H, L] fp32 (natural log).
// Mask: row b's real tokens are its first lengths[b] columns; query i (< n) sees key j iff
// j < min(n, max(divisions[b], i + 1)) (bidirectional prefix, causal after it). Rows i >= n give zeros.
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "span_attention_simd.h"

using namespace xt;

namespace {

constexpr int FB = 32;  // query rows per block of the forward pass (one row of scores after the other)
constexpr int RB = 16;  // query rows per block of the backward pass: the 16 lanes of a vector
constexpr int NK = 16;  // keys per step of the score products: 16 accumulators cover the dot product's latency

struct Problem {
  int B, L, H, D;
  const int32_t* lengths;
  const int32_t* divisions;
  float scale;
  int Dp() const { return round_up(D, 16); }
  int length(int b) const { return std::min(std::max(lengths[b], 0), L); }
  size_t at(int b, int i, int h) const { return (((size_t)b * L + i) * H + h) * D; }  // contiguous tensors
};

inline int row_limit(int i, int n, int div) { return i < n ? std::min(n, std::max(div, i + 1)) : 0; }

// scratch of one thread, carved into 64-byte aligned parts
class Scratch {
 public:
  ~Scratch() { free(mem_); }
  template <size_t N>
  void carve(const size_t (&bytes)[N], char* (&parts)[N]) {
    size_t total = 0;
    for (size_t b : bytes) total += (b + 63) / 64 * 64;
    if (total > size_) {
      free(mem_);
      mem_ = (char*)aligned_alloc(64, total);
      size_ = total;
    }
    char* m = mem_;
    for (size_t i = 0; i < N; ++i) { parts[i] = m; m += (bytes[i] + 63) / 64 * 64; }
  }

 private:
  char* mem_ = nullptr;
  size_t size_ = 0;
};

// A block of RB query rows from i0 as the lanes of every vector: each row's key limit, the block's widest one
// rounded up to NK (the keys its products run over; padded keys are zero rows, masked out)
struct Block {
  int i0, rows;
  __m512i lim;
  int keys;
  Block(int i0_, int n, int div) : i0(i0_), rows(std::min(RB, n - i0_)) {
    alignas(64) int32_t l[RB];
    for (int r = 0; r < RB; ++r) l[r] = row_limit(i0 + r, n, div);
    lim = _mm512_load_si512(l);
    keys = round_up(l[rows - 1], NK);
  }
  __mmask16 sees(int j) const { return _mm512_cmpgt_epi32_mask(lim, _mm512_set1_epi32(j)); }
};

// S[r][j] = Q[r] . K[j] for MR rows over `tiles` 16-key tiles (fp32 rows of stride nk), and each row's running
// maximum over its visible keys (j < lim[r]) in mx[r]
template <int MR>
inline void score_block(const bf16* Q, int D, const bf16* Kp, int nk, float* S, int tiles, const int* lim,
                        __m512* mx) {
  int t = 0;
  for (; t + 4 <= tiles; t += 4) {
    __m512 acc[MR][4];
    pair_dot<MR, 4>(Q, D, Kp, nk, 16 * t, D / 2, acc);
#pragma GCC unroll 4
    for (int a = 0; a < MR; ++a)
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        _mm512_storeu_ps(S + (size_t)a * nk + 16 * (t + c), acc[a][c]);
        mx[a] = _mm512_mask_max_ps(mx[a], first(lim[a] - 16 * (t + c)), mx[a], acc[a][c]);
      }
  }
  for (; t < tiles; ++t) {
    __m512 acc[MR][1];
    pair_dot<MR, 1>(Q, D, Kp, nk, 16 * t, D / 2, acc);
#pragma GCC unroll 4
    for (int a = 0; a < MR; ++a) {
      _mm512_storeu_ps(S + (size_t)a * nk + 16 * t, acc[a][0]);
      mx[a] = _mm512_mask_max_ps(mx[a], first(lim[a] - 16 * t), mx[a], acc[a][0]);
    }
  }
}

// One block of `rows` query rows (even) from i0: softmax(S scale) V into out's rows and lse (unnormalised bf16
// probabilities in the product, the fp32 sum applied to its result).
void forward_block(const Problem& pr, int n, int div, int i0, int rows, const bf16* Q, const bf16* Kp,
                   const bf16* Vp, int nk, float* S, bf16* P, float* O, bf16* out, float* lrow) {
  const int D = pr.D, Dp = pr.Dp();
  const int tiles = (row_limit(std::min(i0 + rows, n) - 1, n, div) + 15) / 16;  // the block's widest row
  int lim[FB];
  __m512 mx[FB];
  for (int r = 0; r < rows; ++r) { lim[r] = row_limit(i0 + r, n, div); mx[r] = _mm512_set1_ps(-INFINITY); }
  int r = 0;
  for (; r + 4 <= rows; r += 4)
    score_block<4>(Q + (size_t)(i0 + r) * D, D, Kp, nk, S + (size_t)r * nk, tiles, lim + r, mx + r);
  if (r < rows) score_block<2>(Q + (size_t)(i0 + r) * D, D, Kp, nk, S + (size_t)r * nk, tiles, lim + r, mx + r);
  alignas(64) float m2[FB], total[FB];
  const __m512 sc2 = _mm512_set1_ps(pr.scale * LOG2E);  // exp(x) = 2^(x log2 e)
  for (r = 0; r < rows; ++r) {
    const float* s = S + (size_t)r * nk;
    bf16* p = P + (size_t)r * nk;
    m2[r] = lim[r] ? _mm512_reduce_max_ps(mx[r]) * pr.scale * LOG2E : 0.0f;
    const __m512 mv = _mm512_set1_ps(m2[r]);
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < tiles * 16; j += 16) {
      __m512 e = _mm512_maskz_mov_ps(first(lim[r] - j), exp2_512(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), sc2, mv)));
      sum = _mm512_add_ps(sum, e);
      store_row(p + j, e, 0xffff);
    }
    total[r] = lim[r] ? _mm512_reduce_add_ps(sum) : 1.0f;
  }
  for (r = 0; r < rows; r += 16) {  // lse and 1 / sum for 16 rows at a time
    const __mmask16 m = first(rows - r);
    const __m512 tot = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, total + r);
    const __m512 lse = _mm512_mul_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, m2 + r), log2_512(tot)),
                                     _mm512_set1_ps(LN2));
    _mm512_mask_storeu_ps(lrow + i0 + r, m & first(n - i0 - r), lse);
    _mm512_mask_storeu_ps(total + r, m, _mm512_div_ps(_mm512_set1_ps(1.0f), tot));
  }
  mix_rows<false>(P, nk, Vp, Dp, tiles * 8, O, Dp, rows);
  const size_t so = (size_t)pr.H * D;
  for (r = 0; r < rows && i0 + r < n; ++r) {
    const __m512 iv = _mm512_set1_ps(total[r]);
    for (int d = 0; d < D; d += 16)
      store_row(out + (size_t)(i0 + r) * so + d, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)r * Dp + d), iv),
                first(D - d));
  }
}

void forward_one(const Problem& pr, const bf16* q, const bf16* k, const bf16* v, const int64_t* qs,
                 const int64_t* ks, const int64_t* vs, bf16* out, float* lse, int b, int h, Scratch& scratch) {
  const int L = pr.L, D = pr.D, Dp = pr.Dp(), n = pr.length(b), div = pr.divisions[b];
  const int nk = round_up(std::max(n, 1), 16), nr = round_up(std::max(n, 1), FB);
  bf16* orow = out + pr.at(b, 0, h);
  float* lrow = lse + ((size_t)b * pr.H + h) * L;
  for (int i = n; i < L; ++i) { memset(orow + pr.at(0, i, 0), 0, D * 2); lrow[i] = 0.0f; }
  if (n == 0) return;
  const size_t bytes[] = {(size_t)nr * D * 2, (size_t)D / 2 * nk * 4, (size_t)nk * Dp * 2,  // Q, Kp, Vp
                          (size_t)FB * nk * 4, (size_t)FB * nk * 2, (size_t)FB * Dp * 4};  // S, P, O
  char* parts[6];
  scratch.carve(bytes, parts);
  bf16 *Q = (bf16*)parts[0], *Kp = (bf16*)parts[1], *Vp = (bf16*)parts[2], *P = (bf16*)parts[4];
  pack_rows(slice(q, qs, b, h), n, nr, D, Q);
  pack_dpairs(slice(k, ks, b, h), n, nk, D, Kp);
  pack_rpairs(slice(v, vs, b, h), n, nk, D, Dp, Vp);  // pairs of keys
  for (int i0 = 0; i0 < n; i0 += FB)
    forward_block(pr, n, div, i0, std::min(FB, round_up(n - i0, 2)), Q, Kp, Vp, nk, (float*)parts[3], P,
                  (float*)parts[5], orow, lrow);
}

struct Packed {  // one job's operands in the layouts the backward products read, and its accumulators
  bf16 *Qp, *dOp, *K, *V, *Kvn, *Qt, *dOt;  // d-pairs over rows, rows, r-pairs over keys / rows
  bf16 *Pr, *dSr, *dSt;                     // a block's P^T and dS^T by key ([keys][RB]), dS^T in key pairs
  float *dKr, *dVr, *dQt, *Delta, *lse2;    // dK, dV rows [nk][Dp]; dQ^T [Dp][RB]; per row
};

// s[k] = sum_p Qp[p] . K[k, 2p:2p+2] and dp[k] = sum_p dOp[p] . V[k, 2p:2p+2] for MK keys (rows of K and V), the
// vectors Qp[p], dOp[p] at row stride 2 * nr: the two score products of the backward pass in one loop
template <int MK>
inline void pair_dot2(const bf16* K, const bf16* V, int D, const bf16* Qp, const bf16* dOp, int nr, __m512* s,
                      __m512* dp) {
#pragma GCC unroll 16
  for (int k = 0; k < MK; ++k) s[k] = dp[k] = _mm512_setzero_ps();
  for (int p = 0; p < D / 2; ++p) {
    const __m512bh q = load_bh(Qp + (size_t)p * nr * 2), o = load_bh(dOp + (size_t)p * nr * 2);
#pragma GCC unroll 16
    for (int k = 0; k < MK; ++k) {
      s[k] = _mm512_dpbf16_ps(s[k], q, pair(K + (size_t)k * D + 2 * p));
      dp[k] = _mm512_dpbf16_ps(dp[k], o, pair(V + (size_t)k * D + 2 * p));
    }
  }
}

// Backward of one block: P^T and dS^T by key, then dQ rows, and the block's share of dK and dV
void backward_block(const Problem& pr, const Block& bk, int nr, const Packed& w, bf16* dq) {
  const int D = pr.D, Dp = pr.Dp();
  const __m512 sc = _mm512_set1_ps(pr.scale), sc2 = _mm512_set1_ps(pr.scale * LOG2E);
  const __m512 lse2 = _mm512_loadu_ps(w.lse2 + bk.i0), delta = _mm512_loadu_ps(w.Delta + bk.i0);
  for (int j = 0; j < bk.keys; j += NK / 2) {
    __m512 s[NK / 2], dp[NK / 2];  // S^T and dP^T of NK / 2 keys, from one loop (NK accumulators)
    pair_dot2<NK / 2>(w.K + (size_t)j * D, w.V + (size_t)j * D, D, w.Qp + (size_t)bk.i0 * 2,
                      w.dOp + (size_t)bk.i0 * 2, nr, s, dp);
#pragma GCC unroll 8
    for (int k = 0; k < NK / 2; k += 2) {
      __m512 ds[2];
#pragma GCC unroll 2
      for (int a = 0; a < 2; ++a) {
        const __m512 p = _mm512_maskz_mov_ps(bk.sees(j + k + a), exp2_512(_mm512_fmsub_ps(s[k + a], sc2, lse2)));
        ds[a] = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(dp[k + a], delta)), sc);
        store_row(w.Pr + (size_t)(j + k + a) * RB, p, 0xffff);
        store_row(w.dSr + (size_t)(j + k + a) * RB, ds[a], 0xffff);
      }
      _mm512_storeu_si512(w.dSt + (size_t)(j + k) * RB, interleave(ds[0], ds[1]));
    }
  }
  memset(w.dQt, 0, (size_t)Dp * RB * 4);
  acc_keys(w.Kvn, Dp, D, w.dSt, RB, bk.keys / 2, w.dQt, RB, 1);  // dQ^T = K^T dS^T
  unpack_transposed(w.dQt, RB, bk.rows, D, dq + (size_t)bk.i0 * pr.H * D, (size_t)pr.H * D);
  mix_rows<true>(w.Pr, RB, w.dOt + (size_t)bk.i0 * Dp, Dp, RB / 2, w.dVr, Dp, bk.keys);  // dV += P^T dO
  mix_rows<true>(w.dSr, RB, w.Qt + (size_t)bk.i0 * Dp, Dp, RB / 2, w.dKr, Dp, bk.keys);  // dK += dS^T Q
}

void backward_one(const Problem& pr, const bf16* q, const bf16* k, const bf16* v, const int64_t* qs,
                  const int64_t* ks, const int64_t* vs, const bf16* out, const bf16* dout, const float* lse,
                  bf16* dq, bf16* dk, bf16* dv, int b, int h, Scratch& scratch) {
  const int L = pr.L, D = pr.D, Dp = pr.Dp(), n = pr.length(b), div = pr.divisions[b];
  const int nk = round_up(std::max(n, 1), 16), nr = nk;
  for (bf16* g : {dq, dk, dv})
    for (int i = n; i < L; ++i) memset(g + pr.at(b, i, h), 0, D * 2);
  if (n == 0) return;
  const size_t rows = (size_t)nr * D * 2, pairs = (size_t)nk * Dp * 2, block = (size_t)nk * RB * 2;
  const size_t bytes[] = {rows, rows, rows, rows, pairs, pairs, pairs, block, block, block,
                          (size_t)nk * Dp * 4, (size_t)nk * Dp * 4, (size_t)Dp * RB * 4, (size_t)nr * 4,
                          (size_t)nr * 4};
  char* p[15];
  scratch.carve(bytes, p);
  const Packed w{(bf16*)p[0], (bf16*)p[1], (bf16*)p[2], (bf16*)p[3], (bf16*)p[4], (bf16*)p[5], (bf16*)p[6],
                 (bf16*)p[7], (bf16*)p[8], (bf16*)p[9], (float*)p[10], (float*)p[11], (float*)p[12],
                 (float*)p[13], (float*)p[14]};
  const int64_t cs[3] = {(int64_t)L * pr.H * D, (int64_t)pr.H * D, (int64_t)D};  // contiguous [B, L, H, D]
  const Rows qr = slice(q, qs, b, h), kr = slice(k, ks, b, h), outr = slice(out, cs, b, h), dor = slice(dout, cs, b, h);
  pack_dpairs(qr, n, nr, D, w.Qp);
  pack_dpairs(dor, n, nr, D, w.dOp);
  pack_rows(kr, n, nk, D, w.K);
  pack_rows(slice(v, vs, b, h), n, nk, D, w.V);
  pack_rpairs(kr, n, nk, D, Dp, w.Kvn);
  pack_rpairs(qr, n, nr, D, Dp, w.Qt);
  pack_rpairs(dor, n, nr, D, Dp, w.dOt);
  memset(w.dKr, 0, bytes[10]);
  memset(w.dVr, 0, bytes[11]);
  const float* lrow = lse + ((size_t)b * pr.H + h) * L;
  for (int i = 0; i < nr; ++i) {  // Delta = rowsum(dO * O); lse in log2 units
    __m512 s = _mm512_setzero_ps();
    for (int d = 0; i < n && d < D; d += 16)
      s = _mm512_fmadd_ps(load_row(outr.row(i) + d, first(D - d)), load_row(dor.row(i) + d, first(D - d)), s);
    w.Delta[i] = _mm512_reduce_add_ps(s);
    w.lse2[i] = i < n ? lrow[i] * LOG2E : 0.0f;
  }
  for (int i0 = 0; i0 < n; i0 += RB) backward_block(pr, Block(i0, n, div), nr, w, dq + pr.at(b, 0, h));
  for (int j = 0; j < n; ++j)
    for (int d = 0; d < D; d += 16) {
      store_row(dk + pr.at(b, j, h) + d, _mm512_loadu_ps(w.dKr + (size_t)j * Dp + d), first(D - d));
      store_row(dv + pr.at(b, j, h) + d, _mm512_loadu_ps(w.dVr + (size_t)j * Dp + d), first(D - d));
    }
}

}  // namespace

extern "C" {

void xt_span_attention_forward(const bf16* q, const bf16* k, const bf16* v, const int64_t* qs, const int64_t* ks,
                               const int64_t* vs, int B, int L, int H, int D, const int32_t* lengths,
                               const int32_t* divisions, float scale, bf16* out, float* lse, int threads) {
  const Problem pr{B, L, H, D, lengths, divisions, scale};
#pragma omp parallel num_threads(threads)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int job = 0; job < B * H; ++job) forward_one(pr, q, k, v, qs, ks, vs, out, lse, job / H, job % H, scratch);
  }
}

void xt_span_attention_backward(const bf16* q, const bf16* k, const bf16* v, const int64_t* qs, const int64_t* ks,
                                const int64_t* vs, const bf16* out, const bf16* dout, const float* lse, int B, int L,
                                int H, int D, const int32_t* lengths, const int32_t* divisions, float scale, bf16* dq,
                                bf16* dk, bf16* dv, int threads) {
  const Problem pr{B, L, H, D, lengths, divisions, scale};
#pragma omp parallel num_threads(threads)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int job = 0; job < B * H; ++job)
      backward_one(pr, q, k, v, qs, ks, vs, out, dout, lse, dq, dk, dv, job / H, job % H, scratch);
  }
}

}  // extern "C"
