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
#include "wire.h"

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
 * of 128 bytes growing to 128 KiB on long streams) until it is retired (ended, or idle: see
 * ingest_retire), and any peer can open streams by sending HELLOs with new producer ids: the
 * memory budget (--max-memory, streams.bytes) is what bounds them; this is a second, plain
 * limit on the count. */
#define STREAMS_MAX 16384

/* Retired streams whose JSON objects are kept for the final document (the latest ones). */
#define STREAMS_RETIRED_LISTED 1024

/* Retired streams remembered (lossy, by hash): enough of each to know a late frame of it. */
#define STREAMS_GHOSTS 65536

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
  /* Who may send its frames. The first HELLO or END fixes the session key (version 3) or its
   * absence (versions 1 and 2); later ones must present the same. owner is the serial of the
   * last peer (TCP connection, UDP datagram) that did: its RECORDs are the stream's. */
  int keyed;
  unsigned char key[WIRE_KEY_LEN];
  uint64_t owner;
  int owner_live;   /* tcp: the owner is a connection still open */
  unsigned refs;    /* tcp: open connections whose last HELLO was this stream's (they point here) */
  uint64_t seen_us; /* wall clock of its last frame: idle streams are retired */
  size_t bytes;     /* memory this entry holds (streams.bytes sums them) */
  size_t win_bits;  /* the window's size when bytes was counted */
  uint64_t resent_dropped; /* acknowledged stream: records resent that were stored already */
  char *columns_data;      /* the bytes sink.columns point into */
  uint64_t hash;
  struct stream *chain; /* next in the hash bucket */
} stream;

/* What is kept of a retired stream, so that a late frame of it is known: a duplicate is
 * not stored again as a new stream's first record, and a frame without its key is spoofed. */
typedef struct stream_ghost {
  uint64_t hash; /* the stream's key hash; 0: an empty slot */
  uint64_t producer_id;
  uint64_t top; /* highest sequence number it had seen */
  unsigned char key[WIRE_KEY_LEN];
  unsigned char keyed, ended, proto, acked;
} stream_ghost;

typedef struct streams {
  stream **v; /* in arrival order */
  size_t n, cap;
  stream **buckets; /* hash table over v */
  size_t nbuckets;
  size_t bytes; /* memory the entries hold */
  /* Retired streams: their counts (kept in the totals), how many, and their ghosts. */
  stats_counts retired[STREAM_NPROTO];
  uint64_t nretired[STREAM_NPROTO];
  stream_ghost *ghosts; /* STREAMS_GHOSTS slots, made at the first retirement; owned */
  /* The JSON objects of the latest STREAMS_RETIRED_LISTED retired streams, oldest first from
   * listed_next once the ring is full (each owned, NUL-terminated), and how many fell out. */
  char *listed[STREAMS_RETIRED_LISTED];
  size_t listed_n, listed_next;
  uint64_t unlisted;
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

/* Memory a new entry with this name and peer would take (what streams_add would add to
 * t->bytes), for the budget check before adding it. */
size_t streams_entry_cost(size_t name_len, const char *peer);

/* Count e's memory again after its window or header grew (cheap when nothing changed). */
void streams_recount(streams *t, stream *e);

/* Retire e: its counts go to t->retired, a ghost is kept, json (its object in the final JSON
 * document, owned from now on; may be NULL) joins the listed ones, and the entry is freed (the
 * caller has made sure nothing points to it any more: no connection, no sink). */
void streams_retire(streams *t, stream *e, char *json);

/* The i-th listed retired stream's JSON object, oldest first (i < t->listed_n). */
const char *streams_listed(const streams *t, size_t i);

/* The ghost of a retired stream with this key, or NULL (ghosts are lossy: an old one may be
 * gone). */
const stream_ghost *streams_ghost(const streams *t, int proto, uint64_t producer_id,
                                  const char *name, size_t len);

/* stream_set_columns, and the table's byte count follows. */
int streams_set_columns(streams *t, stream *e, const cs_field *columns, size_t n);

/* Copy a HELLO's column names into the entry. Returns 0 or CS_ENOMEM. */
int stream_set_columns(stream *e, const cs_field *columns, size_t n);

/* 1 if these columns equal the entry's. */
int stream_same_columns(const stream *e, const cs_field *columns, size_t n);

/* Streams of one protocol in the table (retired ones not included). */
size_t streams_of(const streams *t, int proto);

/* Bring every stream's loss count up to date and sum the streams of one protocol into *total
 * (stats_counts_init'ed here), the retired ones included. */
void streams_totals(streams *t, int proto, stats_counts *total);

#endif
