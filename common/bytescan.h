/* bytescan.h -- find the bytes that matter in 64 bytes of text at once (CSV delimiters, quotes,
 * line breaks, non-ASCII bytes), with SSE2 where the compiler has it and portable C elsewhere. */
#ifndef CSVSTREAM_BYTESCAN_H
#define CSVSTREAM_BYTESCAN_H

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes a scan stops at: up to four bytes of interest, plus (high != 0) every byte of 0x80 or
 * more. Unused slots repeat one of the others. Set up by bytescan_init. */
typedef struct bytescan {
#if defined(__SSE2__)
  __m128i each[4]; /* stop[i] in every byte */
#endif
  unsigned char stop[4];
  int high;
} bytescan;

static inline void bytescan_init(bytescan *k, unsigned char a, unsigned char b, unsigned char c,
                                 unsigned char d, int high) {
  k->stop[0] = a;
  k->stop[1] = b;
  k->stop[2] = c;
  k->stop[3] = d;
  k->high = high != 0;
#if defined(__SSE2__)
  for (unsigned i = 0; i < 4; i++) {
    k->each[i] = _mm_set1_epi8((char)k->stop[i]);
  }
#endif
}

/* The portable scan, also the reference for the SSE2 one (tests compare the two). */
static inline uint64_t bytescan_mask64_portable(const bytescan *k, const char *p) {
  uint64_t m = 0;
  for (unsigned i = 0; i < 64; i++) {
    unsigned char c = (unsigned char)p[i];
    int hit = c == k->stop[0] || c == k->stop[1] || c == k->stop[2] || c == k->stop[3] ||
              (k->high && c >= 0x80);
    m |= (uint64_t)hit << i;
  }
  return m;
}

/* Bit i of the result is set where p[i] (i < 64) is a byte the scan stops at. Reads exactly the
 * 64 bytes at p, which must all be readable; the caller masks off those past its text. */
static inline uint64_t bytescan_mask64(const bytescan *k, const char *p) {
#if defined(__SSE2__)
  const __m128i a = k->each[0], b = k->each[1], c = k->each[2], d = k->each[3];
  /* All of a byte's bits where it is >= 0x80 (high), none otherwise: or-ed into the hits. */
  const __m128i top = _mm_set1_epi8(k->high ? (char)0x80 : 0);
  uint64_t m = 0;
  for (unsigned i = 0; i < 4; i++) {
    __m128i v;
    memcpy(&v, p + 16 * i, sizeof v); /* an unaligned load */
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, a), _mm_cmpeq_epi8(v, b)),
                               _mm_or_si128(_mm_cmpeq_epi8(v, c), _mm_cmpeq_epi8(v, d)));
    hit = _mm_or_si128(hit, _mm_and_si128(v, top)); /* movemask reads the top bits only */
    m |= (uint64_t)(uint32_t)_mm_movemask_epi8(hit) << (16 * i);
  }
  return m;
#else
  return bytescan_mask64_portable(k, p);
#endif
}

#endif
