/* sinks.h -- the registry of sinks and the fan-out: every new record goes to every open sink,
 * with one error policy, one back-pressure verdict and one drain at the stop. */
#ifndef CSVSTREAM_SINKS_H
#define CSVSTREAM_SINKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "options.h"
#include "sink.h"

typedef struct sinks sinks;

/* The registered sink with this name ("csv", "sqlite", "count"), or NULL. */
const sink_ops *sinks_find(const char *name);

/* Open every registered sink the options ask for, in registry order (out9.txt first).
 * Returns 0 with *out set, or a negative code (logged by the sink that failed; those opened
 * before it are discarded). */
int sinks_open(sinks **out, const consumer_options *opt);

/* The same on the consumer's libuv loop (a uv_loop_t), which sinks with sockets of their own
 * watch (sink_env.loop). */
int sinks_open_on(sinks **out, const consumer_options *opt, void *loop);

/* Open exactly the given sinks (tests; a program with its own choice). Same as sinks_open. */
int sinks_open_these(sinks **out, const sink_ops *const *ops, size_t n,
                     const consumer_options *opt);

/* Hand one new record to every sink that has not failed (for an acknowledged stream, to those
 * that do not have it yet: r->seq above their durable number). Returns 0; 1 when every sink had
 * it already (a record resent after a restart); CS_EREFUSED when a sink cannot keep it (the
 * stream must be refused; *who names the sink); or another negative code when a sink failed now
 * (it logged why; it gets no more records): the consumer stops with exit 1. */
int sinks_add(sinks *s, const sink_record *r, const char **who);

/* A new acknowledged stream: every sink says what it kept of it before (sink_ops.resume). */
void sinks_resume(sinks *s, sink_stream *st);

/* A stream ended with no record: every sink that has the operation gives it its place (the
 * header line, an empty table). Returns 0, or the first failure's code (that sink is marked
 * failed, as in sinks_add). */
int sinks_ended_empty(sinks *s, sink_stream *st);

/* The sequence number up to which st's records are durable in every open sink: its ack. */
uint64_t sinks_durable(const sinks *s, const sink_stream *st);

/* 1 if some sink still holds records of st that are not durable (sink_stream.held). */
int sinks_hold(const sinks *s, const sink_stream *st);

/* st leaves the stream table: every sink forgets it (sink_ops.forget). Call only when
 * sinks_hold says 0. */
void sinks_forget(sinks *s, sink_stream *st);

/* Flush every sink (end of a loop turn, or the time one asked for). *next_us: the earliest
 * monotonic time one asked to be called again, 0 if none. Returns 0 or a negative code as
 * sinks_add. */
int sinks_flush(sinks *s, uint64_t now_us, uint64_t *next_us);

/* Back-pressure over all sinks. paused: TCP reads are paused now. Returns SINK_PRESSURE_HIGH
 * (pause: why says who is behind), SINK_PRESSURE_LOW (resume: why says who caught up) or
 * SINK_PRESSURE_KEEP. */
int sinks_pressure(sinks *s, int paused, char *why, size_t len);

/* One step of the stop's drain over every sink, in order: returns 0 when all are done,
 * SINK_AGAIN with *next_us when one must wait, or 1 when a sink left records behind (it
 * logged where they are). Call until it does not return SINK_AGAIN. */
int sinks_drain(sinks *s, uint64_t now_us, int give_up, uint64_t *next_us);

/* SIGHUP: every sink that has files reopens them. Returns 0, or the first negative code (each
 * failure logged by its sink). */
int sinks_reopen(sinks *s);

/* 1 if a sink holds records a drain would wait for (what names it), else 0. */
int sinks_waiting(sinks *s, char *what, size_t len);

/* The summary's sink lines, the --stats-json members at the top level and in a stream. */
void sinks_report_text(sinks *s, FILE *out);
void sinks_report_json(sinks *s, json_out *j);
void sinks_report_stream_json(sinks *s, const sink_stream *st, json_out *j);

/* 1 if a sink failed while running (sinks_add or sinks_flush returned an error). */
int sinks_failed(const sinks *s);

/* Close every sink and free s. Accepts NULL. Returns 0, or 1 when a close lost data. */
int sinks_close(sinks *s);

#endif
