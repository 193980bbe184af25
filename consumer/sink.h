/* sink.h -- the one interface every sink implements (out9.txt, SQLite, ...): a table of
 * operations the core calls without knowing which sink it is, and the record it hands over. */
#ifndef CSVSTREAM_SINK_H
#define CSVSTREAM_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "options.h"
#include "record.h"

/* Sinks at once: every stream carries one state slot per sink, by the sink's index. */
#define SINK_MAX 4

/* One stream as the consumer knows it: one producer instance's stream over one protocol.
 * Owned by the consumer's stream table; lives until the stream is retired (ended or idle), which
 * happens only when no sink holds records of it (held), after sink_ops.forget: until then
 * sinks may keep the pointer. */
typedef struct sink_stream {
  uint64_t producer_id;
  const char *name;        /* stream name as sent, NUL-terminated */
  const char *protocol;    /* "tcp" or "udp" */
  const char *peer;        /* "127.0.0.1:40512": the first address it came from */
  const char *label;       /* the name as log lines show it (log_escape) */
  char producer_hex[17];   /* producer_id as 16 hex digits, made once ("" when not set) */
  size_t ncolumns;         /* 0 when the producer ran with --no-header */
  const cs_field *columns; /* header names as sent */
  void *slot[SINK_MAX];    /* each sink's state for this stream, at the index it was given */
  /* Acknowledged delivery (TCP, protocol version 2): records come in sequence order, resent
   * copies included; each sink keeps, at its index, the highest sequence number durable in it
   * (written to the kernel for a file, committed for a database: persisted across restarts),
   * and skips a record at or below it. The ack is the minimum over the sinks. */
  int acked;
  int ended; /* its END arrived: a finished stream, that no producer will resume */
  uint64_t durable[SINK_MAX];
  /* Records of this stream that the sink at each index holds and has not made durable (kept
   * up to date by the sink): the stream leaves the table only when every count is 0. */
  uint64_t held[SINK_MAX];
} sink_stream;

/* One record. Fields are borrowed for the duration of the call: a sink copies what it keeps. */
typedef struct sink_record {
  sink_stream *stream;
  uint64_t seq;
  uint64_t sent_us;     /* producer's clock, µs since the epoch */
  uint64_t received_us; /* consumer's clock, µs since the epoch */
  size_t nfields;
  const cs_field *fields;
} sink_record;

/* What the fan-out gives a sink at open. */
typedef struct sink_env {
  size_t slot; /* the sink's index into sink_stream.slot */
  /* Where the CSV copy of st's records is (st NULL: of every stream), for a sink's messages
   * about records it could not keep: asks the other sinks (sinks.c), never names one. */
  const char *(*copy_where)(void *arg, const sink_stream *st, char *buf, size_t len);
  void *arg;
  /* The consumer's libuv loop (a uv_loop_t), for a sink that watches its own sockets (the
   * PostgreSQL connection); NULL where there is none (tests): such a sink polls in flush. */
  void *loop;
} sink_env;

/* What sink_ops.open returns when the options do not ask for the sink (no --db, say). */
#define SINK_OFF 1
/* What sink_ops.drain returns when it must be called again at *next_us (a locked database). */
#define SINK_AGAIN 2

/* Back-pressure, from sink_ops.pressure: stop reading the peers that can wait (TCP), let them
 * go on, or keep things as they are. */
enum sink_pressure { SINK_PRESSURE_KEEP = 0, SINK_PRESSURE_HIGH = 1, SINK_PRESSURE_LOW = 2 };

/* A sink (like a Fluent Bit output plugin): the core calls these and never names a sink.
 * Convention: a sink logs its own errors, with the file or database and the fix; a negative
 * return means the sink cannot go on, and the consumer stops with exit code 1. Every member
 * but name, open, add and close may be NULL. self is what open made. */
typedef struct sink_ops {
  const char *name; /* "csv", "sqlite": the registry's key */
  /* Open from the options. Returns 0 with *self set, SINK_OFF when the options do not ask for
   * this sink (*self NULL), or a negative code after logging why (the consumer does not start). */
  int (*open)(void **self, const consumer_options *opt, const sink_env *env);
  /* Take one new record (copy what is kept). Returns 0 when it is taken, or refused and
   * counted and logged by the sink (a row too wide for a table); CS_EREFUSED when the stream is
   * acknowledged and the sink cannot keep this record (logged: the stream is refused, since
   * nothing may be acknowledged that is not stored); other negative: the sink failed. */
  int (*add)(void *self, const sink_record *r);
  /* A stream that ended before any record (a header-only file): give it its place now, as its
   * first record would have (its header line in a CSV file, its table, empty). Returns 0, or
   * negative: the sink failed. */
  int (*ended_empty)(void *self, sink_stream *st);
  /* A new acknowledged stream: set st->durable[its index] to what the sink kept of the stream
   * before this run (0 if nothing), so that resent records it has are skipped. */
  void (*resume)(void *self, sink_stream *st);
  /* Write what is due, within a short time budget; called at the end of every loop turn and
   * when the time it asked for comes. now_us: monotonic clock. Sets *next_us to the monotonic
   * time to be called again (0: at the next turn that brought records is soon enough). The
   * loop turns at least once a second (its tick), so a check about once a second needs no
   * time of its own. Returns 0, or negative: the sink failed. */
  int (*flush)(void *self, uint64_t now_us, uint64_t *next_us);
  /* Is the sink behind? Fills why (a sentence naming the sink and its backlog) when it
   * returns SINK_PRESSURE_HIGH or SINK_PRESSURE_LOW. paused: reads are paused now. */
  int (*pressure)(void *self, int paused, char *why, size_t len);
  /* At the stop: make everything durable. give_up: a second SIGINT/SIGTERM, stop waiting.
   * Returns 0 when done, SINK_AGAIN with *next_us (monotonic) to be called again after a
   * wait, or 1 when records were left behind (logged, saved where it can: exit code 1). */
  int (*drain)(void *self, uint64_t now_us, int give_up, uint64_t *next_us);
  /* The stream leaves the table (it ended or went idle, and held[its index] is 0): drop every
   * pointer to it and what is kept at its slot. A sink that must remember something of it
   * (its acknowledged progress, say) copies it. */
  void (*forget)(void *self, sink_stream *st);
  /* SIGHUP: reopen the sink's files at their paths (logrotate moved them). Returns 0, or a
   * negative code after logging why (the sink goes on with what it had). */
  int (*reopen)(void *self);
  /* 1 if the sink still holds records a drain would wait for, naming itself in what
   * ("database x.db"), else 0. */
  int (*waiting)(void *self, char *what, size_t len);
  /* Where this sink keeps st's records as CSV (st NULL: all of them), or NULL if it is not a
   * CSV copy. buf holds the answer. */
  const char *(*where)(void *self, const sink_stream *st, char *buf, size_t len);
  /* Lines for the summary table's foot. */
  void (*summary)(void *self, FILE *out);
  /* The sink's members of the --stats-json document, at its top level. self is NULL when the
   * sink is off: write the same keys with empty values, so that the document's shape does not
   * depend on the flags (or nothing, for a sink that has no place in it). */
  void (*json)(void *self, json_out *j);
  /* The sink's members in one stream's object of the --stats-json document. */
  void (*stream_json)(void *self, const sink_stream *st, json_out *j);
  /* Close and free (after drain). discard: the consumer did not start (another sink failed to
   * open), so leave nothing behind that this open created. Returns 0, or 1 when closing lost
   * data (logged: exit code 1). */
  int (*close)(void *self, int discard);
} sink_ops;

#endif
