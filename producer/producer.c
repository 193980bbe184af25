/* producer.c -- the producer's run: read records, pace them, hand them to the sender chosen at
 * start (TCP or UDP, maybe wrapped in the impairment), end the stream, and keep the counts. */
#include "producer.h"

#include "sender_tcp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "net.h"
#include "summary.h"
#include "words.h"

#define PRODUCER_PROGRESS_US 3000000u    /* fast pace, not a terminal: a line every 3 s */
#define PRODUCER_PROGRESS_TTY_US 250000u /* fast pace on a terminal: the line redrawn */
#define PRODUCER_RAGGED_NAMED 10         /* ragged rows each warned about ... */
#define PRODUCER_RAGGED_LOG_US 5000000u  /* ... then at most one warning per 5 s */
#define PRODUCER_INPUT_POLL_MS 250       /* waiting for live input: look at the stop flag */
/* Unpaced, records that share one reading of the clock: at a million records a second it is
 * read every 64 us, and the sender's writes and waits make it read again at once, so a
 * record's send time is never more than those records (and one read of the input) early. */
#define PRODUCER_CLOCK_EVERY 64

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

/* The one place that looks at the transport: TCP or UDP, wrapped in the impairment when
 * --impair is on. Returns 0, or CS_ENOMEM with err set. */
static int producer_choose_sender(producer *p, char *err, size_t errlen) {
  sender *s = p->opt->format_csv
                  ? csv_sender_new(p->stop, p->slow, p->opt->udp, p->opt->retry_s, p->opt->stream)
              : p->opt->udp
                  ? udp_sender_new(p->stop, p->slow)
                  : tcp_sender_new_acked(p->stop, p->slow, p->opt->retry_s, p->opt->window);
  if (s != NULL && p->opt->impair_on) {
    sender *wrapped = impair_sender_new(s, &p->impair);
    if (wrapped == NULL) {
      s->ops->close(s);
    }
    s = wrapped;
  }
  if (s == NULL) {
    snprintf(err, errlen, "out of memory setting up the sender");
    return CS_ENOMEM;
  }
  p->snd = s;
  return 0;
}

/* --resume and --id: the same identity every run, so that the consumer knows the stream
 * again (FNV-1a over --id, else over the host name, a NUL and the stream name). Returns 0. */
static int producer_stable_id(producer *p) {
  char host[256] = "";
  const char *key = p->opt->id;
  uint64_t h = 1469598103934665603ULL;
  size_t i;
  if (key == NULL) {
    if (gethostname(host, sizeof host - 1) != 0) {
      snprintf(host, sizeof host, "localhost");
    }
    key = host;
  }
  for (i = 0; key[i] != '\0'; i++) {
    h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
  }
  if (p->opt->id == NULL) {
    h *= 1099511628211ULL; /* the NUL between host and stream */
    for (i = 0; p->stream[i] != '\0'; i++) {
      h = (h ^ (unsigned char)p->stream[i]) * 1099511628211ULL;
    }
  }
  p->producer_id = h;
  return 0;
}

/* Stream name, producer id and seeds; see producer.h. */
int producer_init(producer *p, const producer_options *o, const volatile sig_atomic_t *stop,
                  char *err, size_t errlen) {
  uint64_t pace_seed, impair_seed;
  int rc;

  memset(p, 0, sizeof *p);
  p->opt = o;
  p->stop = stop;
  p->st.connection = "ok";
  if (o->stream != NULL) {
    snprintf(p->stream, sizeof p->stream, "%s", o->stream);
  } else {
    producer_stream_name(o->path, p->stream, sizeof p->stream);
  }
  rc = o->resume || o->id != NULL ? producer_stable_id(p) : rng_os_u64(&p->producer_id);
  if (rc == 0) {
    rc = rng_os_bytes(p->session_key, sizeof p->session_key);
  }
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
  if (o->timestamps != NULL) {
    pacer_init_clock(&p->pacer); /* the gaps come from the file (replay.c) */
    p->replaying = 1;
  }
  impair_init(&p->impair, &o->impair, impair_seed);
  p->slow = pacer_is_slow(&p->pacer);
  p->unpaced = p->pacer.mode == PACER_UNPACED;
  return producer_choose_sender(p, err, errlen);
}

/* A wire message for this producer's stream, sent at sent_us (wall-clock microseconds; 0 for a
 * record, whose time is read when it is sent). */
static wire_msg producer_msg_at(const producer *p, int type, uint64_t seq, uint64_t sent_us) {
  wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.producer_id = p->producer_id;
  m.seq = seq;
  m.sent_us = sent_us;
  m.stream.data = p->stream;
  m.stream.len = strlen(p->stream);
  m.key = p->session_key;
  return m;
}

/* producer_msg_at, sent now. */
static wire_msg producer_msg(const producer *p, int type, uint64_t seq) {
  return producer_msg_at(p, type, seq, clock_wall_us());
}

/* Live input (a pipe or a terminal): before csvin_next would block in read(), hand the kernel
 * every record already due, so none waits in the sender's buffer or queue for input that may be
 * seconds away; then wait for input while queued datagrams (--impair delay) still leave when
 * due. A regular file never waits, and costs no system call here. Returns 0, 1 when
 * stopped, or a negative code with err set. */
static int producer_wait_input(producer *p, char *err, size_t errlen) {
  while (csvin_would_block(p->in)) {
    int timeout_ms = PRODUCER_INPUT_POLL_MS;
    uint64_t now = clock_mono_us();
    int rc = p->snd->ops->flush_due(p->snd, now, err, errlen);
    uint64_t due;
    if (rc != 0) {
      return rc;
    }
    due = p->snd->ops->next_due(p->snd);
    if (due != UINT64_MAX) {
      uint64_t ms = due > now ? (due - now + 999u) / 1000u : 0;
      if (ms < (uint64_t)timeout_ms) {
        timeout_ms = (int)ms;
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
    p->clock_left = 0; /* time has passed: the next record reads the clock */
  }
  return 0;
}

/* "45 s", "3 min 05 s", "2 h 07 min": a time left for people. */
static void producer_format_left(uint64_t secs, char *buf, size_t len) {
  if (secs < 60) {
    snprintf(buf, len, "%llu s", (unsigned long long)secs);
  } else if (secs < 3600) {
    snprintf(buf, len, "%llu min %02llu s", (unsigned long long)(secs / 60),
             (unsigned long long)(secs % 60));
  } else {
    snprintf(buf, len, "%llu h %02llu min", (unsigned long long)(secs / 3600),
             (unsigned long long)(secs % 3600 / 60));
  }
}

/* How far through the input: ", 45.2% of the file, about 12 s left" for a regular file (the
 * bytes the reader has parsed against its size), "" for a pipe or a terminal, whose size is
 * not known. No time left with --loop, which reads the file again. */
static void producer_progress_where(const producer *p, uint64_t now, char *buf, size_t len) {
  struct stat sb;
  uint64_t off = csvin_offset(p->in);
  double done;
  buf[0] = '\0';
  if (fstat(csvin_fd(p->in), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0) {
    return;
  }
  if (off > (uint64_t)sb.st_size) {
    off = (uint64_t)sb.st_size;
  }
  done = (double)off / (double)sb.st_size;
  if (off > 0 && !p->opt->loop && now > p->st.start_us) {
    char left[32];
    double secs = (double)(now - p->st.start_us) / 1e6 * (1.0 - done) / done;
    producer_format_left((uint64_t)(secs + 0.999), left, sizeof left); /* never "0 s left" */
    snprintf(buf, len, ", %.1f%% of the file, about %s left", done * 100.0, left);
  } else {
    snprintf(buf, len, ", %.1f%% of the file", done * 100.0);
  }
}

/* 1 when progress is one line redrawn in place: stderr is a terminal. */
static int producer_progress_tty(const producer *p) {
  return !p->slow && !p->opt->quiet && isatty(STDERR_FILENO);
}

/* Clear the redrawn progress line before a log line or the summary takes its place (the line
 * leaves the cursor at its start, so erasing to the end of the line is enough). */
static void producer_progress_clear(const producer *p) {
  if (producer_progress_tty(p)) {
    /* A terminal that refuses a write has nowhere to report it either. */
    (void)fputs("\033[K", stderr);
  }
}

/* Fast pace: records sent, the rate since the last line, how far through the file and the
 * time left. On a terminal one line redrawn every PRODUCER_PROGRESS_TTY_US; otherwise a log
 * line every PRODUCER_PROGRESS_US. --quiet and the slow pace (a line per record) have none. */
static void producer_progress(producer *p) {
  uint64_t now, span;
  int tty;
  char sent[WORDS_BUF], rate[WORDS_BUF], where[128];
  sender_stats ss;
  if (p->slow || p->opt->quiet) {
    return; /* no progress lines */
  }
  now = p->now_mono_us; /* the reading of the last record's send time */
  span = now - p->last_progress_us;
  tty = producer_progress_tty(p);
  if (span < (tty ? PRODUCER_PROGRESS_TTY_US : PRODUCER_PROGRESS_US)) {
    return;
  }
  words_count_of(sent, sizeof sent, p->st.sent, "record", "records");
  words_rate(rate, sizeof rate, p->st.sent - p->last_progress_sent, span);
  producer_progress_where(p, now, where, sizeof where);
  if (tty) {
    /* Erase what a longer line left, then back to the start: a log line may overwrite it. */
    (void)fprintf(stderr, "\rprogress: %s sent, %s records/s%s\033[K\r", sent, rate, where);
  } else {
    char waited[WORDS_BUF], held[WORDS_BUF], acks[WORDS_BUF + 32] = "";
    p->snd->ops->stats(p->snd, &ss);
    if (ss.acknowledged) {
      snprintf(acks, sizeof acks, ", %s ms for acknowledgements",
               words_count(held, sizeof held, ss.ack_wait_us / 1000u));
    }
    log_info("progress: %s sent, %s records/s%s; %.1f MB, waited %s ms on backpressure%s", sent,
             rate, where, (double)ss.bytes / 1e6,
             words_count(waited, sizeof waited, ss.blocked_us / 1000u), acks);
  }
  p->last_progress_us = now;
  p->last_progress_sent = p->st.sent;
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
  char a[32], b[32], why[256];
  if (size == SIZE_MAX) {
    producer_progress_clear(p);
    log_error("%s:%llu: record holds %s bytes of data, more than the protocol allows (max %s "
              "per record); skipped",
              csvin_path(p->in), (unsigned long long)m->line,
              summary_thousands(producer_record_bytes(m), a, sizeof a),
              summary_thousands(WIRE_MAX_PAYLOAD, b, sizeof b));
    p->st.too_big++;
    return 0;
  }
  if (p->snd->ops->fits != NULL && !p->snd->ops->fits(p->snd, m, size, why, sizeof why)) {
    producer_progress_clear(p);
    log_error("%s:%llu: %s", csvin_path(p->in), (unsigned long long)m->line, why);
    p->st.too_big++;
    return 0;
  }
  if (size - WIRE_HEADER_LEN > WIRE_MAX_PAYLOAD) {
    producer_progress_clear(p);
    log_error("%s:%llu: record is %s bytes, larger than the protocol allows (max %s); skipped",
              csvin_path(p->in), (unsigned long long)m->line, summary_thousands(size, a, sizeof a),
              summary_thousands(WIRE_MAX_PAYLOAD, b, sizeof b));
    p->st.too_big++;
    return 0;
  }
  return 1;
}

/* Warn (rate-limited) about a row whose field count differs from the header's. */
static void producer_check_ragged(producer *p, const csvin_rec *rec) {
  const csvin_rec *hdr = p->header;
  if (hdr == NULL || rec->nfields == hdr->nfields) {
    return;
  }
  p->ragged_rows++;
  /* The first few are each named; after that at most one line per interval. */
  if (p->ragged_rows <= PRODUCER_RAGGED_NAMED ||
      log_limiter_allow(&p->ragged_limit, clock_mono_us(), PRODUCER_RAGGED_LOG_US)) {
    unsigned long long more = p->ragged_limit.suppressed;
    p->ragged_limit.suppressed = 0;
    producer_progress_clear(p);
    log_warn("%s:%llu: %zu fields, header has %zu (sent as is)%s", csvin_path(p->in),
             (unsigned long long)rec->line, rec->nfields, hdr->nfields,
             more > 0 ? "; more ragged rows were not reported" : "");
  }
}

/* The reader's warnings (a line not valid UTF-8): the first few each said, then at most one
 * line per interval, like ragged rows. */
static void producer_input_warning(void *arg, const char *msg) {
  producer *p = arg;
  p->input_warnings++;
  if (p->input_warnings <= PRODUCER_RAGGED_NAMED ||
      log_limiter_allow(&p->input_limit, clock_mono_us(), PRODUCER_RAGGED_LOG_US)) {
    unsigned long long more = p->input_limit.suppressed;
    p->input_limit.suppressed = 0;
    producer_progress_clear(p);
    log_warn("%s%s", msg, more > 0 ? "; more such lines were not reported" : "");
  }
}

/* The deadline of rec on the file's clock, saying what replay has to say (the format found,
 * a value that does not parse or goes back: rate-limited like ragged rows). */
static uint64_t producer_replay_due(producer *p, const csvin_rec *rec) {
  char msg[1024];
  uint64_t gap = 0;
  int note = replay_gap(&p->replay, rec, csvin_path(p->in), &gap, msg, sizeof msg);
  if (note == REPLAY_INFO) {
    producer_progress_clear(p);
    log_info("%s", msg);
  } else if (note == REPLAY_WARN) {
    p->replay_warnings++;
    if (p->replay_warnings <= PRODUCER_RAGGED_NAMED ||
        log_limiter_allow(&p->replay_limit, clock_mono_us(), PRODUCER_RAGGED_LOG_US)) {
      unsigned long long more = p->replay_limit.suppressed;
      p->replay_limit.suppressed = 0;
      producer_progress_clear(p);
      log_warn("%s%s", msg, more > 0 ? "; more such values were not reported" : "");
    }
  }
  return pacer_take_after(&p->pacer, gap);
}

/* The input ended before its first data record: say so, since "sent 0 records" alone looks
 * like a failure to send. Not an error: the stream (HELLO, then END with 0) is still valid. */
static void producer_warn_no_data(const producer *p) {
  if (csvin_header(p->in) != NULL) {
    producer_progress_clear(p);
    log_warn("%s: only a header, no data records", csvin_path(p->in));
  } else {
    producer_progress_clear(p);
    log_warn("%s: no data records (empty file)", csvin_path(p->in));
  }
}

/* Read the clocks for the next record's send time, unless the last reading may serve it: see
 * PRODUCER_CLOCK_EVERY. Paced, every record reads them after its wait. */
static inline void producer_clock(producer *p) {
  if (p->clock_left == 0 || p->snd->clock_stale) {
    p->now_wall_us = clock_wall_us();
    p->now_mono_us = clock_mono_us();
    p->clock_left = p->unpaced ? PRODUCER_CLOCK_EVERY : 1;
    p->snd->clock_stale = 0;
  }
  p->clock_left--;
}

/* Read, pace and send until the input ends, --count is reached, a signal or an error. Returns
 * 0, 1 when stopped by a signal, or a negative code (the message already logged). A little
 * over 80 lines: the read-pace-send loop reads best whole, its steps are helpers already. */
static int producer_stream(producer *p) {
  char err[512];
  uint64_t this_pass = 0;      /* records read in this pass over the file */
  uint64_t pass_start_seq = 0; /* p->st.seq when this pass began */
  /* The message of every record: what changes per record is set below. */
  wire_msg m = producer_msg_at(p, WIRE_RECORD, 0, 0);
  int rc;

  for (;;) {
    csvin_rec rec;
    uint64_t due;
    if (*p->stop) {
      return 1;
    }
    if (p->opt->count != 0 && p->st.seq >= p->opt->count) {
      return 0;
    }
    rc = p->input_live ? producer_wait_input(p, err, sizeof err) : 0;
    if (rc == 1) {
      return 1;
    }
    if (rc != 0) {
      producer_progress_clear(p);
      log_error("%s", err);
      return rc;
    }
    rc = csvin_next(p->in, &rec);
    if (rc == 0) {
      if (p->st.records_read == 0) {
        producer_warn_no_data(p);
      }
      p->passes++;
      if (!p->opt->loop || this_pass == 0 ||
          (p->opt->loop_passes != 0 && p->passes >= p->opt->loop_passes)) {
        return 0;
      }
      if (p->st.seq == pass_start_seq) {
        /* Every record was skipped as too large: another pass would only repeat that. */
        producer_progress_clear(p);
        log_error("%s: --loop: no record of the file can be sent (all too large, see above); "
                  "stopping",
                  csvin_path(p->in));
        return 0;
      }
      rc = csvin_rewind(p->in);
      if (rc != 0) {
        producer_progress_clear(p);
        log_error("%s: cannot start over for --loop: %s", csvin_path(p->in), cs_strerror(rc));
        return rc;
      }
      if (p->slow) {
        producer_progress_clear(p);
        log_info("end of %s; starting over (--loop)", csvin_path(p->in));
      }
      this_pass = 0;
      pass_start_seq = p->st.seq;
      replay_restart(&p->replay); /* the file's clock starts again with the file */
      continue;
    }
    if (rc < 0) {
      producer_progress_clear(p);
      log_error("%s", csvin_error(p->in));
      return rc;
    }
    p->st.records_read++;
    this_pass++;
    producer_check_ragged(p, &rec);
    m.line = rec.line;
    m.nfields = (uint32_t)rec.nfields;
    m.fields = rec.fields;
    if (!producer_fits(p, &m)) {
      continue;
    }
    if (p->st.seq < p->st.resumed_after) {
      /* --resume: the consumer has this one (same numbering as the first run); not sent. */
      p->st.seq++;
      p->st.resume_skipped++;
      continue;
    }
    /* Unpaced, every record is due at once: no deadline to take and no wait. */
    due = p->unpaced ? 0 : p->replaying ? producer_replay_due(p, &rec) : pacer_take(&p->pacer);
    rc = due == 0 ? (*p->stop ? 1 : 0) : sender_wait_until(p->snd, due, err, sizeof err);
    if (rc == 1) {
      return 1;
    }
    if (rc == 0) {
      producer_clock(p); /* its time is read when it is sent (see producer_clock) */
      m.seq = ++p->st.seq;
      p->st.sent++;
      m.sent_us = p->now_wall_us;
      p->st.last_sent_us = p->now_mono_us;
      rc = p->snd->ops->send(p->snd, &m, p->unpaced ? 0 : pacer_peek(&p->pacer), err, sizeof err);
    }
    if (rc == 1) {
      return 1; /* a stop signal while the sender waited */
    }
    if (rc != 0) {
      producer_progress_clear(p);
      log_error("%s", err);
      return rc;
    }
    producer_progress(p);
  }
}

/* Resolve --host (every address: a TCP sender tries them in order), connect the sender and hand
 * it the HELLO. Returns 0 or a negative code (logged). */
static int producer_connect(producer *p) {
  net_addrs addrs;
  char err[512];
  wire_msg hello = producer_msg(p, WIRE_HELLO, 0);
  const csvin_rec *hdr = csvin_header(p->in);
  int rc;

  if (hdr != NULL) {
    hello.nfields = (uint32_t)hdr->nfields;
    hello.fields = hdr->fields;
  }
  rc = net_resolve_all(p->opt->host, p->opt->port, p->snd->ops->socktype, &addrs, err, sizeof err);
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  rc = sender_open(p->snd, &addrs, p->opt->host, err, sizeof err);
  snprintf(p->peer, sizeof p->peer, "%s", p->snd->peer);
  if (rc != 0) {
    log_error("%s", err);
    return rc;
  }
  p->sender_open = 1;
  rc = p->snd->ops->hello(p->snd, &hello, err, sizeof err);
  if (rc == CS_ETOOBIG) {
    char max[WORDS_BUF];
    log_error("%s: the header is larger than the protocol allows (max %s bytes)", csvin_path(p->in),
              words_count(max, sizeof max, WIRE_MAX_PAYLOAD));
  } else if (rc != 0) {
    log_error("cannot send the header to %s: %s", p->peer, cs_strerror(rc));
  }
  if (rc == 0 && p->opt->resume && p->snd->ops->resume_point != NULL) {
    rc = p->snd->ops->resume_point(p->snd, &p->st.resumed_after, err, sizeof err);
    if (rc < 0) {
      log_error("%s", err);
    } else if (rc == 0) {
      char n[WORDS_BUF];
      log_info("--resume: the consumer has stream '%s' up to #%s; going on after it", p->stream,
               words_count(n, sizeof n, p->st.resumed_after));
    }
  }
  return rc;
}

/* Open the input with the options' dialect and encoding, say what "auto" chose, and find the
 * --timestamps column. Returns 0, CS_EINVAL for a flag that does not fit the file (exit 2), or
 * another code; the message is in err. */
static int producer_open_input(producer *p, char *err, size_t errlen) {
  const producer_options *o = p->opt;
  csvin_dialect d;
  int rc;
  memset(&d, 0, sizeof d);
  d.delimiter = o->delimiter;
  d.delimiter_auto = o->delimiter_auto;
  d.encoding = o->encoding;
  d.skip_lines = o->skip_lines;
  d.comment = o->comment;
  d.warn_cb = producer_input_warning;
  d.warn_arg = p;
  rc = csvin_open_dialect(&p->in, o->path, !o->no_header, &d, err, errlen);
  if (rc != 0) {
    return rc == CS_EINVAL ? CS_EINVAL : CS_EIO;
  }
  if (csvin_choices(p->in)[0] != '\0') {
    log_info("%s: %s", csvin_path(p->in), csvin_choices(p->in));
  }
  /* As csvin_would_block decides: a regular file never waits for a writer, so the run need
   * not ask before each record. */
  struct stat sb;
  p->input_live = fstat(csvin_fd(p->in), &sb) != 0 || !S_ISREG(sb.st_mode);
  p->header = csvin_header(p->in);
  if (p->replaying) {
    return replay_init(&p->replay, o->timestamps, o->speed, o->max_gap_s, csvin_header(p->in),
                       csvin_path(p->in), err, errlen);
  }
  return 0;
}

/* The whole run; see producer.h. */
int producer_run(producer *p) {
  char err[512];
  sender_stats ss;
  int failed = 0;
  int rc;

  rc = producer_open_input(p, err, sizeof err);
  if (rc != 0) {
    log_error("%s", err);
    return rc == CS_EINVAL ? 2 : 1;
  }
  rc = producer_connect(p);
  if (rc != 0) {
    p->snd->ops->stats(p->snd, &ss);
    p->st.connection = ss.connection;
    if (*p->stop) {
      p->stopped = 1;
      return 130; /* Ctrl-C while connecting: nothing was sent, but it was asked for */
    }
    return 1;
  }
  log_info("streaming %s as stream '%s' (producer %016llx) over %s to %s%s", csvin_path(p->in),
           p->stream, (unsigned long long)p->producer_id, p->snd->ops->name, p->peer,
           p->slow        ? ""
           : p->replaying ? "; paced by the file's own clock (--timestamps): a progress line "
                            "every 3 s (on a terminal, one line kept up to date) instead of a "
                            "line per record"
                          : "; records under 0.1 s apart on average: a progress line every 3 s "
                            "(on a terminal, one line kept up to date) instead of a line per "
                            "record");
  p->st.start_us = clock_mono_us();
  p->last_progress_us = p->st.start_us;
  pacer_start(&p->pacer, p->st.start_us);

  rc = producer_stream(p);
  producer_progress_clear(p); /* the summary and the last log lines take its place */
  if (rc == 0) {
    /* The last coalesced bytes belong to the records' sending time. */
    rc = p->snd->ops->flush(p->snd, err, sizeof err);
    if (rc != 0) {
      log_error("%s", err);
    }
  }
  /* Duration and rate describe the records' sending, not END's repeats or the close. */
  p->st.end_us = clock_mono_us();
  if (rc == 1) {
    p->stopped = 1;
    char sent[WORDS_BUF];
    log_info("stopped by signal after %s; sending END",
             words_count_of(sent, sizeof sent, p->st.sent, "record", "records"));
  } else if (rc != 0) {
    failed = 1;
  }
  /* END tells the consumer the last seq; skip it only when the connection is already gone. */
  if (p->snd->ops->connected(p->snd)) {
    wire_msg end = producer_msg(p, WIRE_END, p->st.seq);
    rc = p->snd->ops->finish(p->snd, &end, 0, err, sizeof err);
    if (rc != 0) {
      log_error("%s", err);
      failed = 1;
    }
  }
  p->snd->ops->stats(p->snd, &ss);
  p->st.skipped_lines = csvin_skipped_lines(p->in);
  p->st.comment_lines = csvin_comment_lines(p->in);
  p->st.invalid_utf8_lines = csvin_invalid_utf8_lines(p->in);
  p->st.bytes = ss.bytes;
  p->st.written = ss.written;
  p->st.blocked_us = ss.blocked_us;
  p->st.ack_wait_us = ss.ack_wait_us;
  p->st.icmp_refused = ss.icmp_refused;
  p->st.connection = ss.connection;
  p->st.acknowledged = ss.acknowledged;
  p->st.acked = ss.acked;
  p->st.resent = ss.resent;
  p->st.reconnects = ss.reconnects;
  p->st.retry_wait_us = ss.retry_wait_us;
  /* Records the sender skipped (acknowledged before their turn) were handed over, not sent. */
  p->st.sent -= ss.skipped;
  p->st.resume_skipped += ss.skipped;
  if (ss.acknowledged && ss.acked - ss.skipped < p->st.sent - p->impair.dropped && !failed &&
      !p->stopped) {
    char a[WORDS_BUF], n[WORDS_BUF];
    log_error("only %s of %s were acknowledged by the consumer",
              words_count(a, sizeof a, ss.acked - ss.skipped),
              words_count_of(n, sizeof n, p->st.sent, "record", "records"));
    failed = 1;
  }
  if (p->st.too_big > 0) {
    char big[WORDS_BUF];
    log_error("not all records were sent: %s too large to send (see above)",
              words_count(big, sizeof big, p->st.too_big));
    failed = 1;
  }
  if (p->stopped) {
    return 130;
  }
  return failed ? 1 : 0;
}

/* Release everything; see producer.h. */
void producer_free(producer *p) {
  if (p->snd != NULL) {
    p->snd->ops->close(p->snd);
    p->snd = NULL;
  }
  csvin_close(p->in);
  p->in = NULL;
}
