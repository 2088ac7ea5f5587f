// bf16 attention for narrow heads on x86 CPUs with AVX512_BF16 (forward and backward), built and loaded by
// xtrimo/model/span_attention.py.
//
// Why: at ESM-2 8M's 16-wide heads no attention kernel in PyTorch's CPU build is fast in bf16 (flash bf16 is slower
// than flash fp32 there, docs/training.md); the products of attention are tiny-K or tiny-N GEMMs, which generic
// GEMM code runs far below peak. Here every product is written around `vdpbf16ps` with one operand broadcast from
// memory, so that a 16-wide head is one register row, and the softmax runs on the fp32 scores in registers.
//
// Layouts (elements are bf16 stored as uint16_t, d contiguous):
//   q, k, v, out, dout, dq, dk, dv: [B, L, H, D] with strides (sb, si, sh) in elements (out / dout / grads
//   contiguous); lse: [B, H, L] fp32.
// Mask: row b's real tokens are its first lengths[b] columns; query i (< n) sees key j iff
// j < min(n, max(divisions[b], i + 1)) (bidirectional prefix, causal after it). Rows i >= n give zeros.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include <algorithm>

typedef uint16_t bf16;

namespace {

constexpr int RB = 32;  // rows per block (scores, probabilities and their gradients are kept per block)

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

inline bf16 to_bf16(float f) {  // round to nearest even, as _mm512_cvtneps_pbh
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16)(u >> 16);
}

inline float to_f32(bf16 x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

inline __m512bh pair(const bf16* p) {  // the bf16 pair at p broadcast to all 16 lanes
  int32_t w;
  memcpy(&w, p, 4);
  return (__m512bh)_mm512_set1_epi32(w);
}

inline __m512bh load_bh(const bf16* p) { return (__m512bh)_mm512_loadu_si512(p); }

inline __m512 load_row(const bf16* p, __mmask16 m) {  // 16 bf16 (masked) -> fp32
  __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline void store_row(bf16* p, __m512 x, __mmask16 m) {
  _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(x));
}

inline __mmask16 first(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << std::max(n, 0)) - 1u); }

// rows r0, r1 (16 fp32 each) as 16 interleaved pairs (r0[l], r1[l]): the layout whose pairs one broadcast reads
inline __m512i interleave(__m512 r0, __m512 r1) {
  static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                   8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  __m512i x = (__m512i)_mm512_cvtne2ps_pbh(r1, r0);
  return _mm512_permutexvar_epi16(_mm512_loadu_si512(idx), x);
}

inline __m512 exp512(__m512 x) {  // e^x, relative error ~1e-7 (Taylor degree 6 after range reduction)
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), f);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// acc[r][t] = sum_p A[r, 2p:2p+2] . Bp[p][j0 + 16t + l][0:2]: rows of A (row stride lda) against NT 16-key tiles of
// a pair-packed B ([D/2][ldb][2]). The scores S = Q K^T and dP = dO V^T.
template <int MR, int NT>
inline void pair_dot(const bf16* A, int lda, const bf16* Bp, int ldb, int j0, int pairs, __m512 acc[MR][NT]) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; ++p) {
    __m512bh b[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) b[t] = load_bh(Bp + ((size_t)p * ldb + j0 + 16 * t) * 2);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m512bh a = pair(A + (size_t)r * lda + 2 * p);
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], a, b[t]);
    }
  }
}

// out[r][16t + l] = sum_jp P[r, 2jp:2jp+2] . Vp[jp][16t + l][0:2], rows r < MR, fp32 out (row stride ldo): the
// products P V and dS K, with the second operand packed in key pairs ([keys/2][Dp][2]); pair_dot with the roles
// of keys and head dimensions exchanged.
template <int MR, int T>
inline void pair_mix(const bf16* P, int ldp, const bf16* Vp, int Dp, int kpairs, float* out, int ldo) {
  __m512 acc[MR][T];
  pair_dot<MR, T>(P, ldp, Vp, Dp, 0, kpairs, acc);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + (size_t)r * ldo + 16 * t, acc[r][t]);
}

// rows x (Dp / 16) tiles of pair_mix over a block of `rows` rows (a multiple of 2), register blocking by T
void mix_rows(const bf16* P, int ldp, const bf16* Vp, int Dp, int kpairs, float* out, int ldo, int rows) {
  const int T = Dp / 16;
  for (int r = 0; r < rows;) {
    const bf16* pr = P + (size_t)r * ldp;
    float* o = out + (size_t)r * ldo;
    if (T == 1 && rows - r >= 16) { pair_mix<16, 1>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 16; }
    else if (T == 1 && rows - r >= 8) { pair_mix<8, 1>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 8; }
    else if (T == 2 && rows - r >= 8) { pair_mix<8, 2>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 8; }
    else if (T <= 4 && rows - r >= 4) {
      if (T == 1) pair_mix<4, 1>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else if (T == 2) pair_mix<4, 2>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else if (T == 3) pair_mix<4, 3>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else pair_mix<4, 4>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      r += 4;
    } else {  // two rows, every tile: wide heads and block tails
      for (int t = 0; t < T; ++t) pair_mix<2, 1>(pr, ldp, Vp + 32 * t, Dp, kpairs, o + 16 * t, ldo);
      r += 2;
    }
  }
}

// accT[d][j0 + l] += sum over row pairs ip: X[ip][d][0:2] . Pp[ip][j0 + l][0:2] for ND values of d: the
// key-side gradients dV^T = (P^T dO)^T and dK^T = (dS^T Q)^T, with rows packed in pairs on both sides.
template <int ND>
inline void pair_acc(const bf16* X, int Dp, const bf16* Pp, int ldp, int rpairs, float* accT, int lda, int j0) {
  __m512 acc[ND];
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d) acc[d] = _mm512_loadu_ps(accT + (size_t)d * lda + j0);
  for (int ip = 0; ip < rpairs; ++ip) {
    __m512bh p = load_bh(Pp + ((size_t)ip * ldp + j0) * 2);
#pragma GCC unroll 16
    for (int d = 0; d < ND; ++d) acc[d] = _mm512_dpbf16_ps(acc[d], pair(X + ((size_t)ip * Dp + d) * 2), p);
  }
#pragma GCC unroll 16
  for (int d = 0; d < ND; ++d) _mm512_storeu_ps(accT + (size_t)d * lda + j0, acc[d]);
}

void acc_keys(const bf16* X, int Dp, int D, const bf16* Pp, int ldp, int rpairs, float* accT, int lda, int ktiles) {
  for (int j = 0; j < ktiles; ++j)
    for (int d0 = 0; d0 < D; d0 += 16) {
      const bf16* x = X + 2 * d0;
      float* a = accT + (size_t)d0 * lda;
      switch (std::min(16, D - d0)) {
        case 16: pair_acc<16>(x, Dp, Pp, ldp, rpairs, a, lda, 16 * j); break;
        case 8: pair_acc<8>(x, Dp, Pp, ldp, rpairs, a, lda, 16 * j); break;
        default:
          for (int d = 0; d < std::min(16, D - d0); d += 2) pair_acc<2>(x + 2 * d, Dp, Pp, ldp, rpairs, a + (size_t)d * lda, lda, 16 * j);
      }
    }
}

struct Problem {
  int B, L, H, D;
  const int32_t* lengths;
  const int32_t* divisions;
  float scale;
  int Dp() const { return round_up(D, 16); }
};

struct Rows {  // one (b, h) slice of a [B, L, H, D] tensor
  const bf16* base;
  int64_t si;
  const bf16* row(int i) const { return base + (size_t)i * si; }
};

inline Rows slice(const bf16* x, const int64_t* st, int b, int h) { return Rows{x + b * st[0] + h * st[2], st[1]}; }

// natural rows [rows][D], zero past n
void pack_rows(Rows x, int n, int rows, int D, bf16* out) {
  for (int i = 0; i < rows; ++i) {
    if (i < n) memcpy(out + (size_t)i * D, x.row(i), D * 2);
    else memset(out + (size_t)i * D, 0, D * 2);
  }
}

// d-pairs packed per key: out[p][j][0:2] = x[j][2p:2p+2], keys up to `keys` (zero past n)
void pack_dpairs(Rows x, int n, int keys, int D, bf16* out) {
  uint32_t* o = (uint32_t*)out;
  for (int j = 0; j < keys; ++j) {
    if (j < n) {
      const uint32_t* r = (const uint32_t*)x.row(j);
      for (int p = 0; p < D / 2; ++p) { uint32_t w; memcpy(&w, r + p, 4); o[(size_t)p * keys + j] = w; }
    } else {
      for (int p = 0; p < D / 2; ++p) o[(size_t)p * keys + j] = 0;
    }
  }
}

// row pairs interleaved: out[i/2][d][i%2] = x[i][d], d up to Dp (zero past D and past n)
void pack_rpairs(Rows x, int n, int rows, int D, int Dp, bf16* out) {
  memset(out, 0, (size_t)rows * Dp * 2);
  for (int i = 0; i < std::min(n, rows); ++i) {
    const bf16* r = x.row(i);
    bf16* o = out + (size_t)(i / 2) * Dp * 2 + (i % 2);
    for (int d = 0; d < D; ++d) o[2 * d] = r[d];
  }
}

inline int row_limit(int i, int n, int div) { return i < n ? std::min(n, std::max(div, i + 1)) : 0; }

struct Scratch {
  void* mem = nullptr;
  size_t size = 0;
  ~Scratch() { free(mem); }
  char* get(size_t bytes) {
    if (bytes > size) {
      free(mem);
      mem = aligned_alloc(64, round_up((int)bytes, 64));
      size = bytes;
    }
    return (char*)mem;
  }
};

void forward_one(const Problem& pr, const bf16* q, const bf16* k, const bf16* v, const int64_t* qs,
                 const int64_t* ks, const int64_t* vs, bf16* out, float* lse, int b, int h, Scratch& scratch) {
  const int L = pr.L, D = pr.D, Dp = pr.Dp(), H = pr.H;
  const int n = std::min(std::max(pr.lengths[b], 0), L), div = pr.divisions[b];
  const int nk = round_up(std::max(n, 1), 16), nr = round_up(std::max(n, 1), RB);
  const size_t oh = (size_t)H * D;  // out's row stride
  bf16* orow0 = out + (size_t)b * L * oh + (size_t)h * D;
  float* lrow = lse + ((size_t)b * H + h) * L;
  for (int i = n; i < L; ++i) { memset(orow0 + i * oh, 0, D * 2); lrow[i] = 0.0f; }
  if (n == 0) return;
  char* m = scratch.get((size_t)nr * D * 2 + (size_t)D / 2 * nk * 4 + (size_t)nk * Dp * 2 + (size_t)RB * nk * 4 +
                        (size_t)RB * nk * 2 + (size_t)RB * Dp * 4 + 512);
  bf16* Q = (bf16*)m;                             m += round_up(nr * D * 2, 64);
  bf16* Kp = (bf16*)m;                            m += round_up(D / 2 * nk * 4, 64);
  bf16* Vp = (bf16*)m;                            m += round_up(nk * Dp * 2, 64);
  float* S = (float*)m;                           m += (size_t)RB * nk * 4;
  bf16* P = (bf16*)m;                             m += (size_t)RB * nk * 2;
  float* O = (float*)m;
  pack_rows(slice(q, qs, b, h), n, nr, D, Q);
  pack_dpairs(slice(k, ks, b, h), n, nk, D, Kp);
  pack_rpairs(slice(v, vs, b, h), n, nk, D, Dp, Vp);  // key pairs: Vp[j/2][d][j%2]
  for (int i0 = 0; i0 < n; i0 += RB) {
    const int rows = std::min(RB, round_up(n - i0, 2));
    const int kend = row_limit(std::min(i0 + rows, n) - 1, n, div);  // the block's widest row
    const int tiles = (kend + 15) / 16;
    for (int r = 0; r < rows; r += 2) {  // scores, two rows by up to four tiles
      __m512 acc4[2][4];
      int t = 0;
      for (; t + 4 <= tiles; t += 4) {
        pair_dot<2, 4>(Q + (size_t)(i0 + r) * D, D, Kp, nk, 16 * t, D / 2, acc4);
        for (int a = 0; a < 2; ++a)
          for (int c = 0; c < 4; ++c) _mm512_storeu_ps(S + (size_t)(r + a) * nk + 16 * (t + c), acc4[a][c]);
      }
      for (; t < tiles; ++t) {
        __m512 acc1[2][1];
        pair_dot<2, 1>(Q + (size_t)(i0 + r) * D, D, Kp, nk, 16 * t, D / 2, acc1);
        for (int a = 0; a < 2; ++a) _mm512_storeu_ps(S + (size_t)(r + a) * nk + 16 * t, acc1[a][0]);
      }
    }
    float inv[RB];
    for (int r = 0; r < rows; ++r) {  // softmax of each row over its visible keys; unnormalised P in bf16
      const int lim = row_limit(i0 + r, n, div);
      float* s = S + (size_t)r * nk;
      bf16* p = P + (size_t)r * nk;
      if (lim == 0) { memset(p, 0, (size_t)tiles * 32); inv[r] = 0.0f; continue; }
      __m512 mx = _mm512_set1_ps(-INFINITY);
      for (int j = 0; j < lim; j += 16) mx = _mm512_mask_max_ps(mx, first(lim - j), mx, _mm512_loadu_ps(s + j));
      const float mscaled = _mm512_reduce_max_ps(mx) * pr.scale;
      const __m512 sc = _mm512_set1_ps(pr.scale), mv = _mm512_set1_ps(mscaled);
      __m512 sum = _mm512_setzero_ps();
      for (int j = 0; j < tiles * 16; j += 16) {
        const __mmask16 km = first(lim - j);
        __m512 e = _mm512_maskz_mov_ps(km, exp512(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), sc, mv)));
        sum = _mm512_add_ps(sum, e);
        store_row(p + j, e, 0xffff);
      }
      const float total = _mm512_reduce_add_ps(sum);
      inv[r] = 1.0f / total;
      lrow[i0 + r] = mscaled + logf(total);
    }
    mix_rows(P, nk, Vp, Dp, tiles * 8, O, Dp, rows);
    for (int r = 0; r < rows && i0 + r < n; ++r) {
      const __m512 iv = _mm512_set1_ps(inv[r]);
      bf16* o = orow0 + (size_t)(i0 + r) * oh;
      for (int d = 0; d < D; d += 16) store_row(o + d, _mm512_mul_ps(_mm512_loadu_ps(O + (size_t)r * Dp + d), iv), first(D - d));
    }
  }
}

void backward_one(const Problem& pr, const bf16* q, const bf16* k, const bf16* v, const int64_t* qs,
                  const int64_t* ks, const int64_t* vs, const bf16* out, const bf16* dout, const float* lse,
                  bf16* dq, bf16* dk, bf16* dv, int b, int h, Scratch& scratch) {
  const int L = pr.L, D = pr.D, Dp = pr.Dp(), H = pr.H;
  const int n = std::min(std::max(pr.lengths[b], 0), L), div = pr.divisions[b];
  const int nk = round_up(std::max(n, 1), 16), nr = round_up(std::max(n, 1), RB);
  const int64_t cs[3] = {(int64_t)L * H * D, (int64_t)H * D, (int64_t)D};  // contiguous [B, L, H, D]
  const size_t oh = (size_t)H * D;
  for (bf16* g : {dq, dk, dv}) {
    bf16* g0 = g + (size_t)b * L * oh + (size_t)h * D;
    for (int i = n; i < L; ++i) memset(g0 + i * oh, 0, D * 2);
  }
  if (n == 0) return;
  const size_t sizes[] = {
      (size_t)nr * D * 2, (size_t)nr * D * 2,                         // Q, dO rows
      (size_t)D / 2 * nk * 4, (size_t)D / 2 * nk * 4,                 // Kp, VKp (d pairs)
      (size_t)nk * Dp * 2, (size_t)nr * Dp * 2, (size_t)nr * Dp * 2,  // Kvn (key pairs), Qt, dOt (row pairs)
      (size_t)RB * nk * 2, (size_t)RB * nk * 2, (size_t)RB * nk * 2,  // Pp, dSp (row pairs), dSn (rows)
      (size_t)Dp * nk * 4, (size_t)Dp * nk * 4,                       // dKT, dVT
      (size_t)nr * 4, (size_t)RB * Dp * 4};                           // Delta, dQ block
  size_t total = 0;
  for (size_t s : sizes) total += round_up((int)s, 64);
  char* m = scratch.get(total);
  char* parts[14];
  for (int i = 0; i < 14; ++i) { parts[i] = m; m += round_up((int)sizes[i], 64); }
  bf16 *Q = (bf16*)parts[0], *dO = (bf16*)parts[1], *Kp = (bf16*)parts[2], *VKp = (bf16*)parts[3];
  bf16 *Kvn = (bf16*)parts[4], *Qt = (bf16*)parts[5], *dOt = (bf16*)parts[6];
  bf16 *Pp = (bf16*)parts[7], *dSp = (bf16*)parts[8], *dSn = (bf16*)parts[9];
  float *dKT = (float*)parts[10], *dVT = (float*)parts[11], *Delta = (float*)parts[12], *dQb = (float*)parts[13];
  const Rows qr = slice(q, qs, b, h), kr = slice(k, ks, b, h), vr = slice(v, vs, b, h);
  const Rows outr = slice(out, cs, b, h), doutr = slice(dout, cs, b, h);
  pack_rows(qr, n, nr, D, Q);
  pack_rows(doutr, n, nr, D, dO);
  pack_dpairs(kr, n, nk, D, Kp);
  pack_dpairs(vr, n, nk, D, VKp);
  pack_rpairs(kr, n, nk, D, Dp, Kvn);
  pack_rpairs(qr, n, nr, D, Dp, Qt);
  pack_rpairs(doutr, n, nr, D, Dp, dOt);
  memset(dKT, 0, sizes[10]);
  memset(dVT, 0, sizes[11]);
  for (int i = 0; i < nr; ++i) {
    float s = 0.0f;
    if (i < n)
      for (int d = 0; d < D; ++d) s += to_f32(outr.row(i)[d]) * to_f32(doutr.row(i)[d]);
    Delta[i] = s;
  }
  const float* lrow = lse + ((size_t)b * H + h) * L;
  const __m512 sc = _mm512_set1_ps(pr.scale);
  for (int i0 = 0; i0 < n; i0 += RB) {
    const int rows = std::min(RB, round_up(n - i0, 2));
    const int kend = row_limit(std::min(i0 + rows, n) - 1, n, div);
    const int tiles = (kend + 15) / 16;
    for (int r = 0; r < rows; r += 2) {
      const int i = i0 + r;
      const int lim[2] = {row_limit(i, n, div), row_limit(i + 1, n, div)};
      const __m512 ls[2] = {_mm512_set1_ps(i < n ? lrow[i] : 0.0f), _mm512_set1_ps(i + 1 < n ? lrow[i + 1] : 0.0f)};
      const __m512 dl[2] = {_mm512_set1_ps(Delta[i]), _mm512_set1_ps(Delta[i + 1])};
      for (int t = 0; t < tiles; ++t) {
        __m512 s[2][1], dp[2][1], p[2], ds[2];
        pair_dot<2, 1>(Q + (size_t)i * D, D, Kp, nk, 16 * t, D / 2, s);
        pair_dot<2, 1>(dO + (size_t)i * D, D, VKp, nk, 16 * t, D / 2, dp);
        for (int a = 0; a < 2; ++a) {
          const __mmask16 km = first(lim[a] - 16 * t);
          p[a] = _mm512_maskz_mov_ps(km, exp512(_mm512_fmsub_ps(s[a][0], sc, ls[a])));
          ds[a] = _mm512_mul_ps(_mm512_mul_ps(p[a], _mm512_sub_ps(dp[a][0], dl[a])), sc);
          store_row(dSn + (size_t)(r + a) * nk + 16 * t, ds[a], 0xffff);
        }
        _mm512_storeu_si512(Pp + ((size_t)(r / 2) * nk + 16 * t) * 2, interleave(p[0], p[1]));
        _mm512_storeu_si512(dSp + ((size_t)(r / 2) * nk + 16 * t) * 2, interleave(ds[0], ds[1]));
      }
    }
    mix_rows(dSn, nk, Kvn, Dp, tiles * 8, dQb, Dp, rows);  // dQ = dS K
    for (int r = 0; r < rows && i0 + r < n; ++r) {
      bf16* o = dq + (size_t)b * L * oh + (size_t)(i0 + r) * oh + (size_t)h * D;
      for (int d = 0; d < D; d += 16) store_row(o + d, _mm512_loadu_ps(dQb + (size_t)r * Dp + d), first(D - d));
    }
    acc_keys(dOt + (size_t)(i0 / 2) * Dp * 2, Dp, D, Pp, nk, rows / 2, dVT, nk, tiles);  // dV^T += (P^T dO)^T
    acc_keys(Qt + (size_t)(i0 / 2) * Dp * 2, Dp, D, dSp, nk, rows / 2, dKT, nk, tiles);  // dK^T += (dS^T Q)^T
  }
  for (int j = 0; j < n; ++j) {
    bf16* okk = dk + (size_t)b * L * oh + (size_t)j * oh + (size_t)h * D;
    bf16* ovv = dv + (size_t)b * L * oh + (size_t)j * oh + (size_t)h * D;
    for (int d = 0; d < D; ++d) {
      okk[d] = to_bf16(dKT[(size_t)d * nk + j]);
      ovv[d] = to_bf16(dVT[(size_t)d * nk + j]);
    }
  }
}

}  // namespace

extern "C" {

int xt_span_attention_version() { return 1; }

void xt_span_attention_forward(const bf16* q, const bf16* k, const bf16* v, const int64_t* qs, const int64_t* ks,
                               const int64_t* vs, int B, int L, int H, int D, const int32_t* lengths,
                               const int32_t* divisions, float scale, bf16* out, float* lse, int threads) {
  const Problem pr{B, L, H, D, lengths, divisions, scale};
#pragma omp parallel num_threads(threads)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int job = 0; job < B * H; ++job)
      forward_one(pr, q, k, v, qs, ks, vs, out, lse, job / H, job % H, scratch);
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
