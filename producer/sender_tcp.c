/* sender_tcp.c -- TCP connection, coalesced writes, backpressure accounting, peer watch. */
#include "sender_tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "words.h"

/* The window's byte cap (PRODUCER_WINDOW_BYTES: the producer keeps at most this of frames not
 * acknowledged). */
#define TCP_WINDOW_BYTES (64u << 20)

/* Room left in the window's buffer below which a record first tries to compact it. */
#define TCP_COMPACT_ROOM (64u * 1024u)

/* Grace period for pending writes after SIGINT/SIGTERM: END is tried, but never forever. */
#define TCP_STOP_GRACE_US 2000000u

/* Records wait for acknowledgements that do not come: say so this long after the last one (or
 * the connection), and again every as long while none comes. */
#define TCP_ACK_WAIT_LOG_US 5000000u

/* ppoll one descriptor until the monotonic deadline (0: no deadline). Returns ppoll's result:
 * 1 with revents set, 0 at the deadline, -1 with errno (EINTR included). */
static int tcp_poll_until(int fd, short events, uint64_t deadline_us, short *revents) {
  struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
  struct timespec ts, *tsp = NULL;
  int n;
  if (deadline_us != 0) {
    uint64_t now = clock_mono_us();
    uint64_t left = deadline_us > now ? deadline_us - now : 0;
    ts.tv_sec = (time_t)(left / 1000000u);
    ts.tv_nsec = (long)(left % 1000000u) * 1000L;
    tsp = &ts;
  }
  n = ppoll(&pfd, 1, tsp, NULL);
  *revents = pfd.revents;
  return n;
}

/* Word a failed connect for a person: refused gets the hint that the consumer is not running,
 * or runs with --udp only, or elsewhere. */
static void tcp_connect_message(const char *peer, int e, char *err, size_t errlen) {
  if (e == ECONNREFUSED) {
    snprintf(err, errlen,
             "cannot connect to %s/tcp: connection refused (is the consumer running? is it "
             "listening on TCP, at this host and --port?)",
             peer);
  } else {
    snprintf(err, errlen, "cannot connect to %s/tcp: %s", peer, strerror(e));
  }
}

/* Blocking connect (EINTR finishes the connect with poll), then non-blocking mode for writes. */
int tcp_sender_open(tcp_sender *t, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    const volatile sig_atomic_t *stop, char *err, size_t errlen) {
  int one = 1;
  int flags;
  int rc = 0;

  if (t->fd >= 0) {
    close(t->fd); /* a reconnect: the old connection is gone */
  }
  t->fd = -1;
  t->stop = stop;
  t->status = TCP_OK;
  /* A reconnect passes t->peer itself: copying a string onto itself is undefined (snprintf
   * may clear the destination first), and it is already there. */
  if (peer != t->peer) {
    snprintf(t->peer, sizeof t->peer, "%s", peer);
  }
  if (addrlen <= sizeof t->addr && addr != (const struct sockaddr *)&t->addr) {
    memcpy(&t->addr, addr, addrlen); /* a reconnect passes t->addr itself */
    t->addrlen = addrlen;
  }
  t->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (t->fd < 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot create a TCP socket: %s", strerror(errno));
    goto fail;
  }
  if (connect(t->fd, addr, addrlen) != 0) {
    int e = errno;
    if (e == EINTR || e == EINPROGRESS) {
      /* The connect goes on in the background; wait for it and read its outcome. */
      short rev = 0;
      socklen_t elen = sizeof e;
      /* The stop flag is looked at before each poll: the signal that interrupted connect()
       * has already come, and a poll without deadline would otherwise wait out the kernel's
       * SYN retries (about two minutes) for a host that does not answer. */
      while (!*stop && tcp_poll_until(t->fd, POLLOUT, 0, &rev) < 0 && errno == EINTR) {
      }
      if (*stop && !(rev & POLLOUT)) {
        rc = -EINTR;
        t->status = TCP_FAILED;
        snprintf(err, errlen, "cannot connect to %s/tcp: stopped by a signal while connecting",
                 peer);
        goto fail;
      }
      if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0) {
        e = errno;
      }
    }
    if (e != 0) {
      rc = -e;
      t->status = e == ECONNREFUSED ? TCP_REFUSED : TCP_FAILED;
      tcp_connect_message(peer, e, err, errlen);
      goto fail;
    }
  }
  /* Records are coalesced by us, so Nagle would only add delay to paced sends. */
  if (setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    rc = -errno;
    snprintf(err, errlen, "%s/tcp: cannot set TCP_NODELAY: %s", peer, strerror(errno));
    goto fail;
  }
  flags = fcntl(t->fd, F_GETFL);
  if (flags < 0 || fcntl(t->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    rc = -errno;
    snprintf(err, errlen, "%s/tcp: cannot make the socket non-blocking: %s", peer, strerror(errno));
    goto fail;
  }
  return 0;
fail:
  if (t->fd >= 0) {
    close(t->fd);
    t->fd = -1;
  }
  return rc;
}

static int tcp_read(tcp_sender *t, char *err, size_t errlen);

/* Records queued and not acknowledged (written or still waiting to be). */
static uint64_t tcp_unacked_count(const tcp_sender *t) {
  return t->unacked_index.len / sizeof(tcp_unacked) - t->index_head;
}

/* Say how the consumer ended the connection (how: "closed" or "reset") and what that left:
 * the records written, whether more were to come, and how many of those written it
 * acknowledged. Before END the rest of the input was not sent; after END every record was,
 * unless a write stopped part way. */
static void tcp_loss_message(const tcp_sender *t, const char *how, char *err, size_t errlen) {
  const tcp_unacked *v = (const tcp_unacked *)(const void *)t->unacked_index.data;
  size_t i = t->unacked_index.len / sizeof *v;
  uint64_t unwritten = 0, waiting;
  /* The frames never written whole are the last ones of the window: count them back. */
  while (i > t->index_head && v[i - 1].seq > t->written_seq) {
    unwritten++;
    i--;
  }
  waiting = tcp_unacked_count(t) - unwritten;
  if (t->end.len == 0) {
    snprintf(err, errlen,
             "%s/tcp: connection %s by the consumer after %llu records (the rest were not "
             "sent); %llu acknowledged, %llu not acknowledged",
             t->peer, how, (unsigned long long)t->records_written,
             (unsigned long long)(t->acked - t->skipped), (unsigned long long)waiting);
  } else if (unwritten == 0) {
    snprintf(err, errlen,
             "%s/tcp: connection %s by the consumer after all %llu records were sent; %llu "
             "acknowledged, %llu not acknowledged",
             t->peer, how, (unsigned long long)t->records_written,
             (unsigned long long)(t->acked - t->skipped), (unsigned long long)waiting);
  } else {
    snprintf(err, errlen,
             "%s/tcp: connection %s by the consumer after %llu records (%llu more were not "
             "sent); %llu acknowledged, %llu not acknowledged",
             t->peer, how, (unsigned long long)t->records_written, (unsigned long long)unwritten,
             (unsigned long long)(t->acked - t->skipped), (unsigned long long)waiting);
  }
}

/* Describe a failed write: the consumer reset (or closed) the connection part way. */
static int tcp_write_failed(tcp_sender *t, int e, char *err, size_t errlen) {
  if (e == EPIPE || e == ECONNRESET) {
    if (t->status != TCP_CLOSED) {
      t->status = TCP_RESET;
    }
    tcp_loss_message(t, t->status == TCP_CLOSED ? "closed" : "reset", err, errlen);
  } else {
    t->status = TCP_RESET;
    snprintf(err, errlen, "write to %s/tcp failed after %llu records: %s", t->peer,
             (unsigned long long)t->records_written, strerror(e));
  }
  return -e;
}

/* Bytes waiting for a write: the HELLO, the records not yet written, the END. */
static size_t tcp_unwritten(const tcp_sender *t) {
  return t->out.len + (t->unacked.len - t->sent_off) +
         (t->end_queued ? t->end.len - t->end_off : 0);
}

/* The kernel took n more bytes, in the order of tcp_unwritten: forget them from out, move
 * sent_off over the records, then END. Every RECORD frame now written whole is counted, once
 * even when a reconnect writes it again, so a failed write part way through still reports
 * exactly how many records went out. */
static void tcp_advance(tcp_sender *t, size_t n) {
  size_t k = n < t->out.len ? n : t->out.len;
  const tcp_unacked *v = (const tcp_unacked *)(const void *)t->unacked_index.data;
  size_t entries = t->unacked_index.len / sizeof *v;
  t->bytes_written += (uint64_t)n;
  cs_buf_consume(&t->out, k);
  n -= k;
  k = n < t->unacked.len - t->sent_off ? n : t->unacked.len - t->sent_off;
  t->sent_off += k;
  n -= k;
  while (t->written_head < entries && v[t->written_head].end <= t->sent_off) {
    if (v[t->written_head].seq > t->written_seq) {
      t->written_seq = v[t->written_head].seq;
      t->records_written++;
    }
    t->written_head++;
  }
  if (t->end_queued) {
    t->end_off += n;
    if (t->end_off >= t->end.len) {
      t->end_queued = 0;
    }
  }
}

/* Write out every waiting byte, one writev over the three parts; see sender_tcp.h. */
int tcp_sender_flush(tcp_sender *t, char *err, size_t errlen) {
  int failed = 0;  /* errno of a write or poll that failed */
  int gave_up = 0; /* the consumer stopped reading after our stop signal */

  while (tcp_unwritten(t) > 0) {
    struct iovec iov[3];
    int parts = 0;
    ssize_t n;
    if (t->out.len > 0) {
      iov[parts].iov_base = t->out.data;
      iov[parts++].iov_len = t->out.len;
    }
    if (t->sent_off < t->unacked.len) {
      iov[parts].iov_base = t->unacked.data + t->sent_off;
      iov[parts++].iov_len = t->unacked.len - t->sent_off;
    }
    if (t->end_queued && t->end_off < t->end.len) {
      iov[parts].iov_base = t->end.data + t->end_off;
      iov[parts++].iov_len = t->end.len - t->end_off;
    }
    n = writev(t->fd, iov, parts);
    if (n > 0) {
      tcp_advance(t, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* The consumer is not keeping up: wait for room and count the time as backpressure. */
      uint64_t t0 = clock_mono_us();
      short rev = 0;
      int pr;
      if (*t->stop && t->give_up_us == 0) {
        t->give_up_us = t0 + TCP_STOP_GRACE_US;
      }
      pr = tcp_poll_until(t->fd, POLLOUT | POLLIN, t->give_up_us, &rev);
      t->blocked_us += clock_mono_us() - t0;
      if (pr < 0 && errno != EINTR) {
        failed = errno;
        break;
      }
      if (pr == 0) {
        gave_up = 1;
        break;
      }
      if (pr > 0 && (rev & POLLIN)) {
        /* Acks come back while we wait to write: read them, so the consumer's one ACK in
         * flight can complete and the window moves. */
        int rc = tcp_read(t, err, errlen);
        if (rc != 0) {
          return rc;
        }
      }
      continue;
    }
    failed = n < 0 ? errno : EPIPE;
    break;
  }
  if (gave_up) {
    snprintf(err, errlen,
             "gave up writing to %s/tcp after the stop signal: the consumer is not reading "
             "(%llu records were written)",
             t->peer, (unsigned long long)t->records_written);
    return -ETIMEDOUT;
  }
  return failed != 0 ? tcp_write_failed(t, failed, err, errlen) : 0;
}

/* cs_buf_append for the few bytes added per record (a frame, its end, its index entry): a copy
 * of a size the compiler knows when there is room, the call that grows the buffer otherwise.
 * Returns 0 or CS_ENOMEM (the buffer then unchanged). */
static inline int tcp_buf_put(cs_buf *b, const void *data, size_t len) {
  if (b->cap - b->len < len) {
    return cs_buf_append(b, data, len);
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

/* The window's buffer is nearly full: drop the bytes and entries that are both acknowledged
 * and written, moving the rest to the front, when they are at least half the buffer; else it
 * grows. Moving only then, each byte is moved at most about once, and not at all while the
 * acknowledged part is small beside the buffer. (A resumed stream may be acknowledged past what
 * this connection wrote: those frames still go out whole, as the consumer expects frames.) */
static void tcp_compact(tcp_sender *t) {
  size_t drop = t->unacked_off < t->sent_off ? t->unacked_off : t->sent_off;
  size_t entries = t->index_head < t->written_head ? t->index_head : t->written_head;
  size_t i, n = t->unacked_index.len / sizeof(tcp_unacked);
  tcp_unacked *v = (tcp_unacked *)(void *)t->unacked_index.data;
  if (drop == 0 || drop < t->unacked.cap / 2) {
    return;
  }
  for (i = entries; i < n; i++) {
    v[i].end -= drop;
  }
  cs_buf_consume(&t->unacked, drop);
  cs_buf_consume(&t->unacked_index, entries * sizeof(tcp_unacked));
  t->unacked_off -= drop;
  t->sent_off -= drop;
  t->index_head -= entries;
  t->written_head -= entries;
}

/* Encode a RECORD into the window and index it. Returns 0, or a code with err set (nothing
 * queued). */
static inline int tcp_queue_record(tcp_sender *t, const wire_msg *m, char *err, size_t errlen) {
  size_t before;
  tcp_unacked u;
  int rc;
  if (t->unacked.cap - t->unacked.len < TCP_COMPACT_ROOM) {
    tcp_compact(t);
  }
  before = t->unacked.len;
  rc = wire_encode(m, &t->unacked);
  if (rc == 0) {
    u.seq = m->seq;
    u.end = t->unacked.len;
    rc = tcp_buf_put(&t->unacked_index, &u, sizeof u);
    if (rc != 0) {
      t->unacked.len = before; /* what is buffered and what is indexed agree */
    }
  }
  if (rc != 0) {
    if (rc == CS_ENOMEM) {
      snprintf(err, errlen, "out of memory encoding a frame for %s/tcp", t->peer);
    } else {
      snprintf(err, errlen, "%s", cs_strerror(rc));
    }
    return rc;
  }
  t->last_seq = m->seq;
  return 0;
}

/* Queue one frame; write when enough is gathered. */
int tcp_sender_add(tcp_sender *t, const wire_msg *m, char *err, size_t errlen) {
  int rc;
  if (m->type == WIRE_RECORD) {
    rc = tcp_queue_record(t, m, err, errlen);
    if (rc != 0) {
      return rc;
    }
  } else {
    /* HELLO and END open and close every connection after a reconnect too. */
    cs_buf *keep = m->type == WIRE_HELLO ? &t->hello : &t->end;
    cs_buf_reset(keep);
    rc = wire_encode(m, keep);
    if (rc == 0 && m->type == WIRE_HELLO) {
      rc = cs_buf_append(&t->out, t->hello.data, t->hello.len);
    }
    if (rc == CS_ENOMEM) {
      snprintf(err, errlen, "out of memory encoding a frame for %s/tcp", t->peer);
      return rc;
    }
    if (rc != 0) {
      snprintf(err, errlen, "%s", cs_strerror(rc));
      return rc;
    }
    if (m->type != WIRE_HELLO) {
      t->end_queued = 1;
      t->end_off = 0;
    }
  }
  if (tcp_unwritten(t) >= TCP_COALESCE_BYTES) {
    return tcp_sender_flush(t, err, errlen);
  }
  return 0;
}

/* The first unacknowledged frame's entry, or NULL. */
static tcp_unacked *tcp_unacked_first(const tcp_sender *t) {
  size_t n = t->unacked_index.len / sizeof(tcp_unacked);
  return t->index_head < n ? (tcp_unacked *)(void *)t->unacked_index.data + t->index_head : NULL;
}

/* The consumer says every record up to seq is durable: forget their frames (their bytes go at
 * the next tcp_compact). */
static void tcp_on_ack(tcp_sender *t, uint64_t seq) {
  tcp_unacked *u;
  while ((u = tcp_unacked_first(t)) != NULL && u->seq <= seq) {
    t->unacked_off = u->end;
    t->index_head++;
    t->acked++;
  }
  t->acked_seq = seq;
  t->progress_us = clock_mono_us();
}

/* What tcp_read's decoder callback reports back. */
typedef struct tcp_read_state {
  tcp_sender *t;
  char *err;
  size_t errlen;
} tcp_read_state;

/* One frame from the consumer: an ACK (cumulative) or a REFUSE. */
static int tcp_frame_cb(const wire_msg *m, void *arg) {
  tcp_read_state *r = arg;
  tcp_sender *t = r->t;
  if (m->type == WIRE_ACK) {
    if (t->resuming || (t->resumed && m->seq > t->last_seq)) {
      /* The answer to a resuming producer's HELLO: the stream goes on after it. A later ACK
       * may go further still: records of the producer that ran before, which the consumer
       * had received and stored only since. Those are not sent again (tcp_op_add). */
      t->resuming = 0;
      if (m->seq > t->last_seq) {
        t->last_seq = m->seq;
      }
      if (m->seq > t->acked_seq) {
        tcp_on_ack(t, m->seq);
      }
      return 0;
    }
    if (m->seq > t->last_seq) {
      snprintf(r->err, r->errlen,
               "%s/tcp: the consumer acknowledged #%llu, but only #%llu was sent (a protocol "
               "error; closing)",
               t->peer, (unsigned long long)m->seq, (unsigned long long)t->last_seq);
      return -EPROTO;
    }
    if (m->seq > t->acked_seq) {
      tcp_on_ack(t, m->seq);
    }
    return 0;
  }
  if (m->type == WIRE_REFUSE) {
    /* The consumer's words, escaped: a hostile one cannot steer the terminal or break lines. */
    log_escape(t->refused, sizeof t->refused, m->fields[0].data, m->fields[0].len);
    snprintf(r->err, r->errlen, "the consumer at %s/tcp refused the stream: %s", t->peer,
             t->refused);
    return CS_EREFUSED;
  }
  snprintf(r->err, r->errlen, "%s/tcp: the consumer sent a %s frame (a protocol error; closing)",
           t->peer, wire_type_name(m->type));
  return -EPROTO;
}

/* Read what the consumer sent (ACK and REFUSE frames) without waiting. Returns 0; -EPIPE or
 * another negative errno when the connection was closed or reset (status set); CS_EREFUSED or
 * -EPROTO (err set). */
static int tcp_read(tcp_sender *t, char *err, size_t errlen) {
  char buf[4096];
  tcp_read_state r = {t, err, errlen};
  for (;;) {
    ssize_t n = recv(t->fd, buf, sizeof buf, 0);
    if (n > 0) {
      int rc = wire_decoder_feed(&t->dec, buf, (size_t)n, tcp_frame_cb, &r);
      if (rc != 0) {
        if (rc != CS_EREFUSED && rc != -EPROTO) {
          snprintf(err, errlen, "%s/tcp: the consumer sent bytes that are not frames (%s)", t->peer,
                   cs_strerror(rc));
          rc = -EPROTO;
        }
        return rc;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 0;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {
      t->status = TCP_CLOSED;
      tcp_loss_message(t, "closed", err, errlen);
      return -EPIPE;
    }
    return tcp_write_failed(t, errno, err, errlen);
  }
}

/* A connection loss another connection may cure (not a refusal, a protocol error or a stop). */
static int tcp_lost(int rc) {
  return rc == -EPIPE || rc == -ECONNRESET || rc == -ECONNREFUSED || rc == -ENOTCONN ||
         rc == -ECONNABORTED || rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -ETIMEDOUT;
}

/* Has the stream ended (END queued) with every record acknowledged? Then a lost connection
 * loses nothing: there is nothing to send again, and no reason to reconnect. */
static int tcp_all_done(const tcp_sender *t) {
  return t->end.len > 0 && t->acked_seq >= t->last_seq;
}

/* After a loss: reconnect (jittered back-off, --retry seconds without progress at most: from
 * the last ack or connection, so a wait for acks before the loss counts), then queue HELLO,
 * every unacknowledged frame in order and, if the stream ended, END. Returns 0 when connected
 * again, or rc with err kept (no retry, the time is up, or a stop). */
static int tcp_recover(sender *s, tcp_sender *t, int rc, char *err, size_t errlen) {
  uint64_t backoff_ms = SENDER_BACKOFF_FIRST_MS, logged = 0;
  char why[256];
  if (!tcp_lost(rc) || t->retry_s == 0 || *t->stop || t->addrlen == 0 || tcp_all_done(t)) {
    return rc;
  }
  snprintf(why, sizeof why, "%s",
           t->status == TCP_CLOSED    ? "closed by the consumer"
           : t->status == TCP_REFUSED ? "connection refused"
                                      : cs_strerror(rc));
  for (;;) {
    uint64_t before;
    char cerr[512];
    if (*t->stop) {
      return rc;
    }
    if (t->retry_s > 0 && clock_mono_us() - t->progress_us >= (uint64_t)(t->retry_s * 1e6)) {
      snprintf(err + strlen(err), errlen - strlen(err),
               "; gave up reconnecting after %.0f s without progress (--retry), %llu records "
               "not acknowledged",
               t->retry_s, (unsigned long long)tcp_unacked_count(t));
      return rc;
    }
    before = s->retry_wait_us;
    backoff_ms = sender_backoff(s, backoff_ms, why, tcp_unacked_count(t), &logged);
    t->retry_wait_us += s->retry_wait_us - before;
    if (tcp_sender_open(t, (const struct sockaddr *)&t->addr, t->addrlen, t->peer, t->stop, cerr,
                        sizeof cerr) == 0) {
      break;
    }
    snprintf(why, sizeof why, "%.200s", t->status == TCP_REFUSED ? "connection refused" : cerr);
  }
  /* The new connection starts with the stream's HELLO, then everything not acknowledged, then
   * END if the stream ended: the window is written again from its first unacknowledged frame. */
  cs_buf_reset(&t->out);
  wire_decoder_free(&t->dec);
  wire_decoder_init(&t->dec, WIRE_MAX_PAYLOAD);
  if (cs_buf_append(&t->out, t->hello.data, t->hello.len) != 0) {
    snprintf(err, errlen, "out of memory resending to %s/tcp", t->peer);
    return CS_ENOMEM;
  }
  t->sent_off = t->unacked_off;
  t->written_head = t->index_head;
  t->end_queued = t->end.len > 0;
  t->end_off = 0;
  t->resent += tcp_unacked_count(t);
  t->reconnects++;
  t->progress_us = clock_mono_us();
  log_info("reconnected to %s/tcp; resending %llu records not acknowledged", t->peer,
           (unsigned long long)tcp_unacked_count(t));
  return 0;
}

/* Sleep to the deadline while watching the connection; see sender_tcp.h. */
int tcp_sender_wait(tcp_sender *t, uint64_t deadline_us, char *err, size_t errlen) {
  for (;;) {
    short rev = 0;
    int pr;
    if (*t->stop) {
      return 1;
    }
    if (clock_mono_us() >= deadline_us) {
      return 0;
    }
    pr = tcp_poll_until(t->fd, POLLIN, deadline_us, &rev);
    if (pr < 0) {
      if (errno == EINTR) {
        continue;
      }
      snprintf(err, errlen, "poll on %s/tcp failed: %s", t->peer, strerror(errno));
      return -errno;
    }
    if (pr > 0 && (rev & (POLLIN | POLLHUP | POLLERR))) {
      int rc = tcp_read(t, err, errlen);
      if (rc != 0) {
        return rc;
      }
    }
  }
}

/* Flush, half-close, and wait for the consumer's close; see sender_tcp.h. */
int tcp_sender_finish(tcp_sender *t, uint64_t timeout_us, char *err, size_t errlen) {
  uint64_t deadline;
  int rc = tcp_sender_flush(t, err, errlen);
  if (rc != 0) {
    return rc;
  }
  if (shutdown(t->fd, SHUT_WR) != 0) {
    return tcp_write_failed(t, errno, err, errlen);
  }
  deadline = clock_mono_us() + timeout_us;
  for (;;) {
    char scratch[512];
    short rev = 0;
    ssize_t n;
    int pr = tcp_poll_until(t->fd, POLLIN, deadline, &rev);
    if (pr < 0 && errno == EINTR) {
      continue;
    }
    if (pr < 0) {
      int e = errno;
      snprintf(err, errlen, "poll on %s/tcp failed while waiting for the consumer's close: %s",
               t->peer, strerror(e));
      return -e;
    }
    if (pr == 0) {
      return 1;
    }
    n = recv(t->fd, scratch, sizeof scratch, 0);
    if (n == 0) {
      return 0;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      /* A reset after our END: the consumer went away; whether it read all cannot be known. */
      t->status = TCP_RESET;
      snprintf(err, errlen,
               "%s/tcp: connection reset by the consumer after the end of the stream: %s", t->peer,
               strerror(errno));
      return -errno;
    }
  }
}

void tcp_sender_close(tcp_sender *t) {
  /* Linux frees the descriptor even when close fails (EINTR included), so it is never retried. */
  if (t->fd >= 0 && close(t->fd) != 0) {
    log_warn("closing the connection to %s/tcp: %s", t->peer, strerror(errno));
  }
  t->fd = -1;
  cs_buf_free(&t->out);
  cs_buf_free(&t->unacked);
  cs_buf_free(&t->unacked_index);
  cs_buf_free(&t->hello);
  cs_buf_free(&t->end);
  wire_decoder_free(&t->dec);
}

/* ---- the sender interface ---- */

#define TCP_FINISH_TIMEOUT_US 2000000u /* wait this long for the consumer's close after END */

/* The TCP sender behind the interface: the connection and its coalescing buffer. */
typedef struct tcp_sender_op {
  sender base; /* first: a sender * is a tcp_sender_op * */
  tcp_sender t;
} tcp_sender_op;

static tcp_sender *tcp_of(sender *s) {
  return &((tcp_sender_op *)(void *)s)->t;
}

static const tcp_sender *tcp_of_const(const sender *s) {
  return &((const tcp_sender_op *)(const void *)s)->t;
}

static int tcp_op_open(sender *s, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                       char *err, size_t errlen) {
  int rc;
  snprintf(s->peer, sizeof s->peer, "%s", peer);
  rc = tcp_sender_open(tcp_of(s), addr, addrlen, peer, s->stop, err, errlen);
  tcp_of(s)->progress_us = clock_mono_us();
  return rc;
}

/* Write what is gathered; a lost connection is made again and everything not acknowledged
 * resent (--retry). Returns 0, 1 when stopped, or a negative code with err set. */
static int tcp_flush_retry(sender *s, char *err, size_t errlen) {
  tcp_sender *t = tcp_of(s);
  int rc = tcp_sender_flush(t, err, errlen);
  s->clock_stale = 1;
  while (rc < 0 && tcp_recover(s, t, rc, err, errlen) == 0) {
    rc = tcp_sender_flush(t, err, errlen);
  }
  return rc;
}

/* Records wait for acknowledgements and none came for TCP_ACK_WAIT_LOG_US: the consumer is up
 * but has not stored them (a sink behind or stuck). Say how many and for how long, at most once
 * every TCP_ACK_WAIT_LOG_US, so that a producer that waits is not silent. */
static void tcp_ack_wait_note(tcp_sender *t, uint64_t now) {
  uint64_t waiting = tcp_unacked_count(t);
  char n[WORDS_BUF];
  if (waiting == 0 || now - t->progress_us < TCP_ACK_WAIT_LOG_US ||
      (t->ack_logged_us != 0 && now - t->ack_logged_us < TCP_ACK_WAIT_LOG_US)) {
    return;
  }
  log_warn("%s waiting for the consumer's acknowledgement at %s/tcp, none for %.0f s (it "
           "acknowledges what its sinks have stored: is its database locked or down, its "
           "out9.txt deleted? see its log); still waiting",
           words_count_of(n, sizeof n, waiting, "record", "records"), t->peer,
           (double)(now - t->progress_us) / 1e6);
  t->ack_logged_us = now;
}

/* Wait up to the monotonic deadline (0: 1 s) for the consumer's frames and read them, a lost
 * connection made again; the time counts as waiting for acknowledgements. Returns 0, 1 when
 * stopped, or a negative code with err set. */
static int tcp_await_acks(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  tcp_sender *t = tcp_of(s);
  uint64_t t0 = clock_mono_us();
  short rev = 0;
  int rc = 0, pr;
  if (*t->stop) {
    return 1;
  }
  /* One wait for the consumer's frames, back as soon as some came (an ACK moves the window). */
  pr = tcp_poll_until(t->fd, POLLIN, deadline_us != 0 ? deadline_us : t0 + 1000000, &rev);
  s->clock_stale = 1;
  if (pr < 0 && errno != EINTR) {
    snprintf(err, errlen, "poll on %s/tcp failed: %s", t->peer, strerror(errno));
    rc = -errno;
  } else if (pr > 0 && (rev & (POLLIN | POLLHUP | POLLERR))) {
    rc = tcp_read(t, err, errlen);
  }
  t->ack_wait_us += clock_mono_us() - t0;
  tcp_ack_wait_note(t, clock_mono_us());
  if (rc < 0 && tcp_recover(s, t, rc, err, errlen) == 0) {
    rc = tcp_flush_retry(s, err, errlen);
  }
  return *t->stop && rc == 0 ? 1 : rc;
}

/* Whether the window is full: --window records, or TCP_WINDOW_BYTES, wait for their acks. */
static inline int tcp_window_full(const tcp_sender *t) {
  return tcp_unacked_count(t) >= t->window || t->unacked.len - t->unacked_off >= TCP_WINDOW_BYTES;
}

/* Back-pressure of the window: while --window records (or PRODUCER_WINDOW_BYTES) wait for
 * their acks, write and wait; nothing is dropped. Returns 0, 1 when stopped, or a code. */
static int tcp_window_wait(sender *s, char *err, size_t errlen) {
  tcp_sender *t = tcp_of(s);
  while (tcp_window_full(t)) {
    int rc = tcp_flush_retry(s, err, errlen);
    if (rc == 0) {
      rc = tcp_await_acks(s, 0, err, errlen);
    }
    if (rc != 0) {
      return rc;
    }
  }
  return 0;
}

/* HELLO is the first frame of the connection. */
static int tcp_op_hello(sender *s, const wire_msg *hello, char *err, size_t errlen) {
  return tcp_sender_add(tcp_of(s), hello, err, errlen);
}

static size_t tcp_op_wire_size(const sender *s, const wire_msg *m) {
  (void)s;
  return wire_encoded_size(m);
}

/* Into the window, which is the send buffer; written when TCP_COALESCE_BYTES have gathered (a
 * lost connection made again). The checks that rarely fire are inline, so a record costs one
 * call to the encoder here. Returns as the add operation. */
static inline int tcp_add_record(sender *s, const wire_msg *m, char *err, size_t errlen) {
  tcp_sender *t = tcp_of(s);
  int rc;
  if (t->resumed && m->seq <= t->acked_seq) {
    t->acked++; /* --resume: the consumer has it already */
    t->skipped++;
    if (m->seq > t->last_seq) {
      t->last_seq = m->seq;
    }
    return 0;
  }
  if (tcp_window_full(t) && (rc = tcp_window_wait(s, err, errlen)) != 0) {
    return rc;
  }
  rc = tcp_queue_record(t, m, err, errlen);
  if (rc == 0 && tcp_unwritten(t) >= TCP_COALESCE_BYTES) {
    rc = tcp_flush_retry(s, err, errlen);
  }
  return rc;
}

/* The bytes keep their order, so due_us has no meaning here. */
static int tcp_op_add(sender *s, const wire_msg *m, uint64_t due_us, char *err, size_t errlen) {
  int rc;
  (void)due_us;
  if (m->type == WIRE_RECORD) {
    return tcp_add_record(s, m, err, errlen);
  }
  rc = tcp_sender_add(tcp_of(s), m, err, errlen);
  if (rc < 0 && tcp_recover(s, tcp_of(s), rc, err, errlen) == 0) {
    rc = tcp_flush_retry(s, err, errlen); /* the frame is kept: it went out again */
  }
  return rc;
}

/* Written at once unless more records are due (unpaced, next_due_us is 0: always due, and no
 * clock is read for it). */
static int tcp_op_push(sender *s, uint64_t next_due_us, char *err, size_t errlen) {
  if (next_due_us != 0 && next_due_us > clock_mono_us()) {
    return tcp_flush_retry(s, err, errlen);
  }
  return 0;
}

/* sender_send_plain in one call: add the record, log it at slow pace, push. */
static int tcp_op_send(sender *s, const wire_msg *m, uint64_t next_due_us, char *err,
                       size_t errlen) {
  int rc = tcp_add_record(s, m, err, errlen);
  if (rc != 0) {
    return rc;
  }
  if (s->log_records) {
    sender_log_record(s, m, wire_encoded_size(m), "");
  }
  return next_due_us != 0 ? tcp_op_push(s, next_due_us, err, errlen) : 0;
}

static int tcp_op_flush_due(sender *s, uint64_t now_us, char *err, size_t errlen) {
  (void)now_us;
  return tcp_unwritten(tcp_of(s)) > 0 ? tcp_flush_retry(s, err, errlen) : 0;
}

static int tcp_op_flush(sender *s, char *err, size_t errlen) {
  return tcp_flush_retry(s, err, errlen);
}

/* Nothing waits for a time: the buffer goes out when the run flushes it. */
static uint64_t tcp_op_next_due(const sender *s) {
  (void)s;
  return UINT64_MAX;
}

/* The pacing wait: the socket is watched (acks read, a lost connection made again). */
static int tcp_op_wait(sender *s, uint64_t deadline_us, char *err, size_t errlen) {
  int rc;
  do {
    rc = tcp_sender_wait(tcp_of(s), deadline_us, err, errlen);
    s->clock_stale = 1;
    if (rc < 0 && tcp_recover(s, tcp_of(s), rc, err, errlen) == 0) {
      rc = tcp_flush_retry(s, err, errlen);
      if (rc == 0 && clock_mono_us() < deadline_us) {
        continue;
      }
    }
    return rc;
  } while (1);
}

static int tcp_op_connected(const sender *s) {
  return tcp_of_const(s)->status == TCP_OK;
}

/* END, then wait until the consumer acknowledged every record (reconnecting and resending as
 * needed), then half-close and wait for its close. A producer exits 0 only after this. */
static int tcp_op_finish(sender *s, const wire_msg *end, uint64_t start_us, char *err,
                         size_t errlen) {
  tcp_sender *t = tcp_of(s);
  int rc = tcp_sender_add(t, end, err, errlen);
  (void)start_us;
  if (rc < 0 && tcp_recover(s, t, rc, err, errlen) == 0) {
    rc = 0;
  }
  if (rc == 0) {
    rc = tcp_flush_retry(s, err, errlen);
  }
  while (rc == 0 && t->acked_seq < t->last_seq) {
    rc = tcp_await_acks(s, 0, err, errlen);
  }
  if (rc == 1) {
    snprintf(err, errlen,
             "stopped while %llu records waited for the consumer's acknowledgement (a producer "
             "started again resends them)",
             (unsigned long long)tcp_unacked_count(t));
    return rc;
  }
  if (rc == 0) {
    rc = tcp_sender_finish(t, TCP_FINISH_TIMEOUT_US, err, errlen);
  }
  if (rc < 0 && tcp_lost(rc) && tcp_all_done(t)) {
    /* Every record is acknowledged, so nothing is lost: the consumer went away with our END
     * unread (it stopped at --max-records, say), which the kernel may turn into a reset. The
     * summary still says how the connection ended. */
    log_info("%s (every record was acknowledged before it)", err);
    rc = 0;
  }
  if (rc == 1) {
    rc = 0; /* everything is acknowledged: the close is a courtesy */
  }
  return rc;
}

/* --resume: wait for the consumer's answer to the HELLO. */
static int tcp_op_resume_point(sender *s, uint64_t *seq, char *err, size_t errlen) {
  tcp_sender *t = tcp_of(s);
  int rc;
  t->resuming = 1;
  t->resumed = 1;
  rc = tcp_flush_retry(s, err, errlen);
  while (rc == 0 && t->resuming) {
    rc = tcp_await_acks(s, 0, err, errlen);
  }
  *seq = t->acked_seq;
  return rc;
}

/* Name the connection's state for the summary. */
static const char *tcp_connection_name(int status) {
  switch (status) {
  case TCP_REFUSED:
    return "refused";
  case TCP_RESET:
    return "reset";
  case TCP_CLOSED:
    return "closed";
  case TCP_FAILED:
    return "failed";
  default:
    return "ok";
  }
}

static void tcp_op_stats(const sender *s, sender_stats *out) {
  const tcp_sender *t = tcp_of_const(s);
  memset(out, 0, sizeof *out);
  out->bytes = t->bytes_written;
  out->written = t->records_written;
  out->blocked_us = t->blocked_us;
  out->ack_wait_us = t->ack_wait_us;
  out->connection = tcp_connection_name(t->status);
  out->acknowledged = 1;
  out->acked = t->acked;
  out->resent = t->resent;
  out->reconnects = t->reconnects;
  out->retry_wait_us = t->retry_wait_us + s->retry_wait_us;
  out->skipped = t->skipped;
}

static void tcp_op_close(sender *s) {
  if (s == NULL) {
    return;
  }
  tcp_sender_close(tcp_of(s));
  free(s);
}

static const sender_ops tcp_sender_ops = {
    .name = "tcp",
    .socktype = SOCK_STREAM,
    .every_address = 1,
    .open = tcp_op_open,
    .hello = tcp_op_hello,
    .fits = NULL, /* a stream carries any record the protocol allows */
    .wire_size = tcp_op_wire_size,
    .send = tcp_op_send,
    .add = tcp_op_add,
    .push = tcp_op_push,
    .flush_due = tcp_op_flush_due,
    .flush = tcp_op_flush,
    .next_due = tcp_op_next_due,
    .wait = tcp_op_wait,
    .connected = tcp_op_connected,
    .finish = tcp_op_finish,
    .resume_point = tcp_op_resume_point,
    .stats = tcp_op_stats,
    .close = tcp_op_close,
};

/* A TCP sender not yet connected, keeping what is not acknowledged; see sender_tcp.h. */
sender *tcp_sender_new_acked(const volatile sig_atomic_t *stop, int log_records, double retry_s,
                             uint64_t window) {
  tcp_sender_op *op = calloc(1, sizeof *op);
  if (op == NULL) {
    return NULL;
  }
  sender_base_init(&op->base, &tcp_sender_ops, stop, log_records);
  op->base.retry_s = retry_s;
  cs_buf_init(&op->t.out);
  cs_buf_init(&op->t.unacked);
  cs_buf_init(&op->t.unacked_index);
  cs_buf_init(&op->t.hello);
  cs_buf_init(&op->t.end);
  wire_decoder_init(&op->t.dec, WIRE_MAX_PAYLOAD);
  op->t.fd = -1;
  op->t.stop = stop;
  op->t.retry_s = retry_s;
  op->t.window = window > 0 ? window : 1;
  return &op->base;
}

/* A TCP sender not yet connected; see sender.h. It fails at once on a lost connection. */
sender *tcp_sender_new(const volatile sig_atomic_t *stop, int log_records) {
  return tcp_sender_new_acked(stop, log_records, 0, UINT64_MAX);
}
