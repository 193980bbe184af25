/* sender_udp.c -- connected UDP socket, datagram queue with due times, sendmmsg batches,
 * ICMP port-unreachable accounting. */
#include "sender_udp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"

/* One queued datagram: its bytes live in udp_sender.bytes at off. */
struct udp_entry {
  uint64_t due_us;
  size_t off;
  size_t len;
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
