/* loop.h -- the consumer as a program: the libuv loop with its listeners, signals and timers,
 * the stream table, ingest and the sinks; start, stop, drain, report, free. Only main.c and
 * this module know the whole program. */
#ifndef CSVSTREAM_CONSUMER_LOOP_H
#define CSVSTREAM_CONSUMER_LOOP_H

#include "options.h"

typedef struct consumer consumer;

/* Build the consumer from parsed options (copied): bind the listeners, then open the sinks
 * (logging "listening on HOST:PORT/tcp" and ".../udp"), install the signal handlers and
 * timers. Returns 0, or a negative code after logging the error (port in use, unwritable
 * --out, bad --db ...). *out is set either way unless out of memory; loop_free it. */
int loop_new(consumer **out, const consumer_options *opt);

/* Run until SIGINT/SIGTERM, --max-records or a fatal error, then drain the sinks (waiting up
 * to 10 s for a database locked by another process; a second SIGINT/SIGTERM ends the wait),
 * print the summary, write --stats-json. Returns the exit code. */
int loop_run(consumer *c);

/* Free everything (after loop_run, or after a failed loop_new). Accepts NULL. From then on
 * SIGINT, SIGTERM and SIGHUP are ignored: the program is ending, and a signal in its last steps
 * must not kill it (and change its exit code). */
void loop_free(consumer *c);

#endif
