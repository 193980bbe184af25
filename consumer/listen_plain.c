/* listen_plain.c -- plain CSV text in: a TCP listener whose connections are streams and a UDP
 * socket whose senders are streams, parsed with csvpush and handed to ingest unsequenced. */
#include "listen_plain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conns.h"
#include "csvpush.h"
#include "error.h"
#include "log.h"
#include "net.h"
#include "words.h"

#define LISTEN_PLAIN_SWEEP_MS 1000
/* A TCP stream's optional first line: "#stream NAME". */
#define LISTEN_PLAIN_NAME_PREFIX "#stream "
#define LISTEN_PLAIN_NAME_PREFIX_LEN 8

typedef struct plain_conn plain_conn;

struct listen_plain {
  uv_tcp_t tcp;
  uv_udp_t udp;
  uv_timer_t sweep;
  int tcp_open, udp_open, sweep_open, udp_receiving;
  listen_env env;
  char tcp_name[80], udp_name[80];
  conns conns;      /* the TCP connections (plain_conn), and the handles that free l */
  uint64_t next_id; /* a TCP stream's producer id: the connection's number */
  int paused, stopping;
  csvpush *udp_parser;
  char buf[LISTEN_READ_BUFFER]; /* all reads share it: libuv calls alloc and read back to back */
};

/* Where a TCP connection is in its text. */
enum plain_state {
  PLAIN_FIRST = 0, /* the first bytes: "#stream " or not */
  PLAIN_NAME = 1,  /* inside the "#stream NAME" line */
  PLAIN_CSV = 2    /* records */
};

/* One TCP connection: one stream. c first (c.handle.data is the connection), freed only in its
 * close callback (conns.h). c.partial_bytes: its incomplete record, or its first line plus one
 * (so that a "#stream " line never ended times out too). */
struct plain_conn {
  conn c;
  listen_plain *l;
  csvpush *parser;
  int state;                            /* enum plain_state */
  char first[WIRE_MAX_STREAM_NAME + 2]; /* the first line's bytes so far (prefix, then name) */
  size_t first_len;
  uint64_t id;
  stream *st;       /* NULL until the header (or the first record) */
  int header_taken; /* the header record was read (or none is expected) */
  uint64_t now_us;  /* the current read's wall-clock time, for the records' callback */
};

static void plain_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void plain_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void plain_free(void *server) {
  listen_plain *l = server;
  csvpush_free(l->udp_parser);
  free(l);
}

/* A connection's own parts, once libuv is done with it. */
static void plain_conn_free(conn *c) {
  plain_conn *k = (plain_conn *)c;
  csvpush_free(k->parser);
  free(k);
}

static const conns_ops plain_conns_ops = {"plain-tcp", STREAM_PLAIN_TCP, plain_conn_free,
                                          plain_free};

/* Close a connection (safe inside its own read callback). */
static void plain_conn_close(plain_conn *k) {
  conns_close(&k->c);
}

/* Count garbage from k, log it, close it. */
static void plain_conn_garbage(plain_conn *k, const char *why) {
  ingest_garbage(k->l->env.in, &k->c.peer, why, "closing the connection");
  plain_conn_close(k);
}

/* The stream of k, made on its first record: named by the "#stream" line or after the peer. */
static int plain_conn_stream(plain_conn *k, const cs_field *columns, size_t n) {
  const char *name = k->state == PLAIN_CSV && k->first_len > 0 ? k->first : k->c.peer.name;
  size_t len = k->state == PLAIN_CSV && k->first_len > 0 ? k->first_len : strlen(k->c.peer.name);
  return ingest_plain_stream(k->l->env.in, &k->c.peer, k->id, name, len, columns, n, &k->st);
}

/* csvpush callback: the header first (unless --plain-no-header), then records. */
static int plain_conn_record_cb(const cs_field *fields, size_t n, size_t bytes, void *arg) {
  plain_conn *k = arg;
  int rc;
  if (!k->header_taken) {
    k->header_taken = 1;
    return plain_conn_stream(k, fields, n);
  }
  if (k->st == NULL && (rc = plain_conn_stream(k, NULL, 0)) != 0) {
    return rc;
  }
  return ingest_plain_record(k->l->env.in, &k->c.peer, k->st, fields, n, bytes, k->now_us);
}

/* After the parser or ingest said rc: go on (0), or stop the consumer or close k. Returns 0
 * when k may be read on. */
static int plain_conn_verdict(plain_conn *k, int rc) {
  listen_plain *l = k->l;
  char why[160];
  if (rc == 0) {
    return 0;
  }
  if (rc == CS_ESTOP) {
    l->env.stop(l->env.arg, ingest_exit_code(l->env.in));
  } else if (rc == CS_EREFUSED) {
    plain_conn_garbage(k, ingest_error(l->env.in));
  } else if (rc == CS_ETOOBIG || rc == CS_ECSV) {
    char n[WORDS_BUF];
    snprintf(why, sizeof(why), "%s (after %s)", csvpush_error(k->parser),
             words_count_of(n, sizeof n, k->c.peer.records, "record", "records"));
    plain_conn_garbage(k, why);
  } else {
    plain_conn_garbage(k, cs_strerror(rc));
  }
  return -1;
}

/* The first line: "#stream NAME" names the stream, anything else is CSV already. Consumes what
 * of data belongs to it; returns the bytes used, or -1 when k was closed. */
static long plain_conn_first(plain_conn *k, const char *data, size_t len) {
  size_t i;
  for (i = 0; i < len && k->state != PLAIN_CSV; i++) {
    char c = data[i];
    if (k->state == PLAIN_FIRST) {
      if (c != LISTEN_PLAIN_NAME_PREFIX[k->first_len]) {
        /* Not a name line: what was held is the start of the CSV. */
        size_t held = k->first_len;
        k->first_len = 0;
        k->state = PLAIN_CSV;
        if (held > 0 && plain_conn_verdict(k, csvpush_feed(k->parser, k->first, held,
                                                           plain_conn_record_cb, k)) != 0) {
          return -1;
        }
        return (long)i;
      }
      k->first[k->first_len++] = c;
      if (k->first_len == LISTEN_PLAIN_NAME_PREFIX_LEN) {
        k->first_len = 0;
        k->state = PLAIN_NAME;
      }
    } else if (c == '\n') {
      while (k->first_len > 0 &&
             (k->first[k->first_len - 1] == '\r' || k->first[k->first_len - 1] == ' ')) {
        k->first_len--;
      }
      if (k->first_len == 0) {
        plain_conn_garbage(k, "an empty stream name after '#stream '");
        return -1;
      }
      k->first[k->first_len] = '\0';
      k->state = PLAIN_CSV;
    } else if (k->first_len >= WIRE_MAX_STREAM_NAME + 1) {
      plain_conn_garbage(k, "a '#stream' line longer than 255 bytes");
      return -1;
    } else {
      k->first[k->first_len++] = c;
    }
  }
  return (long)i;
}

/* Note the bytes of an incomplete record k holds; over the cap for all connections, close the
 * largest holders first. */
static void plain_conn_note_partial(plain_conn *k, uint64_t now) {
  size_t held = k->state == PLAIN_CSV ? csvpush_pending(k->parser) : k->first_len + 1;
  conns_note_partial(&k->c, held, now, LISTEN_PLAIN_MAX_PARTIAL_BYTES,
                     "incomplete records of all connections over the cap",
                     "closing the connection");
}

/* The peer closed: its last record may lack a line end; the stream is complete. */
static void plain_conn_eof(plain_conn *k) {
  int rc = 0;
  if (k->state != PLAIN_CSV) {
    /* Only a first line, or the start of one: take it as CSV (a header without a newline). */
    size_t held = k->state == PLAIN_FIRST ? k->first_len : 0;
    k->state = PLAIN_CSV;
    k->first_len = 0;
    if (held > 0) {
      rc = csvpush_feed(k->parser, LISTEN_PLAIN_NAME_PREFIX, held, plain_conn_record_cb, k);
    }
  }
  if (rc == 0) {
    rc = csvpush_finish(k->parser, plain_conn_record_cb, k);
  }
  if (plain_conn_verdict(k, rc) != 0) {
    return;
  }
  ingest_plain_end(k->l->env.in, &k->c.peer, k->st);
  conns_log_end(&k->c, "disconnected");
  plain_conn_close(k);
}

/* Bytes from a peer: the first line, then CSV records. */
static void plain_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  plain_conn *k = s->data;
  listen_plain *l = k->l;
  const char *data = buf->base;
  size_t len;
  long used;
  if (nread == 0 || k->c.closing) {
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) {
      plain_conn_eof(k);
    } else {
      char n[WORDS_BUF];
      log_warn("plain-tcp %s: connection lost: %s (after %s)", k->c.peer.name,
               uv_strerror((int)nread),
               words_count_of(n, sizeof n, k->c.peer.records, "record", "records"));
      plain_conn_close(k);
    }
    l->env.input(l->env.arg);
    return;
  }
  len = (size_t)nread;
  k->now_us = clock_wall_us();
  if (k->state != PLAIN_CSV) {
    used = plain_conn_first(k, data, len);
    if (used < 0) {
      l->env.input(l->env.arg);
      return;
    }
    data += used;
    len -= (size_t)used;
  }
  if (len > 0 &&
      plain_conn_verdict(k, csvpush_feed(k->parser, data, len, plain_conn_record_cb, k)) != 0) {
    l->env.input(l->env.arg);
    return;
  }
  plain_conn_note_partial(k, clock_mono_us());
  l->env.input(l->env.arg);
}

static void plain_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  plain_conn *k = h->data;
  (void)suggested;
  buf->base = k->l->buf;
  buf->len = sizeof(k->l->buf);
}

/* Start reading k (not while reads are paused for back-pressure). */
static void plain_conn_read_start(plain_conn *k) {
  int rc;
  if (k->c.closing || k->l->paused || k->l->stopping) {
    return;
  }
  rc = uv_read_start((uv_stream_t *)&k->c.handle, plain_alloc_cb, plain_read_cb);
  if (rc != 0) {
    log_warn("plain-tcp %s: cannot read: %s", k->c.peer.name, uv_strerror(rc));
  }
}

/* Once a second: close connections that held an incomplete record too long. */
static void plain_sweep_cb(uv_timer_t *t) {
  listen_plain *l = t->data;
  uint64_t now = clock_mono_us();
  conn *c;
  for (c = l->conns.list; c != NULL; c = c->next) {
    plain_conn *k = (plain_conn *)c;
    if (!k->c.closing && k->c.partial_since_us != 0 &&
        now - k->c.partial_since_us >= LISTEN_PLAIN_PARTIAL_TIMEOUT_US) {
      char why[96];
      snprintf(why, sizeof(why), "an incomplete record (%zu bytes) held for %d s",
               k->c.partial_bytes, (int)(LISTEN_PLAIN_PARTIAL_TIMEOUT_US / 1000000));
      l->env.in->proto[STREAM_PLAIN_TCP].timed_out++;
      plain_conn_garbage(k, why);
    }
  }
}

/* Over the connection cap: close the oldest connection that has sent no record yet (an idle
 * flood must not keep real senders out). Returns 1 when one was closed, 0 when every other
 * connection has sent records (the new one is then refused). */
static int plain_evict_silent(listen_plain *l, plain_conn *keep) {
  plain_conn *oldest = NULL;
  conn *c;
  for (c = l->conns.list; c != NULL; c = c->next) {
    if (c != &keep->c && !c->closing && c->peer.records == 0) {
      oldest = (plain_conn *)c; /* the list is newest first: the last match is the oldest */
    }
  }
  if (oldest == NULL) {
    return 0;
  }
  l->env.in->proto[STREAM_PLAIN_TCP].evicted++;
  plain_conn_garbage(oldest, "no record yet, and the plain connections are at their limit of "
                             "1024 (closing the oldest silent one)");
  return 1;
}

/* A peer connected. */
static void plain_connection_cb(uv_stream_t *server, int status) {
  listen_plain *l = server->data;
  plain_conn *k;
  if (status < 0) {
    conns_accept_failed(&l->conns, status);
    return;
  }
  k = calloc(1, sizeof(*k));
  if (k == NULL || csvpush_new(&k->parser, LISTEN_PLAIN_MAX_RECORD) != 0) {
    free(k);
    log_error("out of memory for a new connection on %s", l->tcp_name);
    return;
  }
  k->l = l;
  k->id = ++l->next_id;
  k->header_taken = l->env.opt->plain_no_header;
  if (conns_accept(&l->conns, server, &k->c) != 0) {
    return;
  }
  if (l->conns.n > LISTEN_PLAIN_MAX_CONNS && !plain_evict_silent(l, k)) {
    plain_conn_garbage(k, "more plain connections than the limit of 1024");
    return;
  }
  conns_log_open(&k->c);
  plain_conn_read_start(k);
}

/* ---- UDP: each datagram whole records, one stream per sender ------------------------------ */

typedef struct plain_datagram {
  listen_plain *l;
  ingest_peer *peer;
  stream *st;
  uint64_t now_us;
} plain_datagram;

static int plain_udp_record_cb(const cs_field *fields, size_t n, size_t bytes, void *arg) {
  plain_datagram *d = arg;
  ingest *in = d->l->env.in;
  int rc;
  if (d->st == NULL) {
    const char *name = ingest_peer_name(d->peer);
    rc = ingest_plain_stream(in, d->peer, 0, name, strlen(name), NULL, 0, &d->st);
    if (rc != 0) {
      return rc;
    }
  }
  return ingest_plain_record(in, d->peer, d->st, fields, n, bytes, d->now_us);
}

static void plain_udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  listen_plain *l = h->data;
  (void)suggested;
  buf->base = l->buf;
  buf->len = sizeof(l->buf);
}

/* One datagram: its records, parsed alone (a record never spans two datagrams). */
static void plain_udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                              const struct sockaddr *addr, unsigned flags) {
  listen_plain *l = h->data;
  ingest *in = l->env.in;
  ingest_peer peer;
  plain_datagram d;
  int rc;
  if (l->stopping || (nread == 0 && addr == NULL)) {
    return;
  }
  if (nread < 0) {
    if (log_limiter_allow(&in->proto[STREAM_PLAIN_UDP].garbage_log, clock_mono_us(),
                          INGEST_GARBAGE_LOG_INTERVAL_US)) {
      log_warn("plain-udp receive on %s failed: %s", l->udp_name, uv_strerror((int)nread));
    }
    return;
  }
  ingest_peer_init(&peer, STREAM_PLAIN_UDP, addr);
  in->proto[STREAM_PLAIN_UDP].datagrams++;
  if (flags & UV_UDP_PARTIAL) {
    ingest_garbage(in, &peer, "datagram larger than 64 KiB (truncated)", "ignored");
    return;
  }
  d.l = l;
  d.peer = &peer;
  d.st = NULL;
  d.now_us = clock_wall_us();
  csvpush_reset(l->udp_parser);
  rc = csvpush_feed(l->udp_parser, buf->base, (size_t)nread, plain_udp_record_cb, &d);
  if (rc == 0) {
    rc = csvpush_finish(l->udp_parser, plain_udp_record_cb, &d);
  }
  if (rc == CS_ESTOP) {
    l->env.stop(l->env.arg, ingest_exit_code(in));
    return;
  }
  if (rc == CS_EREFUSED) {
    ingest_garbage(in, &peer, ingest_error(in), "the datagram is dropped");
  } else if (rc == CS_ECSV || rc == CS_ETOOBIG) {
    ingest_garbage(in, &peer, csvpush_error(l->udp_parser), "the rest of the datagram is ignored");
  } else if (rc < 0) {
    ingest_garbage(in, &peer, cs_strerror(rc), "the rest of the datagram is ignored");
  }
  l->env.input(l->env.arg);
}

/* ---- start and stop ----------------------------------------------------------------------- */

/* Resolve --host:--plain-port for socktype into ss and name. Returns 0 or a code (logged). */
static int plain_resolve(listen_plain *l, int socktype, struct sockaddr_storage *ss, char *name,
                         size_t namelen) {
  socklen_t len;
  char err[256];
  int rc =
      net_resolve(l->env.opt->host, l->env.opt->plain_port, socktype, ss, &len, err, sizeof(err));
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  listen_rename((const struct sockaddr *)ss, socktype, name, namelen);
  return 0;
}

static int plain_start_tcp(listen_plain *l) {
  struct sockaddr_storage ss;
  int namelen = sizeof(ss);
  int rc = plain_resolve(l, SOCK_STREAM, &ss, l->tcp_name, sizeof(l->tcp_name));
  if (rc != 0) {
    return rc;
  }
  rc = uv_tcp_init(l->env.loop, &l->tcp);
  if (rc != 0) {
    log_error("cannot listen on %s: %s", l->tcp_name, uv_strerror(rc));
    return rc;
  }
  l->tcp.data = l;
  l->tcp_open = 1;
  conns_hold(&l->conns);
  rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)&l->tcp, 511, plain_connection_cb);
  }
  if (rc != 0) {
    listen_log_error(l->tcp_name, rc);
    return rc;
  }
  if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &namelen) == 0) {
    listen_rename((struct sockaddr *)&ss, SOCK_STREAM, l->tcp_name, sizeof(l->tcp_name));
  }
  rc = uv_timer_init(l->env.loop, &l->sweep);
  if (rc == 0) {
    l->sweep.data = l;
    l->sweep_open = 1;
    conns_hold(&l->conns);
    rc = uv_timer_start(&l->sweep, plain_sweep_cb, LISTEN_PLAIN_SWEEP_MS, LISTEN_PLAIN_SWEEP_MS);
  }
  if (rc != 0) {
    log_error("cannot listen on %s: %s", l->tcp_name, uv_strerror(rc));
  }
  return rc;
}

static int plain_start_udp(listen_plain *l) {
  struct sockaddr_storage ss;
  int namelen = sizeof(ss);
  int rc = plain_resolve(l, SOCK_DGRAM, &ss, l->udp_name, sizeof(l->udp_name));
  if (rc != 0) {
    return rc;
  }
  if (csvpush_new(&l->udp_parser, LISTEN_PLAIN_MAX_RECORD) != 0) {
    log_error("out of memory for the plain UDP listener");
    return CS_ENOMEM;
  }
  rc = uv_udp_init(l->env.loop, &l->udp);
  if (rc != 0) {
    log_error("cannot listen on %s: %s", l->udp_name, uv_strerror(rc));
    return rc;
  }
  l->udp.data = l;
  l->udp_open = 1;
  conns_hold(&l->conns);
  rc = uv_udp_bind(&l->udp, (struct sockaddr *)&ss, 0);
  if (rc != 0) {
    listen_log_error(l->udp_name, rc);
    return rc;
  }
  if (uv_udp_getsockname(&l->udp, (struct sockaddr *)&ss, &namelen) == 0) {
    listen_rename((struct sockaddr *)&ss, SOCK_DGRAM, l->udp_name, sizeof(l->udp_name));
  }
  rc = uv_udp_recv_start(&l->udp, plain_udp_alloc_cb, plain_udp_recv_cb);
  if (rc != 0) {
    log_error("cannot receive on %s: %s", l->udp_name, uv_strerror(rc));
    return rc;
  }
  l->udp_receiving = 1;
  return 0;
}

/* Bind both; see listen_plain.h. */
int listen_plain_start(listen_plain **out, const listen_env *env) {
  listen_plain *l = calloc(1, sizeof(*l));
  int rc = 0;
  *out = NULL;
  if (l == NULL) {
    log_error("out of memory for the plain CSV listener");
    return CS_ENOMEM;
  }
  l->env = *env;
  /* The set's own hold is start/stop's, given back in listen_plain_stop. */
  conns_init(&l->conns, &plain_conns_ops, l, env->in, l->tcp_name);
  *out = l;
  if (env->opt->tcp) {
    rc = plain_start_tcp(l);
  }
  if (rc == 0 && env->opt->udp) {
    rc = plain_start_udp(l);
  }
  return rc;
}

void listen_plain_announce(const listen_plain *l) {
  if (l->tcp_open) {
    log_info("listening on %s (plain CSV)", l->tcp_name);
  }
  if (l->udp_open) {
    log_info("listening on %s (plain CSV)", l->udp_name);
  }
}

/* Pause or resume the TCP reads; see listen_plain.h. */
void listen_plain_pause(listen_plain *l, int paused) {
  conn *c;
  if (l == NULL || l->stopping || l->paused == paused) {
    return;
  }
  l->paused = paused;
  for (c = l->conns.list; c != NULL; c = c->next) {
    plain_conn *k = (plain_conn *)c;
    if (paused) {
      if (!k->c.closing) {
        uv_read_stop((uv_stream_t *)&k->c.handle);
      }
    } else {
      plain_conn_read_start(k);
    }
  }
}

/* Close everything; see listen_plain.h. */
void listen_plain_stop(listen_plain *l) {
  conn *c;
  if (l == NULL || l->stopping) {
    return;
  }
  l->stopping = 1;
  for (c = l->conns.list; c != NULL; c = c->next) {
    plain_conn *k = (plain_conn *)c;
    if (!k->c.closing && k->c.partial_bytes > 0) {
      char bytes[WORDS_BUF];
      log_warn("plain-tcp %s: closing with %s of an incomplete record (not stored)", k->c.peer.name,
               words_count_of(bytes, sizeof bytes, k->c.partial_bytes, "byte", "bytes"));
    }
    if (!k->c.closing) {
      conns_log_end(&k->c, "closed by the consumer");
    }
    plain_conn_close(k);
  }
  if (l->udp_receiving) {
    uv_udp_recv_stop(&l->udp);
  }
  if (l->udp_open) {
    conns_close_handle(&l->conns, (uv_handle_t *)&l->udp);
  }
  if (l->sweep_open) {
    conns_close_handle(&l->conns, (uv_handle_t *)&l->sweep);
  }
  if (l->tcp_open) {
    conns_close_handle(&l->conns, (uv_handle_t *)&l->tcp);
  }
  conns_release(&l->conns);
}
