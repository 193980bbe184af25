/* report.c -- the consumer's live --stats line, its summary table and its --stats-json file. */
#include "report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#include "clock.h"
#include "json.h"
#include "log.h"
#include "words.h"

/* 1 if a plain CSV protocol is listened on (--plain-port) or has had streams. */
static int report_plain_used(const report_view *v, int proto) {
  int on = v->opt->plain_port != 0 && (proto == STREAM_PLAIN_TCP ? v->opt->tcp : v->opt->udp);
  return on || streams_of(v->table, proto) > 0;
}

/* 1 if the protocol is listened on (or has had streams). */
static int proto_used(const report_view *v, int proto) {
  if (!stream_proto_sequenced(proto)) {
    return report_plain_used(v, proto);
  }
  return (proto == STREAM_TCP ? v->opt->tcp : v->opt->udp) || streams_of(v->table, proto) > 0;
}

/* 1 if the protocol has been used: a stream, a connection, a datagram or garbage. Listening
 * alone is not use: the live line leaves such a protocol's zeros out. */
static int proto_active(const report_view *v, int proto) {
  const ingest_proto *t = &v->proto[proto];
  return streams_of(v->table, proto) > 0 || t->connections > 0 || t->datagrams > 0 ||
         t->garbage > 0;
}

/* Start the live line's rates now; see report.h. */
void report_live_init(report_live *l) {
  memset(l, 0, sizeof(*l));
  l->prev_us = clock_mono_us();
}

/* The counts the live line watches, for one protocol. */
static void report_live_snapshot(const report_view *v, int p, const stats_counts *t,
                                 report_live_counts *out) {
  const ingest_proto *x = &v->proto[p];
  size_t i;
  memset(out, 0, sizeof(*out));
  out->received = t->received;
  out->lost = t->lost;
  out->duplicates = t->duplicates;
  out->reordered = t->reordered;
  for (i = 0; i < v->table->n; i++) {
    if (v->table->v[i]->proto == p) {
      out->too_late += v->table->v[i]->stats.too_late;
    }
  }
  out->streams = streams_of(v->table, p);
  out->garbage = x->garbage;
  out->connections = x->connections;
  out->datagrams = x->datagrams;
  out->kernel_drops = x->kernel_drops_known ? x->kernel_drops : 0;
}

/* A plain CSV protocol's part of the live line: unsequenced, so received, garbage, rate. */
static size_t report_live_plain_part(char *line, size_t cap, size_t off, const report_view *v,
                                     int p, const stats_counts *t, uint64_t new_received,
                                     uint64_t span_us) {
  char rec[WORDS_BUF], garbage[WORDS_BUF], rate[WORDS_BUF];
  int n = snprintf(line + off, cap - off, "%s%s %s received (unsequenced), %s garbage, %s rec/s",
                   off > 0 ? " | " : "", stream_proto_name(p),
                   words_count(rec, sizeof rec, t->received),
                   words_count(garbage, sizeof garbage, v->proto[p].garbage),
                   words_rate(rate, sizeof rate, new_received, span_us));
  if (n > 0 && (size_t)n < cap - off) {
    off += (size_t)n;
  }
  return off;
}

/* Append one protocol's part of the live line to line (cap bytes, off used). */
static size_t report_live_part(char *line, size_t cap, size_t off, const report_view *v, int p,
                               const stats_counts *t, uint64_t new_received, uint64_t span_us) {
  char rec[WORDS_BUF], lost[WORDS_BUF], dup[WORDS_BUF], reord[WORDS_BUF], rate[WORDS_BUF];
  int n;
  if (!stream_proto_sequenced(p)) {
    return report_live_plain_part(line, cap, off, v, p, t, new_received, span_us);
  }
  n = snprintf(line + off, cap - off,
               "%s%s %s received, %s lost, %s dup, %s reordered, %s rec/s, p99 %.1f ms",
               off > 0 ? " | " : "", stream_proto_name(p),
               words_count(rec, sizeof rec, t->received), words_count(lost, sizeof lost, t->lost),
               words_count(dup, sizeof dup, t->duplicates),
               words_count(reord, sizeof reord, t->reordered),
               words_rate(rate, sizeof rate, new_received, span_us),
               (double)stats_hist_percentile(&t->latency, 99.0) / 1000.0);
  if (n > 0 && (size_t)n < cap - off) {
    off += (size_t)n;
  }
  if (p == STREAM_UDP && v->proto[p].kernel_drops_known) {
    char drops[WORDS_BUF];
    n = snprintf(line + off, cap - off, ", %s",
                 words_count_of(drops, sizeof drops, v->proto[p].kernel_drops, "kernel drop",
                                "kernel drops"));
    if (n > 0 && (size_t)n < cap - off) {
      off += (size_t)n;
    }
  }
  return off;
}

/* The live line; see report.h. */
int report_live_line(report_live *l, const report_view *v) {
  char line[512];
  size_t off = 0;
  uint64_t now = clock_mono_us();
  int p, changed = 0;
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts t;
    report_live_counts c;
    if (!proto_active(v, p)) {
      continue;
    }
    streams_totals(v->table, p, &t);
    report_live_snapshot(v, p, &t, &c);
    if (memcmp(&c, &l->prev[p], sizeof(c)) != 0) {
      changed = 1;
    }
    off = report_live_part(line, sizeof(line), off, v, p, &t, c.received - l->prev[p].received,
                           now - l->prev_us);
    l->prev[p] = c;
  }
  l->prev_us = now;
  if (!changed) {
    return 0; /* idle, or nothing used yet: no line */
  }
  /* LOG_ASKED: --quiet keeps the live line, which was asked for, and it is no warning. */
  log_msg(LOG_ASKED, "stats: %s", line);
  return 1;
}

/* One row of the table. */
static void summary_row(FILE *out, const char *proto, const char *name, const char *producer,
                        const stats_counts *t) {
  char rate[WORDS_BUF], rec[WORDS_BUF], lost[WORDS_BUF], dup[WORDS_BUF], reord[WORDS_BUF],
      bytes[WORDS_BUF];
  /* "-" when the records span too short a time for a rate to mean anything (stats.h). */
  if (stats_counts_rate_known(t)) {
    words_rate(rate, sizeof rate, t->received > 0 ? t->received - 1 : 0, t->last_us - t->first_us);
  } else {
    snprintf(rate, sizeof rate, "-");
  }
  fprintf(out, "%-5s %-20.20s %-16s %9s %7s %6s %7s %11s %9s %8.2f %8.2f %8.2f %9.3f\n", proto,
          name, producer, words_count(rec, sizeof rec, t->received),
          words_count(lost, sizeof lost, t->lost), words_count(dup, sizeof dup, t->duplicates),
          words_count(reord, sizeof reord, t->reordered),
          words_count(bytes, sizeof bytes, t->bytes), rate,
          (double)stats_hist_percentile(&t->latency, 50.0) / 1000.0,
          (double)stats_hist_percentile(&t->latency, 99.0) / 1000.0,
          (double)t->latency.max / 1000.0, t->jitter_us / 1000.0);
}

/* The lines under the table: per protocol, then per stream (too late, no END). */
static void summary_notes(const report_view *v, FILE *out) {
  const ingest_proto *tcp = &v->proto[STREAM_TCP], *udp = &v->proto[STREAM_UDP];
  char a[WORDS_BUF], b[WORDS_BUF];
  size_t i;
  if (proto_used(v, STREAM_TCP)) {
    fprintf(out, "tcp: %s, %s garbage (connections closed)",
            words_count_of(a, sizeof a, tcp->connections, "connection", "connections"),
            words_count(b, sizeof b, tcp->garbage));
    if (tcp->timed_out > 0 || tcp->evicted > 0) {
      fprintf(out,
              ", %s timed out (no hello, or an incomplete frame held too long), %s closed to "
              "keep incomplete frames under their cap",
              words_count(a, sizeof a, tcp->timed_out), words_count(b, sizeof b, tcp->evicted));
    }
    if (tcp->spoofed > 0) {
      fprintf(out, ", %s without the stream's session key (refused)",
              words_count_of(a, sizeof a, tcp->spoofed, "spoofed frame", "spoofed frames"));
    }
    fprintf(out, "\n");
  }
  if (proto_used(v, STREAM_UDP)) {
    fprintf(out, "udp: %s, %s garbage, ",
            words_count_of(a, sizeof a, udp->datagrams, "datagram", "datagrams"),
            words_count(b, sizeof b, udp->garbage));
    if (udp->spoofed > 0) {
      fprintf(out, "%s without the stream's session key (ignored), ",
              words_count_of(a, sizeof a, udp->spoofed, "spoofed datagram", "spoofed datagrams"));
    }
    if (udp->kernel_drops_known) {
      fprintf(out, "%s dropped by the kernel (receive buffer full)\n",
              words_count(a, sizeof a, udp->kernel_drops));
    } else {
      fprintf(out, "kernel drops unknown\n");
    }
  }
  for (int p = 0; p < STREAM_NPROTO; p++) {
    const ingest_proto *t = &v->proto[p];
    if (v->table->nretired[p] > 0) {
      fprintf(out, "%s: %s retired (ended, or idle for --stream-idle): in the totals, not listed\n",
              stream_proto_name(p),
              words_count_of(a, sizeof a, v->table->nretired[p], "stream", "streams"));
    }
    if (t->refused > 0) {
      fprintf(out,
              "%s: %s refused (the memory budget, the stream table, or a sink that cannot "
              "keep it: the log says which)\n",
              stream_proto_name(p), words_count_of(a, sizeof a, t->refused, "stream", "streams"));
    }
  }
  for (i = 0; i < v->table->n; i++) {
    const stream *e = v->table->v[i];
    if (e->stats.too_late > 0) {
      fprintf(out, "%s %s: %s arrived too late to tell from duplicates\n", e->sink.protocol,
              e->label, words_count_of(a, sizeof a, e->stats.too_late, "record", "records"));
    }
    if (!e->ended && stream_proto_sequenced(e->proto)) {
      fprintf(out, "%s %s: incomplete (no END: the producer stopped or was cut off)\n",
              e->sink.protocol, e->label);
    }
  }
}

/* One row of the plain CSV table. */
static void summary_plain_row(FILE *out, const char *proto, const char *name, const stats_counts *t,
                              uint64_t garbage, int total) {
  char rate[WORDS_BUF], rec[WORDS_BUF], bytes[WORDS_BUF], g[WORDS_BUF];
  if (stats_counts_rate_known(t)) {
    words_rate(rate, sizeof rate, t->received > 0 ? t->received - 1 : 0, t->last_us - t->first_us);
  } else {
    snprintf(rate, sizeof rate, "-");
  }
  fprintf(out, "%-9s %-24.24s %9s %11s %9s %8s\n", proto, name,
          words_count(rec, sizeof rec, t->received), words_count(bytes, sizeof bytes, t->bytes),
          rate, total ? words_count(g, sizeof g, garbage) : "");
}

/* Under the plain CSV table: connections, datagrams and what was closed or dropped. */
static void summary_plain_notes(const report_view *v, FILE *out) {
  const ingest_proto *tcp = &v->proto[STREAM_PLAIN_TCP], *udp = &v->proto[STREAM_PLAIN_UDP];
  char a[WORDS_BUF], b[WORDS_BUF], c[WORDS_BUF], d[WORDS_BUF];
  if (proto_used(v, STREAM_PLAIN_TCP)) {
    fprintf(out,
            "plain-tcp: %s, %s garbage (connections closed: a record over 1 MiB or broken "
            "quoting), %s timed out, %s evicted\n",
            words_count_of(a, sizeof a, tcp->connections, "connection", "connections"),
            words_count(b, sizeof b, tcp->garbage), words_count(c, sizeof c, tcp->timed_out),
            words_count(d, sizeof d, tcp->evicted));
  }
  if (proto_used(v, STREAM_PLAIN_UDP)) {
    fprintf(out, "plain-udp: %s, %s garbage (the rest of a datagram dropped)\n",
            words_count_of(a, sizeof a, udp->datagrams, "datagram", "datagrams"),
            words_count(b, sizeof b, udp->garbage));
  }
}

/* The plain CSV streams (--plain-port): unsequenced, so no loss, duplicate or order columns. */
static void summary_plain(const report_view *v, FILE *out) {
  int p, header = 0;
  size_t i;
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts t;
    char all[32], n[WORDS_BUF];
    if (stream_proto_sequenced(p) || !proto_used(v, p)) {
      continue;
    }
    if (!header) {
      fprintf(out, "plain CSV (unsequenced: no loss, duplicates or order can be counted)\n");
      fprintf(out, "%-9s %-24s %9s %11s %9s %8s\n", "proto", "stream", "received", "bytes", "rec/s",
              "garbage");
      header = 1;
    }
    streams_totals(v->table, p, &t);
    snprintf(all, sizeof(all), "(all %s)",
             words_count_of(n, sizeof n, streams_of(v->table, p), "stream", "streams"));
    summary_plain_row(out, stream_proto_name(p), all, &t, v->proto[p].garbage, 1);
    for (i = 0; i < v->table->n; i++) {
      const stream *e = v->table->v[i];
      if (e->proto == p) {
        summary_plain_row(out, stream_proto_name(p), e->label, &e->stats.c, 0, 0);
      }
    }
  }
  summary_plain_notes(v, out);
}

/* The summary table; see report.h. */
void report_summary(const report_view *v, FILE *out) {
  int p;
  size_t i;
  fprintf(out, "\nconsumer summary\n");
  fprintf(out, "%-5s %-20s %-16s %9s %7s %6s %7s %11s %9s %8s %8s %8s %9s\n", "proto", "stream",
          "producer", "received", "lost", "dup", "reord", "bytes", "rec/s", "p50 ms", "p99 ms",
          "max ms", "jitter ms");
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts t;
    char all[32], n[WORDS_BUF];
    if (!stream_proto_sequenced(p) || !proto_used(v, p)) {
      continue; /* plain CSV: its own table below */
    }
    streams_totals(v->table, p, &t);
    snprintf(all, sizeof(all), "(all %s)",
             words_count_of(n, sizeof n, streams_of(v->table, p) + v->table->nretired[p], "stream",
                            "streams"));
    summary_row(out, stream_proto_name(p), all, "", &t);
    for (i = 0; i < v->table->n; i++) {
      const stream *e = v->table->v[i];
      char id[17];
      if (e->proto != p) {
        continue;
      }
      snprintf(id, sizeof(id), "%016" PRIx64, e->sink.producer_id);
      summary_row(out, stream_proto_name(p), e->label, id, &e->stats.c);
    }
  }
  summary_plain(v, out);
  summary_notes(v, out);
  sinks_report_text(v->sinks, out);
  fflush(out);
}

/* A plain CSV protocol's object in the JSON document (unsequenced: no loss keys). */
static void report_json_plain_proto(const report_view *v, int p, json_out *j) {
  const ingest_proto *t = &v->proto[p];
  stats_counts c;
  streams_totals(v->table, p, &c);
  json_object_begin(j, stream_proto_name(p));
  json_bool(j, "sequenced", 0);
  json_uint(j, "received", c.received);
  json_uint(j, "bytes", c.bytes);
  if (stats_counts_rate_known(&c)) {
    json_double(j, "records_per_s", stats_counts_rate(&c));
  } else {
    json_string(j, "records_per_s", NULL);
  }
  json_uint(j, "streams", streams_of(v->table, p));
  json_uint(j, "garbage", t->garbage);
  if (p == STREAM_PLAIN_TCP) {
    json_uint(j, "connections", t->connections);
    json_uint(j, "timed_out", t->timed_out);
    json_uint(j, "evicted", t->evicted);
  } else {
    json_uint(j, "datagrams", t->datagrams);
  }
  json_object_end(j);
}

/* A plain CSV stream's object in the "streams" array. */
static void report_json_plain_stream(const report_view *v, stream *e, int retired, json_out *j) {
  json_object_begin(j, NULL);
  json_string(j, "protocol", e->sink.protocol);
  json_bool(j, "sequenced", 0);
  json_string(j, "producer_id", e->sink.producer_hex);
  json_string(j, "stream", e->sink.name);
  json_string(j, "peer", e->sink.peer);
  sinks_report_stream_json(v->sinks, &e->sink, j);
  json_uint(j, "received", e->stats.c.received);
  json_uint(j, "bytes", e->stats.c.bytes);
  if (stats_counts_rate_known(&e->stats.c)) {
    json_double(j, "records_per_s", stats_counts_rate(&e->stats.c));
  } else {
    json_string(j, "records_per_s", NULL);
  }
  json_bool(j, "ended", e->ended);
  json_bool(j, "retired", retired);
  json_object_end(j);
}

/* One stream's object of the "streams" array; retired: it is leaving the table now. */
static void report_stream_object(const report_view *v, stream *e, int retired, json_out *j) {
  char id[17];
  if (!stream_proto_sequenced(e->proto)) {
    report_json_plain_stream(v, e, retired, j);
    return;
  }
  snprintf(id, sizeof(id), "%016" PRIx64, e->sink.producer_id);
  stats_stream_lost(&e->stats);
  json_object_begin(j, NULL);
  json_string(j, "protocol", e->sink.protocol);
  json_string(j, "producer_id", id);
  json_string(j, "stream", e->sink.name);
  json_string(j, "peer", e->sink.peer);
  sinks_report_stream_json(v->sinks, &e->sink, j); /* "file": the CSV file it went to */
  stats_counts_json(j, &e->stats.c);
  json_uint(j, "too_late", e->stats.too_late);
  /* Acknowledged delivery (TCP, protocol version 2): the number acknowledged, durable in
   * every sink, and the resent copies dropped; null and 0 for a stream not acknowledged. */
  if (e->sink.acked) {
    json_uint(j, "acked", sinks_durable(v->sinks, &e->sink));
  } else {
    json_string(j, "acked", NULL);
  }
  json_uint(j, "resent_dropped", e->resent_dropped);
  json_bool(j, "ended", e->ended);
  if (e->ended) {
    json_uint(j, "last_seq", e->stats.announced_seq);
  } else {
    json_string(j, "last_seq", NULL);
  }
  json_bool(j, "retired", retired);
  json_object_end(j);
}

/* A retiring stream's object; see report.h. */
char *report_stream_json(const report_view *v, stream *e) {
  json_out j;
  char *out = NULL;
  json_init(&j);
  report_stream_object(v, e, 1, &j);
  if (!j.failed && cs_buf_append(&j.buf, "", 1) == 0) {
    out = malloc(j.buf.len);
    if (out != NULL) {
      memcpy(out, j.buf.data, j.buf.len);
    }
  }
  json_free(&j);
  return out;
}

static int report_json_build(const report_view *v, const char *path, report_json_extra extra,
                             void *arg, json_out *keep, char *err, size_t errlen);

/* The --stats-json file; see report.h. */
int report_json(const report_view *v, const char *path, char *err, size_t errlen) {
  return report_json_build(v, path, NULL, NULL, NULL, err, errlen);
}

/* The document into *out; see report.h. */
void report_json_doc(const report_view *v, report_json_extra extra, void *arg, json_out *out) {
  (void)report_json_build(v, NULL, extra, arg, out, NULL, 0);
}

/* Build the document (extra adds members at its end), then write it to path, or hand it to
 * *keep (json_init'ed here; the caller frees it). Returns 0 or json_write_file's code. */
static int report_json_build(const report_view *v, const char *path, report_json_extra extra,
                             void *arg, json_out *keep, char *err, size_t errlen) {
  json_out j;
  int p, rc;
  size_t i;
  json_init(&j);
  json_object_begin(&j, NULL);
  for (p = 0; p < STREAM_NPROTO; p++) {
    const ingest_proto *t = &v->proto[p];
    stats_counts c;
    if (!stream_proto_sequenced(p)) {
      if (proto_used(v, p)) {
        report_json_plain_proto(v, p, &j);
      }
      continue;
    }
    streams_totals(v->table, p, &c);
    json_object_begin(&j, stream_proto_name(p));
    stats_counts_json(&j, &c);
    json_uint(&j, "streams", streams_of(v->table, p));
    json_uint(&j, "retired_streams", v->table->nretired[p]);
    json_uint(&j, "refused", t->refused);
    json_uint(&j, "garbage", t->garbage);
    json_uint(&j, "spoofed", t->spoofed);
    if (p == STREAM_TCP) {
      json_uint(&j, "connections", t->connections);
      json_uint(&j, "timed_out", t->timed_out);
      json_uint(&j, "evicted", t->evicted);
    } else {
      json_uint(&j, "datagrams", t->datagrams);
      if (t->kernel_drops_known) {
        json_uint(&j, "kernel_drops", t->kernel_drops);
      } else {
        json_string(&j, "kernel_drops", NULL);
      }
    }
    json_object_end(&j);
  }
  json_array_begin(&j, "streams");
  /* The latest retired streams first, as they were when they left (oldest first), then the
   * streams in the table. */
  for (i = 0; i < v->table->listed_n; i++) {
    const char *text = streams_listed(v->table, i);
    json_raw(&j, NULL, text, strlen(text));
  }
  for (i = 0; i < v->table->n; i++) {
    report_stream_object(v, v->table->v[i], 0, &j);
  }
  json_array_end(&j);
  /* Streams that left the table (ended, or idle for --stream-idle): summed per protocol, as
   * they are in the totals above. */
  json_object_begin(&j, "retired_streams");
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts r = v->table->retired[p];
    if (!stream_proto_sequenced(p) && !proto_used(v, p)) {
      continue; /* plain CSV appears only with --plain-port, as above */
    }
    json_object_begin(&j, stream_proto_name(p));
    stats_counts_json(&j, &r);
    json_object_end(&j);
  }
  /* Retired streams not in the "streams" array (only the latest are kept there). */
  json_uint(&j, "unlisted", v->table->unlisted);
  json_object_end(&j);
  sinks_report_json(v->sinks, &j); /* "out", "db" */
  if (extra != NULL) {
    extra(&j, arg);
  }
  json_object_end(&j);
  if (keep != NULL) {
    *keep = j; /* the caller's now */
    return 0;
  }
  rc = json_write_file(&j, path, err, errlen);
  json_free(&j);
  return rc;
}
