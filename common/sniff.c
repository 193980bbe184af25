/* sniff.c -- the delimiter of a CSV file from its first lines: the candidate with the most
 * lines that agree on a count. */
#include "sniff.h"

#include <stdio.h>
#include <string.h>

#define SNIFF_NCAND (sizeof SNIFF_CANDIDATES - 1)

/* Counts of each candidate on each line looked at. */
typedef struct sniff_lines {
  unsigned count[SNIFF_MAX_LINES][SNIFF_NCAND];
  size_t n;
} sniff_lines;

/* Count the candidates on every line of s, outside quotes; returns the lines counted. */
static void sniff_count(const char *s, size_t len, uint64_t skip_lines, char comment,
                        sniff_lines *out) {
  unsigned cur[SNIFF_NCAND];
  size_t i = 0;
  uint64_t line = 0;
  int quoted = 0;
  out->n = 0;
  while (i < len && out->n < SNIFF_MAX_LINES) {
    size_t start = i;
    int skip = line < skip_lines || (comment != 0 && s[i] == comment);
    int cut = 1;
    memset(cur, 0, sizeof cur);
    for (; i < len; i++) {
      char c = s[i];
      if (c == '"') {
        quoted = !quoted;
      } else if (!quoted && (c == '\n' || c == '\r')) {
        i++;
        if (c == '\r' && i < len && s[i] == '\n') {
          i++;
        }
        cut = 0;
        break;
      } else if (!quoted) {
        const char *hit = memchr(SNIFF_CANDIDATES, c, SNIFF_NCAND);
        if (hit != NULL && c != '\0') {
          cur[hit - SNIFF_CANDIDATES]++;
        }
      }
    }
    line++;
    if (skip) {
      quoted = 0; /* a title or comment line is not CSV: its quotes mean nothing */
      continue;
    }
    if (i - start <= 2 && (s[start] == '\n' || s[start] == '\r')) {
      continue; /* blank */
    }
    if (cut && out->n > 0) {
      break; /* the end of s cut this line: its counts would be short */
    }
    memcpy(out->count[out->n], cur, sizeof cur);
    out->n++;
  }
}

const char *sniff_delimiter_name(char c, char *buf, size_t len) {
  if (c == '\t') {
    snprintf(buf, len, "tab");
  } else {
    snprintf(buf, len, "'%c'", c);
  }
  return buf;
}

char sniff_delimiter(const char *s, size_t len, uint64_t skip_lines, char comment, char *why,
                     size_t whylen) {
  sniff_lines lines; /* about 1 KiB */
  size_t best = SNIFF_NCAND, best_agree = 0;
  unsigned best_mode = 0;
  char name[16];
  sniff_count(s, len, skip_lines, comment, &lines);
  for (size_t c = 0; c < SNIFF_NCAND; c++) {
    /* The count most lines agree on (the mode), among counts of at least 1. */
    unsigned mode = 0;
    size_t agree = 0;
    for (size_t a = 0; a < lines.n; a++) {
      unsigned v = lines.count[a][c];
      size_t same = 0;
      if (v == 0) {
        continue;
      }
      for (size_t b = 0; b < lines.n; b++) {
        same += lines.count[b][c] == v;
      }
      if (same > agree) {
        agree = same;
        mode = v;
      }
    }
    if (agree > best_agree) {
      best = c;
      best_agree = agree;
      best_mode = mode;
    }
  }
  if (best == SNIFF_NCAND) {
    snprintf(why, whylen, "',' (none of , tab ; | : on the first %zu lines: one column)", lines.n);
    return ',';
  }
  char d = SNIFF_CANDIDATES[best];
  snprintf(why, whylen, "%s (%u on each of %zu of the first %zu lines)",
           sniff_delimiter_name(d, name, sizeof name), best_mode, best_agree, lines.n);
  return d;
}
