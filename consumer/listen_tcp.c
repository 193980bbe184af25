/* listen_tcp.c -- the TCP listener: connections, their decoders, back-pressure and closing. */
#include "listen_tcp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "lograte.h"

#define LISTEN_TCP_SWEEP_MS 1000
#define LISTEN_TCP_CONN_LOG_BURST 20 /* connect/disconnect lines at once, then */
#define LISTEN_TCP_CONN_LOG_PER_S 5  /* this many a second */
#define LISTEN_TCP_ACCEPT_LOG_INTERVAL_US 1000000
#include "words.h"

typedef struct listen_conn listen_conn;

struct listen_tcp {
  uv_tcp_t handle;
  uv_timer_t sweep; /* once a second while a connection may time out: those that took too long */
  int sweep_open;
  int sweeping; /* the sweep timer runs */
  listen_env env;
  char name[80];
  listen_conn *conns;
  size_t partial_bytes; /* held in incomplete frames, all connections */
  int paused;
  int stopping;
  int handles; /* handles not yet closed (the listener, its timer, its connections): freed at 0 */
  lograte conn_log;             /* connect and disconnect lines */
  log_limiter accept_log;       /* failed accepts (out of descriptors, say) */
  char buf[LISTEN_READ_BUFFER]; /* all reads share it: libuv calls alloc and read back to back */
};

/* One connection. Lives on handle.data; freed only in its close callback. */
struct listen_conn {
  uv_tcp_t handle;
  listen_tcp *l;
  ingest_peer peer;
  wire_decoder dec;
  uint64_t accepted_us;      /* monotonic */
  uint64_t partial_since_us; /* an incomplete frame is held since (monotonic), 0: none */
  size_t partial_bytes;      /* its bytes, counted in l->partial_bytes */
  uint64_t acked;            /* the last sequence number acknowledged to the producer */
  uv_write_t ack_req;        /* the ACK or REFUSE frame in flight (one at a time) */
  cs_buf ack_frame;          /* its bytes, alive until the write callback */
  int ack_in_flight;
  int close_after_write; /* a REFUSE is in flight: close when it is written */
  int closing;
  listen_conn *prev, *next;
};

/* What the decoder's callback needs: the peer and the receive time are parameters. */
typedef struct listen_tcp_read {
  listen_conn *k;
  uint64_t now_us;
} listen_tcp_read;

static void listen_tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void listen_conn_refuse(listen_conn *k, int counted);
static void listen_tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void listen_tcp_sweep_arm(listen_tcp *l, const listen_conn *k);

/* One handle of l closed: free l when it was the last. */
static void listen_tcp_release(listen_tcp *l) {
  if (--l->handles == 0) {
    free(l);
  }
}

static void listen_tcp_close_cb(uv_handle_t *h) {
  listen_tcp_release(h->data);
}

/* Free a connection once libuv is done with it. */
static void listen_conn_close_cb(uv_handle_t *h) {
  listen_conn *k = h->data;
  listen_tcp *l = k->l;
  if (k->prev != NULL) {
    k->prev->next = k->next;
  } else {
    l->conns = k->next;
  }
  if (k->next != NULL) {
    k->next->prev = k->prev;
  }
  wire_decoder_free(&k->dec);
  cs_buf_free(&k->ack_frame);
  free(k);
  listen_tcp_release(l);
}

/* Close a connection (safe inside its own read callback: freed in listen_conn_close_cb). */
static void listen_conn_close(listen_conn *k) {
  if (k->closing) {
    return;
  }
  k->closing = 1;
  ingest_peer_close(k->l->env.in, &k->peer);
  k->l->partial_bytes -= k->partial_bytes;
  k->l->env.in->frame_bytes -= k->partial_bytes;
  k->partial_bytes = 0;
  uv_close((uv_handle_t *)&k->handle, listen_conn_close_cb);
}

/* A connection line (connected, disconnected, closed), within the lines' rate: a flood of
 * peers must not flood the log. Says how many were held back since the last one. */
static void listen_conn_log(listen_tcp *l, int level, const char *what, const listen_conn *k) {
  char n[WORDS_BUF], held_text[WORDS_BUF];
  unsigned long long held;
  if (!lograte_allow(&l->conn_log, clock_mono_us())) {
    return;
  }
  held = lograte_take_suppressed(&l->conn_log);
  words_count_of(n, sizeof n, k->peer.records, "record", "records");
  if (held > 0 && strcmp(what, "connected") == 0) {
    log_msg(level, "tcp %s connected (%s more connection lines not shown)", k->peer.name,
            words_count(held_text, sizeof held_text, held));
  } else if (held > 0) {
    log_msg(level, "tcp %s %s after %s (%s more connection lines not shown)", k->peer.name, what, n,
            words_count(held_text, sizeof held_text, held));
  } else if (strcmp(what, "connected") == 0) {
    log_msg(level, "tcp %s connected", k->peer.name);
  } else {
    log_msg(level, "tcp %s %s after %s", k->peer.name, what, n);
  }
}

/* Note how many bytes of an incomplete frame k holds now; over the cap for all connections,
 * close the largest holders first until under it (they cannot be told from a slow sender,
 * but one peer must not make the consumer hold everything). */
static void listen_conn_note_partial(listen_conn *k, uint64_t now) {
  listen_tcp *l = k->l;
  size_t held = wire_decoder_pending(&k->dec);
  l->partial_bytes = l->partial_bytes - k->partial_bytes + held;
  l->env.in->frame_bytes = l->env.in->frame_bytes - k->partial_bytes + held;
  k->partial_bytes = held;
  k->partial_since_us = held == 0 ? 0 : (k->partial_since_us != 0 ? k->partial_since_us : now);
  /* The memory budget (streams, frames and the plain listener's records together) may leave
   * less than the cap. */
  while (l->partial_bytes > LISTEN_TCP_MAX_PARTIAL_BYTES ||
         l->env.in->frame_bytes > ingest_frame_cap(l->env.in)) {
    listen_conn *big = NULL, *c;
    for (c = l->conns; c != NULL; c = c->next) {
      if (!c->closing && c->partial_bytes > 0 &&
          (big == NULL || c->partial_bytes > big->partial_bytes)) {
        big = c;
      }
    }
    if (big == NULL) {
      break;
    }
    l->env.in->proto[STREAM_TCP].evicted++;
    ingest_garbage(l->env.in, &big->peer, "incomplete frames of all connections over the cap",
                   "closing the one holding most");
    listen_conn_close(big);
  }
}

/* Start reading one connection (not while reads are paused for back-pressure). */
static void listen_conn_read_start(listen_conn *k) {
  int rc;
  if (k->closing || k->close_after_write || k->l->paused || k->l->stopping) {
    return; /* a refused connection is not read again: it closes once its REFUSE is written */
  }
  rc = uv_read_start((uv_stream_t *)&k->handle, listen_tcp_alloc_cb, listen_tcp_read_cb);
  if (rc != 0) {
    log_warn("tcp %s: cannot read: %s", k->peer.name, uv_strerror(rc));
  }
}

static void listen_tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  listen_conn *k = h->data;
  (void)suggested;
  buf->base = k->l->buf;
  buf->len = sizeof(k->l->buf);
}

static int listen_tcp_msg_cb(const wire_msg *m, void *arg) {
  listen_tcp_read *r = arg;
  return ingest_msg(r->k->l->env.in, &r->k->peer, m, r->now_us);
}

/* Bytes from a producer: decode every complete frame; garbage closes the connection. */
static void listen_tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  listen_conn *k = s->data;
  listen_tcp *l = k->l;
  listen_tcp_read r;
  int rc;
  if (nread == 0 || k->closing) {
    return;
  }
  if (nread < 0) {
    char n[WORDS_BUF];
    if (nread == UV_EOF) {
      listen_conn_log(l, LOG_INFO, "disconnected", k);
    } else {
      log_warn("tcp %s: connection lost: %s (after %s)", k->peer.name, uv_strerror((int)nread),
               words_count_of(n, sizeof n, k->peer.records, "record", "records"));
    }
    listen_conn_close(k);
    return;
  }
  r.k = k;
  r.now_us = clock_wall_us();
  rc = wire_decoder_feed(&k->dec, buf->base, (size_t)nread, listen_tcp_msg_cb, &r);
  if (rc == CS_ESTOP) {
    l->env.stop(l->env.arg, ingest_exit_code(l->env.in)); /* closes this connection too */
    return;
  }
  if (rc == CS_EREFUSED || rc == CS_ESPOOFED) {
    listen_conn_refuse(k, rc == CS_ESPOOFED); /* ingest counted and logged a spoofed frame */
  } else if (rc == CS_EPROTO) {
    ingest_garbage(l->env.in, &k->peer, ingest_error(l->env.in), "closing the connection");
    listen_conn_close(k);
  } else if (rc < 0) {
    ingest_garbage(l->env.in, &k->peer, ingest_decode_error(rc), "closing the connection");
    listen_conn_close(k);
  } else {
    listen_conn_note_partial(k, clock_mono_us());
    listen_tcp_sweep_arm(l, k);
  }
  l->env.input(l->env.arg);
}

/* Close k if it took too long: no HELLO within LISTEN_TCP_HELLO_TIMEOUT_US of connecting, or an
 * incomplete frame held for LISTEN_TCP_PARTIAL_TIMEOUT_US. Counted as timed out. */
static void listen_conn_sweep(listen_conn *k, uint64_t now) {
  char why[96];
  if (k->closing) {
    return;
  }
  if (!k->peer.saw_hello && now - k->accepted_us >= LISTEN_TCP_HELLO_TIMEOUT_US) {
    snprintf(why, sizeof(why), "no hello within %d s of connecting",
             (int)(LISTEN_TCP_HELLO_TIMEOUT_US / 1000000));
  } else if (k->partial_since_us != 0 &&
             now - k->partial_since_us >= LISTEN_TCP_PARTIAL_TIMEOUT_US) {
    snprintf(why, sizeof(why), "an incomplete frame (%zu bytes) held for %d s", k->partial_bytes,
             (int)(LISTEN_TCP_PARTIAL_TIMEOUT_US / 1000000));
  } else {
    return;
  }
  k->l->env.in->proto[STREAM_TCP].timed_out++;
  ingest_garbage(k->l->env.in, &k->peer, why, "closing the connection");
  listen_conn_close(k);
}

/* 1 if k may time out: it sent no HELLO yet, or holds an incomplete frame. */
static int listen_conn_watched(const listen_conn *k) {
  return !k->closing && (!k->peer.saw_hello || k->partial_since_us != 0);
}

static void listen_tcp_sweep_cb(uv_timer_t *t) {
  listen_tcp *l = t->data;
  uint64_t now = clock_mono_us();
  listen_conn *k;
  int watched = 0;
  for (k = l->conns; k != NULL; k = k->next) {
    listen_conn_sweep(k, now);
    watched = watched || listen_conn_watched(k);
  }
  if (!watched) {
    /* Nothing can time out now: no tick while the connections are idle (or there are none).
     * A new connection or an incomplete frame starts it again. */
    uv_timer_stop(&l->sweep);
    l->sweeping = 0;
  }
}

/* Start the once-a-second sweep if k may time out and it is not running. */
static void listen_tcp_sweep_arm(listen_tcp *l, const listen_conn *k) {
  int rc;
  if (l->sweeping || !l->sweep_open || l->stopping || !listen_conn_watched(k)) {
    return;
  }
  rc = uv_timer_start(&l->sweep, listen_tcp_sweep_cb, LISTEN_TCP_SWEEP_MS, LISTEN_TCP_SWEEP_MS);
  if (rc != 0) {
    log_warn("tcp %s: cannot start the timeouts' timer: %s", l->name, uv_strerror(rc));
    return;
  }
  l->sweeping = 1;
}

static void listen_conn_ack(listen_conn *k);

/* An ACK or REFUSE frame was written (or cancelled by the close). */
static void listen_conn_ack_cb(uv_write_t *req, int status) {
  listen_conn *k = req->data;
  k->ack_in_flight = 0;
  cs_buf_reset(&k->ack_frame);
  if (k->closing) {
    return;
  }
  if (status < 0 || k->close_after_write) {
    listen_conn_close(k);
    return;
  }
  listen_conn_ack(k); /* more may have become durable meanwhile */
}

/* Write m (an ACK or REFUSE) to the producer: one frame in flight at a time, so a producer that
 * does not read cannot make the consumer queue frames without end. Returns 0 or a code. */
static int listen_conn_write(listen_conn *k, const wire_msg *m) {
  uv_buf_t b;
  int rc = wire_encode(m, &k->ack_frame);
  if (rc != 0) {
    return rc;
  }
  b = uv_buf_init(k->ack_frame.data, (unsigned)k->ack_frame.len);
  k->ack_req.data = k;
  rc = uv_write(&k->ack_req, (uv_stream_t *)&k->handle, &b, 1, listen_conn_ack_cb);
  if (rc != 0) {
    cs_buf_reset(&k->ack_frame);
    return rc;
  }
  k->ack_in_flight = 1;
  return 0;
}

/* Tell the producer how far its stream is durable in every sink, when that moved (or a HELLO
 * asked where the stream stands). */
static void listen_conn_ack(listen_conn *k) {
  stream *st = k->peer.hello_stream;
  wire_msg m;
  uint64_t durable;
  int rc;
  if (k->closing || k->ack_in_flight || st == NULL || !st->sink.acked) {
    return;
  }
  durable = sinks_durable(k->l->env.in->sinks, &st->sink);
  if (durable <= k->acked && !k->peer.ack_due) {
    return;
  }
  memset(&m, 0, sizeof(m));
  m.type = WIRE_ACK;
  m.producer_id = st->sink.producer_id;
  m.seq = durable;
  m.sent_us = clock_wall_us();
  m.stream.data = st->sink.name;
  m.stream.len = st->name_len;
  rc = listen_conn_write(k, &m);
  if (rc != 0) {
    log_warn("tcp %s: cannot acknowledge: %s", k->peer.name, cs_strerror(rc));
    return;
  }
  k->acked = durable;
  k->peer.ack_due = 0;
}

/* Acknowledge what became durable on every connection; see listen_tcp.h. */
void listen_tcp_ack(listen_tcp *l) {
  listen_conn *k;
  if (l == NULL || l->stopping) {
    return;
  }
  for (k = l->conns; k != NULL; k = k->next) {
    listen_conn_ack(k);
  }
}

/* The stream is refused: tell the producer why with a REFUSE frame, then close. */
static void listen_conn_refuse(listen_conn *k, int counted) {
  ingest *in = k->l->env.in;
  cs_field why;
  wire_msg m;
  if (!counted) {
    in->proto[STREAM_TCP].refused++;
    log_error("tcp %s: %s; telling the producer", k->peer.name, ingest_error(in));
  }
  memset(&m, 0, sizeof(m));
  m.type = WIRE_REFUSE;
  m.producer_id = in->refused_id;
  m.sent_us = clock_wall_us();
  m.stream.data = in->refused_stream;
  m.stream.len = in->refused_len;
  why.data = ingest_error(in);
  why.len = strlen(why.data);
  m.nfields = 1;
  m.fields = &why;
  uv_read_stop((uv_stream_t *)&k->handle);
  if (k->ack_in_flight) {
    /* The ACK in flight goes first; the refusal would need a second buffer: close. */
    k->close_after_write = 1;
    return;
  }
  if (listen_conn_write(k, &m) != 0) {
    listen_conn_close(k);
    return;
  }
  k->close_after_write = 1;
}

/* A producer connected. */
static void listen_tcp_connection_cb(uv_stream_t *server, int status) {
  listen_tcp *l = server->data;
  listen_conn *k;
  struct sockaddr_storage ss;
  int len = sizeof(ss), rc;

  if (status < 0) {
    /* Out of descriptors (libuv then closes what waits in the backlog): say so once a second
     * and go on serving the connections there are. */
    if (log_limiter_allow(&l->accept_log, clock_mono_us(), LISTEN_TCP_ACCEPT_LOG_INTERVAL_US)) {
      unsigned long long held = l->accept_log.suppressed;
      l->accept_log.suppressed = 0;
      log_warn("tcp accept on %s failed: %s%s (%llu more since the last report)", l->name,
               uv_strerror(status),
               status == UV_EMFILE || status == UV_ENFILE
                   ? "; new connections are refused until some close (raise ulimit -n)"
                   : "",
               held);
    }
    return;
  }
  k = calloc(1, sizeof(*k));
  if (k == NULL) {
    log_error("out of memory for a new connection on %s", l->name);
    return;
  }
  k->l = l;
  wire_decoder_init(&k->dec, WIRE_MAX_PAYLOAD);
  cs_buf_init(&k->ack_frame);
  ingest_peer_init(&k->peer, STREAM_TCP, NULL);
  snprintf(k->peer.name, sizeof(k->peer.name), "?");
  rc = uv_tcp_init(l->env.loop, &k->handle);
  if (rc != 0) {
    log_warn("tcp: cannot set up a connection: %s", uv_strerror(rc));
    wire_decoder_free(&k->dec);
    cs_buf_free(&k->ack_frame);
    free(k);
    return;
  }
  k->handle.data = k;
  l->handles++;
  k->next = l->conns;
  if (l->conns != NULL) {
    l->conns->prev = k;
  }
  l->conns = k;
  rc = uv_accept(server, (uv_stream_t *)&k->handle);
  if (rc != 0) {
    log_warn("tcp accept on %s failed: %s", l->name, uv_strerror(rc));
    listen_conn_close(k);
    return;
  }
  if (uv_tcp_getpeername(&k->handle, (struct sockaddr *)&ss, &len) == 0) {
    ingest_peer_init(&k->peer, STREAM_TCP, (struct sockaddr *)&ss);
    ingest_peer_name(&k->peer); /* formatted once, while ss lives */
    k->peer.addr = NULL;
  }
  l->env.in->proto[STREAM_TCP].connections++;
  k->accepted_us = clock_mono_us();
  listen_conn_log(l, LOG_INFO, "connected", k);
  listen_conn_read_start(k);
  listen_tcp_sweep_arm(l, k); /* no HELLO yet */
}

/* Bind and listen; see listen_tcp.h. */
int listen_tcp_start(listen_tcp **out, const listen_env *env) {
  struct sockaddr_storage ss;
  int namelen = sizeof(ss);
  listen_tcp *l = calloc(1, sizeof(*l));
  int rc;
  *out = NULL;
  if (l == NULL) {
    log_error("out of memory for the TCP listener");
    return CS_ENOMEM;
  }
  l->env = *env;
  rc = listen_resolve(env, SOCK_STREAM, &ss, l->name, sizeof(l->name));
  if (rc == 0) {
    rc = uv_tcp_init(env->loop, &l->handle);
    if (rc != 0) {
      log_error("cannot listen on %s: %s", l->name, uv_strerror(rc));
    }
  }
  if (rc != 0) {
    free(l);
    return rc;
  }
  l->handle.data = l;
  l->handles = 1;
  lograte_init(&l->conn_log, LISTEN_TCP_CONN_LOG_BURST, LISTEN_TCP_CONN_LOG_PER_S);
  *out = l;
  rc = uv_timer_init(env->loop, &l->sweep);
  if (rc == 0) {
    l->sweep.data = l;
    l->sweep_open = 1;
    l->handles++;
  }
  if (rc != 0) {
    log_error("cannot listen on %s: %s", l->name, uv_strerror(rc));
    return rc;
  }
  rc = uv_tcp_bind(&l->handle, (struct sockaddr *)&ss, 0);
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)&l->handle, 511, listen_tcp_connection_cb);
  }
  if (rc != 0) {
    listen_log_error(l->name, rc);
    return rc;
  }
  if (uv_tcp_getsockname(&l->handle, (struct sockaddr *)&ss, &namelen) == 0) {
    listen_rename((struct sockaddr *)&ss, SOCK_STREAM, l->name, sizeof(l->name));
  }
  return 0;
}

const char *listen_tcp_name(const listen_tcp *l) {
  return l->name;
}

/* Pause or resume every connection; see listen_tcp.h. */
void listen_tcp_pause(listen_tcp *l, int paused) {
  listen_conn *k;
  l->paused = paused;
  for (k = l->conns; k != NULL; k = k->next) {
    if (paused && !k->closing) {
      uv_read_stop((uv_stream_t *)&k->handle);
    } else if (!paused) {
      listen_conn_read_start(k);
    }
  }
}

/* Close everything; see listen_tcp.h. */
void listen_tcp_stop(listen_tcp *l) {
  listen_conn *k;
  if (l == NULL || l->stopping) {
    return;
  }
  l->stopping = 1;
  for (k = l->conns; k != NULL; k = k->next) {
    if (!k->closing && wire_decoder_pending(&k->dec) > 0) {
      char bytes[WORDS_BUF];
      log_warn("tcp %s: closing with %s of an incomplete frame", k->peer.name,
               words_count_of(bytes, sizeof bytes, wire_decoder_pending(&k->dec), "byte", "bytes"));
    }
    if (!k->closing) {
      listen_conn_log(l, LOG_INFO, "closed by the consumer", k);
    }
    listen_conn_close(k);
  }
  if (l->sweep_open) {
    uv_close((uv_handle_t *)&l->sweep, listen_tcp_close_cb);
  }
  uv_close((uv_handle_t *)&l->handle, listen_tcp_close_cb);
}
