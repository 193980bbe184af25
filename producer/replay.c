/* replay.c -- waits from a time stamp column: detect the format once, parse each value, divide
 * the gaps by --speed and cap them at --max-gap; bad or backward values go at once. */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "tstamp.h"

/* 1 when s is a whole number from 1 (a column number). */
static int replay_is_number(const char *s, long long *n) {
  char *end = NULL;
  if (s[0] < '0' || s[0] > '9') {
    return 0;
  }
  *n = strtoll(s, &end, 10);
  return *end == '\0' && *n >= 1;
}

/* The header's names for a message: "a, b, c" (cut short when long). */
static void replay_names(const csvin_rec *header, char *out, size_t len) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < header->nfields && o + 8 < len; i++) {
    char nm[LOG_ESCAPE_BUF];
    log_escape(nm, sizeof nm, header->fields[i].data, header->fields[i].len);
    o += (size_t)snprintf(out + o, len - o, "%s%s", i > 0 ? ", " : "", nm);
  }
}

int replay_init(replay *r, const char *column, double speed, double max_gap_s,
                const csvin_rec *header, const char *path, char *err, size_t errlen) {
  long long n = 0;
  size_t len = strlen(column);
  memset(r, 0, sizeof *r);
  r->speed = speed;
  r->max_gap_us = (uint64_t)(max_gap_s * 1e6);
  if (header != NULL) {
    for (size_t i = 0; i < header->nfields; i++) {
      if (header->fields[i].len == len && memcmp(header->fields[i].data, column, len) == 0) {
        char nm[LOG_ESCAPE_BUF];
        r->column = i;
        snprintf(r->label, sizeof r->label, "'%s'", log_escape(nm, sizeof nm, column, len));
        return 0;
      }
    }
  }
  if (replay_is_number(column, &n) && (header == NULL || (size_t)n <= header->nfields)) {
    r->column = (size_t)n - 1;
    snprintf(r->label, sizeof r->label, "column %lld", n);
    return 0;
  }
  if (header == NULL) {
    snprintf(err, errlen,
             "--timestamps: '%s': without a header (--no-header) give the column's number, "
             "from 1",
             column);
  } else {
    char names[400];
    replay_names(header, names, sizeof names);
    snprintf(err, errlen,
             "--timestamps: %s has no column '%s' (its columns: %s; or give a number "
             "from 1 to %zu)",
             path, column, names, header->nfields);
  }
  return CS_EINVAL;
}

/* The field's text for a message, escaped. */
static const char *replay_value(const csvin_rec *rec, size_t col, char *buf, size_t len) {
  return log_escape(buf, len, rec->fields[col].data, rec->fields[col].len);
}

int replay_gap(replay *r, const csvin_rec *rec, const char *path, uint64_t *gap_us, char *msg,
               size_t msglen) {
  char v[LOG_ESCAPE_BUF];
  int note = REPLAY_QUIET;
  int64_t t;
  *gap_us = 0;
  if (rec->nfields <= r->column) {
    r->bad++;
    snprintf(msg, msglen,
             "%s:%llu: no value in %s (the row has %zu fields); sent right after the "
             "previous record",
             path, (unsigned long long)rec->line, r->label, rec->nfields);
    return REPLAY_WARN;
  }
  if (r->format == TSTAMP_UNKNOWN) {
    r->format = tstamp_detect(rec->fields[r->column].data, rec->fields[r->column].len);
    if (r->format != TSTAMP_UNKNOWN) {
      snprintf(msg, msglen, "--timestamps %s: %s (from line %llu: '%s')%s", r->label,
               tstamp_format_name(r->format), (unsigned long long)rec->line,
               replay_value(rec, r->column, v, sizeof v),
               r->format == TSTAMP_ISO ? "; values without a zone are read as UTC" : "");
      note = REPLAY_INFO;
    }
  }
  if (r->format == TSTAMP_UNKNOWN ||
      tstamp_parse(r->format, rec->fields[r->column].data, rec->fields[r->column].len, &t) != 0) {
    r->bad++;
    if (rec->fields[r->column].len == 0) {
      snprintf(msg, msglen, "%s:%llu: %s is empty; sent right after the previous record", path,
               (unsigned long long)rec->line, r->label);
    } else {
      snprintf(msg, msglen, "%s:%llu: '%s' in %s is not %s; sent right after the previous record",
               path, (unsigned long long)rec->line, replay_value(rec, r->column, v, sizeof v),
               r->label,
               r->format == TSTAMP_UNKNOWN ? "a date-time or an epoch number"
                                           : tstamp_format_name(r->format));
    }
    return REPLAY_WARN;
  }
  if (!r->have_prev) {
    r->have_prev = 1;
    r->prev_us = t;
    return note;
  }
  if (t < r->prev_us) {
    r->bad++;
    snprintf(msg, msglen,
             "%s:%llu: '%s' goes back %.3f s in time; sent right after the previous record", path,
             (unsigned long long)rec->line, replay_value(rec, r->column, v, sizeof v),
             (double)(r->prev_us - t) / 1e6);
    return REPLAY_WARN;
  }
  uint64_t file_gap = (uint64_t)(t - r->prev_us);
  r->prev_us = t;
  r->file_us += file_gap;
  if (r->speed > 0) {
    double real = (double)file_gap / r->speed;
    if (r->max_gap_us > 0 && real > (double)r->max_gap_us) {
      real = (double)r->max_gap_us;
      r->capped++;
    }
    *gap_us = (uint64_t)real;
  }
  return note;
}

void replay_restart(replay *r) {
  r->have_prev = 0;
}
