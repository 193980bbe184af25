/* sender_csv.c -- the plain CSV sender (--format csv): the header line and then each record as
 * RFC 4180 text over a TCP connection, or one record per UDP datagram, for any listener. Nothing
 * comes back: no acks, no accounting. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "csvout.h"
#include "error.h"
#include "log.h"
#include "sender.h"
#include "sender_udp.h"

#define CSV_SENDER_BATCH (256u * 1024u) /* TCP: bytes gathered before a write at the latest */

typedef struct csv_sender {
  sender base; /* first: the common part */
  int udp;
  const char *name; /* --stream: the "#stream NAME" line's name, or NULL; borrowed */
  /* TCP */
  int fd;
  cs_buf out;         /* CSV text not yet written */
  uint64_t gathered;  /* records whose text is in out */
  uint64_t written;   /* records whose text the kernel took in full */
  uint64_t bytes;     /* bytes handed to the kernel */
  const char *status; /* "ok", "refused", "failed", "reset" */
  int broken;
  /* UDP */
  udp_sender u;
  int u_open;
  cs_buf scratch; /* one record's text */
} csv_sender;

static const sender_ops csv_tcp_ops;
static const sender_ops csv_udp_ops;

/* Write all of out to the connection (a stop signal ends the wait for room). Returns 0, 1 when
 * stopped, or a negative code with err set. */
static int csv_tcp_write(csv_sender *c, char *err, size_t errlen) {
  size_t off = 0;
  while (off < c->out.len) {
    ssize_t n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      if (*c->base.stop) {
        cs_buf_consume(&c->out, off);
        return 1;
      }
      continue;
    }
    if (n < 0) {
      int e = errno;
      c->broken = 1;
      c->status = e == ECONNRESET || e == EPIPE ? "reset" : "failed";
      snprintf(err, errlen, "cannot write to %s/tcp: %s (the listener closed the connection?)",
               c->base.peer, strerror(e));
      cs_buf_consume(&c->out, off);
      return -e;
    }
    off += (size_t)n;
    c->bytes += (uint64_t)n;
  }
  cs_buf_reset(&c->out);
  c->written += c->gathered;
  c->gathered = 0;
  return 0;
}

static int csv_open(sender *s, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  snprintf(s->peer, sizeof s->peer, "%s", peer);
  if (c->udp) {
    int rc = udp_sender_open(&c->u, addr, addrlen, peer, s->stop, err, errlen);
    c->u_open = rc == 0;
    return rc;
  }
  if (c->fd >= 0) {
    close(c->fd);
  }
  c->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    snprintf(err, errlen, "cannot create a TCP socket: %s", strerror(errno));
    return -errno;
  }
  while (connect(c->fd, addr, addrlen) != 0) {
    int e = errno;
    if (e == EINTR && !*s->stop) {
      continue;
    }
    close(c->fd);
    c->fd = -1;
    c->status = e == ECONNREFUSED ? "refused" : "failed";
    snprintf(err, errlen, "cannot connect to %s/tcp: %s%s", peer, strerror(e),
             e == ECONNREFUSED ? " (is the listener running? nc -l, socat, consumer "
                                 "--plain-port ...)"
                               : "");
    return -e;
  }
  c->status = "ok";
  return 0;
}

/* The "#stream NAME" line when --stream gave a name (the line a plain listener such as consumer
 * --plain-port reads the stream's name from), then the header line. TCP only: over UDP a
 * datagram may be lost, and every datagram is data. */
static int csv_hello(sender *s, const wire_msg *hello, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  int rc = 0;
  if (c->udp) {
    return 0;
  }
  if (c->name != NULL) {
    rc = cs_buf_append(&c->out, "#stream ", 8);
    if (rc == 0) {
      rc = cs_buf_append(&c->out, c->name, strlen(c->name));
    }
    if (rc == 0) {
      rc = cs_buf_append(&c->out, "\r\n", 2);
    }
  }
  if (rc == 0 && hello->nfields > 0) {
    rc = csvout_record(&c->out, hello->fields, hello->nfields);
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory for the stream's first lines");
  }
  return rc;
}

/* One record's CSV text into c->scratch. */
static int csv_text(csv_sender *c, const wire_msg *m) {
  cs_buf_reset(&c->scratch);
  return csvout_record(&c->scratch, m->fields, m->nfields);
}

static int csv_fits(const sender *s, const wire_msg *m, size_t size, char *why, size_t whylen) {
  csv_sender *c = (csv_sender *)s;
  (void)size;
  if (!c->udp) {
    return 1;
  }
  if (csv_text(c, m) != 0 || c->scratch.len > WIRE_UDP_MAX_DATAGRAM) {
    snprintf(why, whylen,
             "record is %zu bytes of CSV, too large for one UDP datagram (max %d); skipped "
             "(use --tcp)",
             c->scratch.len, WIRE_UDP_MAX_DATAGRAM);
    return 0;
  }
  return 1;
}

static size_t csv_wire_size(const sender *s, const wire_msg *m) {
  csv_sender *c = (csv_sender *)s;
  return csv_text(c, m) == 0 ? c->scratch.len : 0;
}

static int csv_add(sender *s, const wire_msg *m, uint64_t due_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  int rc;
  if (c->udp) {
    rc = csv_text(c, m);
    if (rc == 0) {
      rc = udp_sender_queue(&c->u, c->scratch.data, c->scratch.len, due_us);
    }
  } else {
    rc = csvout_record(&c->out, m->fields, m->nfields);
    c->gathered += rc == 0;
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory for a record's CSV text");
  }
  return rc;
}

/* Write what is gathered unless the next record is due already (it joins the batch). */
static int csv_push(sender *s, uint64_t next_due_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  uint64_t now = clock_mono_us();
  if (c->udp) {
    if (next_due_us > now || udp_sender_queued(&c->u) >= UDP_BATCH ||
        udp_sender_queued_bytes(&c->u) >= UDP_QUEUE_MAX_BYTES) {
      s->clock_stale = 1;
      return udp_sender_flush_due(&c->u, now, err, errlen);
    }
    return 0;
  }
  if (next_due_us > now || c->out.len >= CSV_SENDER_BATCH) {
    s->clock_stale = 1;
    return csv_tcp_write(c, err, errlen);
  }
  return 0;
}

static int csv_send(sender *s, const wire_msg *m, uint64_t next_due_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  size_t before = c->udp ? udp_sender_queued_bytes(&c->u) : c->out.len;
  int rc = csv_add(s, m, 0, err, errlen);
  if (rc != 0) {
    return rc;
  }
  sender_log_record(s, m, (c->udp ? udp_sender_queued_bytes(&c->u) : c->out.len) - before, "");
  return csv_push(s, next_due_us, err, errlen);
}

static int csv_flush_due(sender *s, uint64_t now_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  if (c->udp) {
    return udp_sender_flush_due(&c->u, now_us, err, errlen);
  }
  return c->out.len > 0 ? csv_tcp_write(c, err, errlen) : 0;
}

static int csv_flush(sender *s, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  if (c->udp) {
    return 0; /* datagrams keep their due times; finish sends them */
  }
  return c->out.len > 0 ? csv_tcp_write(c, err, errlen) : 0;
}

static uint64_t csv_next_due(const sender *s) {
  const csv_sender *c = (const csv_sender *)s;
  return c->udp ? udp_sender_next_due(&c->u) : UINT64_MAX;
}

static int csv_wait(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  if (c->udp) {
    return udp_sender_wait(&c->u, deadline_us, err, errlen);
  }
  clock_sleep_until(deadline_us, (volatile int *)s->stop);
  return *s->stop ? 1 : 0;
}

static int csv_connected(const sender *s) {
  const csv_sender *c = (const csv_sender *)s;
  return c->udp ? c->u_open : c->fd >= 0 && !c->broken;
}

/* The end: what is gathered or queued goes out; TCP then half-closes (the listener sees the
 * end of its input). There is no END message in plain CSV. */
static int csv_finish(sender *s, const wire_msg *end, uint64_t start_us, char *err, size_t errlen) {
  csv_sender *c = (csv_sender *)s;
  int rc;
  (void)end, (void)start_us;
  if (c->udp) {
    while (udp_sender_queued(&c->u) > 0) {
      rc = udp_sender_flush_due(&c->u, UINT64_MAX, err, errlen);
      if (rc != 0) {
        return rc < 0 ? rc : 0;
      }
    }
    return 0;
  }
  rc = c->out.len > 0 ? csv_tcp_write(c, err, errlen) : 0;
  if (rc == 0 && shutdown(c->fd, SHUT_WR) != 0) {
    snprintf(err, errlen, "cannot end the connection to %s/tcp: %s", s->peer, strerror(errno));
    return -errno;
  }
  return rc < 0 ? rc : 0;
}

static void csv_stats(const sender *s, sender_stats *out) {
  const csv_sender *c = (const csv_sender *)s;
  memset(out, 0, sizeof *out);
  if (c->udp) {
    out->bytes = c->u.bytes_sent;
    out->icmp_refused = c->u.icmp_refused;
    out->connection = "none";
  } else {
    out->bytes = c->bytes;
    out->written = c->written;
    out->connection = c->status;
  }
  out->retry_wait_us = s->retry_wait_us;
}

static void csv_close(sender *s) {
  csv_sender *c = (csv_sender *)s;
  if (c == NULL) {
    return;
  }
  if (c->fd >= 0) {
    close(c->fd);
  }
  if (c->u_open) {
    udp_sender_close(&c->u);
  }
  cs_buf_free(&c->out);
  cs_buf_free(&c->scratch);
  free(c);
}

static const sender_ops csv_tcp_ops = {
    .name = "tcp (plain CSV)",
    .socktype = SOCK_STREAM,
    .every_address = 1,
    .open = csv_open,
    .hello = csv_hello,
    .fits = csv_fits,
    .wire_size = csv_wire_size,
    .send = csv_send,
    .add = csv_add,
    .push = csv_push,
    .flush_due = csv_flush_due,
    .flush = csv_flush,
    .next_due = csv_next_due,
    .wait = csv_wait,
    .connected = csv_connected,
    .finish = csv_finish,
    .resume_point = NULL,
    .stats = csv_stats,
    .close = csv_close,
};

static const sender_ops csv_udp_ops = {
    .name = "udp (plain CSV)",
    .socktype = SOCK_DGRAM,
    .every_address = 0,
    .open = csv_open,
    .hello = csv_hello,
    .fits = csv_fits,
    .wire_size = csv_wire_size,
    .send = csv_send,
    .add = csv_add,
    .push = csv_push,
    .flush_due = csv_flush_due,
    .flush = csv_flush,
    .next_due = csv_next_due,
    .wait = csv_wait,
    .connected = csv_connected,
    .finish = csv_finish,
    .resume_point = NULL,
    .stats = csv_stats,
    .close = csv_close,
};

/* See sender.h. */
sender *csv_sender_new(const volatile sig_atomic_t *stop, int log_records, int udp, double retry_s,
                       const char *name) {
  csv_sender *c = calloc(1, sizeof *c);
  if (c == NULL) {
    return NULL;
  }
  sender_base_init(&c->base, udp ? &csv_udp_ops : &csv_tcp_ops, stop, log_records);
  c->base.retry_s = udp ? 0 : retry_s;
  c->udp = udp;
  c->name = name;
  c->fd = -1;
  c->u.fd = -1;
  c->status = "ok";
  cs_buf_init(&c->out);
  cs_buf_init(&c->scratch);
  return &c->base;
}
