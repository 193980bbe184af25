/* conns.c -- the TCP connections of one server: list, handle count, safe close, incomplete bytes
 * and their cap, connection lines. */
#include "conns.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "clock.h"
#include "words.h"

/* Set up a set; see conns.h. */
void conns_init(conns *set, const conns_ops *ops, void *server, ingest *in, const char *where) {
  memset(set, 0, sizeof(*set));
  set->ops = ops;
  set->server = server;
  set->in = in;
  set->where = where;
  set->handles = 1;
  lograte_init(&set->log, CONNS_LOG_BURST, CONNS_LOG_PER_S);
}

void conns_hold(conns *set) {
  set->handles++;
}

/* Give back one count; see conns.h. The set lives in the server: not touched after the free. */
void conns_release(conns *set) {
  if (--set->handles == 0) {
    set->ops->free_server(set->server);
  }
}

static void conns_handle_close_cb(uv_handle_t *h) {
  conns_release(h->data);
}

void conns_close_handle(conns *set, uv_handle_t *h) {
  h->data = set;
  uv_close(h, conns_handle_close_cb);
}

/* libuv is done with k: out of the list, freed, and its handle count given back. */
static void conns_conn_close_cb(uv_handle_t *h) {
  conn *k = h->data;
  conns *set = k->set;
  if (k->prev != NULL) {
    k->prev->next = k->next;
  } else {
    set->list = k->next;
  }
  if (k->next != NULL) {
    k->next->prev = k->prev;
  }
  set->n--;
  set->ops->free_conn(k);
  conns_release(set);
}

/* Take k in and accept it; see conns.h. */
int conns_accept(conns *set, uv_stream_t *server, conn *k) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), rc;
  k->set = set;
  ingest_peer_init(&k->peer, set->ops->proto, NULL);
  snprintf(k->peer.name, sizeof(k->peer.name), "?");
  rc = uv_tcp_init(server->loop, &k->handle);
  if (rc != 0) {
    log_warn("%s: cannot set up a connection: %s", set->ops->label, uv_strerror(rc));
    set->ops->free_conn(k);
    return rc;
  }
  k->handle.data = k;
  set->handles++;
  set->n++;
  k->next = set->list;
  if (set->list != NULL) {
    set->list->prev = k;
  }
  set->list = k;
  rc = uv_accept(server, (uv_stream_t *)&k->handle);
  if (rc != 0) {
    log_warn("%s accept on %s failed: %s", set->ops->label, set->where, uv_strerror(rc));
    conns_close(k);
    return rc;
  }
  if (uv_tcp_getpeername(&k->handle, (struct sockaddr *)&ss, &len) == 0) {
    ingest_peer_init(&k->peer, set->ops->proto, (struct sockaddr *)&ss);
    ingest_peer_name(&k->peer); /* formatted once, while ss lives */
    k->peer.addr = NULL;
  }
  if (set->in != NULL) {
    set->in->proto[set->ops->proto].connections++;
  }
  return 0;
}

/* Out of descriptors (libuv then closes what waits in the backlog), say: said once a second,
 * and the server goes on serving the connections there are. */
void conns_accept_failed(conns *set, int status) {
  unsigned long long held;
  if (!log_limiter_allow(&set->accept_log, clock_mono_us(), CONNS_ACCEPT_LOG_INTERVAL_US)) {
    return;
  }
  held = set->accept_log.suppressed;
  set->accept_log.suppressed = 0;
  log_warn("%s accept on %s failed: %s%s (%llu more since the last report)", set->ops->label,
           set->where, uv_strerror(status),
           status == UV_EMFILE || status == UV_ENFILE
               ? "; new connections are refused until some close (raise ulimit -n)"
               : "",
           held);
}

/* Close k; see conns.h. */
void conns_close(conn *k) {
  conns *set = k->set;
  if (k->closing) {
    return;
  }
  k->closing = 1;
  if (set->in != NULL) {
    ingest_peer_close(set->in, &k->peer); /* its streams may be taken over or retired now */
    set->in->frame_bytes -= k->partial_bytes;
  }
  set->partial_bytes -= k->partial_bytes;
  k->partial_bytes = 0;
  uv_close((uv_handle_t *)&k->handle, conns_conn_close_cb);
}

/* Count what k holds, and close the largest holders while over a cap; see conns.h. They cannot
 * be told from a slow sender, but one peer must not make the consumer hold everything. */
void conns_note_partial(conn *k, size_t held, uint64_t now, size_t cap, const char *why,
                        const char *action) {
  conns *set = k->set;
  ingest *in = set->in;
  set->partial_bytes = set->partial_bytes - k->partial_bytes + held;
  in->frame_bytes = in->frame_bytes - k->partial_bytes + held;
  k->partial_bytes = held;
  k->partial_since_us = held == 0 ? 0 : (k->partial_since_us != 0 ? k->partial_since_us : now);
  /* The memory budget (the stream table and every listener's bytes) may leave less than cap. */
  while (set->partial_bytes > cap || in->frame_bytes > ingest_frame_cap(in)) {
    conn *big = NULL, *c;
    for (c = set->list; c != NULL; c = c->next) {
      if (!c->closing && c->partial_bytes > 0 &&
          (big == NULL || c->partial_bytes > big->partial_bytes)) {
        big = c;
      }
    }
    if (big == NULL) {
      break; /* what is over is another listener's */
    }
    in->proto[set->ops->proto].evicted++;
    ingest_garbage(in, &big->peer, why, action);
    conns_close(big);
  }
}

/* A connection line, within the lines' rate: a flood of peers must not flood the log. what is
 * NULL for "connected". */
static void conns_log(conn *k, const char *what) {
  char n[WORDS_BUF], held_text[WORDS_BUF], more[96] = "";
  unsigned long long held;
  if (!lograte_allow(&k->set->log, clock_mono_us())) {
    return;
  }
  held = lograte_take_suppressed(&k->set->log);
  if (held > 0) {
    snprintf(more, sizeof(more), " (%s more connection lines not shown)",
             words_count(held_text, sizeof held_text, held));
  }
  if (what == NULL) {
    log_info("%s %s connected%s", k->set->ops->label, k->peer.name, more);
  } else {
    log_info("%s %s %s after %s%s", k->set->ops->label, k->peer.name, what,
             words_count_of(n, sizeof n, k->peer.records, "record", "records"), more);
  }
}

void conns_log_open(conn *k) {
  conns_log(k, NULL);
}

void conns_log_end(conn *k, const char *what) {
  conns_log(k, what);
}
