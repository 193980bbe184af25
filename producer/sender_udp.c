/* sender_udp.c -- connected UDP socket, datagram queue with due times, sendmmsg batches,
 * ICMP port-unreachable accounting. */
#include "sender_udp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "summary.h"

/* One queued datagram: its bytes live in udp_sender.bytes at off. */
struct udp_entry {
  uint64_t due_us;
  size_t off;
  size_t len;
  int packable; /* a HELLO and RECORDs: more RECORDs due at the same time may join it */
};

#define UDP_ICMP_LOG_INTERVAL_US 5000000u /* one ICMP message per 5 s after the first */
#define UDP_RETRY_SLEEP_NS 1000000L       /* 1 ms before retrying ENOBUFS/EAGAIN */

static struct udp_entry *udp_entries(const udp_sender *u) {
  return (struct udp_entry *)(void *)u->entries.data;
}

static size_t udp_entry_count(const udp_sender *u) {
  return u->entries.len / sizeof(struct udp_entry);
}

/* Create and connect the socket. */
int udp_sender_open(udp_sender *u, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    const volatile sig_atomic_t *stop, char *err, size_t errlen) {
  int rc = 0;
  memset(u, 0, sizeof *u);
  cs_buf_init(&u->bytes);
  cs_buf_init(&u->entries);
  u->stop = stop;
  snprintf(u->peer, sizeof u->peer, "%s", peer);
  u->fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (u->fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot create a UDP socket: %s", strerror(errno));
    goto fail;
  }
  if (connect(u->fd, addr, addrlen) != 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot set %s/udp as the destination: %s", peer, strerror(errno));
    goto fail;
  }
  return 0;
fail:
  if (u->fd >= 0) {
    close(u->fd);
    u->fd = -1;
  }
  return rc;
}

/* Append one datagram to the queue. */
int udp_sender_queue(udp_sender *u, const void *data, size_t len, uint64_t due_us) {
  struct udp_entry e = {.due_us = due_us, .off = u->bytes.len, .len = len};
  if (cs_buf_reserve(&u->entries, sizeof e) != 0) {
    return CS_ENOMEM;
  }
  if (cs_buf_append(&u->bytes, data, len) != 0) {
    return CS_ENOMEM;
  }
  /* Cannot fail: the room was reserved above. */
  (void)cs_buf_append(&u->entries, &e, sizeof e);
  return 0;
}

/* Join the last queued datagram; see sender_udp.h. */
int udp_sender_extend(udp_sender *u, const void *data, size_t len, uint64_t due_us) {
  size_t n = udp_entry_count(u);
  struct udp_entry *last;
  if (n <= u->head) {
    return 0; /* nothing waits: the last one is on its way */
  }
  last = &udp_entries(u)[n - 1];
  if (!last->packable || last->due_us != due_us || last->len > UDP_PACK_MAX_BYTES ||
      len > UDP_PACK_MAX_BYTES - last->len) {
    return 0;
  }
  /* The last datagram's bytes end the byte queue, so the record lands right behind them. */
  if (cs_buf_append(&u->bytes, data, len) != 0) {
    return CS_ENOMEM;
  }
  last->len += len;
  return 1;
}

void udp_sender_mark_packable(udp_sender *u) {
  size_t n = udp_entry_count(u);
  if (n > u->head) {
    udp_entries(u)[n - 1].packable = 1;
  }
}

size_t udp_sender_queued(const udp_sender *u) {
  return udp_entry_count(u) - u->head;
}

size_t udp_sender_queued_bytes(const udp_sender *u) {
  return u->bytes.len - u->head_off;
}

uint64_t udp_sender_next_due(const udp_sender *u) {
  if (u->head >= udp_entry_count(u)) {
    return UINT64_MAX;
  }
  return udp_entries(u)[u->head].due_us;
}

size_t udp_sender_due_count(const udp_sender *u, uint64_t now_us, size_t limit) {
  const struct udp_entry *e = udp_entries(u);
  size_t n = udp_entry_count(u);
  size_t i, due = 0;
  for (i = u->head; i < n && due < limit && e[i].due_us <= now_us; i++) {
    due++;
  }
  return due;
}

/* Drop sent entries from the front: reset when empty (the usual case), otherwise compact once
 * the sent part is large, so a long delay queue does not grow without end. */
static void udp_compact(udp_sender *u) {
  size_t n = udp_entry_count(u);
  size_t i;
  struct udp_entry *e;
  if (u->head == n) {
    cs_buf_reset(&u->bytes);
    cs_buf_reset(&u->entries);
    u->head = 0;
    u->head_off = 0;
    return;
  }
  if (u->head_off < (1u << 20) || u->head_off < u->bytes.len / 2) {
    return;
  }
  cs_buf_consume(&u->bytes, u->head_off);
  cs_buf_consume(&u->entries, u->head * sizeof(struct udp_entry));
  e = udp_entries(u);
  for (i = 0; i < udp_entry_count(u); i++) {
    e[i].off -= u->head_off;
  }
  u->head = 0;
  u->head_off = 0;
}

/* Count an ICMP port-unreachable and say so: once, then at most every few seconds. */
static void udp_note_refused(udp_sender *u) {
  u->icmp_refused++;
  if (log_limiter_allow(&u->icmp_limit, clock_mono_us(), UDP_ICMP_LOG_INTERVAL_US)) {
    unsigned long long more = u->icmp_limit.suppressed;
    u->icmp_limit.suppressed = 0;
    if (more > 0) {
      log_warn("ICMP port unreachable from %s/udp again (%llu more times, %llu in all): still "
               "nothing listening; sending goes on",
               u->peer, more, (unsigned long long)u->icmp_refused);
    } else {
      log_warn("ICMP port unreachable from %s/udp: nothing is listening there; UDP cannot know "
               "whether anyone receives, so sending goes on",
               u->peer);
    }
  }
}

/* Send what is due; see sender_udp.h. */
int udp_sender_flush_due(udp_sender *u, uint64_t now_us, char *err, size_t errlen) {
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  int rc = 0;

  for (;;) {
    const struct udp_entry *e = udp_entries(u);
    size_t n = udp_sender_due_count(u, now_us, UDP_BATCH);
    size_t i;
    int sent;
    if (n == 0) {
      break;
    }
    memset(msgs, 0, sizeof(msgs[0]) * n);
    for (i = 0; i < n; i++) {
      iov[i].iov_base = u->bytes.data + e[u->head + i].off;
      iov[i].iov_len = e[u->head + i].len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    sent = sendmmsg(u->fd, msgs, (unsigned)n, 0);
    if (sent < 0) {
      int e_no = errno;
      if (e_no == EINTR) {
        if (*u->stop) {
          rc = 1;
          break;
        }
        continue;
      }
      if (e_no == ECONNREFUSED) {
        /* The kernel reports an ICMP error for an earlier datagram on this send, which did
         * not go out: count it and send again. */
        udp_note_refused(u);
        continue;
      }
      if (e_no == ENOBUFS || e_no == EAGAIN || e_no == ENOMEM) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = UDP_RETRY_SLEEP_NS};
        nanosleep(&ts, NULL);
        /* A full device queue can last: a stop signal must still end the retries. */
        if (*u->stop) {
          rc = 1;
          break;
        }
        continue;
      }
      snprintf(err, errlen, "send to %s/udp failed: %s", u->peer, strerror(e_no));
      rc = -e_no;
      break;
    }
    for (i = 0; i < (size_t)sent; i++) {
      u->bytes_sent += e[u->head + i].len;
    }
    u->datagrams_sent += (uint64_t)sent;
    u->head += (size_t)sent;
    u->head_off = u->head < udp_entry_count(u) ? e[u->head].off : u->bytes.len;
  }
  udp_compact(u);
  return rc;
}

/* Sleep to the deadline; POLLERR on the connected socket means an ICMP error is pending. */
int udp_sender_wait(udp_sender *u, uint64_t deadline_us, char *err, size_t errlen) {
  for (;;) {
    struct pollfd pfd = {.fd = u->fd, .events = 0, .revents = 0};
    struct timespec ts;
    uint64_t now = clock_mono_us();
    uint64_t left;
    int pr;
    if (*u->stop) {
      return 1;
    }
    if (now >= deadline_us) {
      return 0;
    }
    left = deadline_us - now;
    ts.tv_sec = (time_t)(left / 1000000u);
    ts.tv_nsec = (long)(left % 1000000u) * 1000L;
    pr = ppoll(&pfd, 1, &ts, NULL);
    if (pr < 0) {
      if (errno == EINTR) {
        continue;
      }
      snprintf(err, errlen, "poll on %s/udp failed: %s", u->peer, strerror(errno));
      return -errno;
    }
    if (pr > 0 && (pfd.revents & POLLERR)) {
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        snprintf(err, errlen, "%s/udp: cannot read the socket error: %s", u->peer, strerror(errno));
        return -errno;
      }
      if (soerr == ECONNREFUSED) {
        udp_note_refused(u);
      } else if (soerr != 0) {
        log_warn("%s/udp: the kernel reported %s for an earlier datagram; sending goes on", u->peer,
                 strerror(soerr));
      }
    }
  }
}

void udp_sender_close(udp_sender *u) {
  /* Linux frees the descriptor even when close fails (EINTR included), so it is never retried. */
  if (u->fd >= 0 && close(u->fd) != 0) {
    log_warn("closing the socket to %s/udp: %s", u->peer, strerror(errno));
  }
  u->fd = -1;
  cs_buf_free(&u->bytes);
  cs_buf_free(&u->entries);
}

/* ---- the sender interface ---- */

#define UDP_END_GAP_US 100000u     /* the END repeats this far apart */
#define UDP_STOP_GRACE_US 2000000u /* after a stop, END is retried this long at most */

/* The UDP sender behind the interface: the socket and queue, and the HELLO in front of every
 * record. */
typedef struct udp_sender_op {
  sender base; /* first: a sender * is a udp_sender_op * */
  udp_sender u;
  cs_buf hello; /* the HELLO frame put in front of every record; owned */
  cs_buf dgram; /* scratch for one datagram; owned */
} udp_sender_op;

static udp_sender_op *udp_of(sender *s) {
  return (udp_sender_op *)(void *)s;
}

static const udp_sender_op *udp_of_const(const sender *s) {
  return (const udp_sender_op *)(const void *)s;
}

static int udp_op_open(sender *s, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                       char *err, size_t errlen) {
  snprintf(s->peer, sizeof s->peer, "%s", peer);
  return udp_sender_open(&udp_of(s)->u, addr, addrlen, peer, s->stop, err, errlen);
}

/* Every datagram carries the HELLO, so each one can open the stream on its own. */
static int udp_op_hello(sender *s, const wire_msg *hello, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  return wire_encode(hello, &udp_of(s)->hello);
}

/* HELLO and RECORD must fit one datagram. */
static int udp_op_fits(const sender *s, const wire_msg *m, size_t size, char *why, size_t whylen) {
  size_t total = udp_of_const(s)->hello.len + size;
  char a[32], b[32];
  (void)m;
  if (total <= WIRE_UDP_MAX_DATAGRAM) {
    return 1;
  }
  snprintf(why, whylen,
           "record is %s bytes, too large for one UDP datagram (max %s); skipped (use --tcp)",
           summary_thousands(total, a, sizeof a),
           summary_thousands(WIRE_UDP_MAX_DATAGRAM, b, sizeof b));
  return 0;
}

static size_t udp_op_wire_size(const sender *s, const wire_msg *m) {
  return udp_of_const(s)->hello.len + wire_encoded_size(m);
}

/* The RECORD into the queue: behind the records of the last datagram when it waits, is due at
 * the same time and has room (UDP_PACK_MAX_BYTES), else as a new datagram of HELLO + RECORD.
 * Either way each datagram opens its stream on its own. */
static int udp_op_add(sender *s, const wire_msg *m, uint64_t due_us, char *err, size_t errlen) {
  udp_sender_op *op = udp_of(s);
  int rc;
  cs_buf_reset(&op->dgram);
  rc = wire_encode(m, &op->dgram);
  if (rc == 0) {
    rc = udp_sender_extend(&op->u, op->dgram.data, op->dgram.len, due_us);
  }
  if (rc == 0) {
    /* A new datagram: the HELLO, then the record, which the encode above put in dgram. */
    rc = cs_buf_reserve(&op->dgram, op->hello.len) != 0 ? CS_ENOMEM : 0;
    if (rc == 0) {
      size_t rec = op->dgram.len;
      memmove(op->dgram.data + op->hello.len, op->dgram.data, rec);
      memcpy(op->dgram.data, op->hello.data, op->hello.len);
      op->dgram.len = op->hello.len + rec;
      rc = udp_sender_queue(&op->u, op->dgram.data, op->dgram.len, due_us);
    }
    if (rc == 0) {
      udp_sender_mark_packable(&op->u);
    }
  } else if (rc == 1) {
    rc = 0;
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing record #%llu for %s/udp",
             (unsigned long long)m->seq, s->peer);
  }
  return rc;
}

/* Send in batches: when a batch is full, or when nothing more is due right now. A long
 * --impair delay at a high rate: bound the queue by waiting for its head. */
static int udp_op_push(sender *s, uint64_t next_due_us, char *err, size_t errlen) {
  udp_sender *u = &udp_of(s)->u;
  /* A batch can be full only with UDP_BATCH datagrams queued, so below that an unpaced record
   * (next_due_us 0) neither counts the due ones nor reads the clock. One reading serves the
   * test and the flush. */
  int batch = udp_sender_queued(u) >= UDP_BATCH;
  uint64_t now = next_due_us != 0 || batch ? clock_mono_us() : 0;
  int rc = 0;
  if (next_due_us > now || (batch && udp_sender_due_count(u, now, UDP_BATCH) >= UDP_BATCH)) {
    rc = udp_sender_flush_due(u, now, err, errlen);
    s->clock_stale = 1;
  }
  while (rc == 0 && udp_sender_queued_bytes(u) > UDP_QUEUE_MAX_BYTES) {
    rc = sender_wait_until(s, udp_sender_next_due(u), err, errlen);
    if (rc == 0) {
      rc = udp_sender_flush_due(u, clock_mono_us(), err, errlen);
    }
    s->clock_stale = 1;
  }
  return rc;
}

static int udp_op_flush_due(sender *s, uint64_t now_us, char *err, size_t errlen) {
  return udp_sender_flush_due(&udp_of(s)->u, now_us, err, errlen);
}

/* Datagrams leave by their due times (flush_due) and at finish: nothing to write now. */
static int udp_op_flush(sender *s, char *err, size_t errlen) {
  (void)s;
  (void)err;
  (void)errlen;
  return 0;
}

static uint64_t udp_op_next_due(const sender *s) {
  return udp_sender_next_due(&udp_of_const(s)->u);
}

static int udp_op_wait(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  return udp_sender_wait(&udp_of(s)->u, deadline_us, err, errlen);
}

/* Connectionless: END can always be tried. */
static int udp_op_connected(const sender *s) {
  (void)s;
  return 1;
}

/* END three times 100 ms apart from start_us, then everything still queued. */
static int udp_op_finish(sender *s, const wire_msg *end, uint64_t start_us, char *err,
                         size_t errlen) {
  udp_sender_op *op = udp_of(s);
  uint64_t start = start_us != 0 ? start_us : clock_mono_us();
  uint64_t give_up;
  int i, rc;

  cs_buf_reset(&op->dgram);
  rc = wire_encode(end, &op->dgram);
  for (i = 0; rc == 0 && i < SENDER_END_REPEATS; i++) {
    rc = udp_sender_queue(&op->u, op->dgram.data, op->dgram.len,
                          start + (uint64_t)i * UDP_END_GAP_US);
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing END for %s/udp", s->peer);
    return rc;
  }
  /* Drain even after a stop signal: the END is what lets the consumer count trailing loss. But
   * when the kernel keeps refusing the datagrams (ENOBUFS), a stopped run gives up a little
   * after the last END was due instead of retrying for ever. */
  give_up = start + (uint64_t)(SENDER_END_REPEATS - 1) * UDP_END_GAP_US + UDP_STOP_GRACE_US;
  while (udp_sender_queued(&op->u) > 0) {
    clock_sleep_until(udp_sender_next_due(&op->u), NULL);
    rc = udp_sender_flush_due(&op->u, clock_mono_us(), err, errlen);
    if (rc < 0) {
      return rc;
    }
    if (rc == 1 && clock_mono_us() > give_up) {
      snprintf(err, errlen,
               "gave up sending to %s/udp after the stop signal: the kernel refuses the "
               "datagrams (%zu still queued, END among them)",
               s->peer, udp_sender_queued(&op->u));
      return CS_EIO;
    }
  }
  return 0;
}

static void udp_op_stats(const sender *s, sender_stats *out) {
  const udp_sender *u = &udp_of_const(s)->u;
  memset(out, 0, sizeof *out);
  out->bytes = u->bytes_sent;
  out->icmp_refused = u->icmp_refused;
  out->connection = "ok";
}

static void udp_op_close(sender *s) {
  udp_sender_op *op;
  if (s == NULL) {
    return;
  }
  op = udp_of(s);
  udp_sender_close(&op->u);
  cs_buf_free(&op->hello);
  cs_buf_free(&op->dgram);
  free(op);
}

static const sender_ops udp_sender_ops = {
    .name = "udp",
    .socktype = SOCK_DGRAM,
    .open = udp_op_open,
    .hello = udp_op_hello,
    .fits = udp_op_fits,
    .wire_size = udp_op_wire_size,
    .send = sender_send_plain,
    .add = udp_op_add,
    .push = udp_op_push,
    .flush_due = udp_op_flush_due,
    .flush = udp_op_flush,
    .next_due = udp_op_next_due,
    .wait = udp_op_wait,
    .connected = udp_op_connected,
    .finish = udp_op_finish,
    .stats = udp_op_stats,
    .close = udp_op_close,
};

/* A UDP sender without a socket yet; see sender.h. */
sender *udp_sender_new(const volatile sig_atomic_t *stop, int log_records) {
  udp_sender_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    return NULL;
  }
  sender_base_init(&op->base, &udp_sender_ops, stop, log_records);
  cs_buf_init(&op->u.bytes);
  cs_buf_init(&op->u.entries);
  op->u.fd = -1;
  op->u.stop = stop;
  cs_buf_init(&op->hello);
  cs_buf_init(&op->dgram);
  return &op->base;
}
