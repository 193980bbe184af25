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
  /* 0 (options made by hand, as in tests): the defaults. */
  in->max_memory = opt->max_memory != 0 ? opt->max_memory : CONSUMER_MAX_MEMORY_DEFAULT;
  in->idle_us =
      opt->stream_idle_us != 0 ? opt->stream_idle_us : CONSUMER_STREAM_IDLE_DEFAULT_S * 1000000ull;
  lograte_init(&in->record_log, INGEST_RECORD_LOG_BURST, INGEST_RECORD_LOG_PER_S);
  lograte_init(&in->stream_log, INGEST_RECORD_LOG_BURST, INGEST_RECORD_LOG_PER_S);
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

/* One INFO line per record while the rate is low (a burst of 10, then about 10 a second). The
 * rate runs on now_us, the receive time the listener read once for all the frames of a read:
 * no clock is read per record. */
static void ingest_log_record(ingest *in, const stream *e, ingest_peer *p, const wire_msg *m,
                              uint64_t now_us) {
  uint64_t lat = now_us > m->sent_us ? now_us - m->sent_us : 0;
  unsigned long long skipped;
  if (in->quiet || !lograte_allow(&in->record_log, now_us)) {
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

/* The peer's serial, given at its first message: a number no other peer gets, so that a stream
 * can name its owner without keeping a pointer that a closed connection would leave dangling. */
static uint64_t ingest_serial(ingest *in, ingest_peer *p) {
  if (p->serial == 0) {
    p->serial = ++in->serials;
  }
  return p->serial;
}

/* 1 if the keys are equal; the time taken does not depend on where they differ. */
static int ingest_key_equal(const unsigned char *a, const unsigned char *b) {
  unsigned char d = 0;
  for (size_t i = 0; i < WIRE_KEY_LEN; i++) {
    d |= (unsigned char)(a[i] ^ b[i]);
  }
  return d == 0;
}

/* A frame of e from p that the stream's session key does not allow (how says why): counted as
 * spoofed and logged at most once a second per protocol. The key itself is never logged. */
static int ingest_spoofed(ingest *in, const stream *e, ingest_peer *p, const wire_msg *m,
                          const char *how) {
  ingest_proto *t = &in->proto[p->proto];
  unsigned long long skipped = t->spoofed_log.suppressed;
  t->spoofed++;
  snprintf(in->err, sizeof(in->err),
           "%s #%" PRIu64 " for stream %s of producer %016" PRIx64 " %s: the stream belongs to "
           "another sender (over TCP a restarted producer takes it over once the old connection "
           "is gone)",
           wire_type_name(m->type), m->seq, e->label, m->producer_id, how);
  if (!log_limiter_allow(&t->spoofed_log, clock_mono_us(), INGEST_GARBAGE_LOG_INTERVAL_US)) {
    return CS_ESPOOFED;
  }
  t->spoofed_log.suppressed = 0;
  if (skipped > 0) {
    char more[WORDS_BUF];
    log_warn("spoofed frame from %s/%s: %s; refused (%s more since the last report)",
             ingest_peer_name(p), stream_proto_name(p->proto), in->err,
             words_count(more, sizeof more, skipped));
  } else {
    log_warn("spoofed frame from %s/%s: %s; refused", ingest_peer_name(p),
             stream_proto_name(p->proto), in->err);
  }
  return CS_ESPOOFED;
}

/* A HELLO or END: the first one of a stream (created) fixes its session key, or its absence
 * (protocol versions 1 and 2); every later one must present the same, and makes p the owner
 * whose RECORDs are the stream's. An END of a stream without a key makes no owner (over TCP,
 * a connection's records need its HELLO). Returns 0 or CS_ESPOOFED. */
static int ingest_check_key(ingest *in, stream *e, ingest_peer *p, const wire_msg *m, int created) {
  int has = m->key != NULL;
  if (created) {
    const stream_ghost *g =
        streams_ghost(in->table, p->proto, m->producer_id, m->stream.data, m->stream.len);
    /* A retired stream's key still holds: over UDP, and over TCP but for a HELLO (a restarted
     * producer takes its stream over, as below). */
    if (g != NULL && (p->proto != STREAM_TCP || m->type != WIRE_HELLO) &&
        (g->keyed != has || (has && !ingest_key_equal(g->key, m->key)))) {
      e->keyed = g->keyed;
      memcpy(e->key, g->key, WIRE_KEY_LEN);
      return ingest_spoofed(in, e, p, m, "without the key of the stream it had");
    }
    e->keyed = has;
    if (has) {
      memcpy(e->key, m->key, WIRE_KEY_LEN);
    }
  } else if (e->keyed && !has) {
    return ingest_spoofed(in, e, p, m, "without the stream's session key");
  } else if (!e->keyed && has) {
    return ingest_spoofed(in, e, p, m, "with a session key, where the stream's sender had none");
  } else if (has && !ingest_key_equal(e->key, m->key)) {
    /* A restarted producer (--resume) has a new key: over TCP it may take over a stream whose
     * connection is gone, never one that is still being sent. */
    if (p->proto != STREAM_TCP || m->type != WIRE_HELLO || e->owner_live) {
      return ingest_spoofed(in, e, p, m, "with another session key");
    }
    memcpy(e->key, m->key, WIRE_KEY_LEN);
    log_warn("tcp %s: stream %s of producer %016" PRIx64 " taken over by a new session (its "
             "connection was gone: a restarted producer)",
             ingest_peer_name(p), e->label, m->producer_id);
  }
  if (m->type == WIRE_HELLO || e->keyed) {
    e->owner = ingest_serial(in, p);
    e->owner_live = p->proto == STREAM_TCP;
    if (p->proto == STREAM_TCP) {
      p->owns++;
    }
  }
  return 0;
}

/* A connection closes; see ingest.h. Only a connection that owned streams scans the table. */
void ingest_peer_close(ingest *in, ingest_peer *p) {
  if (p->hello_stream != NULL) {
    p->hello_stream->refs--;
    p->hello_stream = NULL;
  }
  if (p->owns == 0) {
    return;
  }
  for (size_t i = 0; i < in->table->n; i++) {
    stream *e = in->table->v[i];
    if (e->owner == p->serial) {
      e->owner_live = 0;
    }
  }
  p->owns = 0;
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
    if (p->hello_stream != e) {
      /* The connection points here now: the stream is not retired while it does. */
      if (p->hello_stream != NULL) {
        p->hello_stream->refs--;
      }
      e->refs++;
      p->hello_stream = e;
    }
    p->ack_due = 1;
  }
  if (!e->header_known) {
    if (streams_set_columns(in->table, e, m->fields, m->nfields) != 0) {
      log_error("out of memory for the header of stream %s; stopping", e->label);
      return ingest_stop(in, 1);
    }
    e->header_known = 1;
    ingest_hello_acked(in, e, p, m);
    if (lograte_allow(&in->stream_log, clock_mono_us())) {
      char cols[WORDS_BUF], more[WORDS_BUF + 40] = "";
      unsigned long long skipped = lograte_take_suppressed(&in->stream_log);
      if (skipped > 0) {
        char n[WORDS_BUF];
        snprintf(more, sizeof more, "; %s more since the last line",
                 words_count_of(n, sizeof n, skipped, "new stream", "new streams"));
      }
      log_info("%s %s: stream %s from producer %016" PRIx64 " (%s)%s", stream_proto_name(p->proto),
               ingest_peer_name(p), e->label, e->sink.producer_id,
               words_count_of(cols, sizeof cols, e->sink.ncolumns, "column", "columns"), more);
    }
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
  /* Over TCP a record needs its stream's HELLO on the same connection; a keyed stream's
   * records, over UDP too, need its key in front of them (the HELLO in the same datagram). */
  int owned = e != NULL && e->owner == ingest_serial(in, p);
  if (e != NULL && e->header_known && e->keyed && !owned) {
    return ingest_spoofed(in, e, p, m, "from a peer that did not present its session key");
  }
  if (e == NULL || !e->header_known || (p->proto == STREAM_TCP && !owned)) {
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
  e->win.no_grow = in->table->bytes + in->frame_bytes > in->max_memory;
  verdict = seqwin_mark(&e->win, m->seq);
  if (e->win.seen_bits != e->win_bits) {
    streams_recount(in->table, e);
  }
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
  if (p->proto == STREAM_TCP && e->header_known && e->owner != ingest_serial(in, p)) {
    snprintf(in->err, sizeof(in->err), "end of stream %s on a connection that sent no hello for it",
             e->label);
    return CS_EPROTO;
  }
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
    /* A header-only file: no record will make the sinks give the stream its place. */
    if (m->seq == 0 && e->header_known && e->sink.ncolumns > 0 && !e->refused &&
        sinks_ended_empty(in->sinks, &e->sink) != 0) {
      return ingest_stop(in, 1); /* the sink logged why */
    }
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
  if (rc == CS_EREFUSED || rc == CS_ESPOOFED) {
    in->refused_id = m->producer_id;
    in->refused_len = m->stream.len;
    memcpy(in->refused_stream, m->stream.data, m->stream.len);
  }
  return rc;
}

static int ingest_msg_one(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us);

/* A stream refused for a limit (the reason in in->err): over TCP from a version 2 or newer
 * producer, CS_EREFUSED (the listener tells it why, and counts it); from a version 1 one,
 * CS_EPROTO (it cannot be told: the connection closes as for garbage); over UDP counted as
 * refused, logged at most once a second, and CS_EREFUSED drops the rest of the datagram. */
static int ingest_refuse_new(ingest *in, ingest_peer *p, const wire_msg *m) {
  ingest_proto *t = &in->proto[p->proto];
  if (p->proto == STREAM_TCP) {
    return m->version >= 2 ? CS_EREFUSED : CS_EPROTO;
  }
  t->refused++;
  if (log_limiter_allow(&in->budget_log, clock_mono_us(), INGEST_GARBAGE_LOG_INTERVAL_US)) {
    unsigned long long skipped = in->budget_log.suppressed;
    char more[WORDS_BUF];
    in->budget_log.suppressed = 0;
    log_warn("%s %s: %s (%s refused since the last report)", stream_proto_name(p->proto),
             ingest_peer_name(p), in->err, words_count(more, sizeof more, skipped));
  }
  return CS_EREFUSED; /* counted and logged: the listener only stops reading the datagram */
}

/* Add a new stream if the memory budget and the table's limit let it in (framed and plain
 * streams alike). Returns 0 with *out set, CS_EREFUSED with the reason in in->err, or
 * CS_ENOMEM. */
static int ingest_admit(ingest *in, ingest_peer *p, uint64_t id, const char *name, size_t len,
                        stream **out) {
  char nm[64], mem[WORDS_BUF];
  int rc;
  if ((uint64_t)in->table->bytes + in->frame_bytes + streams_entry_cost(len, ingest_peer_name(p)) >
      in->max_memory) {
    snprintf(in->err, sizeof(in->err),
             "new stream %s refused: the consumer's memory budget (--max-memory %s) is in use "
             "by the streams it has",
             log_escape(nm, sizeof(nm), name, len), words_bytes(mem, sizeof mem, in->max_memory));
    return CS_EREFUSED;
  }
  rc = streams_add(in->table, p->proto, id, name, len, ingest_peer_name(p), out);
  if (rc == CS_EREFUSED) {
    snprintf(in->err, sizeof(in->err),
             "new stream %s refused: the consumer holds its limit of %d streams (ended and idle "
             "ones are retired after --stream-idle)",
             log_escape(nm, sizeof(nm), name, len), STREAMS_MAX);
  }
  return rc;
}

/* A stream seen for the first time in the table (a HELLO or END): the budget and the table's
 * limit decide whether it may come in; a ghost of it (retired before) says what it had seen,
 * and whose it was. Returns 0 with *out set, or a code for ingest_msg. */
static int ingest_new_stream(ingest *in, ingest_peer *p, const wire_msg *m, stream **out) {
  const stream_ghost *g =
      streams_ghost(in->table, p->proto, m->producer_id, m->stream.data, m->stream.len);
  stream *e;
  int rc, same_key = 0;
  *out = NULL;
  if (g != NULL && g->keyed) {
    same_key = m->key != NULL && ingest_key_equal(g->key, m->key);
  } else if (g != NULL) {
    same_key = m->key == NULL;
  }
  rc = ingest_admit(in, p, m->producer_id, m->stream.data, m->stream.len, &e);
  if (rc == CS_EREFUSED) {
    return ingest_refuse_new(in, p, m);
  }
  if (rc != 0) {
    log_error("out of memory for a new stream from %s/%s; stopping", ingest_peer_name(p),
              stream_proto_name(p->proto));
    return ingest_stop(in, 1);
  }
  if (g != NULL && same_key && !g->acked) {
    /* The same sender's stream, retired and now back (a late copy, or a long pause): what it
     * had seen counts as seen, so nothing is stored twice. Acknowledged streams resume from
     * the sinks instead. */
    seqwin_start_at(&e->win, g->top);
    stats_stream_resume(&e->stats, g->top);
    e->ended = g->ended;
    e->sink.ended = g->ended;
  }
  *out = e;
  return 0;
}

/* One message; see ingest.h. */
int ingest_msg(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us) {
  return ingest_note_refused(in, m, ingest_msg_one(in, p, m, now_us));
}

/* The stream m names, or NULL. Over TCP it is almost always the one of the connection's last
 * HELLO, which the connection holds (refs), so it is still in the table: compared first,
 * before the hash lookup. */
static stream *ingest_find(const ingest *in, const ingest_peer *p, const wire_msg *m) {
  stream *e = p->hello_stream;
  if (e != NULL && e->sink.producer_id == m->producer_id && e->name_len == m->stream.len &&
      e->proto == p->proto && memcmp(e->sink.name, m->stream.data, m->stream.len) == 0) {
    return e;
  }
  return streams_find(in->table, p->proto, m->producer_id, m->stream.data, m->stream.len);
}

/* ingest_msg without the note of a refusal. */
static int ingest_msg_one(ingest *in, ingest_peer *p, const wire_msg *m, uint64_t now_us) {
  stream *e;
  int rc, created = 0;
  if (in->stopped) {
    return CS_ESTOP;
  }
  e = ingest_find(in, p, m);
  if (e == NULL && (m->type == WIRE_HELLO || m->type == WIRE_END)) {
    rc = ingest_new_stream(in, p, m, &e);
    if (rc != 0) {
      return rc;
    }
    created = 1;
  }
  if (e != NULL) {
    e->seen_us = now_us;
  }
  if (e != NULL && (m->type == WIRE_HELLO || m->type == WIRE_END)) {
    rc = ingest_check_key(in, e, p, m, created);
    if (rc != 0) {
      return rc;
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

/* Retire what ended or went idle; see ingest.h. */
size_t ingest_retire(ingest *in, uint64_t now_us) {
  size_t n = 0, i = in->table->n;
  while (i-- > 0) {
    stream *e = in->table->v[i];
    uint64_t idle = now_us > e->seen_us ? now_us - e->seen_us : 0;
    uint64_t limit = in->idle_us;
    if (e->ended && limit > INGEST_ENDED_KEEP_US) {
      limit = INGEST_ENDED_KEEP_US;
    }
    if (idle < limit || e->refs > 0 || e->owner_live || sinks_hold(in->sinks, &e->sink)) {
      continue;
    }
    /* Described before the sinks forget it: its file and table names come from them. */
    char *json = in->describe != NULL ? in->describe(in->describe_arg, e) : NULL;
    sinks_forget(in->sinks, &e->sink);
    streams_retire(in->table, e, json);
    n++;
  }
  if (n > 0 && !in->quiet) {
    char c[WORDS_BUF], left[WORDS_BUF];
    log_info("retired %s (ended, or no frame for --stream-idle); %s in the table",
             words_count_of(c, sizeof c, n, "stream", "streams"),
             words_count_of(left, sizeof left, in->table->n, "stream", "streams"));
  }
  return n;
}

size_t ingest_frame_cap(const ingest *in) {
  size_t floor = 2 * ((size_t)WIRE_MAX_PAYLOAD + WIRE_HEADER_LEN);
  size_t half = (size_t)(in->max_memory / 2);
  size_t left = in->table->bytes < in->max_memory ? (size_t)(in->max_memory - in->table->bytes) : 0;
  size_t cap = left < half ? left : half;
  return cap > floor ? cap : floor;
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
    rc = ingest_admit(in, p, id, name, len, &e);
    if (rc == CS_EREFUSED) {
      return CS_EREFUSED; /* in->err says why */
    }
    if (rc == 0) {
      rc = streams_set_columns(in->table, e, columns, n);
    }
    if (rc != 0) {
      log_error("out of memory for a new stream from %s/%s; stopping", ingest_peer_name(p),
                stream_proto_name(p->proto));
      return ingest_stop(in, 1);
    }
    e->header_known = 1;
    e->seen_us = clock_wall_us();
    char cols[WORDS_BUF];
    log_info("%s %s: stream %s of plain CSV (%s; unsequenced: no loss or order is counted)",
             stream_proto_name(p->proto), ingest_peer_name(p), e->label,
             n > 0 ? words_count_of(cols, sizeof cols, n, "column", "columns")
                   : "no header: columns column_1..N");
  }
  if (p->hello_stream != e && p->proto == STREAM_PLAIN_TCP) {
    /* The connection keeps the pointer: the stream is not retired while it is open. */
    if (p->hello_stream != NULL) {
      p->hello_stream->refs--;
    }
    e->refs++;
    p->hello_stream = e;
  }
  *out = e;
  return 0;
}

/* One plain record's INFO line, within the same rate as the framed ones. */
static void ingest_plain_log(ingest *in, const stream *e, ingest_peer *p, size_t n,
                             uint64_t now_us) {
  unsigned long long skipped;
  if (in->quiet || !lograte_allow(&in->record_log, now_us)) {
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
  e->seen_us = now_us;
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
  ingest_plain_log(in, e, p, n, now_us);
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
