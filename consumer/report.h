/* report.h -- what the consumer tells people: the live --stats line, the summary table on exit
 * and the --stats-json file. */
#ifndef CSVSTREAM_CONSUMER_REPORT_H
#define CSVSTREAM_CONSUMER_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "server.h"

/* One log line with per-protocol received/lost/dup/reordered, rate since the last line, p99. */
void report_live(consumer *c);

/* The summary table (per protocol and per stream, kernel drops, garbage, file and database
 * totals) to out. */
void report_summary(consumer *c, FILE *out);

/* Check at start-up that the --stats-json file can be written at exit: its temporary
 * FILE.tmp is created and removed again, and FILE must not be a directory. Returns 0, or a
 * negative code with a message naming the file in err. */
int report_json_check(const char *path, char *err, size_t errlen);

/* Write the --stats-json document (shape: docs and the shared contract) to path. Returns 0,
 * or a negative code with a message naming the file in err. */
int report_json(consumer *c, const char *path, char *err, size_t errlen);

#endif
