/* colnames.c -- value column names from a CSV header under a database's rules: text, never
 * empty, unique, within the length limit (colnames.h). */
#include "colnames.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "utf8.h"

void colnames_init(colnames *c, const colnames_policy *policy) {
  memset(c, 0, sizeof *c);
  c->policy = policy;
}

void colnames_free(colnames *c) {
  if (c->slots != NULL) {
    c->policy->name_free(c->slots);
    c->slots = NULL;
    c->nslots = c->nused = 0;
  }
  if (c->names == NULL) {
    return;
  }
  for (size_t i = 0; i < c->n; i++) {
    c->policy->name_free(c->names[i]);
  }
  c->policy->name_free(c->names);
  c->names = NULL;
  c->n = c->cap = 0;
}

/* A copy of n bytes plus a NUL (p's allocator), with NUL bytes inside replaced by '_' (SQL text
 * cannot hold them). NULL when out of memory. */
static char *colnames_dup(const colnames_policy *p, const char *data, size_t n) {
  char *out = p->name_realloc(NULL, n + 1);
  if (out == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    out[i] = data[i] == '\0' ? '_' : data[i];
  }
  out[n] = '\0';
  return out;
}

/* data[0..n) with each byte that does not start a whole, valid character (as its lead byte
 * says how long that is), and each NUL, replaced by '_' (p's allocator). NULL when out of
 * memory. */
static char *colnames_underscore(const colnames_policy *p, const char *data, size_t n) {
  char *out = p->name_realloc(NULL, n + 1);
  size_t o = 0, i = 0;
  if (out == NULL) {
    return NULL;
  }
  while (i < n) {
    unsigned c = (unsigned char)data[i];
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0x80 ? 2 : 1;
    if (c == 0 || (k > 1 && (i + k > n || !utf8_valid(data + i, k)))) {
      out[o++] = '_';
      i++;
      continue;
    }
    memcpy(out + o, data + i, k);
    o += k;
    i += k;
  }
  out[o] = '\0';
  return out;
}

char *colnames_text(const colnames_policy *p, const char *data, size_t len, int *repaired) {
  cs_buf fixed;
  char *out;
  int bad = !utf8_valid(data, len);
  if (repaired != NULL) {
    *repaired = bad;
  }
  if (!bad) {
    return colnames_dup(p, data, len);
  }
  if (p->repair == COLNAMES_REPAIR_UNDERSCORE) {
    return colnames_underscore(p, data, len);
  }
  cs_buf_init(&fixed);
  if (utf8_repair(data, len, &fixed, NULL) != 0) {
    cs_buf_free(&fixed);
    return NULL;
  }
  out = colnames_dup(p, fixed.data, fixed.len);
  cs_buf_free(&fixed);
  return out;
}

/* Cut the text s (valid UTF-8) to at most max bytes, between two characters. */
static void colnames_cut(char *s, size_t max) {
  if (strlen(s) <= max) {
    return;
  }
  while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80) {
    max--;
  }
  s[max] = '\0';
}

char *colnames_wanted(const colnames_policy *p, const char *data, size_t len, size_t pos,
                      int *repaired) {
  char *s;
  if (repaired != NULL) {
    *repaired = 0;
  }
  if (len == 0) {
    char num[40];
    int n = snprintf(num, sizeof num, "column_%zu", pos);
    return colnames_dup(p, num, (size_t)n);
  }
  s = colnames_text(p, data, len, repaired);
  if (s != NULL && p->max_bytes > 0) {
    colnames_cut(s, p->max_bytes);
  }
  return s;
}

char *colnames_numbered(const colnames_policy *p, const char *base, unsigned long k) {
  char suffix[24];
  size_t slen = k > 1 ? (size_t)snprintf(suffix, sizeof suffix, "_%lu", k) : 0;
  size_t blen = strlen(base);
  char *out;
  if (p->max_bytes > 0) {
    out = colnames_text(p, base, blen, NULL);
    if (out != NULL) {
      colnames_cut(out, p->max_bytes > slen ? p->max_bytes - slen : 0);
    }
  } else {
    out = colnames_dup(p, base, blen);
  }
  if (out == NULL || slen == 0) {
    return out;
  }
  blen = strlen(out);
  char *grown = p->name_realloc(out, blen + slen + 1);
  if (grown == NULL) {
    p->name_free(out);
    return NULL;
  }
  memcpy(grown + blen, suffix, slen + 1);
  return grown;
}

/* FNV-1a of name with ASCII letters folded: names equal under either policy's compare (strcmp,
 * or SQLite's ASCII-only case folding) hash alike. */
static size_t colnames_hash(const char *name) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *q = (const unsigned char *)name; *q; q++) {
    unsigned char ch = *q >= 'A' && *q <= 'Z' ? (unsigned char)(*q + 32) : *q;
    h = (h ^ ch) * 1099511628211ull;
  }
  return (size_t)h;
}

/* The slot that holds name (as the policy compares names), or the empty one where it would
 * go. The set must have room (nslots > nused). */
static colnames_slot *colnames_slot_of(const colnames *c, const char *name) {
  size_t mask = c->nslots - 1, i = colnames_hash(name) & mask;
  while (c->slots[i].key != NULL && c->policy->compare(c->slots[i].key, name) != 0) {
    i = (i + 1) & mask;
  }
  return &c->slots[i];
}

/* Give the empty slot s to key (a name that outlives the set). */
static void colnames_take(colnames *c, colnames_slot *s, const char *key) {
  s->key = key;
  s->next_k = 2;
  c->nused++;
}

/* Room in the set for one more name (grown to stay at most half full). Returns 0 or
 * CS_ENOMEM. */
static int colnames_room(colnames *c) {
  if (2 * (c->nused + 1) <= c->nslots) {
    return 0;
  }
  size_t n = c->nslots ? 2 * c->nslots : 64, nold = c->nslots;
  colnames_slot *old = c->slots, *grown = c->policy->name_realloc(NULL, n * sizeof *grown);
  if (grown == NULL) {
    return CS_ENOMEM;
  }
  memset(grown, 0, n * sizeof *grown);
  c->slots = grown;
  c->nslots = n;
  for (size_t i = 0; i < nold; i++) {
    if (old[i].key != NULL) {
      *colnames_slot_of(c, old[i].key) = old[i];
    }
  }
  if (old != NULL) {
    c->policy->name_free(old);
  }
  return 0;
}

/* Put key (which outlives the set) in it, unless a name equal to it is there. Returns 0 or
 * CS_ENOMEM. */
static int colnames_put(colnames *c, const char *key) {
  if (colnames_room(c) != 0) {
    return CS_ENOMEM;
  }
  colnames_slot *s = colnames_slot_of(c, key);
  if (s->key == NULL) {
    colnames_take(c, s, key);
  }
  return 0;
}

/* The set, made on the first name: the reserved names, then the columns so far. */
static int colnames_set_ready(colnames *c) {
  if (c->slots != NULL) {
    return 0;
  }
  for (size_t i = 0; i < c->policy->nreserved; i++) {
    if (colnames_put(c, c->policy->reserved[i]) != 0) {
      return CS_ENOMEM;
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    if (colnames_put(c, c->names[i]) != 0) {
      return CS_ENOMEM;
    }
  }
  return 0;
}

/* The first numbered name of base that is free is added. Its first name taken, the numbers
 * go on from where the last base with that first name stopped: names are never taken back, so
 * those below were taken and still are (the same names as trying them all from 2). */
int colnames_add(colnames *c, const char *base) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    char **names = c->policy->name_realloc(c->names, cap * sizeof *names);
    if (names == NULL) {
      return CS_ENOMEM;
    }
    c->names = names;
    c->cap = cap;
  }
  if (colnames_set_ready(c) != 0 || colnames_room(c) != 0) {
    return CS_ENOMEM; /* after the room is made, nothing below grows the set */
  }
  char *first = colnames_numbered(c->policy, base, 1);
  if (first == NULL) {
    return CS_ENOMEM;
  }
  colnames_slot *f = colnames_slot_of(c, first);
  if (f->key == NULL) {
    colnames_take(c, f, first);
    c->names[c->n++] = first;
    return 0;
  }
  for (unsigned long k = f->next_k;; k++) {
    char *cand = colnames_numbered(c->policy, base, k);
    if (cand == NULL) {
      c->policy->name_free(first);
      return CS_ENOMEM;
    }
    colnames_slot *s = colnames_slot_of(c, cand);
    if (s->key == NULL) {
      colnames_take(c, s, cand);
      c->names[c->n++] = cand;
      /* Linear probing moves no slot on an insert: f still points at first's. */
      f->next_k = k + 1;
      c->policy->name_free(first);
      return 0;
    }
    c->policy->name_free(cand);
  }
}

const char *colnames_extra_prefix(size_t nheader) {
  return nheader > 0 ? "extra" : "column";
}

int colnames_widen(colnames *c, size_t nheader, size_t n) {
  while (c->n < n) {
    char base[64];
    snprintf(base, sizeof base, "%s_%zu", colnames_extra_prefix(nheader), c->n - nheader + 1);
    int rc = colnames_add(c, base);
    if (rc != 0) {
      return rc;
    }
  }
  return 0;
}
