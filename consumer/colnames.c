/* colnames.c -- value column names from a CSV header under a database's rules: text, never
 * empty, unique, within the length limit (colnames.h). */
#include "colnames.h"

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

/* Is name reserved, or the name of one of c's columns, as the policy compares names? */
static int colnames_taken(const colnames *c, const char *name) {
  const colnames_policy *p = c->policy;
  for (size_t i = 0; i < p->nreserved; i++) {
    if (p->compare(name, p->reserved[i]) == 0) {
      return 1;
    }
  }
  for (size_t i = 0; i < c->n; i++) {
    if (p->compare(c->names[i], name) == 0) {
      return 1;
    }
  }
  return 0;
}

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
  for (unsigned long k = 1;; k++) {
    char *cand = colnames_numbered(c->policy, base, k);
    if (cand == NULL) {
      return CS_ENOMEM;
    }
    if (!colnames_taken(c, cand)) {
      c->names[c->n++] = cand;
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
