/* streams.h -- the stream table: one entry per (protocol, producer id, stream name), found by
 * hash, holding what the consumer knows of the stream and one state slot per sink. */
#ifndef CSVSTREAM_STREAMS_H
#define CSVSTREAM_STREAMS_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "record.h"
#include "seqwin.h"
#include "sink.h"
#include "stats.h"

/* The csvstream protocol over TCP and UDP, and plain CSV text (--plain-port) over each: plain
 * streams carry no sequence numbers, so they are "unsequenced" (received, bytes, garbage; no
 * loss, duplicates or order). */
enum stream_proto {
  STREAM_TCP = 0,
  STREAM_UDP = 1,
  STREAM_PLAIN_TCP = 2,
  STREAM_PLAIN_UDP = 3,
  STREAM_NPROTO = 4
};

/* "tcp", "udp", "plain-tcp" or "plain-udp". */
const char *stream_proto_name(int proto);

/* 1 for a protocol whose records carry sequence numbers (tcp, udp), 0 for plain CSV. */
int stream_proto_sequenced(int proto);

/* Streams kept at once. Each holds its accounting (a 5 KiB histogram and a sequence bitmap
 * of 128 bytes growing to 128 KiB on long streams) until the consumer exits, and any peer can
 * open streams by sending HELLOs with new producer ids: this bounds that memory (about 550 MiB
 * at worst, some 25 MiB for short streams). */
#define STREAMS_MAX 4096

/* One stream: one producer instance's stream over one protocol. Owned by the table; lives
 * until the table is freed, so sinks may keep &sink. */
typedef struct stream {
  sink_stream sink;           /* name, protocol, peer, label, columns: all owned by this entry */
  seqwin win;                 /* decides first copy, duplicate or too late */
  stats_stream stats;         /* observes the verdicts */
  int proto;                  /* enum stream_proto */
  size_t name_len;            /* the name may hold any byte; the key compares all of them */
  char label[LOG_ESCAPE_BUF]; /* the name as log lines show it (log_escape) */
  int ended;                  /* an END arrived */
  int header_known;           /* a HELLO arrived (an END may create the entry before one) */
  int warned_header;          /* a HELLO with another header was reported */
  int refused;                /* acknowledged stream that a sink could not keep: refused */
  uint64_t resent_dropped;    /* acknowledged stream: records resent that were stored already */
  char *columns_data;         /* the bytes sink.columns point into */
  uint64_t hash;
  struct stream *chain; /* next in the hash bucket */
} stream;

typedef struct streams {
  stream **v; /* in arrival order */
  size_t n, cap;
  stream **buckets; /* hash table over v */
  size_t nbuckets;
} streams;

void streams_init(streams *t);
/* Free every entry. Accepts a table streams_init made and nothing added to. */
void streams_free(streams *t);

/* The stream with this key, or NULL. */
stream *streams_find(const streams *t, int proto, uint64_t producer_id, const char *name,
                     size_t len);

/* Add a stream for this key, first seen from peer (copied). Returns 0 with *out set,
 * CS_EREFUSED when the table holds STREAMS_MAX streams, or CS_ENOMEM. */
int streams_add(streams *t, int proto, uint64_t producer_id, const char *name, size_t len,
                const char *peer, stream **out);

/* Copy a HELLO's column names into the entry. Returns 0 or CS_ENOMEM. */
int stream_set_columns(stream *e, const cs_field *columns, size_t n);

/* 1 if these columns equal the entry's. */
int stream_same_columns(const stream *e, const cs_field *columns, size_t n);

/* Streams of one protocol. */
size_t streams_of(const streams *t, int proto);

/* Bring every stream's loss count up to date and sum the streams of one protocol into *total
 * (stats_counts_init'ed here). */
void streams_totals(streams *t, int proto, stats_counts *total);

#endif
