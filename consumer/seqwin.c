/* seqwin.c -- the per-stream sequence window: a ring bitmap over the most recent sequence
 * numbers that tells a first copy from a duplicate. */
#include "seqwin.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define SEQWIN_MIN_BITS 1024u

/* Bit position of seq in the ring bitmap. */
static size_t seen_pos(const seqwin *w, uint64_t seq) {
  return (size_t)(seq & (w->seen_bits - 1));
}

/* 1 if seq's bit is set. */
static int seen_test(const seqwin *w, uint64_t seq) {
  size_t pos = seen_pos(w, seq);
  return (w->seen[pos / 8] >> (pos % 8)) & 1;
}

/* Set seq's bit. */
static void seen_set(seqwin *w, uint64_t seq) {
  size_t pos = seen_pos(w, seq);
  w->seen[pos / 8] |= (unsigned char)(1u << (pos % 8));
}

/* Clear n bits of the ring starting at bit position pos, with n < w->seen_bits and pos + n
 * possibly wrapping around: bit by bit up to a byte boundary, then whole bytes. */
static void seen_clear_run(seqwin *w, size_t pos, size_t n) {
  while (n > 0) {
    if (pos % 8 == 0 && n >= 8) {
      size_t bytes = n / 8;
      size_t room = (w->seen_bits - pos) / 8;
      if (bytes > room) {
        bytes = room;
      }
      memset(w->seen + pos / 8, 0, bytes);
      pos = (pos + bytes * 8) & (w->seen_bits - 1);
      n -= bytes * 8;
    } else {
      w->seen[pos / 8] &= (unsigned char)~(1u << (pos % 8));
      pos = (pos + 1) & (w->seen_bits - 1);
      n--;
    }
  }
}

/* Before the window's top moves up to seq: widen the bitmap (doubling, up to SEQWIN_SIZE bits)
 * so that it covers seq. Only while every number marked so far is below the width, where each
 * one sits at its own bit in the old and the new width alike, so growing is a realloc and
 * zeroing the new part. Out of memory, the window stays as it is (older arrivals then come
 * back too late; nothing else changes). */
static void seen_grow(seqwin *w, uint64_t seq) {
  size_t want = w->seen_bits;
  unsigned char *p;
  if (w->no_grow || w->seen_bits >= SEQWIN_SIZE || seq < w->seen_bits ||
      w->max_seq >= w->seen_bits) {
    return;
  }
  while (want <= seq && want < SEQWIN_SIZE) {
    want *= 2;
  }
  p = realloc(w->seen, want / 8);
  if (p == NULL) {
    return;
  }
  memset(p + w->seen_bits / 8, 0, (want - w->seen_bits) / 8);
  w->seen = p;
  w->seen_bits = want;
}

/* Move the window's top from w->max_seq up to seq: the bits of the numbers entering the
 * window (max_seq + 1 .. seq) still hold those of the numbers leaving it, so clear them. */
static void seen_slide(seqwin *w, uint64_t seq) {
  uint64_t advance = seq - w->max_seq;
  seen_grow(w, seq);
  if (advance >= w->seen_bits) {
    memset(w->seen, 0, w->seen_bits / 8);
  } else {
    seen_clear_run(w, seen_pos(w, w->max_seq + 1), (size_t)advance);
  }
  w->max_seq = seq;
}

/* Set up an empty window; the bitmap starts at SEQWIN_MIN_BITS bits. 0 or CS_ENOMEM. */
int seqwin_init(seqwin *w) {
  memset(w, 0, sizeof *w);
  w->seen = calloc(SEQWIN_MIN_BITS / 8, 1);
  if (w->seen == NULL) {
    return CS_ENOMEM;
  }
  w->seen_bits = SEQWIN_MIN_BITS;
  return 0;
}

/* Start a fresh window as if 1 .. base had all been seen; see seqwin.h. */
void seqwin_start_at(seqwin *w, uint64_t base) {
  if (base == 0 || w->seen == NULL) {
    return;
  }
  w->max_seq = base;
  memset(w->seen, 0xff, w->seen_bits / 8);
}

/* Release the bitmap; safe on NULL, a zeroed or an already freed window. */
void seqwin_free(seqwin *w) {
  if (w == NULL) {
    return;
  }
  free(w->seen);
  w->seen = NULL;
  w->seen_bits = 0;
}

/* seqwin_mark for every arrival but the next number: first after a gap (the window slides,
 * maybe grows), reordered, duplicate or too late. Sequence number 0 is never a record's, so it
 * is too late. Not inlined, so that the common case does not pay for this one's registers. */
__attribute__((noinline)) static int seqwin_mark_other(seqwin *w, uint64_t seq) {
  int verdict = SEQWIN_FIRST;
  if (seq == 0) {
    return SEQWIN_TOO_LATE;
  }
  if (seq > w->max_seq) {
    seen_slide(w, seq);
  } else if (w->max_seq >= w->seen_bits && seq <= w->max_seq - w->seen_bits) {
    /* Below the window: whether it came before is no longer known. */
    return SEQWIN_TOO_LATE;
  } else if (seen_test(w, seq)) {
    return SEQWIN_DUPLICATE;
  } else {
    /* First copy of a number below the highest seen: it arrived after a later one. */
    verdict = SEQWIN_REORDERED;
  }
  seen_set(w, seq);
  return verdict;
}

/* Classify seq as first (new highest), reordered (first copy below the highest), duplicate or
 * too late, and mark it seen. */
int seqwin_mark(seqwin *w, uint64_t seq) {
  if (seq != 0 && seq - 1 == w->max_seq && seq != w->seen_bits) {
    /* The next number, the usual case: its bit is the one leaving the window, cleared and set
     * in one. At seen_bits the bitmap may grow first: the slide. */
    seen_set(w, seq);
    w->max_seq = seq;
    return SEQWIN_FIRST;
  }
  return seqwin_mark_other(w, seq);
}

/* Highest seq marked so far, 0 before any. */
uint64_t seqwin_max(const seqwin *w) {
  return w->max_seq;
}

/* Should a record with this verdict be stored? */
int seqwin_is_new(int verdict) {
  return verdict == SEQWIN_FIRST || verdict == SEQWIN_REORDERED;
}
