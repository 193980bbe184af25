/* conns.h -- the TCP connections of one server (the framed and plain listeners, --http): their
 * list, the handle count that frees the server with its last handle, a close that is safe in a
 * read callback, the bytes held incomplete with the largest holder closed, the connection lines.
 *
 * Ownership: the server embeds one conns and owns it; each of its connections is a struct of
 * the server's whose first member is a conn (so handle.data, the conn, is that struct too).
 * From conns_accept on the set owns the connection: it is freed (conns_ops.free_conn) only in
 * its libuv close callback, never by the server. The server itself is freed
 * (conns_ops.free_server) when its last handle has closed: its own (conns_hold before, then
 * conns_close_handle), its connections', and the hold conns_init takes, which the server gives
 * back with conns_release when it stops. Nothing here stops reading: that is the server's. */
#ifndef CSVSTREAM_CONNS_H
#define CSVSTREAM_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ingest.h"
#include "log.h"
#include "lograte.h"

/* The connection lines: this many at once, then this many a second. */
#define CONNS_LOG_BURST 20
#define CONNS_LOG_PER_S 5
#define CONNS_ACCEPT_LOG_INTERVAL_US 1000000 /* failed accepts: one line a second at most */

typedef struct conns conns;
typedef struct conn conn;

/* One connection, the first member of the server's own connection struct. */
struct conn {
  uv_tcp_t handle;           /* handle.data: this conn (and so the server's struct) */
  conns *set;                /* the set it is in */
  ingest_peer peer;          /* the peer for ingest; its name for every line */
  size_t partial_bytes;      /* held in an incomplete frame or record, counted in the set's */
  uint64_t partial_since_us; /* monotonic: held since then; 0: nothing held */
  int closing;               /* conns_close was called: freed in its close callback */
  conn *prev, *next;
};

/* What a server tells its set, fixed for the set's life. */
typedef struct conns_ops {
  const char *label;                 /* "tcp", "plain-tcp", "http": every line's first word */
  int proto;                         /* enum stream_proto: the peers' protocol for ingest */
  void (*free_conn)(conn *k);        /* free the server's connection: its parts, then itself */
  void (*free_server)(void *server); /* free the server, at its last handle */
} conns_ops;

/* The connections of one server. Read list, n and partial_bytes; change nothing directly. */
struct conns {
  conn *list;           /* newest first; closing ones stay until their close callback */
  size_t n;             /* connections in list */
  size_t partial_bytes; /* what they hold incomplete, a part of in->frame_bytes */
  int handles;          /* handles not yet closed, and the hold of conns_init */
  const conns_ops *ops;
  void *server;
  ingest *in;        /* NULL: the server hands nothing to ingest (--http) */
  const char *where; /* the server's name ("127.0.0.1:9999/tcp"), for failed accepts */
  lograte log;       /* the connection lines */
  log_limiter accept_log;
};

/* Set up an empty set for server, holding one handle count (given back by conns_release).
 * ops and where (the server's name, filled in later if need be) must outlive the set; in may be
 * NULL (then nothing is counted in ingest and conns_note_partial may not be called). */
void conns_init(conns *set, const conns_ops *ops, void *server, ingest *in, const char *where);

/* One more handle of the server (its listening socket, a timer) that will be closed with
 * conns_close_handle: call after its uv_*_init succeeded. */
void conns_hold(conns *set);

/* Close a handle of the server held with conns_hold (its data is set to the set: no callback
 * of the server's may run for it any more). */
void conns_close_handle(conns *set, uv_handle_t *h);

/* Give back one handle count (conns_init's, at the stop): the server is freed at the last. */
void conns_release(conns *set);

/* A connection is waiting on server: take k (zeroed but for the server's own parts, which
 * free_conn frees) into the set, accept it and name its peer, counting the connection in
 * ingest. Returns 0, or a code after logging why; either way k is the set's from now on (freed
 * at once, or closing). */
int conns_accept(conns *set, uv_stream_t *server, conn *k);

/* A failed accept (status from the connection callback): logged at most once a second, with
 * the fix when the process is out of descriptors and how many failed since the last line. */
void conns_accept_failed(conns *set, int status);

/* Close k: its peer's streams lose their owner, its incomplete bytes are no longer counted,
 * libuv closes it and it is freed in the close callback. Safe inside k's own callbacks; a
 * second call does nothing. */
void conns_close(conn *k);

/* k holds held bytes of an incomplete frame or record now (now: monotonic). While the set
 * holds more than cap, or the listeners together more than the memory budget leaves them
 * (ingest_frame_cap), the set's largest holder is counted as evicted, reported as garbage
 * (why, action: see ingest_garbage) and closed (k itself, maybe). */
void conns_note_partial(conn *k, size_t held, uint64_t now, size_t cap, const char *why,
                        const char *action);

/* "LABEL PEER connected", within the lines' rate. */
void conns_log_open(conn *k);

/* "LABEL PEER WHAT after N records" (WHAT: "disconnected", "closed by the consumer"), within
 * the lines' rate. A line after some were held back says how many. */
void conns_log_end(conn *k, const char *what);

#endif
