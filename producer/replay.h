/* replay.h -- replay on the file's own clock (--timestamps COLUMN, --speed, --max-gap): the wait
 * before each record from the differences between its column's values. */
#ifndef PRODUCER_REPLAY_H
#define PRODUCER_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "csvin.h"

typedef struct replay {
  size_t column;       /* 0-based index of the time stamp column */
  char label[128];     /* how messages name it: "'time'" or "column 3" */
  int format;          /* enum tstamp_format; TSTAMP_UNKNOWN until a first value is read */
  double speed;        /* gaps are divided by it; 0: unpaced */
  uint64_t max_gap_us; /* the longest wait (after speed); 0: no cap */
  int have_prev;       /* prev_us holds the last value that parsed */
  int64_t prev_us;
  uint64_t file_us; /* file time covered: the sum of the forward gaps, over every pass */
  uint64_t bad;     /* values that did not parse or went backwards */
  uint64_t capped;  /* waits cut to --max-gap */
} replay;

/* What replay_gap has to say about a record. */
enum replay_note {
  REPLAY_QUIET = 0, /* nothing */
  REPLAY_INFO = 1,  /* the format was just detected: msg says which, for the log */
  REPLAY_WARN = 2   /* the value did not parse or went backwards: msg names the line */
};

/* Find the column named `column` in header (or numbered, from 1: "3"; the only way without a
 * header, header NULL). Returns 0, or CS_EINVAL with a message naming the file and the
 * columns there are. */
int replay_init(replay *r, const char *column, double speed, double max_gap_s,
                const csvin_rec *header, const char *path, char *err, size_t errlen);

/* The real time to wait, in microseconds, between the previous record and rec: the difference
 * of their values divided by the speed, capped at the maximum gap; 0 for the first record and
 * for a value that does not parse or goes backwards (then REPLAY_WARN, and the record goes
 * right after the previous one; the next gap is measured from the last value that was good).
 * Returns an enum replay_note with msg filled when it is not REPLAY_QUIET. */
int replay_gap(replay *r, const csvin_rec *rec, const char *path, uint64_t *gap_us, char *msg,
               size_t msglen);

/* --loop: the file starts again, and so does its clock (the first record of a pass waits 0). */
void replay_restart(replay *r);

#endif
