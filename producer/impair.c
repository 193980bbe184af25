/* impair.c -- the seeded decisions behind --impair, in the order the shared contract fixes. */
#include "impair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "opt.h"

/* Parse one "key=value" item of the --impair list into p; `seen` guards against repeats. */
static int impair_parse_item(const char *item, impair_params *p, unsigned *seen, char *err,
                             size_t errlen) {
  static const char *const keys[] = {"loss", "dup", "reorder", "delay", "seed"};
  const char *eq = strchr(item, '=');
  char flag[64];
  size_t klen;
  unsigned k;
  long long v = 0;

  if (eq == NULL || eq == item) {
    snprintf(err, errlen,
             "--impair: '%s' is not KEY=VALUE (expected loss=P,dup=P,reorder=P[,delay=MS]"
             "[,seed=N])",
             item);
    return CS_EINVAL;
  }
  klen = (size_t)(eq - item);
  for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    if (strlen(keys[k]) == klen && memcmp(keys[k], item, klen) == 0) {
      break;
    }
  }
  if (k == sizeof keys / sizeof keys[0]) {
    snprintf(err, errlen, "--impair: unknown key '%.*s' (known: loss, dup, reorder, delay, seed)",
             (int)klen, item);
    return CS_EINVAL;
  }
  if (*seen & (1u << k)) {
    snprintf(err, errlen, "--impair: '%s' is given twice", keys[k]);
    return CS_EINVAL;
  }
  *seen |= 1u << k;
  snprintf(flag, sizeof flag, "--impair %s", keys[k]);
  switch (k) {
  case 0:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->loss, err, errlen);
  case 1:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->dup, err, errlen);
  case 2:
    return opt_double(flag, eq + 1, 0.0, 1.0, &p->reorder, err, errlen);
  case 3:
    if (opt_long(flag, eq + 1, 0, 60000, &v, err, errlen) != 0) {
      return CS_EINVAL;
    }
    p->delay_ms = (unsigned)v;
    return 0;
  default:
    if (opt_long(flag, eq + 1, 0, 0x7fffffffffffffffLL, &v, err, errlen) != 0) {
      return CS_EINVAL;
    }
    p->seed = (uint64_t)v;
    p->have_seed = 1;
    return 0;
  }
}

/* Split the comma list and parse each item. */
int impair_parse(const char *s, impair_params *p, char *err, size_t errlen) {
  char *copy = NULL;
  char *item, *save = NULL;
  unsigned seen = 0;
  int rc = 0;

  memset(p, 0, sizeof *p);
  if (s[0] == '\0') {
    snprintf(err, errlen, "--impair: empty (expected loss=P,dup=P,reorder=P[,delay=MS][,seed=N])");
    return CS_EINVAL;
  }
  /* strtok_r would skip empty items silently: "--impair ," must not turn impairment on. */
  size_t n = strlen(s);
  if (s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,") != NULL) {
    snprintf(err, errlen,
             "--impair: '%s' has an empty item (expected loss=P,dup=P,reorder=P[,delay=MS]"
             "[,seed=N])",
             s);
    return CS_EINVAL;
  }
  copy = strdup(s);
  if (copy == NULL) {
    snprintf(err, errlen, "--impair: out of memory");
    return CS_ENOMEM;
  }
  for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
    rc = impair_parse_item(item, p, &seen, err, errlen);
    if (rc != 0) {
      goto done;
    }
  }
done:
  free(copy);
  return rc;
}

void impair_init(impair *im, const impair_params *p, uint64_t seed) {
  im->p = *p;
  rng_seed(&im->rng, seed);
  im->dropped = im->duplicated = im->reordered = 0;
}

/* Draw loss first; a survivor may be held back (when none is held) and, independently, get a
 * duplicate. A probability of 0 draws no number, so turning one kind of impairment off does not
 * consume draws. Returns a mix of enum impair_action flags. */
int impair_decide(impair *im, int holding) {
  int action = IMPAIR_SEND;
  if (im->p.loss > 0 && rng_uniform(&im->rng) < im->p.loss) {
    im->dropped++;
    return IMPAIR_DROP;
  }
  if (!holding && im->p.reorder > 0 && rng_uniform(&im->rng) < im->p.reorder) {
    action |= IMPAIR_HOLD;
  }
  if (im->p.dup > 0 && rng_uniform(&im->rng) < im->p.dup) {
    action |= IMPAIR_DUP;
    im->duplicated++;
  }
  return action;
}

void impair_note_reordered(impair *im) {
  im->reordered++;
}
