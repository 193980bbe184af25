/* listen_udp.c -- the UDP listener: socket, receive buffer, kernel drops, datagram decoding. */
#include "listen_udp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "stats.h"
#include "words.h"

/* Datagrams one recvmmsg call may take: libuv (1.44) reads as many as whole 64 KiB slots fit
 * the buffer the alloc callback hands it, at most 20. A buffer under one slot would make it
 * call recvmmsg for none, and the loop would spin: the buffer is always the full 20 slots. */
#define LISTEN_UDP_MMSG_DATAGRAMS 20
#define LISTEN_UDP_SLOT (64u * 1024u)

struct listen_udp {
  uv_udp_t handle;
  listen_env env;
  char name[80];
  int stopping;
  int receiving;
  wire_decoder dec; /* scratch only: a datagram holds whole frames */
  /* One buffer for every read: recv runs right after alloc, and libuv hands each datagram back
   * in its own slot before the next read. Only the slots' first bytes are ever touched. */
  char buf[LISTEN_UDP_MMSG_DATAGRAMS * LISTEN_UDP_SLOT];
};

/* What the decoder's callback needs: the datagram's peer and its receive time. */
typedef struct listen_udp_read {
  listen_udp *l;
  ingest_peer *peer;
  uint64_t now_us;
} listen_udp_read;

static void listen_udp_close_cb(uv_handle_t *h) {
  listen_udp *l = h->data;
  wire_decoder_free(&l->dec);
  free(l);
}

static int listen_udp_msg_cb(const wire_msg *m, void *arg) {
  listen_udp_read *r = arg;
  return ingest_msg(r->l->env.in, r->peer, m, r->now_us);
}

static void listen_udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  listen_udp *l = h->data;
  (void)suggested;
  buf->base = l->buf;
  buf->len = sizeof(l->buf);
}

/* One datagram (or, with nread 0 and no address, the buffer handed back: unused, or after a
 * recvmmsg whose datagrams came one callback each, flagged UV_UDP_MMSG_CHUNK). */
static void listen_udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                               const struct sockaddr *addr, unsigned flags) {
  listen_udp *l = h->data;
  ingest *in = l->env.in;
  ingest_peer peer;
  listen_udp_read r;
  int rc;
  if (l->stopping) {
    return;
  }
  if (nread < 0) {
    if (log_limiter_allow(&in->proto[STREAM_UDP].garbage_log, clock_mono_us(),
                          INGEST_GARBAGE_LOG_INTERVAL_US)) {
      log_warn("udp receive on %s failed: %s", l->name, uv_strerror((int)nread));
    }
    return;
  }
  if (nread == 0 && addr == NULL) {
    return; /* nothing to read: libuv returns the buffer */
  }
  ingest_peer_init(&peer, STREAM_UDP, addr);
  in->proto[STREAM_UDP].datagrams++;
  if (nread == 0) {
    ingest_garbage(in, &peer, "empty datagram", "ignored");
    return;
  }
  if (flags & UV_UDP_PARTIAL) {
    ingest_garbage(in, &peer, "datagram larger than 64 KiB (truncated)", "ignored");
    return;
  }
  r.l = l;
  r.peer = &peer;
  r.now_us = clock_wall_us();
  rc = wire_decode_datagram(&l->dec, buf->base, (size_t)nread, listen_udp_msg_cb, &r);
  if (rc == CS_ESTOP) {
    l->env.stop(l->env.arg, ingest_exit_code(in));
    return;
  }
  if (rc == CS_ESPOOFED || rc == CS_EREFUSED) {
    /* counted and logged by ingest; the rest of the datagram is ignored */
  } else if (rc == CS_EPROTO) {
    ingest_garbage(in, &peer, ingest_error(in), "the rest of the datagram is ignored");
  } else if (rc < 0) {
    ingest_garbage(in, &peer, ingest_decode_error(rc), "the rest of the datagram is ignored");
  }
  l->env.input(l->env.arg);
}

/* Ask for a receive buffer of --rcvbuf bytes (or the default): SO_RCVBUFFORCE (root may exceed
 * rmem_max), else SO_RCVBUF. Warns when --rcvbuf was given and the kernel granted less. */
static void listen_udp_set_rcvbuf(listen_udp *l) {
  const consumer_options *opt = l->env.opt;
  uv_os_fd_t fd;
  int want = opt->rcvbuf_given ? (int)opt->rcvbuf : LISTEN_UDP_DEFAULT_RCVBUF;
  int got = 0;
  socklen_t len = sizeof(got);
  char bytes[WORDS_BUF];
  if (uv_fileno((uv_handle_t *)&l->handle, &fd) != 0) {
    return;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)) != 0) {
    log_warn("udp %s: cannot set the receive buffer to %s: %s", l->name,
             words_count_of(bytes, sizeof bytes, (uint64_t)want, "byte", "bytes"), strerror(errno));
    return;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0) {
    return;
  }
  /* Linux reports twice the size asked for (bookkeeping overhead included). */
  if (opt->rcvbuf_given && got / 2 < want) {
    log_warn("--rcvbuf %d: the kernel granted %s (raise net.core.rmem_max, or run as root to "
             "force it)",
             want, words_count_of(bytes, sizeof bytes, (uint64_t)(got / 2), "byte", "bytes"));
  } else {
    log_debug("udp %s: receive buffer %s", l->name,
              words_count_of(bytes, sizeof bytes, (uint64_t)got, "byte", "bytes"));
  }
}

/* Bind and receive; see listen_udp.h. */
int listen_udp_start(listen_udp **out, const listen_env *env) {
  struct sockaddr_storage ss;
  int namelen = sizeof(ss);
  listen_udp *l = calloc(1, sizeof(*l));
  int rc;
  *out = NULL;
  if (l == NULL) {
    log_error("out of memory for the UDP listener");
    return CS_ENOMEM;
  }
  l->env = *env;
  wire_decoder_init(&l->dec, WIRE_MAX_PAYLOAD);
  rc = listen_resolve(env, SOCK_DGRAM, &ss, l->name, sizeof(l->name));
  if (rc == 0) {
    /* recvmmsg: up to LISTEN_UDP_MMSG_DATAGRAMS datagrams per system call. */
    rc = uv_udp_init_ex(env->loop, &l->handle, (unsigned)ss.ss_family | UV_UDP_RECVMMSG);
    if (rc != 0) {
      log_error("cannot listen on %s: %s", l->name, uv_strerror(rc));
    }
  }
  if (rc != 0) {
    wire_decoder_free(&l->dec);
    free(l);
    return rc;
  }
  l->handle.data = l;
  *out = l;
  rc = uv_udp_bind(&l->handle, (struct sockaddr *)&ss, 0);
  if (rc != 0) {
    listen_log_error(l->name, rc);
    return rc;
  }
  if (uv_udp_getsockname(&l->handle, (struct sockaddr *)&ss, &namelen) == 0) {
    listen_rename((struct sockaddr *)&ss, SOCK_DGRAM, l->name, sizeof(l->name));
  }
  listen_udp_set_rcvbuf(l);
  rc = uv_udp_recv_start(&l->handle, listen_udp_alloc_cb, listen_udp_recv_cb);
  if (rc != 0) {
    log_error("cannot receive on %s: %s", l->name, uv_strerror(rc));
    return rc;
  }
  l->receiving = 1;
  return 0;
}

const char *listen_udp_name(const listen_udp *l) {
  return l->name;
}

/* Read the kernel's drop count; see listen_udp.h. */
void listen_udp_update_drops(listen_udp *l) {
  uv_os_fd_t fd;
  uint64_t drops;
  if (l == NULL || l->stopping || uv_fileno((uv_handle_t *)&l->handle, &fd) != 0) {
    return;
  }
  if (stats_udp_kernel_drops(fd, &drops) == 0) {
    l->env.in->proto[STREAM_UDP].kernel_drops = drops;
    l->env.in->proto[STREAM_UDP].kernel_drops_known = 1;
  }
}

/* Stop and close; see listen_udp.h. */
void listen_udp_stop(listen_udp *l) {
  if (l == NULL || l->stopping) {
    return;
  }
  listen_udp_update_drops(l); /* the last reading, before the socket goes */
  l->stopping = 1;
  if (l->receiving) {
    uv_udp_recv_stop(&l->handle);
  }
  uv_close((uv_handle_t *)&l->handle, listen_udp_close_cb);
}
