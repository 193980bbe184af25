/* report.h -- what the consumer tells people: the live --stats line, the summary table on exit
 * and the --stats-json file, from a view of the streams, the listeners' totals and the sinks.
 * It only observes: it never changes what is stored. */
#ifndef CSVSTREAM_CONSUMER_REPORT_H
#define CSVSTREAM_CONSUMER_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ingest.h"
#include "json.h"
#include "options.h"
#include "sinks.h"
#include "streams.h"

/* What a report reads. The stream table is not const: loss counts are brought up to date. */
typedef struct report_view {
  const consumer_options *opt;
  streams *table;
  const ingest_proto *proto; /* [STREAM_NPROTO] */
  sinks *sinks;
} report_view;

/* What the live line compares to decide whether anything changed, per protocol. */
typedef struct report_live_counts {
  uint64_t received, lost, duplicates, reordered, too_late; /* summed over the streams */
  uint64_t streams, garbage, connections, datagrams, kernel_drops;
} report_live_counts;

/* The live line's memory: the counts at the last tick, for "changed" and for the rates. */
typedef struct report_live {
  report_live_counts prev[STREAM_NPROTO];
  uint64_t prev_us;
} report_live;

void report_live_init(report_live *l);

/* One tick of the live line: a log line with, for each protocol in use (it has had a stream,
 * a connection, a datagram or garbage), received/lost/dup/reordered, the rate since the last
 * tick and p99 (UDP: kernel drops), printed only when a count above changed since the last
 * tick; an idle consumer stays silent. Returns 1 when it printed a line, 0 when not. */
int report_live_line(report_live *l, const report_view *v);

/* The summary table (per protocol and per stream, kernel drops, garbage, then each sink's
 * lines) to out. */
void report_summary(const report_view *v, FILE *out);

/* Adds members at the end of the JSON document (the live line's "interval"). */
typedef void (*report_json_extra)(json_out *j, void *arg);

/* The --stats-json document, as it stands now, into *out (json_init'ed here: the caller
 * json_free's it); extra (may be NULL) adds members at its end. For /stats.json and the
 * --stats-format json lines. */
void report_json_doc(const report_view *v, report_json_extra extra, void *arg, json_out *out);

/* Write the --stats-json document (shape: README) to path. Returns 0, or a negative code with
 * a message naming the file in err. */
int report_json(const report_view *v, const char *path, char *err, size_t errlen);

/* The object a stream leaves in the "streams" array when it is retired ("retired": true), as
 * malloc'ed text for streams_retire, or NULL when out of memory. */
char *report_stream_json(const report_view *v, stream *e);

#endif
