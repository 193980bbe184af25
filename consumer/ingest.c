/* ingest.c -- one decoded message: protocol rules, stream lookup, the first-copy verdict, then
 * the sinks. No libuv: the listeners call it, and it answers with codes. */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "net.h"
#include "words.h"

/* Set up; see ingest.h. */
void ingest_init(ingest *in, streams *table, sinks *fanout, const consumer_options *opt) {
  memset(in, 0, sizeof(*in));
  in->table = table;
  in->sinks = fanout;
  in->max_records = opt->max_records;
  in->quiet = opt->quiet;
  lograte_init(&in->record_log, INGEST_RECORD_LOG_BURST, INGEST_RECORD_LOG_PER_S);
}

void ingest_peer_init(ingest_peer *p, int proto, const struct sockaddr *addr) {
  memset(p, 0, sizeof(*p));
  p->proto = proto;
  p->addr = addr;
}

/* The peer's address, formatted on first use; see ingest.h. */
const char *ingest_peer_name(ingest_peer *p) {
  if (p->name[0] == '\0') {
    if (p->addr != NULL) {
      net_format(p->addr, p->name, sizeof(p->name));
    } else {
      snprintf(p->name, sizeof(p->name), "?");
    }
  }
  return p->name;
}

const char *ingest_error(const ingest *in) {
  return in->err;
}

int ingest_exit_code(const ingest *in) {
  return in->exit_code;
}

/* Stop with exit code code: every later message gets CS_ESTOP too. */
static int ingest_stop(ingest *in, int code) {
  in->stopped = 1;
  if (code > in->exit_code) {
    in->exit_code = code;
  }
  return CS_ESTOP;
}

/* One INFO line per record while the rate is low (a burst of 10, then about 10 a second). */
static void ingest_log_record(ingest *in, const stream *e, ingest_peer *p, const wire_msg *m,
                              uint64_t now_us) {
  uint64_t lat = now_us > m->sent_us ? now_us - m->sent_us : 0;
  unsigned long long skipped;
  if (in->quiet || !lograte_allow(&in->record_log, clock_mono_us())) {
    return;
  }
  skipped = lograte_take_suppressed(&in->record_log);
  if (skipped > 0) {
    char more[WORDS_BUF];
    log_info("%s %s %s #%" PRIu64 ": %" PRIu32 " %s, latency %.1f ms (%s more since the last "
             "line)",
             e->sink.protocol, ingest_peer_name(p), e->label, m->seq, m->nfields,
             words_plural(m->nfields, "field", "fields"), (double)lat / 1000.0,
             words_count_of(more, sizeof more, skipped, "record", "records"));
  } else {
    log_info("%s %s %s #%" PRIu64 ": %" PRIu32 " %s, latency %.1f ms", e->sink.protocol,
             ingest_peer_name(p), e->label, m->seq, m->nfields,
             words_plural(m->nfields, "field", "fields"), (double)lat / 1000.0);
  }
}

/* A new stream's first HELLO: over TCP from a version 2 producer the stream is acknowledged,
 * and resumes where the sinks stand (what they kept before a restart). A version 1 producer
 * is said once: its records are not acknowledged. */
static void ingest_hello_acked(ingest *in, stream *e, ingest_peer *p, const wire_msg *m) {
  uint64_t base;
  if (p->proto != STREAM_TCP) {
    return;
  }
  if (m->version < 2) {
    if (!in->warned_v1) {
      in->warned_v1 = 1;
      log_warn("tcp %s: producer %016" PRIx64 " speaks protocol version 1: its records are not "
               "acknowledged (a newer producer resends what a crash could lose)",
               ingest_peer_name(p), m->producer_id);
    }
    return;
  }
  e->sink.acked = 1;
  sinks_resume(in->sinks, &e->sink);
  base = sinks_durable(in->sinks, &e->sink);
  if (base > 0) {
    seqwin_start_at(&e->win, base);
    stats_stream_resume(&e->stats, base);
    log_info("tcp %s: stream %s resumes after #%" PRIu64 " (stored before this consumer started)",
             ingest_peer_name(p), e->label, base);
  }
}

/* A HELLO: the stream's header, the first time; a different one later is reported once. */
static int ingest_hello(ingest *in, stream *e, ingest_peer *p, const wire_msg *m) {
  p->saw_hello = 1;
  if (p->proto == STREAM_TCP) {
    p->hello_stream = e;
    p->ack_due = 1;
  }
  if (!e->header_known) {
    if (stream_set_columns(e, m->fields, m->nfields) != 0) {
      log_error("out of memory for the header of stream %s; stopping", e->label);
      return ingest_stop(in, 1);
    }
    e->header_known = 1;
    ingest_hello_acked(in, e, p, m);
    char cols[WORDS_BUF];
    log_info("%s %s: stream %s from producer %016" PRIx64 " (%s)", stream_proto_name(p->proto),
             ingest_peer_name(p), e->label, e->sink.producer_id,
             words_count_of(cols, sizeof cols, e->sink.ncolumns, "column", "columns"));
  } else if (!e->warned_header && !stream_same_columns(e, m->fields, m->nfields)) {
    e->warned_header = 1;
    log_warn("%s %s: stream %s announced another header mid-stream; keeping the first one",
             stream_proto_name(p->proto), ingest_peer_name(p), e->label);
  }
  return 0;
}

/* 1 if m's sequence number is more than the window beyond the highest one seen for e (a
 * hostile peer's 2^64-2 would otherwise make every later record of the stream "too late" and
 * its loss count absurd): refused as garbage, and the stream's state does not move. what:
 * "record" or "end", for the message in in->err. */
static int ingest_beyond_window(ingest *in, const stream *e, const wire_msg *m, const char *what) {
  uint64_t top = seqwin_max(&e->win);
  if (m->seq <= top || m->seq - top <= SEQWIN_SIZE) {
    return 0;
  }
  snprintf(in->err, sizeof(in->err),
           "%s #%" PRIu64 " of stream %s is more than %u beyond the highest sequence number seen "
           "(#%" PRIu64 ")",
           what, m->seq, e->label, SEQWIN_SIZE, top);
  return 1;
}

/* A RECORD: accounted, and if it is the first copy of its number, handed to the sinks. */
static int ingest_record(ingest *in, stream *e, ingest_peer *p, const wire_msg *m,
                         uint64_t now_us) {
  sink_record r;
  const char *who;
  int verdict, rc;
  if (e == NULL || !e->header_known || (p->proto == STREAM_TCP && !p->saw_hello)) {
    char nm[64];
    snprintf(in->err, sizeof(in->err), "record #%" PRIu64 " of stream %s before its hello", m->seq,
             log_escape(nm, sizeof(nm), m->stream.data, m->stream.len));
    return CS_EPROTO;
  }
  if (ingest_beyond_window(in, e, m, "record")) {
    return CS_EPROTO;
  }
  if (in->max_records != 0 && in->delivered >= in->max_records) {
    return ingest_stop(in, 0);
  }
  if (e->refused) {
    return CS_EREFUSED; /* in->err still says why */
  }
  /* The window decides; the stats only count its verdict. Over an acknowledged stream a copy
   * is a resend after a reconnect (TCP itself never duplicates): counted apart. */
  verdict = seqwin_mark(&e->win, m->seq);
  if (e->sink.acked && !seqwin_is_new(verdict)) {
    e->resent_dropped++;
    return 0;
  }
  stats_stream_observe(&e->stats, verdict, m->seq, m->sent_us, now_us, m->frame_len);
  if (!seqwin_is_new(verdict)) {
    return 0; /* a duplicate, or too old to tell: counted, not stored again */
  }
  r.stream = &e->sink;
  r.seq = m->seq;
  r.sent_us = m->sent_us;
  r.received_us = now_us;
  r.nfields = m->nfields;
  r.fields = m->fields;
  rc = sinks_add(in->sinks, &r, &who);
  if (rc == 1) {
    e->resent_dropped++; /* every sink had it: resent after a restart */
    return 0;
  }
  if (rc == CS_EREFUSED) {
    e->refused = 1;
    snprintf(in->err, sizeof(in->err),
             "stream %s refused: the consumer's %s sink cannot store record #%" PRIu64
             " (the consumer's log says why)",
             e->label, who, m->seq);
    return CS_EREFUSED;
  }
  if (rc != 0) {
    return ingest_stop(in, 1); /* the sink logged why */
  }
  in->delivered++;
  p->records++;
  ingest_log_record(in, e, p, m, now_us);
  if (in->max_records != 0 && in->delivered >= in->max_records) {
    char n[WORDS_BUF];
    log_info("--max-records %s reached: stopping", words_count(n, sizeof n, in->max_records));
    return ingest_stop(in, 0);
  }
  return 0;
}

/* An END: the last sequence number sent, for trailing loss. One that announces fewer records
 * than arrived, or a number beyond the window, breaks the protocol and changes nothing. */
static int ingest_end(ingest *in, stream *e, ingest_peer *p, const wire_msg *m) {
  if (m->seq < seqwin_max(&e->win)) {
    snprintf(in->err, sizeof(in->err),
             "end of stream %s at #%" PRIu64 ", but record #%" PRIu64 " arrived", e->label, m->seq,
             seqwin_max(&e->win));
    return CS_EPROTO;
  }
  if (ingest_beyond_window(in, e, m, "end")) {
    return CS_EPROTO;
  }
  stats_stream_end(&e->stats, m->seq);
  if (!e->ended) {
    e->ended = 1;
    e->sink.ended = 1;
    char rec[WORDS_BUF], lost[WORDS_BUF], dup[WORDS_BUF];
    log_info("%s %s: stream %s ended at #%" PRIu64 ": %s received, %s lost, %s",
             stream_proto_name(p->proto), ingest_peer_name(p), e->label, m->seq,
             words_count(rec, sizeof rec, e->stats.c.received),
             words_count(lost, sizeof lost, stats_stream_lost(&e->stats)),
             words_count_of(dup, sizeof dup, e->stats.c.duplicates, "duplicate", "duplicates"));
  }
  return 0;
}

/* Remember which stream a CS_EREFUSED is about, for the REFUSE frame; returns rc. */
static int ingest_note_refused(ingest *in, const wire_msg *m, int rc) {
  if (rc == CS_EREFUSED) {
    in->refused_id = m->producer_id;
    in->refused_len = m->stream.len;
    memcpy(in->refused_stream, m->stream.data, m->stream.len);
  }
  return rc;
}

static int ingest_msg_one(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us);

/* One message; see ingest.h. */
int ingest_msg(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us) {
  return ingest_note_refused(in, m, ingest_msg_one(in, p, m, now_us));
}

/* ingest_msg without the note of a refusal. */
static int ingest_msg_one(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us) {
  stream *e;
  int rc;
  if (in->stopped) {
    return CS_ESTOP;
  }
  e = streams_find(in->table, p->proto, m->producer_id, m->stream.data, m->stream.len);
  if (e == NULL && (m->type == WIRE_HELLO || m->type == WIRE_END)) {
    rc = streams_add(in->table, p->proto, m->producer_id, m->stream.data, m->stream.len,
                     ingest_peer_name(p), &e);
    if (rc == CS_EREFUSED) {
      char nm[64];
      snprintf(in->err, sizeof(in->err),
               "stream %s refused: the consumer holds its limit of %d streams (restart it to "
               "take new ones)",
               log_escape(nm, sizeof(nm), m->stream.data, m->stream.len), STREAMS_MAX);
      return p->proto == STREAM_TCP && m->version >= 2 ? CS_EREFUSED : CS_EPROTO;
    }
    if (rc != 0) {
      log_error("out of memory for a new stream from %s/%s; stopping", ingest_peer_name(p),
                stream_proto_name(p->proto));
      return ingest_stop(in, 1);
    }
  }
  switch (m->type) {
  case WIRE_HELLO:
    return ingest_hello(in, e, p, m);
  case WIRE_RECORD:
    return ingest_record(in, e, p, m, now_us);
  case WIRE_END:
    return ingest_end(in, e, p, m);
  default:
    snprintf(in->err, sizeof(in->err), "unknown message type %d", m->type);
    return CS_EPROTO;
  }
}

/* Words for a decoder error; see ingest.h. */
const char *ingest_decode_error(int rc) {
  switch (rc) {
  case CS_EBADMAGIC:
    return "bad magic (not a csvstream producer?)";
  case CS_EVERSION:
    return "another protocol version (this consumer speaks versions 1 and 2)";
  case CS_ETYPE:
    return "unknown message type";
  case CS_ETOOBIG:
    return "frame longer than the 1 MiB limit";
  case CS_ETRUNCATED:
    return "datagram ends inside a frame";
  case CS_EMALFORMED:
    return "malformed frame";
  default:
    return cs_strerror(rc);
  }
}

/* Count garbage and log it, at most once a second per protocol; see ingest.h. */
void ingest_garbage(ingest *in, ingest_peer *p, const char *reason, const char *action) {
  ingest_proto *t = &in->proto[p->proto];
  unsigned long long skipped = t->garbage_log.suppressed;
  t->garbage++;
  if (!log_limiter_allow(&t->garbage_log, clock_mono_us(), INGEST_GARBAGE_LOG_INTERVAL_US)) {
    return;
  }
  t->garbage_log.suppressed = 0;
  if (skipped > 0) {
    char more[WORDS_BUF];
    log_warn("garbage from %s/%s: %s; %s (%s more since the last report)", ingest_peer_name(p),
             stream_proto_name(p->proto), reason, action, words_count(more, sizeof more, skipped));
  } else {
    log_warn("garbage from %s/%s: %s; %s", ingest_peer_name(p), stream_proto_name(p->proto), reason,
             action);
  }
}

/* See ingest.h. */
void ingest_finish(ingest *in) {
  if (in->record_log.suppressed > 0 && !in->quiet) {
    char more[WORDS_BUF];
    log_info("(%s more not logged one by one)",
             words_count_of(more, sizeof more, in->record_log.suppressed, "record", "records"));
  }
}

/* ---- unsequenced streams ------------------------------------------------------------------ */

/* Find or make an unsequenced stream; see ingest.h. */
int ingest_plain_stream(ingest *in, ingest_peer *p, uint64_t id, const char *name, size_t len,
                        const cs_field *columns, size_t n, stream **out) {
  stream *e;
  int rc;
  *out = NULL;
  if (in->stopped) {
    return CS_ESTOP;
  }
  e = streams_find(in->table, p->proto, id, name, len);
  if (e == NULL) {
    rc = streams_add(in->table, p->proto, id, name, len, ingest_peer_name(p), &e);
    if (rc == CS_EREFUSED) {
      char nm[64];
      snprintf(in->err, sizeof(in->err),
               "stream %s refused: the consumer holds its limit of %d streams (restart it to "
               "take new ones)",
               log_escape(nm, sizeof(nm), name, len), STREAMS_MAX);
      return CS_EREFUSED;
    }
    if (rc == 0) {
      rc = stream_set_columns(e, columns, n);
    }
    if (rc != 0) {
      log_error("out of memory for a new stream from %s/%s; stopping", ingest_peer_name(p),
                stream_proto_name(p->proto));
      return ingest_stop(in, 1);
    }
    e->header_known = 1;
    char cols[WORDS_BUF];
    log_info("%s %s: stream %s of plain CSV (%s; unsequenced: no loss or order is counted)",
             stream_proto_name(p->proto), ingest_peer_name(p), e->label,
             n > 0 ? words_count_of(cols, sizeof cols, n, "column", "columns")
                   : "no header: columns column_1..N");
  }
  *out = e;
  return 0;
}

/* One plain record's INFO line, within the same rate as the framed ones. */
static void ingest_plain_log(ingest *in, const stream *e, ingest_peer *p, size_t n) {
  unsigned long long skipped;
  if (in->quiet || !lograte_allow(&in->record_log, clock_mono_us())) {
    return;
  }
  skipped = lograte_take_suppressed(&in->record_log);
  if (skipped > 0) {
    char more[WORDS_BUF];
    log_info("%s %s %s #%" PRIu64 ": %zu %s (%s more since the last line)", e->sink.protocol,
             ingest_peer_name(p), e->label, e->stats.c.received, n,
             words_plural(n, "field", "fields"),
             words_count_of(more, sizeof more, skipped, "record", "records"));
  } else {
    log_info("%s %s %s #%" PRIu64 ": %zu %s", e->sink.protocol, ingest_peer_name(p), e->label,
             e->stats.c.received, n, words_plural(n, "field", "fields"));
  }
}

/* One plain record; see ingest.h. */
int ingest_plain_record(ingest *in, ingest_peer *p, stream *e, const cs_field *fields, size_t n,
                        size_t bytes, uint64_t now_us) {
  sink_record r;
  const char *who;
  int rc;
  if (in->stopped) {
    return CS_ESTOP;
  }
  if (in->max_records != 0 && in->delivered >= in->max_records) {
    return ingest_stop(in, 0);
  }
  stats_stream_observe_unsequenced(&e->stats, now_us, bytes);
  r.stream = &e->sink;
  r.seq = e->stats.c.received; /* the arrival order: 1, 2, 3 ... */
  r.sent_us = 0;               /* unknown: plain CSV carries no send time */
  r.received_us = now_us;
  r.nfields = n;
  r.fields = fields;
  rc = sinks_add(in->sinks, &r, &who);
  if (rc < 0) {
    return ingest_stop(in, 1); /* the sink logged why */
  }
  in->delivered++;
  p->records++;
  ingest_plain_log(in, e, p, n);
  if (in->max_records != 0 && in->delivered >= in->max_records) {
    char m[WORDS_BUF];
    log_info("--max-records %s reached: stopping", words_count(m, sizeof m, in->max_records));
    return ingest_stop(in, 0);
  }
  return 0;
}

/* The connection of a plain stream closed; see ingest.h. */
void ingest_plain_end(ingest *in, ingest_peer *p, stream *e) {
  char rec[WORDS_BUF];
  if (e == NULL || e->ended) {
    return;
  }
  e->ended = 1;
  e->sink.ended = 1;
  if (!in->quiet) {
    log_info("%s %s: stream %s ended: %s", stream_proto_name(p->proto), ingest_peer_name(p),
             e->label, words_count_of(rec, sizeof rec, e->stats.c.received, "record", "records"));
  }
}
