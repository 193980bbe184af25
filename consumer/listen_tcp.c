/* listen_tcp.c -- the TCP listener: connections, their decoders, back-pressure and closing. */
#include "listen_tcp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conns.h"
#include "error.h"
#include "log.h"
#include "words.h"

#define LISTEN_TCP_SWEEP_MS 1000

typedef struct listen_conn listen_conn;

struct listen_tcp {
  uv_tcp_t handle;
  uv_timer_t sweep; /* once a second while a connection may time out: those that took too long */
  int sweep_open;
  int sweeping; /* the sweep timer runs */
  listen_env env;
  char name[80];
  conns conns; /* the connections (listen_conn), and the handles that free l with the last */
  int paused;
  int stopping;
  char buf[LISTEN_READ_BUFFER]; /* all reads share it: libuv calls alloc and read back to back */
};

/* One connection: c first (c.handle.data is the connection), freed only in its close callback
 * (conns.h). c.partial_bytes is what its decoder holds of an incomplete frame. */
struct listen_conn {
  conn c;
  listen_tcp *l;
  wire_decoder dec;
  uint64_t accepted_us; /* monotonic */
  uint64_t acked;       /* the last sequence number acknowledged to the producer */
  uv_write_t ack_req;   /* the ACK or REFUSE frame in flight (one at a time) */
  cs_buf ack_frame;     /* its bytes, alive until the write callback */
  int ack_in_flight;
  int close_after_write; /* a REFUSE is in flight: close when it is written */
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

static void listen_tcp_free(void *server) {
  free(server);
}

/* A connection's own parts, once libuv is done with it. */
static void listen_conn_free(conn *c) {
  listen_conn *k = (listen_conn *)c;
  wire_decoder_free(&k->dec);
  cs_buf_free(&k->ack_frame);
  free(k);
}

static const conns_ops listen_tcp_conns_ops = {"tcp", STREAM_TCP, listen_conn_free,
                                               listen_tcp_free};

/* Close a connection (safe inside its own callbacks). */
static void listen_conn_close(listen_conn *k) {
  conns_close(&k->c);
}

/* Note how many bytes of an incomplete frame k holds now; over the cap, the largest holders
 * are closed first. */
static void listen_conn_note_partial(listen_conn *k, uint64_t now) {
  conns_note_partial(&k->c, wire_decoder_pending(&k->dec), now, LISTEN_TCP_MAX_PARTIAL_BYTES,
                     "incomplete frames of all connections over the cap",
                     "closing the one holding most");
}

/* Start reading one connection (not while reads are paused for back-pressure). */
static void listen_conn_read_start(listen_conn *k) {
  int rc;
  if (k->c.closing || k->close_after_write || k->l->paused || k->l->stopping) {
    return; /* a refused connection is not read again: it closes once its REFUSE is written */
  }
  rc = uv_read_start((uv_stream_t *)&k->c.handle, listen_tcp_alloc_cb, listen_tcp_read_cb);
  if (rc != 0) {
    log_warn("tcp %s: cannot read: %s", k->c.peer.name, uv_strerror(rc));
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
  return ingest_msg(r->k->l->env.in, &r->k->c.peer, m, r->now_us);
}

/* Bytes from a producer: decode every complete frame; garbage closes the connection. */
static void listen_tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  listen_conn *k = s->data;
  listen_tcp *l = k->l;
  listen_tcp_read r;
  int rc;
  if (nread == 0 || k->c.closing) {
    return;
  }
  if (nread < 0) {
    char n[WORDS_BUF];
    if (nread == UV_EOF) {
      conns_log_end(&k->c, "disconnected");
    } else {
      log_warn("tcp %s: connection lost: %s (after %s)", k->c.peer.name, uv_strerror((int)nread),
               words_count_of(n, sizeof n, k->c.peer.records, "record", "records"));
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
    ingest_garbage(l->env.in, &k->c.peer, ingest_error(l->env.in), "closing the connection");
    listen_conn_close(k);
  } else if (rc < 0) {
    ingest_garbage(l->env.in, &k->c.peer, ingest_decode_error(rc), "closing the connection");
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
  if (k->c.closing) {
    return;
  }
  if (!k->c.peer.saw_hello && now - k->accepted_us >= LISTEN_TCP_HELLO_TIMEOUT_US) {
    snprintf(why, sizeof(why), "no hello within %d s of connecting",
             (int)(LISTEN_TCP_HELLO_TIMEOUT_US / 1000000));
  } else if (k->c.partial_since_us != 0 &&
             now - k->c.partial_since_us >= LISTEN_TCP_PARTIAL_TIMEOUT_US) {
    snprintf(why, sizeof(why), "an incomplete frame (%zu bytes) held for %d s", k->c.partial_bytes,
             (int)(LISTEN_TCP_PARTIAL_TIMEOUT_US / 1000000));
  } else {
    return;
  }
  k->l->env.in->proto[STREAM_TCP].timed_out++;
  ingest_garbage(k->l->env.in, &k->c.peer, why, "closing the connection");
  listen_conn_close(k);
}

/* 1 if k may time out: it sent no HELLO yet, or holds an incomplete frame. */
static int listen_conn_watched(const listen_conn *k) {
  return !k->c.closing && (!k->c.peer.saw_hello || k->c.partial_since_us != 0);
}

static void listen_tcp_sweep_cb(uv_timer_t *t) {
  listen_tcp *l = t->data;
  uint64_t now = clock_mono_us();
  conn *c;
  int watched = 0;
  for (c = l->conns.list; c != NULL; c = c->next) {
    listen_conn *k = (listen_conn *)c;
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
  if (k->c.closing) {
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
  rc = uv_write(&k->ack_req, (uv_stream_t *)&k->c.handle, &b, 1, listen_conn_ack_cb);
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
  stream *st = k->c.peer.hello_stream;
  wire_msg m;
  uint64_t durable;
  int rc;
  if (k->c.closing || k->ack_in_flight || st == NULL || !st->sink.acked) {
    return;
  }
  durable = sinks_durable(k->l->env.in->sinks, &st->sink);
  if (durable <= k->acked && !k->c.peer.ack_due) {
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
    log_warn("tcp %s: cannot acknowledge: %s", k->c.peer.name, cs_strerror(rc));
    return;
  }
  k->acked = durable;
  k->c.peer.ack_due = 0;
}

/* Acknowledge what became durable on every connection; see listen_tcp.h. */
void listen_tcp_ack(listen_tcp *l) {
  conn *c;
  if (l == NULL || l->stopping) {
    return;
  }
  for (c = l->conns.list; c != NULL; c = c->next) {
    listen_conn_ack((listen_conn *)c);
  }
}

/* The stream is refused: tell the producer why with a REFUSE frame, then close. */
static void listen_conn_refuse(listen_conn *k, int counted) {
  ingest *in = k->l->env.in;
  cs_field why;
  wire_msg m;
  if (!counted) {
    in->proto[STREAM_TCP].refused++;
    log_error("tcp %s: %s; telling the producer", k->c.peer.name, ingest_error(in));
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
  uv_read_stop((uv_stream_t *)&k->c.handle);
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

  if (status < 0) {
    conns_accept_failed(&l->conns, status);
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
  if (conns_accept(&l->conns, server, &k->c) != 0) {
    return;
  }
  k->accepted_us = clock_mono_us();
  conns_log_open(&k->c);
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
  conns_init(&l->conns, &listen_tcp_conns_ops, l, env->in, l->name);
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
  conns_hold(&l->conns);
  *out = l;
  rc = uv_timer_init(env->loop, &l->sweep);
  if (rc == 0) {
    l->sweep.data = l;
    l->sweep_open = 1;
    conns_hold(&l->conns);
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
  conn *c;
  l->paused = paused;
  for (c = l->conns.list; c != NULL; c = c->next) {
    listen_conn *k = (listen_conn *)c;
    if (paused && !k->c.closing) {
      uv_read_stop((uv_stream_t *)&k->c.handle);
    } else if (!paused) {
      listen_conn_read_start(k);
    }
  }
}

/* Close everything; see listen_tcp.h. */
void listen_tcp_stop(listen_tcp *l) {
  conn *c;
  if (l == NULL || l->stopping) {
    return;
  }
  l->stopping = 1;
  for (c = l->conns.list; c != NULL; c = c->next) {
    listen_conn *k = (listen_conn *)c;
    if (!k->c.closing && wire_decoder_pending(&k->dec) > 0) {
      char bytes[WORDS_BUF];
      log_warn("tcp %s: closing with %s of an incomplete frame", k->c.peer.name,
               words_count_of(bytes, sizeof bytes, wire_decoder_pending(&k->dec), "byte", "bytes"));
    }
    if (!k->c.closing) {
      conns_log_end(&k->c, "closed by the consumer");
    }
    listen_conn_close(k);
  }
  if (l->sweep_open) {
    conns_close_handle(&l->conns, (uv_handle_t *)&l->sweep);
  }
  conns_close_handle(&l->conns, (uv_handle_t *)&l->handle);
  conns_release(&l->conns);
}
