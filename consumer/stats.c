/* stats.c -- exact per-stream accounting (distinct, lost, duplicates, reordered), latency
 * histogram, RFC 3550 jitter, and the kernel's drop count for a UDP socket. */
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

/* ---- latency histogram ------------------------------------------------------------------ */

/* Values 0..15 get one exact bucket each. A value v >= 16 with highest set bit e (4 <= e)
 * lands in row e - 3, which splits [2^e, 2^(e+1)) into 16 sub-buckets of width 2^(e-4). So the
 * width of a bucket is at most 1/16 of its lower bound: the resolution is about 6%. */
#define HIST_SUB_BITS 4

/* Index of the highest set bit of v (v > 0). */
static unsigned highest_bit(uint64_t v) {
  return 63u - (unsigned)__builtin_clzll(v);
}

/* Bucket index for a value; values beyond the last row go into the last bucket. */
static size_t hist_index(uint64_t v) {
  if (v < STATS_HIST_SUB) {
    return (size_t)v;
  }
  unsigned e = highest_bit(v);
  size_t row = (size_t)e - (HIST_SUB_BITS - 1);
  size_t sub = (size_t)((v >> (e - HIST_SUB_BITS)) - STATS_HIST_SUB);
  size_t idx = row * STATS_HIST_SUB + sub;
  return idx < STATS_HIST_BUCKETS ? idx : STATS_HIST_BUCKETS - 1;
}

/* Largest value that falls into bucket idx (inclusive upper bound). */
static uint64_t hist_upper(size_t idx) {
  if (idx < STATS_HIST_SUB) {
    return (uint64_t)idx;
  }
  unsigned e = (unsigned)(idx / STATS_HIST_SUB) + (HIST_SUB_BITS - 1);
  uint64_t sub = idx % STATS_HIST_SUB;
  uint64_t width = (uint64_t)1 << (e - HIST_SUB_BITS);
  return ((STATS_HIST_SUB + sub) << (e - HIST_SUB_BITS)) + width - 1;
}

/* Count one value (µs) into the histogram. */
void stats_hist_add(stats_hist *h, uint64_t value_us) {
  h->buckets[hist_index(value_us)]++;
  h->count++;
  h->sum = h->sum + value_us < h->sum ? UINT64_MAX : h->sum + value_us;
  if (value_us > h->max) {
    h->max = value_us;
  }
}

uint64_t stats_hist_count_le(const stats_hist *h, uint64_t bound_us) {
  uint64_t n = 0;
  for (size_t i = 0; i < STATS_HIST_BUCKETS && hist_upper(i) <= bound_us; i++) {
    n += h->buckets[i];
  }
  return n;
}

/* Add every bucket of `from` into `into`. */
void stats_hist_merge(stats_hist *into, const stats_hist *from) {
  for (size_t i = 0; i < STATS_HIST_BUCKETS; i++) {
    into->buckets[i] += from->buckets[i];
  }
  into->count += from->count;
  into->sum = into->sum + from->sum < into->sum ? UINT64_MAX : into->sum + from->sum;
  if (from->max > into->max) {
    into->max = from->max;
  }
}

/* Nearest-rank percentile: the upper bound of the bucket holding the ceil(p% * count)-th
 * smallest value, capped at the largest value seen. */
uint64_t stats_hist_percentile(const stats_hist *h, double p) {
  if (h->count == 0) {
    return 0;
  }
  if (!(p > 0.0)) {
    p = 0.0;
  }
  if (p > 100.0) {
    p = 100.0;
  }
  double exact = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)exact;
  if ((double)rank < exact) {
    rank++;
  }
  if (rank == 0) {
    rank = 1;
  }
  if (rank > h->count) {
    rank = h->count;
  }
  uint64_t seen = 0;
  for (size_t i = 0; i < STATS_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      uint64_t upper = hist_upper(i);
      return upper < h->max ? upper : h->max;
    }
  }
  return h->max;
}

/* Zero the counts (a total starts with no streams). */
void stats_counts_init(stats_counts *c) {
  memset(c, 0, sizeof *c);
}

/* Set up an empty stream: zero counts, one stream. Always 0 (the bitmap that could fail to
 * allocate is the sequence window's now). */
int stats_stream_init(stats_stream *s) {
  memset(s, 0, sizeof *s);
  stats_counts_init(&s->c);
  s->c.streams = 1;
  return 0;
}

/* Nothing to release (see stats_stream_init); safe on NULL and on a zeroed stream. */
void stats_stream_free(stats_stream *s) {
  (void)s;
}

/* Latency and jitter for the first copy of a record. Jitter follows RFC 3550 section 6.4.1:
 * D is the change in transit time between consecutive distinct arrivals, J += (|D| - J) / 16.
 * Transit keeps its sign here (clocks may differ a little); only the histogram clamps. */
static void account_timing(stats_stream *s, uint64_t sent_us, uint64_t recv_us) {
  int64_t transit = (int64_t)(recv_us - sent_us);
  stats_hist_add(&s->c.latency, transit > 0 ? (uint64_t)transit : 0);
  if (s->have_prev) {
    /* In double: send times come from the network, and the difference of two hostile
     * transits can overflow int64_t. */
    double d = (double)transit - (double)s->prev_transit_us;
    if (d < 0) {
      d = -d;
    }
    s->c.jitter_us += (d - s->c.jitter_us) / 16.0;
  }
  s->prev_transit_us = transit;
  s->have_prev = 1;
  if (s->c.received == 1 || recv_us < s->c.first_us) {
    s->c.first_us = recv_us;
  }
  if (recv_us > s->c.last_us) {
    s->c.last_us = recv_us;
  }
}

/* Count one RECORD arrival by the window's verdict: every frame's bytes; a first copy is
 * received and timed (and counted as reordered when it came after a higher number); a
 * duplicate or too-late one only counted as such. */
void stats_stream_observe(stats_stream *s, int verdict, uint64_t seq, uint64_t sent_us,
                          uint64_t recv_us, size_t frame_bytes) {
  s->c.bytes += frame_bytes;
  switch (verdict) {
  case SEQWIN_FIRST:
  case SEQWIN_REORDERED:
    if (verdict == SEQWIN_REORDERED) {
      s->c.reordered++;
    }
    if (seq > s->max_seq) {
      s->max_seq = seq;
    }
    s->c.received++;
    account_timing(s, sent_us, recv_us);
    break;
  case SEQWIN_DUPLICATE:
    s->c.duplicates++;
    break;
  default: /* SEQWIN_TOO_LATE: not stored, and not known to be a copy */
    s->too_late++;
    break;
  }
}

/* An unsequenced record; see stats.h. */
void stats_stream_observe_unsequenced(stats_stream *s, uint64_t recv_us, size_t bytes) {
  s->c.bytes += bytes;
  s->c.received++;
  if (s->c.first_us == 0) {
    s->c.first_us = recv_us;
  }
  s->c.last_us = recv_us;
}

/* Remember the highest last seq any END announced (repeats and stale copies are harmless). */
void stats_stream_end(stats_stream *s, uint64_t last_seq) {
  if (last_seq > s->announced_seq) {
    s->announced_seq = last_seq;
  }
  stats_stream_lost(s);
}

/* lost = max(highest received, announced) - received, never negative. */
void stats_stream_resume(stats_stream *s, uint64_t base) {
  s->earlier = base;
  if (base > s->max_seq) {
    s->max_seq = base;
  }
}

uint64_t stats_stream_lost(stats_stream *s) {
  uint64_t top = s->max_seq > s->announced_seq ? s->max_seq : s->announced_seq;
  uint64_t have = s->c.received + s->earlier;
  s->c.lost = top > have ? top - have : 0;
  return s->c.lost;
}

/* Sum a stream's (or another total's) counts into total. Jitter becomes the mean of the two
 * weighted by records received; first/last become the earliest and latest arrival. */
/* a + b, or UINT64_MAX when that does not fit: a total of hostile streams' counts must not wrap
 * round and cancel real loss out. */
static uint64_t stats_sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void stats_counts_add(stats_counts *total, const stats_counts *stream) {
  uint64_t before = total->received;
  uint64_t after = stats_sat_add(before, stream->received);
  if (after > 0) {
    total->jitter_us =
        (total->jitter_us * (double)before + stream->jitter_us * (double)stream->received) /
        (double)after;
  }
  if (stream->received > 0) {
    if (before == 0 || stream->first_us < total->first_us) {
      total->first_us = stream->first_us;
    }
    if (stream->last_us > total->last_us) {
      total->last_us = stream->last_us;
    }
  }
  total->received = after;
  total->lost = stats_sat_add(total->lost, stream->lost);
  total->duplicates = stats_sat_add(total->duplicates, stream->duplicates);
  total->reordered = stats_sat_add(total->reordered, stream->reordered);
  total->bytes = stats_sat_add(total->bytes, stream->bytes);
  total->streams = stats_sat_add(total->streams, stream->streams);
  stats_hist_merge(&total->latency, &stream->latency);
}

/* Records per second over the span from the first to the last arrival: (received - 1)
 * intervals in that time. 0 with fewer than two records or no measurable span. */
double stats_counts_rate(const stats_counts *c) {
  if (c->received < 2 || c->last_us <= c->first_us) {
    return 0.0;
  }
  return (double)(c->received - 1) * 1e6 / (double)(c->last_us - c->first_us);
}

/* Is the span long enough for a rate? See stats.h. */
int stats_counts_rate_known(const stats_counts *c) {
  return c->received >= 2 && c->last_us >= c->first_us &&
         c->last_us - c->first_us >= STATS_RATE_MIN_SPAN_US;
}

/* Write the shared members of a counts object into the JSON object open in j. */
void stats_counts_json(json_out *j, const stats_counts *c) {
  json_uint(j, "received", c->received);
  json_uint(j, "lost", c->lost);
  json_uint(j, "duplicates", c->duplicates);
  json_uint(j, "reordered", c->reordered);
  json_uint(j, "bytes", c->bytes);
  if (stats_counts_rate_known(c)) {
    json_double(j, "records_per_s", stats_counts_rate(c));
  } else {
    json_string(j, "records_per_s", NULL); /* null: too short a span to mean anything */
  }
  json_object_begin(j, "latency_us");
  json_uint(j, "p50", stats_hist_percentile(&c->latency, 50.0));
  json_uint(j, "p99", stats_hist_percentile(&c->latency, 99.0));
  json_uint(j, "max", c->latency.max);
  json_object_end(j);
  json_double(j, "jitter_us", c->jitter_us);
}

/* ---- kernel drop counter ---------------------------------------------------------------- */

/* Look for the row of socket inode `ino` in one /proc/net/udp-style table. Returns 0 and sets
 * *drops when found, -ENOENT when the table has no such row, or -errno when it cannot be read.
 * Row layout: sl local rem st tx:rx tr tm->when retrnsmt uid timeout inode ref pointer drops. */
static int scan_proc_udp(const char *path, unsigned long ino, uint64_t *drops) {
  int rc = -ENOENT;
  char line[512];
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return -errno;
  }
  if (fgets(line, sizeof line, f) == NULL) { /* the column titles */
    goto done;
  }
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long row_ino = 0;
    unsigned long long row_drops = 0;
    int n =
        sscanf(line, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %llu", &row_ino, &row_drops);
    if (n == 2 && row_ino == ino) {
      *drops = (uint64_t)row_drops;
      rc = 0;
      goto done;
    }
  }
  if (ferror(f)) {
    rc = CS_EIO;
  }
done:
  fclose(f);
  return rc;
}

/* The kernel's drop count for UDP socket fd, found by the socket's inode in /proc/net/udp and
 * then /proc/net/udp6. 0 on success, else a negative code (-ENOTSOCK, -ENOENT, -errno). */
int stats_udp_kernel_drops(int fd, uint64_t *drops) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return -errno;
  }
  if (!S_ISSOCK(st.st_mode)) {
    return -ENOTSOCK;
  }
  int rc = scan_proc_udp("/proc/net/udp", (unsigned long)st.st_ino, drops);
  if (rc == 0) {
    return 0;
  }
  int rc6 = scan_proc_udp("/proc/net/udp6", (unsigned long)st.st_ino, drops);
  if (rc6 == 0) {
    return 0;
  }
  return rc6 == -ENOENT ? rc : rc6;
}
