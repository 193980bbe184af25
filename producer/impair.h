/* impair.h -- ground-truth UDP impairment: drop, duplicate or hold back records on purpose,
 * reproducibly with a seed, so that the consumer's loss/duplicate/reorder counts can be checked
 * against the producer's exactly; and the sender wrapper that applies the decisions. */
#ifndef PRODUCER_IMPAIR_H
#define PRODUCER_IMPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "sender.h"

typedef struct impair_params {
  double loss;       /* probability a record is dropped (its seq is still consumed) */
  double dup;        /* probability an extra copy follows a record */
  double reorder;    /* probability a record is held back until after the next one sent */
  unsigned delay_ms; /* every datagram leaves this much later */
  int have_seed;
  uint64_t seed;
} impair_params;

/* Parse "loss=P,dup=P,reorder=P[,delay=MS][,seed=N]" (keys in any order, each at most once,
 * missing probabilities are 0). Returns 0, or CS_EINVAL with a message naming --impair and the
 * bad part in err. */
int impair_parse(const char *s, impair_params *p, char *err, size_t errlen);

enum impair_action {
  IMPAIR_SEND = 0, /* send it now */
  IMPAIR_DROP = 1, /* never send it */
  IMPAIR_HOLD = 2, /* keep it back; send it right after the next record that is sent */
  IMPAIR_DUP = 4   /* send an extra copy right after it (combines with SEND or HOLD) */
};

typedef struct impair {
  impair_params p;
  rng rng;
  uint64_t dropped, duplicated, reordered; /* ground truth, updated by the caller's reports */
} impair;

void impair_init(impair *im, const impair_params *p, uint64_t seed);
/* Decide the fate of the next record. `holding` says whether a record is already held back (a
 * second one is never held). Counts dropped and duplicated; reordered is counted by
 * impair_note_reordered when the held record really goes out after a later one. */
int impair_decide(impair *im, int holding);
void impair_note_reordered(impair *im);

/* A sender that applies im's decisions to every RECORD and hands the survivors to inner: a
 * dropped record is never handed over, a copy follows a duplicated one, a held record goes right
 * after the next one handed over (or before END), and everything, END included, is due
 * im->p.delay_ms later. Everything else passes straight through. Takes ownership of inner
 * (closed with the wrapper) and borrows im, which keeps the ground-truth counts. Returns NULL
 * when out of memory (inner then still belongs to the caller). */
sender *impair_sender_new(sender *inner, impair *im);

#endif
