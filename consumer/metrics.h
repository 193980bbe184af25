/* metrics.h -- the consumer's counts as they stand, for watching it run: the Prometheus text
 * format (GET /metrics) and one JSON object per --stats interval (--stats-format json). They
 * read a report_view and only observe. */
#ifndef CSVSTREAM_CONSUMER_METRICS_H
#define CSVSTREAM_CONSUMER_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "report.h"

/* Append the Prometheus text exposition (version 0.0.4) of every count to out: per protocol,
 * per stream, the latency histogram, the sinks' numbers (database committed and pending, ...).
 * Returns 0 or CS_ENOMEM. */
int metrics_prometheus(const report_view *v, cs_buf *out);

/* What one protocol's counts were at the last interval. */
typedef struct metrics_interval_counts {
  uint64_t received, lost, duplicates, reordered, bytes, garbage;
} metrics_interval_counts;

/* The JSON lines' memory: the counts and the time of the last line. */
typedef struct metrics_interval {
  metrics_interval_counts prev[STREAM_NPROTO];
  uint64_t prev_wall_us;
} metrics_interval;

void metrics_interval_init(metrics_interval *m);

/* One line to out: the --stats-json document as it stands plus "interval": {"start_us",
 * "end_us", "seconds", and per protocol in use the deltas of received, lost, duplicates,
 * reordered, bytes and garbage with records_per_s}. Flushed. Returns 0, or CS_EIO when out
 * cannot be written, CS_ENOMEM. */
int metrics_json_line(metrics_interval *m, const report_view *v, FILE *out);

#endif
