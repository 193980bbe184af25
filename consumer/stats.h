/* stats.h -- exact accounting of what arrived: distinct records, loss (gaps and trailing
 * loss), duplicates, reordering, bytes, latency percentiles from a fixed-bucket histogram, and
 * RFC 3550 jitter. Stats observe the record stream; they never decide what is stored: the
 * sequence window (seqwin.h) does, and stats count its verdicts. */
#ifndef CSVSTREAM_STATS_H
#define CSVSTREAM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "seqwin.h"

/* Latency histogram: fixed log-linear buckets (16 per power of two), about 6% resolution from
 * 1 µs to over an hour; merging two is adding their buckets. */
#define STATS_HIST_SUB 16
#define STATS_HIST_BUCKETS (40 * STATS_HIST_SUB)
typedef struct stats_hist {
  uint64_t buckets[STATS_HIST_BUCKETS];
  uint64_t count;
  uint64_t max;
  uint64_t sum; /* of every value added, saturating (the Prometheus histogram's _sum) */
} stats_hist;

void stats_hist_add(stats_hist *h, uint64_t value_us);
void stats_hist_merge(stats_hist *into, const stats_hist *from);
/* Values in buckets whose upper bound is at most bound_us (a Prometheus "le" bucket, to the
 * histogram's resolution of about 6%). */
uint64_t stats_hist_count_le(const stats_hist *h, uint64_t bound_us);
/* Value at percentile p (0 < p <= 100): the upper bound of the bucket that holds it, capped at
 * max. 0 for an empty histogram. */
uint64_t stats_hist_percentile(const stats_hist *h, double p);

/* Totals: for one stream, or summed over a protocol. */
typedef struct stats_counts {
  uint64_t received;   /* distinct records */
  uint64_t lost;       /* sequence numbers never received (up to the highest seen or announced) */
  uint64_t duplicates; /* extra copies of a record already received */
  uint64_t reordered;  /* records that arrived after one with a higher sequence number */
  uint64_t bytes;      /* wire bytes of every record frame, duplicates included */
  uint64_t first_us, last_us; /* receive time of the first and the last record */
  stats_hist latency;         /* receive time - send time, µs (negative clamps to 0) */
  double jitter_us; /* RFC 3550; for a sum, the mean over its streams weighted by received */
  uint64_t streams; /* streams summed (1 for a stream) */
} stats_counts;

/* The sequence window's reach (SEQWIN_SIZE): an arrival older than that is counted in
 * `too_late`. */
#define STATS_SEQ_WINDOW SEQWIN_SIZE

typedef struct stats_stream {
  stats_counts c;
  uint64_t max_seq;       /* highest seq observed as new (first or reordered) */
  uint64_t announced_seq; /* last seq from END, 0 until it arrives */
  uint64_t earlier;       /* records received in an earlier run (a resumed stream): not lost */
  uint64_t too_late;      /* arrivals the window found older than itself (or seq 0) */
  int64_t prev_transit_us;
  int have_prev;
} stats_stream;

/* Zero a stream's counts. Returns 0 (it allocates nothing; the sequence window, which does,
 * is seqwin_init's). */
int stats_stream_init(stats_stream *s);
/* Release what init took (nothing today); safe on NULL and on a zeroed stream. */
void stats_stream_free(stats_stream *s);

/* Account one RECORD arrival whose verdict the sequence window gave (enum seqwin_verdict):
 * bytes always; received, latency and jitter for a first copy (SEQWIN_FIRST or
 * SEQWIN_REORDERED, the latter also counted as reordered); duplicates or too_late otherwise.
 * recv_us is the receive time, sent_us the producer's send time, both µs. */
void stats_stream_observe(stats_stream *s, int verdict, uint64_t seq, uint64_t sent_us,
                          uint64_t recv_us, size_t frame_bytes);
/* Account one record of an unsequenced stream (plain CSV: no sequence number, no send time):
 * received, bytes and the arrival times only. */
void stats_stream_observe_unsequenced(stats_stream *s, uint64_t recv_us, size_t bytes);
/* Account an END announcing last_seq (repeats are harmless). */
void stats_stream_end(stats_stream *s, uint64_t last_seq);
/* A stream resumed after a restart: 1 .. base arrived in an earlier run. */
void stats_stream_resume(stats_stream *s, uint64_t base);
/* Bring s->c.lost up to date and return it. */
uint64_t stats_stream_lost(stats_stream *s);

void stats_counts_init(stats_counts *c);
/* Add a stream's counts into a protocol total (call stats_stream_lost first). Sums saturate at
 * UINT64_MAX: they never wrap round. */
void stats_counts_add(stats_counts *total, const stats_counts *stream);
/* Records per second between the first and the last arrival (0 if fewer than two). */
double stats_counts_rate(const stats_counts *c);

/* Shortest span of arrivals, first to last, whose rate is reported: a burst that arrives in
 * one read (all records with the same arrival time) or within a fraction of a millisecond
 * would show 0 or a rate of tens of thousands a second that says nothing about the stream. */
#define STATS_RATE_MIN_SPAN_US 10000
/* 1 if the arrivals span at least STATS_RATE_MIN_SPAN_US, so that stats_counts_rate means
 * something; else the reports show no rate (JSON null, "-" in the summary). */
int stats_counts_rate_known(const stats_counts *c);

/* Members "received", "lost", "duplicates", "reordered", "bytes", "records_per_s" (null when
 * !stats_counts_rate_known), "latency_us": {"p50", "p99", "max"}, "jitter_us" inside the
 * object that is open in j. */
void stats_counts_json(json_out *j, const stats_counts *c);

/* Datagrams the kernel dropped for the UDP socket fd because its receive buffer was full
 * (Linux: the `drops` column of /proc/net/udp or udp6 for the socket's inode). Returns 0, or a
 * negative code when it cannot be read (not Linux, say). */
int stats_udp_kernel_drops(int fd, uint64_t *drops);

#endif
