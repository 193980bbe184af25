/* sink.h -- what the consumer hands its sinks (out9.txt, SQLite): a decoded record and the
 * stream it belongs to. */
#ifndef CSVSTREAM_SINK_H
#define CSVSTREAM_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* Sinks at once: every stream carries one state slot per sink, by the sink's index. */
#define SINK_MAX 4

/* One stream as the consumer knows it: one producer instance's stream over one protocol.
 * Owned by the consumer's stream table; lives until the consumer exits, so sinks may keep the
 * pointer. */
typedef struct sink_stream {
  uint64_t producer_id;
  const char *name;        /* stream name as sent, NUL-terminated */
  const char *protocol;    /* "tcp" or "udp" */
  const char *peer;        /* "127.0.0.1:40512": the first address it came from */
  size_t ncolumns;         /* 0 when the producer ran with --no-header */
  const cs_field *columns; /* header names as sent */
  void *slot[SINK_MAX];    /* each sink's state for this stream, at the index it was given */
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

#endif
