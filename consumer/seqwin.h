/* seqwin.h -- the sequence window of one stream: decides whether a record's sequence number is
 * a first copy (store it), a duplicate, or too old to tell (do not store it). No libuv, no
 * stats: the window decides, stats only observe its verdicts. */
#ifndef CSVSTREAM_CONSUMER_SEQWIN_H
#define CSVSTREAM_CONSUMER_SEQWIN_H

#include <stddef.h>
#include <stdint.h>

/* Sequence numbers within this distance below the highest one seen are tracked exactly (a
 * bitmap of at most this many bits per stream, grown with the highest sequence number from
 * 1024 bits, so a short stream costs 128 bytes and a long one 128 KiB: memory stays flat
 * however long the stream). An arrival older than that cannot be told from a duplicate and is
 * SEQWIN_TOO_LATE. */
#define SEQWIN_SIZE (1u << 20)

enum seqwin_verdict {
  SEQWIN_FIRST = 0,     /* first copy, above every number seen so far (the new highest): store */
  SEQWIN_REORDERED = 1, /* first copy of a number below the highest seen (arrived late): store */
  SEQWIN_DUPLICATE = 2, /* a copy of a number already seen: do not store */
  SEQWIN_TOO_LATE = 3   /* older than the window, or 0: maybe a duplicate: do not store */
};

/* Nothing has been seen while max_seq is 0: sequence number 0 is never a record's, so it is
 * never marked, and every number that is marked is at least 1. */
typedef struct seqwin {
  uint64_t max_seq;    /* highest seq marked, 0 before any */
  unsigned char *seen; /* ring bitmap over [max_seq - seen_bits + 1, max_seq]; owned */
  size_t seen_bits;    /* bits in seen: a power of two from 1024 up to SEQWIN_SIZE */
  int no_grow;         /* set by the owner when memory is short: the bitmap keeps its size */
} seqwin;

/* Set up an empty window (a 1024-bit bitmap). 0 or CS_ENOMEM; on failure w needs no free. */
int seqwin_init(seqwin *w);
/* Release the bitmap; accepts NULL, a zeroed or an already freed window. */
void seqwin_free(seqwin *w);
/* The verdict for seq (enum seqwin_verdict); seq is then marked seen (unless it is 0 or too
 * late, which cannot be marked). Never fails: out of memory, the bitmap does not grow and older
 * numbers come back SEQWIN_TOO_LATE sooner. */
int seqwin_mark(seqwin *w, uint64_t seq);
/* For a window just made: take 1 .. base as seen (a stream resumed after a restart, whose
 * records up to base are stored already): they come back SEQWIN_DUPLICATE, or SEQWIN_TOO_LATE
 * below the window. */
void seqwin_start_at(seqwin *w, uint64_t base);

/* Highest seq marked (0 before any). */
uint64_t seqwin_max(const seqwin *w);
/* 1 for SEQWIN_FIRST and SEQWIN_REORDERED (store the record), else 0. */
int seqwin_is_new(int verdict);

#endif
