/* producer.c -- the producer's run: read records, pace them, impair them (UDP), hand them to the
 * TCP or UDP sender, end the stream, and keep the counts. */
#include "producer.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "net.h"
#include "summary.h"

#define PRODUCER_FINISH_TIMEOUT_US 2000000u /* TCP: wait this long for the consumer's close */
#define PRODUCER_END_GAP_US 100000u         /* UDP: the END repeats this far apart */
#define PRODUCER_STOP_GRACE_US 2000000u     /* after a stop, UDP retries END this long at most */
#define PRODUCER_PROGRESS_US 1000000u       /* fast pace: a progress line every second */
#define PRODUCER_RAGGED_NAMED 10            /* ragged rows each warned about ... */
#define PRODUCER_RAGGED_LOG_US 5000000u     /* ... then at most one warning per 5 s */
#define PRODUCER_INPUT_POLL_MS 250          /* waiting for live input: look at the stop flag */

/* The default stream name: the file's base name without its extension ("stdin" for -). */
static void producer_stream_name(const char *path, char *out, size_t outlen) {
  const char *base, *dot;
  size_t len;
  if (strcmp(path, "-") == 0) {
    snprintf(out, outlen, "stdin");
    return;
  }
  base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  dot = strrchr(base, '.');
  len = (dot != NULL && dot != base) ? (size_t)(dot - base) : strlen(base);
  if (len == 0) {
    base = "stream";
    len = strlen(base);
  }
  if (len > outlen - 1) {
    len = outlen - 1; /* names past 255 bytes are cut; --stream picks another */
  }
  memcpy(out, base, len);
  out[len] = '\0';
}

/* Stream name, producer id and seeds; see producer.h. */
int producer_init(producer *p, const producer_options *o, const volatile sig_atomic_t *stop, char *err,
                  size_t errlen) {
  uint64_t pace_seed, impair_seed;
  int rc;

  memset(p, 0, sizeof *p);
  p->opt = o;
  p->stop = stop;
  p->tcp.fd = -1;
  p->udp.fd = -1;
  cs_buf_init(&p->hello);
  cs_buf_init(&p->dgram);
  cs_buf_init(&p->held);
  p->st.connection = "ok";
  if (o->stream != NULL) {
    snprintf(p->stream, sizeof p->stream, "%s", o->stream);
  } else {
    producer_stream_name(o->path, p->stream, sizeof p->stream);
  }
  rc = rng_os_u64(&p->producer_id);
  if (rc == 0) {
    rc = o->have_seed ? 0 : rng_os_u64(&pace_seed);
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot read random bytes from the OS (getrandom): %s", cs_strerror(rc));
    return rc;
  }
  if (o->have_seed) {
    pace_seed = o->seed;
  }
  /* Impairment has its own generator: seed=N in --impair, else --seed, else the OS. */
  impair_seed = o->impair.have_seed ? o->impair.seed : pace_seed ^ 0x5bd1e9955bd1e995ULL;
  pacer_init(&p->pacer, o->interval_min, o->interval_max, o->rate, pace_seed);
  impair_init(&p->impair, &o->impair, impair_seed);
  p->slow = pacer_is_slow(&p->pacer);
  return 0;
}

/* A wire message for this producer's stream. */
static wire_msg producer_msg(const producer *p, int type, uint64_t seq) {
  wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.producer_id = p->producer_id;
  m.seq = seq;
  m.sent_us = clock_wall_us();
  m.stream.data = p->stream;
  m.stream.len = strlen(p->stream);
  return m;
}

/* Hand the kernel what is due at `now`: UDP datagrams whose time has come, or the TCP bytes
 * gathered so far. Returns 0 or a negative code with err set. */
static int producer_send_due(producer *p, uint64_t now, char *err, size_t errlen) {
  if (p->opt->udp) {
    return udp_sender_flush_due(&p->udp, now, err, errlen);
  }
  return p->tcp.out.len > 0 ? tcp_sender_flush(&p->tcp, err, errlen) : 0;
}

/* Sleep until the monotonic deadline while the sender keeps working: queued UDP datagrams go out
 * when due, TCP bytes are flushed and the connection watched. Returns 0, 1 when stopped, or a
 * negative code with err set. */
static int producer_wait_until(producer *p, uint64_t deadline_us, char *err, size_t errlen) {
  for (;;) {
    uint64_t now = clock_mono_us();
    uint64_t target = deadline_us;
    int rc;
    /* Already due: no flush here, so records due together leave in one batch or write. */
    if (now >= deadline_us) {
      return *p->stop ? 1 : 0;
    }
    rc = producer_send_due(p, now, err, errlen);
    if (rc != 0) {
      return rc;
    }
    if (p->opt->udp && udp_sender_next_due(&p->udp) < target) {
      target = udp_sender_next_due(&p->udp);
    }
    if (*p->stop) {
      return 1;
    }
    rc = p->opt->udp ? udp_sender_wait(&p->udp, target, err, errlen)
                     : tcp_sender_wait(&p->tcp, target, err, errlen);
    if (rc != 0) {
      return rc;
    }
  }
}

/* Live input (a pipe or a terminal): before csvin_next would block in read(), hand the kernel
 * every record already due, so none waits in the coalescing buffer or the UDP queue for input
 * that may be seconds away; then wait for input while queued datagrams (--impair delay) still
 * leave when due. A regular file never waits, and costs no system call here. Returns 0, 1 when
 * stopped, or a negative code with err set. */
static int producer_wait_input(producer *p, char *err, size_t errlen) {
  while (csvin_would_block(p->in)) {
    int timeout_ms = PRODUCER_INPUT_POLL_MS;
    uint64_t now = clock_mono_us();
    int rc = producer_send_due(p, now, err, errlen);
    if (rc != 0) {
      return rc;
    }
    if (p->opt->udp) {
      uint64_t due = udp_sender_next_due(&p->udp);
      if (due != UINT64_MAX) {
        uint64_t ms = due > now ? (due - now + 999u) / 1000u : 0;
        if (ms < (uint64_t)timeout_ms) {
          timeout_ms = (int)ms;
        }
      }
    }
    if (*p->stop) {
      return 1;
    }
    /* A signal interrupts the poll; the bounded timeout covers one that lands just before it. */
    struct pollfd pfd = {.fd = csvin_fd(p->in), .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) {
      snprintf(err, errlen, "%s: poll failed: %s", csvin_path(p->in), strerror(errno));
      return CS_EIO;
    }
  }
  return 0;
}

/* Encode HELLO + RECORD into p->dgram. */
static int producer_build_datagram(producer *p, const wire_msg *m) {
  cs_buf_reset(&p->dgram);
  if (cs_buf_append(&p->dgram, p->hello.data, p->hello.len) != 0) {
    return CS_ENOMEM;
  }
  return wire_encode(m, &p->dgram);
}

/* Queue one datagram (twice with a duplicate) with the impairment delay. */
static int producer_queue(producer *p, const cs_buf *d, int dup) {
  uint64_t due =
      p->opt->impair.delay_ms > 0 ? clock_mono_us() + (uint64_t)p->opt->impair.delay_ms * 1000u : 0;
  int rc = udp_sender_queue(&p->udp, d->data, d->len, due);
  if (rc == 0 && dup) {
    rc = udp_sender_queue(&p->udp, d->data, d->len, due);
  }
  return rc;
}

/* Send the held-back record, if any: right after a later record (counted as reordered) or at
 * the end of the stream (not counted: nothing later went before it). */
static int producer_release_held(producer *p, int after_later) {
  int rc;
  if (!p->held_valid) {
    return 0;
  }
  rc = producer_queue(p, &p->held, p->held_dup);
  p->held_valid = 0;
  if (rc == 0 && after_later) {
    impair_note_reordered(&p->impair);
  }
  return rc;
}

/* Log a record at slow pace; note is appended ("" for none). */
static void producer_log_record(const producer *p, const wire_msg *m, size_t bytes,
                                const char *note) {
  if (p->slow) {
    log_info("sent #%llu (line %llu, %u fields, %zu bytes) over %s to %s%s",
             (unsigned long long)m->seq, (unsigned long long)m->line, (unsigned)m->nfields, bytes,
             p->opt->udp ? "udp" : "tcp", p->peer, note);
  }
}

/* UDP: one record through the impairment, into the queue. */
static int producer_send_udp(producer *p, const wire_msg *m, char *err, size_t errlen) {
  int action = p->opt->impair_on ? impair_decide(&p->impair, p->held_valid) : IMPAIR_SEND;
  int rc;
  if (action & IMPAIR_DROP) {
    if (p->slow) {
      log_info("dropped #%llu (line %llu) on purpose (--impair loss)", (unsigned long long)m->seq,
               (unsigned long long)m->line);
    }
    return 0;
  }
  rc = producer_build_datagram(p, m);
  if (rc == 0 && (action & IMPAIR_HOLD)) {
    cs_buf_reset(&p->held);
    rc = cs_buf_append(&p->held, p->dgram.data, p->dgram.len);
    if (rc == 0) {
      p->held_valid = 1;
      p->held_dup = (action & IMPAIR_DUP) != 0;
      p->held_seq = m->seq;
      if (p->slow) {
        log_info("holding #%llu (line %llu) back to send it after the next one (--impair "
                 "reorder)",
                 (unsigned long long)m->seq, (unsigned long long)m->line);
      }
    }
  } else if (rc == 0) {
    rc = producer_queue(p, &p->dgram, action & IMPAIR_DUP);
    if (rc == 0) {
      producer_log_record(p, m, p->dgram.len,
                          (action & IMPAIR_DUP) ? ", twice (--impair dup)" : "");
      if (p->held_valid && p->slow) {
        log_info("sent #%llu after #%llu%s (--impair reorder)", (unsigned long long)p->held_seq,
                 (unsigned long long)m->seq, p->held_dup ? ", twice" : "");
      }
      rc = producer_release_held(p, 1);
    }
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing record #%llu for %s/udp",
             (unsigned long long)m->seq, p->peer);
    return rc;
  }
  /* Send in batches: when a batch is full, or when nothing more is due right now. */
  if (udp_sender_due_count(&p->udp, clock_mono_us(), UDP_BATCH) >= UDP_BATCH ||
      pacer_peek(&p->pacer) > clock_mono_us()) {
    rc = udp_sender_flush_due(&p->udp, clock_mono_us(), err, errlen);
  }
  /* A long --impair delay at a high rate: bound the queue by waiting for its head. */
  while (rc == 0 && udp_sender_queued_bytes(&p->udp) > UDP_QUEUE_MAX_BYTES) {
    rc = producer_wait_until(p, udp_sender_next_due(&p->udp), err, errlen);
    if (rc == 0) {
      rc = udp_sender_flush_due(&p->udp, clock_mono_us(), err, errlen);
    }
  }
  return rc;
}

/* TCP: one record into the coalescing buffer; written at once unless more records are due. */
static int producer_send_tcp(producer *p, const wire_msg *m, char *err, size_t errlen) {
  int rc = tcp_sender_add(&p->tcp, m, err, errlen);
  if (rc == 0) {
    producer_log_record(p, m, wire_encoded_size(m), "");
    if (pacer_peek(&p->pacer) > clock_mono_us()) {
      rc = tcp_sender_flush(&p->tcp, err, errlen);
    }
  }
  return rc;
}

/* Bytes the record's fields hold: for messages about records the codec refuses (it reports
 * only SIZE_MAX past its limit). csvin bounds a record, so this cannot overflow. */
static size_t producer_record_bytes(const wire_msg *m) {
  size_t n = 0;
  for (uint32_t i = 0; i < m->nfields; i++) {
    n += m->fields[i].len;
  }
  return n;
}

/* Whether a record fits the transport; logs and counts it when it does not. */
static int producer_fits(producer *p, const wire_msg *m) {
  size_t size = wire_encoded_size(m);
  char a[32], b[32];
  if (size == SIZE_MAX) {
    log_error("%s:%llu: record holds %s bytes of data, more than the protocol allows (max %s "
              "per record); skipped",
              csvin_path(p->in), (unsigned long long)m->line,
              summary_thousands(producer_record_bytes(m), a, sizeof a),
              summary_thousands(WIRE_MAX_PAYLOAD, b, sizeof b));
    p->st.too_big++;
    return 0;
  }
  if (p->opt->udp && p->hello.len + size > WIRE_UDP_MAX_DATAGRAM) {
    log_error("%s:%llu: record is %s bytes, too large for one UDP datagram (max %s); skipped "
              "(use --tcp)",
              csvin_path(p->in), (unsigned long long)m->line,
              summary_thousands(p->hello.len + size, a, sizeof a),
              summary_thousands(WIRE_UDP_MAX_DATAGRAM, b, sizeof b));
    p->st.too_big++;
    return 0;
  }
  if (size - WIRE_HEADER_LEN > WIRE_MAX_PAYLOAD) {
    log_error("%s:%llu: record is %s bytes, larger than the protocol allows (max %s); skipped",
              csvin_path(p->in), (unsigned long long)m->line, summary_thousands(size, a, sizeof a),
              summary_thousands(WIRE_MAX_PAYLOAD, b, sizeof b));
    p->st.too_big++;
    return 0;
  }
  return 1;
}

/* Fast pace: a progress line every second. */
static void producer_progress(producer *p) {
  uint64_t now = clock_mono_us();
  if (p->slow || now - p->last_progress_us < PRODUCER_PROGRESS_US) {
    return;
  }
  log_info("progress: %llu records sent (%.0f/s), %.1f MB, waited %llu ms on backpressure",
           (unsigned long long)p->st.sent,
           (double)(p->st.sent - p->last_progress_sent) * 1e6 / (double)(now - p->last_progress_us),
           (double)(p->opt->udp ? p->udp.bytes_sent : p->tcp.bytes_written) / 1e6,
           (unsigned long long)(p->tcp.blocked_us / 1000u));
  p->last_progress_us = now;
  p->last_progress_sent = p->st.sent;
}

/* Warn (rate-limited) about a row whose field count differs from the header's. */
static void producer_check_ragged(producer *p, const csvin_rec *rec) {
  const csvin_rec *hdr = csvin_header(p->in);
  if (hdr == NULL || rec->nfields == hdr->nfields) {
    return;
  }
  p->ragged_rows++;
  /* The first few are each named; after that at most one line per interval. */
  if (p->ragged_rows <= PRODUCER_RAGGED_NAMED ||
      log_limiter_allow(&p->ragged_limit, clock_mono_us(), PRODUCER_RAGGED_LOG_US)) {
    unsigned long long more = p->ragged_limit.suppressed;
    p->ragged_limit.suppressed = 0;
    log_warn("%s:%llu: %zu fields, header has %zu (sent as is)%s", csvin_path(p->in),
             (unsigned long long)rec->line, rec->nfields, hdr->nfields,
             more > 0 ? "; more ragged rows were not reported" : "");
  }
}

/* The input ended before its first data record: say so, since "sent 0 records" alone looks
 * like a failure to send. Not an error: the stream (HELLO, then END with 0) is still valid. */
static void producer_warn_no_data(const producer *p) {
  if (csvin_header(p->in) != NULL) {
    log_warn("%s: only a header, no data records", csvin_path(p->in));
  } else {
    log_warn("%s: no data records (empty file)", csvin_path(p->in));
  }
}

/* Read, pace and send until the input ends, --count is reached, a signal or an error. Returns
 * 0, 1 when stopped by a signal, or a negative code (the message already logged). */
static int producer_stream(producer *p) {
  char err[512];
  uint64_t this_pass = 0;      /* records read in this pass over the file */
  uint64_t pass_start_seq = 0; /* p->st.sent when this pass began */
  int rc;

  for (;;) {
    csvin_rec rec;
    wire_msg m;
    if (*p->stop) {
      return 1;
    }
    if (p->opt->count != 0 && p->st.sent >= p->opt->count) {
      return 0;
    }
    rc = producer_wait_input(p, err, sizeof err);
    if (rc == 1) {
      return 1;
    }
    if (rc != 0) {
      log_error("%s", err);
      return rc;
    }
    rc = csvin_next(p->in, &rec);
    if (rc == 0) {
      if (p->st.records_read == 0) {
        producer_warn_no_data(p);
      }
      if (!p->opt->loop || this_pass == 0) {
        return 0;
      }
      if (p->st.sent == pass_start_seq) {
        /* Every record was skipped as too large: another pass would only repeat that. */
        log_error("%s: --loop: no record of the file can be sent (all too large, see above); "
                  "stopping",
                  csvin_path(p->in));
        return 0;
      }
      rc = csvin_rewind(p->in);
      if (rc != 0) {
        log_error("%s: cannot start over for --loop: %s", csvin_path(p->in), cs_strerror(rc));
        return rc;
      }
      if (p->slow) {
        log_info("end of %s; starting over (--loop)", csvin_path(p->in));
      }
      this_pass = 0;
      pass_start_seq = p->st.sent;
      continue;
    }
    if (rc < 0) {
      log_error("%s", csvin_error(p->in));
      return rc;
    }
    p->st.records_read++;
    this_pass++;
    producer_check_ragged(p, &rec);
    m = producer_msg(p, WIRE_RECORD, 0);
    m.line = rec.line;
    m.nfields = (uint32_t)rec.nfields;
    m.fields = rec.fields;
    if (!producer_fits(p, &m)) {
      continue;
    }
    rc = producer_wait_until(p, pacer_take(&p->pacer), err, sizeof err);
    if (rc == 1) {
      return 1;
    }
    if (rc == 0) {
      m.seq = ++p->st.sent;
      m.sent_us = clock_wall_us();
      rc = p->opt->udp ? producer_send_udp(p, &m, err, sizeof err)
                       : producer_send_tcp(p, &m, err, sizeof err);
    }
    if (rc == 1) {
      return 1; /* a stop signal while the sender waited */
    }
    if (rc != 0) {
      log_error("%s", err);
      return rc;
    }
    producer_progress(p);
  }
}

/* UDP: the held record, then END three times 100 ms apart, then everything still queued. */
static int producer_end_udp(producer *p, char *err, size_t errlen) {
  wire_msg end = producer_msg(p, WIRE_END, p->st.sent);
  uint64_t delay = (uint64_t)p->opt->impair.delay_ms * 1000u;
  uint64_t now = clock_mono_us();
  uint64_t give_up;
  int i, rc = producer_release_held(p, 0);

  cs_buf_reset(&p->dgram);
  if (rc == 0) {
    rc = wire_encode(&end, &p->dgram);
  }
  for (i = 0; rc == 0 && i < PRODUCER_END_REPEATS; i++) {
    rc = udp_sender_queue(&p->udp, p->dgram.data, p->dgram.len,
                          now + delay + (uint64_t)i * PRODUCER_END_GAP_US);
  }
  if (rc != 0) {
    snprintf(err, errlen, "out of memory queueing END for %s/udp", p->peer);
    return rc;
  }
  /* Drain even after a stop signal: the END is what lets the consumer count trailing loss. But
   * when the kernel keeps refusing the datagrams (ENOBUFS), a stopped run gives up a little
   * after the last END was due instead of retrying for ever. */
  give_up = now + delay + (uint64_t)(PRODUCER_END_REPEATS - 1) * PRODUCER_END_GAP_US +
            PRODUCER_STOP_GRACE_US;
  while (udp_sender_queued(&p->udp) > 0) {
    clock_sleep_until(udp_sender_next_due(&p->udp), NULL);
    rc = udp_sender_flush_due(&p->udp, clock_mono_us(), err, errlen);
    if (rc < 0) {
      return rc;
    }
    if (rc == 1 && clock_mono_us() > give_up) {
      snprintf(err, errlen,
               "gave up sending to %s/udp after the stop signal: the kernel refuses the "
               "datagrams (%zu still queued, END among them)",
               p->peer, udp_sender_queued(&p->udp));
      return CS_EIO;
    }
  }
  return 0;
}

/* TCP: END, half-close, and wait for the consumer to close after reading everything. */
static int producer_end_tcp(producer *p, char *err, size_t errlen) {
  wire_msg end = producer_msg(p, WIRE_END, p->st.sent);
  int rc = tcp_sender_add(&p->tcp, &end, err, errlen);
  if (rc == 0) {
    rc = tcp_sender_finish(&p->tcp, PRODUCER_FINISH_TIMEOUT_US, err, errlen);
  }
  if (rc == 1) {
    log_warn("%s/tcp did not close the connection within %u s after END; it may not have read "
             "everything",
             p->peer, PRODUCER_FINISH_TIMEOUT_US / 1000000u);
    rc = 0;
  }
  return rc;
}

/* Name the connection's state for the summary. */
static const char *producer_connection_name(const producer *p) {
  if (p->opt->udp) {
    return "ok";
  }
  switch (p->tcp.status) {
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

/* Connect (or set up UDP) and prepare the HELLO. Returns 0 or a negative code (logged). */
static int producer_connect(producer *p) {
  char err[512];
  wire_msg hello = producer_msg(p, WIRE_HELLO, 0);
  const csvin_rec *hdr = csvin_header(p->in);
  int rc;

  if (hdr != NULL) {
    hello.nfields = (uint32_t)hdr->nfields;
    hello.fields = hdr->fields;
  }
  rc = net_resolve(p->opt->host, p->opt->port, p->opt->udp ? SOCK_DGRAM : SOCK_STREAM, &p->addr,
                   &p->addrlen, err, sizeof err);
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  net_format((const struct sockaddr *)&p->addr, p->peer, sizeof p->peer);
  if (p->opt->udp) {
    rc = udp_sender_open(&p->udp, (const struct sockaddr *)&p->addr, p->addrlen, p->peer, p->stop,
                         err, sizeof err);
  } else {
    rc = tcp_sender_open(&p->tcp, (const struct sockaddr *)&p->addr, p->addrlen, p->peer, p->stop,
                         err, sizeof err);
  }
  if (rc != 0) {
    log_error("%s", err);
    return rc;
  }
  p->sender_open = 1;
  rc = p->opt->udp ? wire_encode(&hello, &p->hello)
                   : tcp_sender_add(&p->tcp, &hello, err, sizeof err);
  if (rc == CS_ETOOBIG) {
    log_error("%s: the header is larger than the protocol allows (max %u bytes)", csvin_path(p->in),
              WIRE_MAX_PAYLOAD);
  } else if (rc != 0) {
    log_error("cannot send the header to %s: %s", p->peer, cs_strerror(rc));
  }
  return rc;
}

/* The whole run; see producer.h. */
int producer_run(producer *p) {
  char err[512];
  int failed = 0;
  int rc;

  rc = csvin_open(&p->in, p->opt->path, !p->opt->no_header, err, sizeof err);
  if (rc != 0) {
    log_error("%s", err);
    return 1;
  }
  rc = producer_connect(p);
  if (rc != 0) {
    p->st.connection = producer_connection_name(p);
    if (*p->stop) {
      p->stopped = 1;
      return 130; /* Ctrl-C while connecting: nothing was sent, but it was asked for */
    }
    return 1;
  }
  log_info("streaming %s as stream '%s' (producer %016llx) over %s to %s%s", csvin_path(p->in),
           p->stream, (unsigned long long)p->producer_id, p->opt->udp ? "udp" : "tcp", p->peer,
           p->slow ? ""
                   : "; records under 0.1 s apart on average: a progress line every second "
                     "instead of a line per record");
  p->st.start_us = clock_mono_us();
  p->last_progress_us = p->st.start_us;
  pacer_start(&p->pacer, p->st.start_us);

  rc = producer_stream(p);
  if (rc == 0 && !p->opt->udp) {
    /* The last coalesced bytes belong to the records' sending time. */
    rc = tcp_sender_flush(&p->tcp, err, sizeof err);
    if (rc != 0) {
      log_error("%s", err);
    }
  }
  /* Duration and rate describe the records' sending, not END's repeats or the close. */
  p->st.end_us = clock_mono_us();
  if (rc == 1) {
    p->stopped = 1;
    log_info("stopped by signal after %llu records; sending END", (unsigned long long)p->st.sent);
  } else if (rc != 0) {
    failed = 1;
  }
  /* END tells the consumer the last seq; skip it only when the connection is already gone. */
  if (p->opt->udp || p->tcp.status == TCP_OK) {
    rc = p->opt->udp ? producer_end_udp(p, err, sizeof err) : producer_end_tcp(p, err, sizeof err);
    if (rc != 0) {
      log_error("%s", err);
      failed = 1;
    }
  }
  p->st.bytes = p->opt->udp ? p->udp.bytes_sent : p->tcp.bytes_written;
  p->st.written = p->tcp.records_written;
  p->st.blocked_us = p->tcp.blocked_us;
  p->st.icmp_refused = p->udp.icmp_refused;
  p->st.connection = producer_connection_name(p);
  if (p->st.too_big > 0) {
    log_error("not all records were sent: %llu too large to send (see above)",
              (unsigned long long)p->st.too_big);
    failed = 1;
  }
  if (p->stopped) {
    return 130;
  }
  return failed ? 1 : 0;
}

void producer_free(producer *p) {
  if (p->sender_open) {
    if (p->opt->udp) {
      udp_sender_close(&p->udp);
    } else {
      tcp_sender_close(&p->tcp);
    }
  }
  csvin_close(p->in);
  p->in = NULL;
  cs_buf_free(&p->hello);
  cs_buf_free(&p->dgram);
  cs_buf_free(&p->held);
}
