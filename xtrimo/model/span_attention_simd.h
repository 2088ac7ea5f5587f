// Building blocks of span_attention.cpp: bf16 conversions, exp2 / log2, the packed layouts and the product shapes
// of attention, each written around `vdpbf16ps` (AVX512_BF16) with one operand broadcast from memory.
//
// Packed layouts (bf16 stored as uint16_t):
//   rows     [rows][D]            natural rows; a broadcast reads the pair (x[i][2p], x[i][2p+1])
//   d-pairs  [D/2][keys][2]       per pair of head dimensions, every key: 16 keys are one vector
//   r-pairs  [rows/2][Dp][2]      rows interleaved in pairs over Dp = D rounded up to 16: 16 dims are one vector
#pragma once

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>

typedef uint16_t bf16;

namespace xt {

constexpr float LOG2E = 1.44269504088896341f, LN2 = 0.69314718055994531f;

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

inline __mmask16 first(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << std::max(n, 0)) - 1u); }

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

inline void store_row(bf16* p, __m512 x, __mmask16 m) {  // fp32 -> 16 bf16 (round to nearest even)
  if (m == 0xffff) _mm256_storeu_si256((__m256i*)p, (__m256i)_mm512_cvtneps_pbh(x));
  else _mm256_mask_storeu_epi16(p, m, (__m256i)_mm512_cvtneps_pbh(x));
}

// 16 bf16 of a and 16 of b as 16 interleaved pairs (a[l], b[l])
inline __m512i interleave_bf16(__m256i a, __m256i b) {
  static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                   8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  return _mm512_permutexvar_epi16(_mm512_loadu_si512(idx), x);
}

inline __m512i interleave(__m512 r0, __m512 r1) {  // two fp32 rows as interleaved bf16 pairs
  return interleave_bf16((__m256i)_mm512_cvtneps_pbh(r0), (__m256i)_mm512_cvtneps_pbh(r1));
}

// 2^x: Taylor polynomial of degree 5 on the rounded remainder (|f| <= 1/2, relative error < 3e-6, below bf16's
// 4e-3), scaled by 2^n; far below the row maximum it gives 0
inline __m512 exp2_512(__m512 x) {
  __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.3333558146428443e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LN2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// log2(x) for x > 0: exponent + atanh series of the mantissa in [0.75, 1.5) (absolute error < 1e-7)
inline __m512 log2_512(__m512 x) {
  __m512 e = _mm512_getexp_ps(x);
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src);
  e = _mm512_sub_ps(e, _mm512_getexp_ps(m));  // x = 2^e * m with m in [0.75, 1.5)
  __m512 t = _mm512_div_ps(_mm512_sub_ps(m, _mm512_set1_ps(1.0f)), _mm512_add_ps(m, _mm512_set1_ps(1.0f)));
  __m512 t2 = _mm512_mul_ps(t, t);
  __m512 p = _mm512_set1_ps(0.32059889797532520f);  // 2 / (9 ln 2)
  p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(0.41219858311113244f));
  p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(0.57707801635558536f));
  p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(0.96179669392597560f));
  p = _mm512_fmadd_ps(p, t2, _mm512_set1_ps(2.88539008177792680f));
  return _mm512_fmadd_ps(p, t, e);
}

// acc[r][t] = sum_p A[r, 2p:2p+2] . Bp[p][j0 + 16t + l][0:2]: MR rows of A (row stride lda) against NT 16-wide
// tiles of a d-pairs (or r-pairs) operand with row stride ldb. The forward's S = Q K^T, and through pair_mix its
// P V and the backward's dV = P^T dO and dK = dS^T Q (rows: keys).
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

// out[r][16t + l] (+)= sum_jp P[r, 2jp:2jp+2] . Vp[jp][16t + l][0:2] (an r-pairs operand), fp32 out of row
// stride ldo, added to it with ACC
template <int MR, int T, bool ACC>
inline void pair_mix(const bf16* P, int ldp, const bf16* Vp, int Dp, int kpairs, float* out, int ldo) {
  __m512 acc[MR][T];
  pair_dot<MR, T>(P, ldp, Vp, Dp, 0, kpairs, acc);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      float* o = out + (size_t)r * ldo + 16 * t;
      _mm512_storeu_ps(o, ACC ? _mm512_add_ps(_mm512_loadu_ps(o), acc[r][t]) : acc[r][t]);
    }
}

// pair_mix over `rows` rows (a multiple of 2) and every Dp / 16 tile, register-blocked by the tile count
template <bool ACC>
inline void mix_rows(const bf16* P, int ldp, const bf16* Vp, int Dp, int kpairs, float* out, int ldo, int rows) {
  const int T = Dp / 16;
  for (int r = 0; r < rows;) {
    const bf16* pr = P + (size_t)r * ldp;
    float* o = out + (size_t)r * ldo;
    if (T == 1 && rows - r >= 16) { pair_mix<16, 1, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 16; }
    else if (T == 1 && rows - r >= 8) { pair_mix<8, 1, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 8; }
    else if (T == 2 && rows - r >= 8) { pair_mix<8, 2, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo); r += 8; }
    else if (T <= 4 && rows - r >= 4) {
      if (T == 1) pair_mix<4, 1, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else if (T == 2) pair_mix<4, 2, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else if (T == 3) pair_mix<4, 3, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      else pair_mix<4, 4, ACC>(pr, ldp, Vp, Dp, kpairs, o, ldo);
      r += 4;
    } else {  // two rows, tile by tile: wide heads and block tails
      for (int t = 0; t < T; ++t) pair_mix<2, 1, ACC>(pr, ldp, Vp + 32 * t, Dp, kpairs, o + 16 * t, ldo);
      r += 2;
    }
  }
}

// accT[d][j0 + l] += sum over pairs ip: X[ip][d][0:2] . Pp[ip][j0 + l][0:2] for ND values of d, X in r-pairs: the
// backward's dQ^T = K^T dS^T (ip: pairs of keys, lanes l: query rows)
template <int ND>
inline void pair_acc(const bf16* X, int Dp, const bf16* Pp, int ldp, int rpairs, float* accT, int lda, int j0) {
  __m512 acc[ND];
#pragma GCC unroll 24
  for (int d = 0; d < ND; ++d) acc[d] = _mm512_loadu_ps(accT + (size_t)d * lda + j0);
  for (int ip = 0; ip < rpairs; ++ip) {
    __m512bh p = load_bh(Pp + ((size_t)ip * ldp + j0) * 2);
#pragma GCC unroll 24
    for (int d = 0; d < ND; ++d) acc[d] = _mm512_dpbf16_ps(acc[d], pair(X + ((size_t)ip * Dp + d) * 2), p);
  }
#pragma GCC unroll 24
  for (int d = 0; d < ND; ++d) _mm512_storeu_ps(accT + (size_t)d * lda + j0, acc[d]);
}

// pair_acc over every d (chunks of 16; a last 24 at once, where 8 accumulators alone would wait on the latency)
// and ktiles tiles of 16 keys
inline void acc_keys(const bf16* X, int Dp, int D, const bf16* Pp, int ldp, int rpairs, float* accT, int lda,
                     int ktiles) {
  for (int j = 0; j < ktiles; ++j)
    for (int d0 = 0, nd; d0 < D; d0 += nd) {
      nd = D - d0 == 24 ? 24 : std::min(16, D - d0);
      const bf16* x = X + 2 * d0;
      float* a = accT + (size_t)d0 * lda;
      if (nd == 24) pair_acc<24>(x, Dp, Pp, ldp, rpairs, a, lda, 16 * j);
      else if (nd == 16) pair_acc<16>(x, Dp, Pp, ldp, rpairs, a, lda, 16 * j);
      else if (nd == 8) pair_acc<8>(x, Dp, Pp, ldp, rpairs, a, lda, 16 * j);
      else
        for (int d = 0; d < nd; d += 2) pair_acc<2>(x + 2 * d, Dp, Pp, ldp, rpairs, a + (size_t)d * lda, lda, 16 * j);
    }
}

struct Rows {  // one (b, h) slice of a [B, L, H, D] tensor: row i at base + i * si
  const bf16* base;
  int64_t si;
  const bf16* row(int i) const { return base + (size_t)i * si; }
};

inline Rows slice(const bf16* x, const int64_t* st, int b, int h) { return Rows{x + b * st[0] + h * st[2], st[1]}; }

constexpr int AHEAD = 8;  // rows prefetched ahead when packing: the rows of one head lie a token's width apart

// rows layout [rows][D], zero past n (unmasked stores where D allows: masked ones are slow on some CPUs)
inline void pack_rows(Rows x, int n, int rows, int D, bf16* out) {
  for (int i = 0; i < rows; ++i) {
    if (i + AHEAD < n) __builtin_prefetch(x.row(i + AHEAD));
    bf16* o = out + (size_t)i * D;
    int d = 0;
    for (; d + 16 <= D; d += 16)
      _mm256_storeu_si256((__m256i*)(o + d), i < n ? _mm256_loadu_si256((const __m256i*)(x.row(i) + d))
                                                     : _mm256_setzero_si256());
    if (d < D)
      _mm256_mask_storeu_epi16(o + d, first(D - d), i < n ? _mm256_maskz_loadu_epi16(first(D - d), x.row(i) + d)
                                                          : _mm256_setzero_si256());
  }
}

// d-pairs layout [D/2][keys][2] (zero past n): 16 rows x 8 pairs at a time, transposed in registers (an 8 x 8
// transpose of 32-bit pairs in each 256-bit half)
inline void pack_dpairs(Rows x, int n, int keys, int D, bf16* out) {
  const int P = D / 2;
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int j = 0; j < keys; j += 16) {
    if (j + 16 + AHEAD < n) __builtin_prefetch(x.row(j + 16 + AHEAD));
    for (int p0 = 0; p0 < P; p0 += 8) {
      const int np = std::min(8, P - p0);
      const __mmask8 m = (__mmask8)((1u << np) - 1u);
      __m512i z[8], t[8], u[8];
      for (int k = 0; k < 8; ++k) {  // z[k]: row j + k in the low half, row j + k + 8 in the high half
        __m256i a = j + k < n ? _mm256_maskz_loadu_epi32(m, x.row(j + k) + 2 * p0) : _mm256_setzero_si256();
        __m256i b = j + k + 8 < n ? _mm256_maskz_loadu_epi32(m, x.row(j + k + 8) + 2 * p0) : _mm256_setzero_si256();
        z[k] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
      }
      for (int k = 0; k < 8; k += 2) {
        t[k] = _mm512_unpacklo_epi32(z[k], z[k + 1]);
        t[k + 1] = _mm512_unpackhi_epi32(z[k], z[k + 1]);
      }
      for (int h = 0; h < 8; h += 4) {  // u[h + c]: rows h..h+3 (and + 8), pairs c and c + 4 in 128-bit lanes
        u[h] = _mm512_unpacklo_epi64(t[h], t[h + 2]);
        u[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]);
        u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
      }
      for (int c = 0; c < 4; ++c) {
        bf16* o = out + ((size_t)(p0 + c) * keys + j) * 2;
        if (c < np) _mm512_storeu_si512(o, _mm512_permutex2var_epi64(u[c], lo, u[4 + c]));
        if (c + 4 < np) _mm512_storeu_si512(o + (size_t)8 * keys, _mm512_permutex2var_epi64(u[c], hi, u[4 + c]));
      }
    }
  }
}

// r-pairs layout [rows/2][Dp][2] (zero past D and past n)
inline void pack_rpairs(Rows x, int n, int rows, int D, int Dp, bf16* out) {
  for (int i = 0; i < rows; i += 2) {
    if (i + AHEAD < n) __builtin_prefetch(x.row(i + AHEAD));
    if (i + AHEAD + 1 < n) __builtin_prefetch(x.row(i + AHEAD + 1));
    for (int d = 0; d < Dp; d += 16) {
      const __mmask16 m = first(D - d);
      __m256i a = i < n ? _mm256_maskz_loadu_epi16(m, x.row(i) + d) : _mm256_setzero_si256();
      __m256i b = i + 1 < n ? _mm256_maskz_loadu_epi16(m, x.row(i + 1) + d) : _mm256_setzero_si256();
      _mm512_storeu_si512(out + ((size_t)(i / 2) * Dp + d) * 2, interleave_bf16(a, b));
    }
  }
}

// rows j < n of a [B, L, H, D] bf16 tensor (row stride so) from their transpose accT [D][lda] fp32
inline void unpack_transposed(const float* accT, int lda, int n, int D, bf16* out, size_t so) {
  for (int d0 = 0; d0 < D; d0 += 16) {
    const __mmask16 m = first(D - d0);
    const __m512i at = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(lda));
    for (int j = 0; j < n; ++j) {
      __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, at, accT + (size_t)d0 * lda + j, 4);
      store_row(out + (size_t)j * so + d0, v, m);
    }
  }
}

}  // namespace xt
