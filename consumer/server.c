/* server.c -- the consumer's libuv loop: listeners, TCP connections, UDP datagrams, the stream
 * table, delivery to out9.txt and SQLite, commit pacing, backpressure and the clean stop. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "error.h"
#include "net.h"
#include "report.h"

#define DB_COMMIT_PACE_US 50000  /* commit at most every 50 ms: no record waits ~100 ms */
#define DB_FLUSH_BUDGET_US 20000 /* commit work per loop turn before others get a go */
#define DB_BACKOFF_FIRST_MS 10
#define DB_BACKOFF_MAX_MS 500
#define DB_DRAIN_TIMEOUT_US 10000000 /* at exit, retry a locked database this long */
#define GARBAGE_LOG_INTERVAL_US 1000000

/* What a message handler tells the decoder loop. */
enum msg_result {
  MSG_GO_ON = 0,
  MSG_STOP = 1,     /* --max-records reached or a fatal error: stop decoding */
  MSG_PROTOCOL = 2, /* a well-formed frame that breaks the protocol: c->proto_err says how */
};

/* One TCP connection. Lives on handle.data; freed only in its close callback. */
struct consumer_conn {
  uv_tcp_t handle;
  consumer *c;
  char peer[64];
  wire_decoder dec;
  uint64_t records; /* distinct records delivered from this connection */
  int saw_hello;
  int closing;
  consumer_conn *prev, *next;
};

static const char *const proto_names[2] = {"tcp", "udp"};

static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void db_timer_cb(uv_timer_t *t);

/* ---- stream table ---------------------------------------------------------------------- */

/* FNV-1a over the stream key. */
static uint64_t stream_hash(int proto, uint64_t producer_id, const char *name, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  size_t i;
  h = (h ^ (uint64_t)proto) * 1099511628211ULL;
  for (i = 0; i < 8; i++)
    h = (h ^ ((producer_id >> (8 * i)) & 0xff)) * 1099511628211ULL;
  for (i = 0; i < len; i++)
    h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
  return h;
}

/* The stream with this key, or NULL. */
static consumer_stream *stream_find(consumer *c, int proto, const wire_msg *m, uint64_t h) {
  consumer_stream *e;
  if (c->nbuckets == 0)
    return NULL;
  for (e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->chain)
    if (e->hash == h && e->proto == proto && e->sink.producer_id == m->producer_id &&
        e->name_len == m->stream.len && memcmp(e->sink.name, m->stream.data, e->name_len) == 0)
      return e;
  return NULL;
}

/* Double the hash table (or make the first one). Returns 0 or CS_ENOMEM. */
static int stream_table_grow(consumer *c) {
  size_t n = c->nbuckets ? c->nbuckets * 2 : 64, i;
  consumer_stream **b = calloc(n, sizeof(*b));
  if (b == NULL)
    return CS_ENOMEM;
  for (i = 0; i < c->nstreams; i++) {
    consumer_stream *e = c->streams[i];
    e->chain = b[e->hash & (n - 1)];
    b[e->hash & (n - 1)] = e;
  }
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = n;
  return 0;
}

/* Free one entry and everything it owns. */
static void stream_free(consumer_stream *e) {
  if (e == NULL)
    return;
  seqwin_free(&e->win);
  stats_stream_free(&e->stats);
  free((char *)e->sink.name);
  free((char *)e->sink.peer);
  if (e->sink.columns != NULL && e->sink.ncolumns > 0)
    free((char *)e->sink.columns[0].data);
  free((cs_field *)e->sink.columns);
  free(e);
}

/* Add a stream for m's key, first seen from peer. Returns it, or NULL when out of memory. */
static consumer_stream *stream_create(consumer *c, int proto, const wire_msg *m, uint64_t h,
                                      const char *peer) {
  consumer_stream *e = calloc(1, sizeof(*e));
  char *name = NULL, *peer_copy = NULL;
  if (e == NULL)
    goto fail;
  if (stats_stream_init(&e->stats) != 0) {
    free(e);
    e = NULL;
    goto fail;
  }
  if (seqwin_init(&e->win) != 0)
    goto fail;
  name = malloc(m->stream.len + 1);
  peer_copy = strdup(peer);
  if (name == NULL || peer_copy == NULL)
    goto fail;
  memcpy(name, m->stream.data, m->stream.len);
  name[m->stream.len] = '\0';
  e->sink.producer_id = m->producer_id;
  e->sink.name = name;
  e->sink.protocol = proto_names[proto];
  e->sink.peer = peer_copy;
  e->proto = proto;
  e->name_len = m->stream.len;
  log_escape(e->label, sizeof(e->label), name, m->stream.len);
  e->hash = h;
  if (c->nstreams == c->streams_cap) {
    size_t cap = c->streams_cap ? c->streams_cap * 2 : 16;
    consumer_stream **s = realloc(c->streams, cap * sizeof(*s));
    if (s == NULL)
      goto fail;
    c->streams = s;
    c->streams_cap = cap;
  }
  if (c->nstreams >= c->nbuckets && stream_table_grow(c) != 0)
    goto fail;
  c->streams[c->nstreams++] = e;
  e->chain = c->buckets[h & (c->nbuckets - 1)];
  c->buckets[h & (c->nbuckets - 1)] = e;
  return e;

fail:
  free(name);
  free(peer_copy);
  if (e != NULL) {
    e->sink.name = NULL;
    e->sink.peer = NULL;
    stream_free(e);
  }
  return NULL;
}

/* Copy a HELLO's column names into the entry (one block of names plus the field array).
 * Returns 0 or CS_ENOMEM. */
static int stream_set_columns(consumer_stream *e, const wire_msg *m) {
  size_t total = 1, off = 0, i;
  cs_field *cols;
  char *data;
  if (m->nfields == 0) {
    e->sink.ncolumns = 0;
    e->sink.columns = NULL;
    return 0;
  }
  for (i = 0; i < m->nfields; i++)
    total += m->fields[i].len;
  cols = calloc(m->nfields, sizeof(*cols));
  data = malloc(total);
  if (cols == NULL || data == NULL) {
    free(cols);
    free(data);
    return CS_ENOMEM;
  }
  for (i = 0; i < m->nfields; i++) {
    if (m->fields[i].len > 0)
      memcpy(data + off, m->fields[i].data, m->fields[i].len);
    cols[i].data = data + off;
    cols[i].len = m->fields[i].len;
    off += m->fields[i].len;
  }
  e->sink.columns = cols;
  e->sink.ncolumns = m->nfields;
  return 0;
}

/* 1 if the HELLO's columns equal the entry's. */
static int stream_same_columns(const consumer_stream *e, const wire_msg *m) {
  size_t i;
  if (e->sink.ncolumns != m->nfields)
    return 0;
  for (i = 0; i < m->nfields; i++)
    if (e->sink.columns[i].len != m->fields[i].len ||
        memcmp(e->sink.columns[i].data, m->fields[i].data, m->fields[i].len) != 0)
      return 0;
  return 1;
}

/* ---- sinks ------------------------------------------------------------------------------- */

/* A small xorshift generator for backoff jitter (state in c, no globals). */
static uint64_t consumer_random(consumer *c) {
  uint64_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  c->rng = x;
  return x;
}

/* Start reading one connection (no-op while reads are paused for backpressure). */
static void conn_read_start(consumer_conn *k) {
  int rc;
  if (k->closing || k->c->reads_paused || k->c->stopping)
    return;
  rc = uv_read_start((uv_stream_t *)&k->handle, tcp_alloc_cb, tcp_read_cb);
  if (rc != 0)
    log_warn("tcp %s: cannot read: %s", k->peer, uv_strerror(rc));
}

/* Stop or resume reading every TCP connection as the database queue grows and shrinks. */
static void backpressure_update(consumer *c) {
  size_t bytes;
  consumer_conn *k;
  if (c->db == NULL || c->stopping)
    return;
  bytes = store_pending_bytes(c->db);
  if (!c->reads_paused && bytes > STORE_MAX_PENDING_BYTES / 2) {
    c->reads_paused = 1;
    for (k = c->conns; k != NULL; k = k->next)
      if (!k->closing)
        uv_read_stop((uv_stream_t *)&k->handle);
    log_warn("database %s is behind (%zu rows, %zu MiB queued): pausing TCP reads until it "
             "catches up",
             c->opt.db_path, store_pending(c->db), bytes >> 20);
  } else if (c->reads_paused && bytes < STORE_MAX_PENDING_BYTES / 4) {
    c->reads_paused = 0;
    for (k = c->conns; k != NULL; k = k->next)
      conn_read_start(k);
    log_info("database %s caught up (%zu rows queued): resuming TCP reads", c->opt.db_path,
             store_pending(c->db));
  }
}

/* Arm the commit timer to fire in delay_ms (re-arming replaces an earlier time). */
static void db_timer_arm(consumer *c, uint64_t delay_ms) {
  int rc;
  if (!c->db_timer_open || c->stopping)
    return;
  rc = uv_timer_start(&c->db_timer, db_timer_cb, delay_ms, 0);
  if (rc != 0)
    log_warn("cannot arm the commit timer: %s", uv_strerror(rc));
}

/* Another process's lock met (now: monotonic us): counts the retry and, at the first, notes
 * when the lock-out began and what was committed by then. Returns 1 if it began just now. */
static int db_note_busy(consumer *c, uint64_t now) {
  c->busy_retries++;
  if (c->busy_since_us != 0)
    return 0;
  c->busy_since_us = now;
  c->committed_at_busy = store_committed(c->db);
  return 1;
}

/* A batch committed: a lock-out in progress is over; db_note_caught_up logs it once the queue
 * is empty. */
static void db_note_committed(consumer *c) {
  if (c->busy_since_us != 0) {
    c->catchup_since_us = c->busy_since_us;
    c->busy_since_us = 0;
  }
}

/* Log the end of a lock-out once the queue is empty again. */
static void db_note_caught_up(consumer *c) {
  if (c->catchup_since_us == 0 || store_pending(c->db) > 0)
    return;
  log_info("database unlocked: caught up %" PRIu64 " rows after %.1f s",
           store_committed(c->db) - c->committed_at_busy,
           (double)(clock_mono_us() - c->catchup_since_us) / 1e6);
  c->catchup_since_us = 0;
}

/* Commit what is queued if the pace allows, within a time budget; on a lock held by another
 * process, back off (10 ms doubling to 500 ms, jittered) and keep the rows queued. */
static void db_service(consumer *c) {
  uint64_t now, budget_end;
  int rc;
  if (c->db == NULL || c->db_failed || c->stopping)
    return;
  if (store_pending(c->db) == 0) {
    backpressure_update(c);
    return;
  }
  now = clock_mono_us();
  if (c->busy_since_us != 0 && now < c->busy_next_us)
    return; /* the timer is armed for the next try */
  if (c->busy_since_us == 0 && now - c->db_last_commit_us < DB_COMMIT_PACE_US) {
    if (!uv_is_active((uv_handle_t *)&c->db_timer))
      db_timer_arm(c, (DB_COMMIT_PACE_US - (now - c->db_last_commit_us)) / 1000 + 1);
    return;
  }
  budget_end = now + DB_FLUSH_BUDGET_US;
  do {
    rc = store_flush(c->db);
    if (rc == CS_EBUSY) {
      uint64_t delay;
      if (db_note_busy(c, now)) {
        c->busy_backoff_ms = DB_BACKOFF_FIRST_MS;
        if (c->catchup_since_us == 0)
          log_warn("database %s is locked by another process; holding %zu rows in memory and "
                   "retrying",
                   c->opt.db_path, store_pending(c->db));
        c->catchup_since_us = 0;
      } else if (c->busy_backoff_ms < DB_BACKOFF_MAX_MS) {
        c->busy_backoff_ms *= 2;
        if (c->busy_backoff_ms > DB_BACKOFF_MAX_MS)
          c->busy_backoff_ms = DB_BACKOFF_MAX_MS;
      }
      /* Jitter: 75% to 125% of the backoff, so retries do not fall into step with the
       * other process's transactions. */
      delay = c->busy_backoff_ms * 3 / 4 + consumer_random(c) % (c->busy_backoff_ms / 2 + 1);
      c->busy_next_us = now + delay * 1000;
      db_timer_arm(c, delay);
      backpressure_update(c);
      return;
    }
    if (rc != 0) {
      log_error("%s; stopping (rows not yet committed: %zu)", store_error(c->db),
                store_pending(c->db));
      c->db_failed = 1;
      consumer_stop(c, 1);
      return;
    }
    c->db_last_commit_us = clock_mono_us();
    db_note_committed(c);
  } while (store_pending(c->db) > 0 && clock_mono_us() < budget_end);
  db_note_caught_up(c);
  if (store_pending(c->db) > 0)
    db_timer_arm(c, 1); /* more to commit: come back after others had their turn */
  backpressure_update(c);
}

/* The commit timer: pace reached, or a backoff ended. */
static void db_timer_cb(uv_timer_t *t) {
  db_service(t->data);
}

/* End of a loop turn: write the records that arrived in it, then see to the database. */
static void check_cb(uv_check_t *h) {
  consumer *c = h->data;
  if (c->dirty) {
    c->dirty = 0;
    if (outfile_flush(c->out) != 0) {
      log_error("%s; stopping", outfile_error(c->out));
      consumer_stop(c, 1);
      return;
    }
  }
  db_service(c);
}

/* Where the CSV copy of rows the database lacks is, for messages: the stream's own file when e
 * is given (a side file, perhaps, or none when it was refused one), else the main file and, if
 * there are any, its side files. Returns buf. */
static const char *csv_where(consumer *c, const consumer_stream *e, char *buf, size_t len) {
  const char *path = e != NULL ? outfile_stream_path(c->out, &e->sink) : outfile_path(c->out);
  if (path == NULL)
    snprintf(buf, len, "no CSV file (its stream was refused one)");
  else if (e == NULL && outfile_files(c->out) > 1)
    snprintf(buf, len, "%s and its side files", path);
  else
    snprintf(buf, len, "%s", path);
  return buf;
}

/* Hand one new record to the sinks. Returns MSG_GO_ON or MSG_STOP (a fatal sink error). */
static int deliver(consumer *c, consumer_stream *e, const wire_msg *m) {
  sink_record r;
  char where[4200];
  int rc;
  r.stream = &e->sink;
  r.seq = m->seq;
  r.sent_us = m->sent_us;
  r.received_us = c->now_us;
  r.nfields = m->nfields;
  r.fields = m->fields;
  rc = outfile_add(c->out, &r);
  if (rc == CS_ENOFILE) {
    /* No file for this stream (logged once, counted by the sink): the others go on, and the
     * record still goes to the database. */
  } else if (rc != 0) {
    log_error("%s: %s; stopping", outfile_path(c->out),
              rc == CS_ENOMEM ? "out of memory" : outfile_error(c->out));
    consumer_stop(c, 1);
    return MSG_STOP;
  }
  c->dirty = 1;
  if (c->db != NULL && !c->db_failed) {
    rc = store_add(c->db, &r);
    if (rc == CS_ETOOBIG) {
      /* One record too wide for a table: the others still go in; it is in out9.txt. */
      c->db_dropped++;
      if (log_limiter_allow(&c->db_drop_log, clock_mono_us(), GARBAGE_LOG_INTERVAL_US))
        log_error("%s (%" PRIu64 " not stored so far; it is in %s)", store_error(c->db),
                  c->db_dropped, csv_where(c, e, where, sizeof where));
    } else if (rc == CS_ENOMEM) {
      /* Only UDP can get here (TCP reads pause at half the bound): the record cannot wait. */
      c->db_dropped++;
      if (log_limiter_allow(&c->db_drop_log, clock_mono_us(), GARBAGE_LOG_INTERVAL_US))
        log_error("database %s: queue full (%zu MiB waiting): %s record %s #%" PRIu64
                  " not stored in the database (%" PRIu64 " so far; it is in %s)",
                  c->opt.db_path, store_pending_bytes(c->db) >> 20, e->sink.protocol, e->label,
                  m->seq, c->db_dropped, csv_where(c, e, where, sizeof where));
    } else if (rc != 0) {
      log_error("%s; stopping", store_error(c->db));
      c->db_failed = 1;
      consumer_stop(c, 1);
      return MSG_STOP;
    }
    backpressure_update(c);
  }
  return MSG_GO_ON;
}

/* ---- messages ------------------------------------------------------------------------------ */

/* The UDP peer of the datagram being decoded, formatted on first use. */
static const char *udp_peer(consumer *c) {
  if (c->udp_peer[0] == '\0') {
    if (c->udp_peer_addr != NULL)
      net_format(c->udp_peer_addr, c->udp_peer, sizeof(c->udp_peer));
    else
      snprintf(c->udp_peer, sizeof(c->udp_peer), "?");
  }
  return c->udp_peer;
}

/* Take one token from the per-record log bucket (refilled by the time since the last call).
 * Returns 1 when a line may be logged, else counts the record as suppressed and returns 0. */
static int record_log_allow(consumer_record_log *l, uint64_t now_us) {
  const uint64_t full = (uint64_t)CONSUMER_RECORD_LOG_BURST * 1000000u;
  if (l->last_us == 0 || now_us < l->last_us) {
    l->tokens_x1m = full;
  } else {
    /* Elapsed time is capped so that the product cannot overflow after a long quiet spell. */
    uint64_t elapsed = now_us - l->last_us;
    if (elapsed > 1000000u * CONSUMER_RECORD_LOG_BURST)
      elapsed = 1000000u * CONSUMER_RECORD_LOG_BURST;
    l->tokens_x1m += elapsed * CONSUMER_RECORD_LOG_PER_S;
    if (l->tokens_x1m > full)
      l->tokens_x1m = full;
  }
  l->last_us = now_us == 0 ? 1 : now_us;
  if (l->tokens_x1m < 1000000u) {
    l->suppressed++;
    return 0;
  }
  l->tokens_x1m -= 1000000u;
  return 1;
}

/* One INFO line per record while the rate is low (a burst of 10, then about 10 a second). */
static void log_record(consumer *c, const consumer_stream *e, const char *peer, const wire_msg *m) {
  uint64_t lat = c->now_us > m->sent_us ? c->now_us - m->sent_us : 0;
  unsigned long long skipped;
  if (c->opt.quiet)
    return;
  if (!record_log_allow(&c->record_log, clock_mono_us()))
    return;
  skipped = c->record_log.suppressed;
  c->record_log.suppressed = 0;
  if (skipped > 0)
    log_info("%s %s %s #%" PRIu64 ": %" PRIu32 " fields, latency %.1f ms (%llu more records "
             "since the last line)",
             e->sink.protocol, peer, e->label, m->seq, m->nfields, (double)lat / 1000.0, skipped);
  else
    log_info("%s %s %s #%" PRIu64 ": %" PRIu32 " fields, latency %.1f ms", e->sink.protocol, peer,
             e->label, m->seq, m->nfields, (double)lat / 1000.0);
}

/* One decoded message from a TCP connection (conn) or a UDP datagram (conn NULL). */
static int handle_msg(consumer *c, int proto, consumer_conn *conn, const wire_msg *m) {
  const char *peer = conn != NULL ? conn->peer : udp_peer(c);
  uint64_t h = stream_hash(proto, m->producer_id, m->stream.data, m->stream.len);
  consumer_stream *e = stream_find(c, proto, m, h);
  int rc, verdict;

  if (c->stopping)
    return MSG_STOP;
  if (e == NULL && (m->type == WIRE_HELLO || m->type == WIRE_END)) {
    if (c->nstreams >= CONSUMER_MAX_STREAMS) {
      char nm[64];
      snprintf(c->proto_err, sizeof(c->proto_err),
               "stream %s refused: the consumer holds its limit of %d streams (restart it to "
               "take new ones)",
               log_escape(nm, sizeof(nm), m->stream.data, m->stream.len), CONSUMER_MAX_STREAMS);
      return MSG_PROTOCOL;
    }
    e = stream_create(c, proto, m, h, peer);
    if (e == NULL) {
      log_error("out of memory for a new stream from %s/%s; stopping", peer, proto_names[proto]);
      consumer_stop(c, 1);
      return MSG_STOP;
    }
  }
  switch (m->type) {
  case WIRE_HELLO:
    if (conn != NULL)
      conn->saw_hello = 1;
    if (!e->header_known) {
      if (stream_set_columns(e, m) != 0) {
        log_error("out of memory for the header of stream %s; stopping", e->label);
        consumer_stop(c, 1);
        return MSG_STOP;
      }
      e->header_known = 1;
      log_info("%s %s: stream %s from producer %016" PRIx64 " (%zu columns)", proto_names[proto],
               peer, e->label, e->sink.producer_id, e->sink.ncolumns);
    } else if (!e->warned_header && !stream_same_columns(e, m)) {
      e->warned_header = 1;
      log_warn("%s %s: stream %s announced another header mid-stream; keeping the first one",
               proto_names[proto], peer, e->label);
    }
    return MSG_GO_ON;

  case WIRE_RECORD:
    if (e == NULL || !e->header_known || (conn != NULL && !conn->saw_hello)) {
      char nm[64];
      snprintf(c->proto_err, sizeof(c->proto_err),
               "record #%" PRIu64 " of stream %s before its hello", m->seq,
               log_escape(nm, sizeof(nm), m->stream.data, m->stream.len));
      return MSG_PROTOCOL;
    }
    if (c->opt.max_records != 0 && c->delivered >= c->opt.max_records)
      return MSG_STOP;
    verdict = seqwin_mark(&e->win, m->seq);
    stats_stream_observe(&e->stats, verdict, m->seq, m->sent_us, c->now_us, m->frame_len);
    if (!seqwin_is_new(verdict))
      return MSG_GO_ON; /* a duplicate, or too old to tell: counted, not stored again */
    rc = deliver(c, e, m);
    if (rc != MSG_GO_ON)
      return rc;
    c->delivered++;
    if (conn != NULL)
      conn->records++;
    log_record(c, e, peer, m);
    if (c->opt.max_records != 0 && c->delivered >= c->opt.max_records) {
      log_info("--max-records %" PRIu64 " reached: stopping", c->opt.max_records);
      consumer_stop(c, 0);
      return MSG_STOP;
    }
    return MSG_GO_ON;

  case WIRE_END:
    stats_stream_end(&e->stats, m->seq);
    if (!e->ended) {
      e->ended = 1;
      log_info("%s %s: stream %s ended at #%" PRIu64 ": %" PRIu64 " received, %" PRIu64
               " lost, %" PRIu64 " duplicates",
               proto_names[proto], peer, e->label, m->seq, e->stats.c.received,
               stats_stream_lost(&e->stats), e->stats.c.duplicates);
    }
    return MSG_GO_ON;

  default:
    snprintf(c->proto_err, sizeof(c->proto_err), "unknown message type %d", m->type);
    return MSG_PROTOCOL;
  }
}

/* Words for a decoder error, for the garbage log line. */
static const char *garbage_reason(int rc) {
  switch (rc) {
  case CS_EBADMAGIC:
    return "bad magic (not a csvstream producer?)";
  case CS_EVERSION:
    return "another protocol version (this consumer speaks version 1)";
  case CS_ETYPE:
    return "unknown message type";
  case CS_ETOOBIG:
    return "frame longer than the 1 MiB limit";
  case CS_ETRUNCATED:
    return "datagram ends inside a frame";
  case CS_EMALFORMED:
    return "malformed frame";
  default:
    return cs_strerror(rc);
  }
}

/* Count garbage and log it, at most once a second per protocol. */
static void note_garbage(consumer *c, int proto, const char *peer, const char *reason,
                         const char *action) {
  consumer_proto_totals *t = &c->proto[proto];
  unsigned long long skipped = t->garbage_log.suppressed;
  t->garbage++;
  if (!log_limiter_allow(&t->garbage_log, clock_mono_us(), GARBAGE_LOG_INTERVAL_US))
    return;
  t->garbage_log.suppressed = 0;
  if (skipped > 0)
    log_warn("garbage from %s/%s: %s; %s (%llu more since the last report)", peer,
             proto_names[proto], reason, action, skipped);
  else
    log_warn("garbage from %s/%s: %s; %s", peer, proto_names[proto], reason, action);
}

/* ---- TCP ----------------------------------------------------------------------------------- */

static int tcp_msg_cb(const wire_msg *m, void *arg) {
  consumer_conn *k = arg;
  return handle_msg(k->c, CONSUMER_TCP, k, m);
}

/* Free a connection once libuv is done with it. */
static void conn_close_cb(uv_handle_t *h) {
  consumer_conn *k = h->data;
  consumer *c = k->c;
  if (k->prev != NULL)
    k->prev->next = k->next;
  else
    c->conns = k->next;
  if (k->next != NULL)
    k->next->prev = k->prev;
  wire_decoder_free(&k->dec);
  free(k);
}

/* Close a connection (safe inside its own read callback: freed in conn_close_cb). */
static void conn_close(consumer_conn *k) {
  if (k->closing)
    return;
  k->closing = 1;
  uv_close((uv_handle_t *)&k->handle, conn_close_cb);
}

/* All TCP reads share one buffer: libuv calls alloc and read back to back per handle. */
static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  consumer_conn *k = h->data;
  (void)suggested;
  buf->base = k->c->tcp_buf;
  buf->len = sizeof(k->c->tcp_buf);
}

/* Bytes from a producer: decode every complete frame; garbage closes the connection. */
static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  consumer_conn *k = s->data;
  consumer *c = k->c;
  int rc;
  if (nread == 0 || k->closing)
    return;
  if (nread < 0) {
    if (nread == UV_EOF)
      log_info("tcp %s disconnected after %" PRIu64 " records", k->peer, k->records);
    else
      log_warn("tcp %s: connection lost: %s (after %" PRIu64 " records)", k->peer,
               uv_strerror((int)nread), k->records);
    conn_close(k);
    return;
  }
  c->now_us = clock_wall_us();
  rc = wire_decoder_feed(&k->dec, buf->base, (size_t)nread, tcp_msg_cb, k);
  if (rc < 0) {
    note_garbage(c, CONSUMER_TCP, k->peer, garbage_reason(rc), "closing the connection");
    conn_close(k);
  } else if (rc == MSG_PROTOCOL) {
    note_garbage(c, CONSUMER_TCP, k->peer, c->proto_err, "closing the connection");
    conn_close(k);
  }
  /* MSG_STOP: consumer_stop has closed everything already. */
}

/* A producer connected. */
static void tcp_connection_cb(uv_stream_t *server, int status) {
  consumer *c = server->data;
  consumer_conn *k;
  struct sockaddr_storage ss;
  int len = sizeof(ss), rc;

  if (status < 0) {
    log_warn("tcp accept on %s failed: %s", c->tcp_name, uv_strerror(status));
    return;
  }
  k = calloc(1, sizeof(*k));
  if (k == NULL) {
    log_error("out of memory for a new connection on %s", c->tcp_name);
    return;
  }
  k->c = c;
  wire_decoder_init(&k->dec, WIRE_MAX_PAYLOAD);
  snprintf(k->peer, sizeof(k->peer), "?");
  rc = uv_tcp_init(&c->loop, &k->handle);
  if (rc != 0) {
    log_warn("tcp: cannot set up a connection: %s", uv_strerror(rc));
    wire_decoder_free(&k->dec);
    free(k);
    return;
  }
  k->handle.data = k;
  k->next = c->conns;
  if (c->conns != NULL)
    c->conns->prev = k;
  c->conns = k;
  rc = uv_accept(server, (uv_stream_t *)&k->handle);
  if (rc != 0) {
    log_warn("tcp accept on %s failed: %s", c->tcp_name, uv_strerror(rc));
    conn_close(k);
    return;
  }
  if (uv_tcp_getpeername(&k->handle, (struct sockaddr *)&ss, &len) == 0)
    net_format((struct sockaddr *)&ss, k->peer, sizeof(k->peer));
  c->proto[CONSUMER_TCP].connections++;
  log_info("tcp %s connected", k->peer);
  conn_read_start(k);
}

/* ---- UDP ----------------------------------------------------------------------------------- */

static int udp_msg_cb(const wire_msg *m, void *arg) {
  return handle_msg(arg, CONSUMER_UDP, NULL, m);
}

/* One 64 KiB buffer for every datagram: recv_cb runs right after each alloc. */
static void udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  consumer *c = h->data;
  (void)suggested;
  buf->base = c->udp_buf;
  buf->len = sizeof(c->udp_buf);
}

/* One datagram (or, with nread 0 and no address, the buffer handed back unused). */
static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  consumer *c = h->data;
  int rc;
  if (c->stopping)
    return;
  if (nread < 0) {
    if (log_limiter_allow(&c->proto[CONSUMER_UDP].garbage_log, clock_mono_us(),
                          GARBAGE_LOG_INTERVAL_US))
      log_warn("udp receive on %s failed: %s", c->udp_name, uv_strerror((int)nread));
    return;
  }
  if (nread == 0 && addr == NULL)
    return; /* nothing to read: libuv returns the buffer */
  c->udp_peer_addr = addr;
  c->udp_peer[0] = '\0';
  c->proto[CONSUMER_UDP].datagrams++;
  if (nread == 0) {
    note_garbage(c, CONSUMER_UDP, udp_peer(c), "empty datagram", "ignored");
    return;
  }
  if (flags & UV_UDP_PARTIAL) {
    note_garbage(c, CONSUMER_UDP, udp_peer(c), "datagram larger than 64 KiB (truncated)",
                 "ignored");
    return;
  }
  c->now_us = clock_wall_us();
  rc = wire_decode_datagram(&c->udp_decoder, buf->base, (size_t)nread, udp_msg_cb, c);
  if (rc < 0)
    note_garbage(c, CONSUMER_UDP, udp_peer(c), garbage_reason(rc),
                 "the rest of the datagram is ignored");
  else if (rc == MSG_PROTOCOL)
    note_garbage(c, CONSUMER_UDP, udp_peer(c), c->proto_err, "the rest of the datagram is ignored");
  c->udp_peer_addr = NULL;
}

/* Ask for a receive buffer of `want` bytes: SO_RCVBUFFORCE (root may exceed rmem_max), else
 * SO_RCVBUF. Warns when --rcvbuf was given and the kernel granted less. */
static void udp_set_rcvbuf(consumer *c) {
  uv_os_fd_t fd;
  int want = c->opt.rcvbuf_given ? (int)c->opt.rcvbuf : CONSUMER_DEFAULT_RCVBUF;
  int got = 0;
  socklen_t len = sizeof(got);
  if (uv_fileno((uv_handle_t *)&c->udp, &fd) != 0)
    return;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)) != 0) {
    log_warn("udp %s: cannot set the receive buffer to %d bytes: %s", c->udp_name, want,
             strerror(errno));
    return;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0)
    return;
  /* Linux reports twice the size asked for (bookkeeping overhead included). */
  if (c->opt.rcvbuf_given && got / 2 < want)
    log_warn("--rcvbuf %d: the kernel granted %d bytes (raise net.core.rmem_max, or run as "
             "root to force it)",
             want, got / 2);
  else
    log_debug("udp %s: receive buffer %d bytes", c->udp_name, got);
}

/* Read the kernel's drop count for the UDP socket into the totals. */
static void udp_update_kernel_drops(consumer *c) {
  uv_os_fd_t fd;
  uint64_t drops;
  if (!c->udp_open || uv_fileno((uv_handle_t *)&c->udp, &fd) != 0)
    return;
  if (stats_udp_kernel_drops(fd, &drops) == 0) {
    c->proto[CONSUMER_UDP].kernel_drops = drops;
    c->proto[CONSUMER_UDP].kernel_drops_known = 1;
  }
}

/* ---- start and stop --------------------------------------------------------------------- */

/* Log a listen failure in words a person can act on. */
static void log_listen_error(const char *name, int rc) {
  if (rc == UV_EADDRINUSE)
    log_error("cannot listen on %s: address already in use (is another consumer running? pick "
              "another --port)",
              name);
  else if (rc == UV_EADDRNOTAVAIL)
    log_error("cannot listen on %s: address not available on this machine (check --host)", name);
  else if (rc == UV_EACCES)
    log_error("cannot listen on %s: permission denied (ports below 1024 need root; pick "
              "another --port)",
              name);
  else
    log_error("cannot listen on %s: %s", name, uv_strerror(rc));
}

/* Bind and listen on TCP (consumer_init says "listening on" once the sinks are open too).
 * Returns 0 or a negative code (logged). */
static int tcp_listen_start(consumer *c) {
  struct sockaddr_storage ss;
  socklen_t len;
  int namelen = sizeof(ss);
  char err[256], addr[64];
  int rc = net_resolve(c->opt.host, c->opt.port, SOCK_STREAM, &ss, &len, err, sizeof(err));
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  snprintf(c->tcp_name, sizeof(c->tcp_name), "%s/tcp",
           net_format((struct sockaddr *)&ss, addr, sizeof(addr)));
  rc = uv_tcp_init(&c->loop, &c->tcp);
  if (rc != 0) {
    log_error("cannot listen on %s: %s", c->tcp_name, uv_strerror(rc));
    return rc;
  }
  c->tcp_open = 1;
  c->tcp.data = c;
  rc = uv_tcp_bind(&c->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&c->tcp, 511, tcp_connection_cb);
  if (rc != 0) {
    log_listen_error(c->tcp_name, rc);
    return rc;
  }
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &namelen) == 0)
    snprintf(c->tcp_name, sizeof(c->tcp_name), "%s/tcp",
             net_format((struct sockaddr *)&ss, addr, sizeof(addr)));
  return 0;
}

/* Bind UDP and start receiving (logged by consumer_init, as for TCP). Returns 0 or a negative
 * code (logged). */
static int udp_listen_start(consumer *c) {
  struct sockaddr_storage ss;
  socklen_t len;
  int namelen = sizeof(ss);
  char err[256], addr[64];
  int rc = net_resolve(c->opt.host, c->opt.port, SOCK_DGRAM, &ss, &len, err, sizeof(err));
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  snprintf(c->udp_name, sizeof(c->udp_name), "%s/udp",
           net_format((struct sockaddr *)&ss, addr, sizeof(addr)));
  rc = uv_udp_init(&c->loop, &c->udp);
  if (rc != 0) {
    log_error("cannot listen on %s: %s", c->udp_name, uv_strerror(rc));
    return rc;
  }
  c->udp_open = 1;
  c->udp.data = c;
  rc = uv_udp_bind(&c->udp, (struct sockaddr *)&ss, 0);
  if (rc != 0) {
    log_listen_error(c->udp_name, rc);
    return rc;
  }
  if (uv_udp_getsockname(&c->udp, (struct sockaddr *)&ss, &namelen) == 0)
    snprintf(c->udp_name, sizeof(c->udp_name), "%s/udp",
             net_format((struct sockaddr *)&ss, addr, sizeof(addr)));
  udp_set_rcvbuf(c);
  rc = uv_udp_recv_start(&c->udp, udp_alloc_cb, udp_recv_cb);
  if (rc != 0) {
    log_error("cannot receive on %s: %s", c->udp_name, uv_strerror(rc));
    return rc;
  }
  return 0;
}

/* SIGINT or SIGTERM: stop cleanly. A second one, while the stop waits for a locked database,
 * ends that wait (the rows not committed are reported, and the exit code is 1). */
static void signal_cb(uv_signal_t *h, int signum) {
  consumer *c = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (c->stopping) {
    c->stop_waiting = 1;
    if (c->db != NULL && store_pending(c->db) > 0)
      log_warn("%s again: not waiting for database %s any longer", name, c->opt.db_path);
    else
      log_info("%s again: already stopping", name);
    return;
  }
  log_info("%s: stopping (draining what arrived, then the summary)", name);
  consumer_stop(c, 0);
}

/* The live --stats line. */
static void stats_timer_cb(uv_timer_t *t) {
  consumer *c = t->data;
  udp_update_kernel_drops(c);
  report_live(c);
}

/* Close a handle if it is open (flag cleared: it is closed once). */
static void close_handle(uv_handle_t *h, int *open) {
  if (*open && !uv_is_closing(h))
    uv_close(h, NULL);
  *open = 0;
}

/* Begin a clean stop; see server.h. */
void consumer_stop(consumer *c, int exit_code) {
  consumer_conn *k;
  if (exit_code > c->exit_code)
    c->exit_code = exit_code;
  if (c->stopping)
    return;
  c->stopping = 1;
  udp_update_kernel_drops(c); /* the last reading, before the socket goes */
  if (c->udp_open)
    uv_udp_recv_stop(&c->udp);
  close_handle((uv_handle_t *)&c->tcp, &c->tcp_open);
  close_handle((uv_handle_t *)&c->udp, &c->udp_open);
  for (k = c->conns; k != NULL; k = k->next) {
    if (!k->closing && wire_decoder_pending(&k->dec) > 0)
      log_warn("tcp %s: closing with %zu bytes of an incomplete frame", k->peer,
               wire_decoder_pending(&k->dec));
    if (!k->closing)
      log_info("tcp %s closed by the consumer after %" PRIu64 " records", k->peer, k->records);
    conn_close(k);
  }
  /* The signal handlers stay (unreferenced, so the loop can end without them): a second
   * Ctrl-C must reach drain_db rather than kill the process silently. The commit timer stays
   * too, stopped: drain_db uses it for its backoff. consumer_free closes both. */
  if (c->sigint_open)
    uv_unref((uv_handle_t *)&c->sigint);
  if (c->sigterm_open)
    uv_unref((uv_handle_t *)&c->sigterm);
  if (c->db_timer_open)
    uv_timer_stop(&c->db_timer);
  close_handle((uv_handle_t *)&c->check, &c->check_open);
  close_handle((uv_handle_t *)&c->stats_timer, &c->stats_timer_open);
}

/* Set everything up; see server.h. */
int consumer_init(consumer *c, const consumer_options *opt) {
  char err[512];
  int rc;

  memset(c, 0, sizeof(*c));
  c->opt = *opt;
  c->rng = clock_wall_us() | 1;
  wire_decoder_init(&c->udp_decoder, WIRE_MAX_PAYLOAD);
  rc = uv_loop_init(&c->loop);
  if (rc != 0) {
    log_error("cannot start the event loop: %s", uv_strerror(rc));
    return rc;
  }
  c->loop_ready = 1;

#define INIT_HANDLE(call, handle, flag)                                                            \
  do {                                                                                             \
    rc = (call);                                                                                   \
    if (rc != 0) {                                                                                 \
      log_error("cannot set up the event loop: %s", uv_strerror(rc));                              \
      return rc;                                                                                   \
    }                                                                                              \
    (handle).data = c;                                                                             \
    c->flag = 1;                                                                                   \
  } while (0)
  INIT_HANDLE(uv_signal_init(&c->loop, &c->sigint), c->sigint, sigint_open);
  INIT_HANDLE(uv_signal_init(&c->loop, &c->sigterm), c->sigterm, sigterm_open);
  INIT_HANDLE(uv_check_init(&c->loop, &c->check), c->check, check_open);
  INIT_HANDLE(uv_timer_init(&c->loop, &c->db_timer), c->db_timer, db_timer_open);
  INIT_HANDLE(uv_timer_init(&c->loop, &c->stats_timer), c->stats_timer, stats_timer_open);
#undef INIT_HANDLE

  if ((rc = uv_signal_start(&c->sigint, signal_cb, SIGINT)) != 0 ||
      (rc = uv_signal_start(&c->sigterm, signal_cb, SIGTERM)) != 0 ||
      (rc = uv_check_start(&c->check, check_cb)) != 0) {
    log_error("cannot set up the event loop: %s", uv_strerror(rc));
    return rc;
  }
  if (opt->stats_interval > 0) {
    uint64_t ms = (uint64_t)(opt->stats_interval * 1000.0);
    if (ms == 0)
      ms = 1;
    rc = uv_timer_start(&c->stats_timer, stats_timer_cb, ms, ms);
    if (rc != 0) {
      log_error("--stats: cannot start the timer: %s", uv_strerror(rc));
      return rc;
    }
  }
  c->live_prev_us = clock_mono_us();

  /* The ports first: a consumer that cannot listen (another one runs) must not create or
   * touch --out and --db. Nothing is read before consumer_run, so the sinks can come after. */
  if (opt->tcp && (rc = tcp_listen_start(c)) != 0)
    return rc;
  if (opt->udp && (rc = udp_listen_start(c)) != 0)
    return rc;

  rc = outfile_open(&c->out, opt->out_path, 0, err, sizeof(err));
  if (rc != 0) {
    log_error("--out: %s", err);
    return rc;
  }
  if (opt->db_path != NULL) {
    rc = store_open(&c->db, opt->db_path, 1, err, sizeof(err));
    if (rc != 0) {
      log_error("--db: %s", err);
      outfile_discard(c->out); /* an out9.txt this failed start created stays empty: remove */
      c->out = NULL;
      return rc;
    }
  }
  /* Said only now that records can be taken: tests and scripts wait for these lines. */
  if (opt->tcp)
    log_info("listening on %s", c->tcp_name);
  if (opt->udp)
    log_info("listening on %s", c->udp_name);
  return 0;
}

/* drain_db's backoff timer. */
static void drain_timer_cb(uv_timer_t *t) {
  consumer *c = t->data;
  c->drain_woken = 1;
}

/* Wait delay_ms for drain_db, running the loop so that a second SIGINT/SIGTERM is seen at
 * once (it sets c->stop_waiting). */
static void drain_wait(consumer *c, uint64_t delay_ms) {
  c->drain_woken = 0;
  if (!c->db_timer_open || uv_timer_start(&c->db_timer, drain_timer_cb, delay_ms, 0) != 0) {
    clock_sleep_until(clock_mono_us() + delay_ms * 1000, NULL);
    return;
  }
  while (!c->drain_woken && !c->stop_waiting)
    uv_run(&c->loop, UV_RUN_ONCE);
  uv_timer_stop(&c->db_timer);
}

/* At exit, for rows that will not be committed: save them with their metadata to
 * DB.uncommitted.csv next to the database (in out9.txt they cannot be told apart from the
 * committed ones) and log one error saying why (reason) and where they are. */
static void drain_db_give_up(consumer *c, const char *reason) {
  char path[4096], err[512], where[4200];
  size_t n = store_pending(c->db), saved = 0;
  if (n == 0)
    return;
  if ((size_t)snprintf(path, sizeof path, "%s.uncommitted.csv", c->opt.db_path) >= sizeof path) {
    log_error("database %s: %zu rows not committed (%s); they are in %s (the path is too long "
              "to save them next to the database)",
              c->opt.db_path, n, reason, csv_where(c, NULL, where, sizeof where));
    return;
  }
  if (store_save_pending(c->db, path, &saved, err, sizeof err) != 0) {
    log_error("database %s: %zu rows not committed (%s); they are in %s, but could not be "
              "saved apart: %s",
              c->opt.db_path, n, reason, csv_where(c, NULL, where, sizeof where), err);
    return;
  }
  log_error("database %s: %zu rows not committed: saved to %s (%s; they are in %s too)",
            c->opt.db_path, n, path, reason, csv_where(c, NULL, where, sizeof where));
}

/* At exit: commit every queued row, retrying a locked database for up to 10 s (a second
 * SIGINT/SIGTERM ends the wait). Returns 0, or 1 if rows were left uncommitted (logged, and
 * saved by drain_db_give_up). */
static int drain_db(consumer *c) {
  uint64_t deadline = clock_mono_us() + DB_DRAIN_TIMEOUT_US, backoff_ms = DB_BACKOFF_FIRST_MS;
  uint64_t wait_since_us = 0, committed_at_wait = 0;
  int warned = 0, rc;
  char reason[640], where[4200];
  if (c->db == NULL)
    return 0;
  if (c->db_failed) {
    drain_db_give_up(c, "see the error above");
    return 1;
  }
  while (store_pending(c->db) > 0) {
    rc = store_flush(c->db);
    if (rc == 0) {
      db_note_committed(c);
      continue;
    }
    if (rc != CS_EBUSY) {
      snprintf(reason, sizeof reason, "%s", store_error(c->db));
      drain_db_give_up(c, reason);
      return 1;
    }
    db_note_busy(c, clock_mono_us());
    if (c->stop_waiting) {
      drain_db_give_up(c, "locked by another process, and the wait was stopped");
      return 1;
    }
    if (!warned) {
      /* Said at once, even if the lock was reported while running: the stop now waits. */
      warned = 1;
      wait_since_us = clock_mono_us();
      committed_at_wait = store_committed(c->db);
      log_warn("database %s is locked by another process: waiting up to %d s to commit %zu rows "
               "(Ctrl-C again to stop waiting; those rows are in %s)",
               c->opt.db_path, DB_DRAIN_TIMEOUT_US / 1000000, store_pending(c->db),
               csv_where(c, NULL, where, sizeof where));
    }
    if (clock_mono_us() >= deadline) {
      snprintf(reason, sizeof reason, "still locked by another process after %d s",
               DB_DRAIN_TIMEOUT_US / 1000000);
      drain_db_give_up(c, reason);
      return 1;
    }
    drain_wait(c, backoff_ms);
    backoff_ms = backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : backoff_ms * 2;
  }
  if (warned) {
    /* The wait announced above ended: say so, with the rows it was waiting for. */
    log_info("database unlocked: committed %" PRIu64 " rows after waiting %.1f s",
             store_committed(c->db) - committed_at_wait,
             (double)(clock_mono_us() - wait_since_us) / 1e6);
    c->catchup_since_us = 0;
  }
  db_note_caught_up(c);
  return 0;
}

/* Run, then drain and report; see server.h. */
int consumer_run(consumer *c) {
  char err[512];
  int rc = uv_run(&c->loop, UV_RUN_DEFAULT), out_failed = 0;
  (void)rc; /* uv_run returns non-zero only if handles remain, which stop has closed */

  if (outfile_flush(c->out) != 0) {
    log_error("%s (records not written: %zu bytes)", outfile_error(c->out),
              outfile_pending_bytes(c->out));
    c->exit_code = 1;
    out_failed = 1;
  }
  if (drain_db(c) != 0)
    c->exit_code = 1;
  if (c->record_log.suppressed > 0 && !c->opt.quiet)
    log_info("(%llu more records not logged one by one)", c->record_log.suppressed);
  report_summary(c, stderr);
  if (c->opt.stats_json != NULL && report_json(c, c->opt.stats_json, err, sizeof(err)) != 0) {
    log_error("--stats-json: %s", err);
    c->exit_code = 1;
  }
  /* Close the files here so that a failure reaches the exit code; the error was reported
   * already if the last flush failed. */
  if (outfile_close(c->out, err, sizeof(err)) != 0 && !out_failed) {
    log_error("%s", err);
    c->exit_code = 1;
  }
  c->out = NULL;
  return c->exit_code;
}

/* Sum one protocol's streams; see server.h. */
void consumer_totals(consumer *c, int proto, stats_counts *total) {
  size_t i;
  stats_counts_init(total);
  for (i = 0; i < c->nstreams; i++) {
    consumer_stream *e = c->streams[i];
    if (e->proto != proto)
      continue;
    stats_stream_lost(&e->stats);
    stats_counts_add(total, &e->stats.c);
  }
}

/* uv_walk callback: close whatever is still open. */
static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Free everything; see server.h. */
void consumer_free(consumer *c) {
  char err[512];
  size_t i;
  if (c->loop_ready) {
    if (!c->stopping)
      consumer_stop(c, 0);
    uv_walk(&c->loop, close_walk_cb, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&c->loop) != 0)
      log_warn("event loop closed with handles still open");
    c->loop_ready = 0;
  }
  if (c->out != NULL && outfile_close(c->out, err, sizeof(err)) != 0)
    log_error("%s", err);
  c->out = NULL;
  if (c->db != NULL && store_close(c->db) != 0)
    log_error("database %s: closing failed", c->opt.db_path);
  c->db = NULL;
  for (i = 0; i < c->nstreams; i++)
    stream_free(c->streams[i]);
  free(c->streams);
  free(c->buckets);
  c->streams = NULL;
  c->buckets = NULL;
  c->nstreams = 0;
  wire_decoder_free(&c->udp_decoder);
}
