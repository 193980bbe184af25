/* server.h -- the consumer's libuv loop: TCP and UDP listeners, connections, datagrams, the
 * stream table, and the hand-off of each new record to the sinks (out9.txt, SQLite). */
#ifndef CSVSTREAM_CONSUMER_SERVER_H
#define CSVSTREAM_CONSUMER_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "log.h"
#include "options.h"
#include "outfile.h"
#include "seqwin.h"
#include "sink.h"
#include "stats.h"
#include "store.h"
#include "wire.h"

#define CONSUMER_READ_BUFFER (64u * 1024u) /* per read call, TCP and UDP alike */
#define CONSUMER_DEFAULT_RCVBUF (4 * 1024 * 1024)
/* Streams kept at once. Each holds its accounting (a 5 KiB histogram and a sequence bitmap
 * of 128 bytes growing to 128 KiB on long streams) until the consumer exits, and any peer can
 * open streams by sending HELLOs with new producer ids: this bounds that memory (about 550 MiB
 * at worst, some 25 MiB for short streams). */
#define CONSUMER_MAX_STREAMS 4096

enum consumer_proto { CONSUMER_TCP = 0, CONSUMER_UDP = 1 };

/* One stream: one producer instance's stream over one protocol. Owned by the table; lives
 * until the consumer is freed, so sinks may keep &sink. */
typedef struct consumer_stream {
  sink_stream sink; /* name, protocol, peer, columns: all owned by this entry */
  seqwin win;       /* first copy or duplicate: decides what is stored */
  stats_stream stats;
  int proto;                  /* enum consumer_proto */
  size_t name_len;            /* the name may hold any byte; the key compares all of them */
  char label[LOG_ESCAPE_BUF]; /* the name as log lines show it (log_escape) */
  int ended;                  /* an END arrived */
  int header_known;           /* a HELLO arrived (an END may create the entry before one) */
  int warned_header;          /* a HELLO with another header was reported */
  uint64_t hash;
  struct consumer_stream *chain; /* next in the hash bucket */
} consumer_stream;

/* Totals per protocol that belong to no stream. */
typedef struct consumer_proto_totals {
  uint64_t garbage;      /* malformed frames (tcp: connections closed for it) or datagrams */
  uint64_t connections;  /* tcp: connections accepted */
  uint64_t datagrams;    /* udp: datagrams received */
  uint64_t kernel_drops; /* udp: datagrams the kernel dropped (last reading) */
  int kernel_drops_known;
  log_limiter garbage_log;
} consumer_proto_totals;

typedef struct consumer_conn consumer_conn; /* a TCP connection (server.c) */

/* Token bucket for the per-record INFO lines: a burst of up to CONSUMER_RECORD_LOG_BURST
 * lines, refilled at CONSUMER_RECORD_LOG_PER_S lines a second, so that at a slow pace every
 * record gets its own line and a fast stream gets about that many a second. */
#define CONSUMER_RECORD_LOG_BURST 10
#define CONSUMER_RECORD_LOG_PER_S 10
typedef struct consumer_record_log {
  uint64_t tokens_x1m;           /* tokens in millionths (integer arithmetic, no drift) */
  uint64_t last_us;              /* monotonic time of the last refill, 0 before the first */
  unsigned long long suppressed; /* records not logged since the last line */
} consumer_record_log;

/* The whole program's state: one per process, owned by main. */
typedef struct consumer {
  consumer_options opt;
  uv_loop_t loop;
  int loop_ready;

  uv_tcp_t tcp;
  uv_udp_t udp;
  uv_signal_t sigint, sigterm;
  uv_check_t check;       /* end of every loop turn: write out9.txt, commit SQLite */
  uv_timer_t db_timer;    /* the next commit (50 ms pace, or busy backoff) */
  uv_timer_t stats_timer; /* the live --stats line */
  int tcp_open, udp_open, sigint_open, sigterm_open, check_open, db_timer_open, stats_timer_open;
  char tcp_name[80], udp_name[80]; /* "127.0.0.1:9999/tcp" */

  consumer_conn *conns; /* live TCP connections */

  consumer_stream **streams; /* in arrival order */
  size_t nstreams, streams_cap;
  consumer_stream **buckets; /* hash table over streams */
  size_t nbuckets;

  consumer_proto_totals proto[2];
  wire_decoder udp_decoder;
  char tcp_buf[CONSUMER_READ_BUFFER];
  char udp_buf[CONSUMER_READ_BUFFER];
  const struct sockaddr *udp_peer_addr; /* the datagram being decoded */
  char udp_peer[64];                    /* formatted lazily: "" until needed */
  uint64_t now_us;                      /* receive time of what is being decoded */

  outfile *out;
  store *db;
  int dirty;           /* records arrived this loop turn */
  uint64_t delivered;  /* distinct records handed to the sinks */
  uint64_t db_dropped; /* records the database queue could not take (reported, never silent) */
  uint64_t db_last_commit_us;
  uint64_t busy_since_us; /* 0 when not locked out */
  uint64_t busy_retries;
  uint64_t busy_backoff_ms;
  uint64_t busy_next_us;
  int db_failed;
  int reads_paused;
  uint64_t committed_at_busy; /* store_committed() when the lock was first met */
  uint64_t catchup_since_us;  /* lock released: log when the queue is empty again */
  uint64_t rng;               /* backoff jitter */
  char proto_err[160];        /* why the last frame broke the protocol */

  log_limiter db_drop_log;
  consumer_record_log record_log; /* per-record INFO lines */
  uint64_t live_prev_received[2];
  uint64_t live_prev_us;

  int stopping;
  int exit_code;
  /* At exit, drain_db waits for a database locked by another process, running the loop for
   * its backoff timer so that a second SIGINT/SIGTERM can end the wait. */
  int drain_woken;  /* its backoff timer fired */
  int stop_waiting; /* a second SIGINT/SIGTERM: give up on the database at once */
} consumer;

/* Set up c from parsed options: bind the listeners, then open the sinks (logging "listening on
 * HOST:PORT/tcp" and ".../udp"), install the signal handlers and timers. Returns 0, or a
 * negative code after logging the error (port in use, unwritable --out, bad --db ...); call
 * consumer_free either way. */
int consumer_init(consumer *c, const consumer_options *opt);

/* Run until SIGINT/SIGTERM, --max-records or a fatal error, then drain: flush out9.txt,
 * commit the database (waiting up to 10 s for a lock held by another process; a second
 * SIGINT/SIGTERM ends the wait), print the summary, write --stats-json. Returns the exit
 * code. */
int consumer_run(consumer *c);

/* Free everything (after consumer_run, or after a failed consumer_init). */
void consumer_free(consumer *c);

/* Begin a clean stop from any callback: close listeners, connections and timers; the loop
 * then ends and consumer_run drains. exit_code 1 marks a failure. */
void consumer_stop(consumer *c, int exit_code);

/* Bring every stream's loss count and the UDP kernel drop count up to date and sum the
 * streams of one protocol into *total (stats_counts_init'ed here). */
void consumer_totals(consumer *c, int proto, stats_counts *total);

#endif
