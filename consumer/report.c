/* report.c -- the consumer's live --stats line, its summary table and its --stats-json file. */
#include "report.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#include "clock.h"
#include "json.h"
#include "log.h"

/* 1 if the protocol is listened on (or has had streams). */
static int proto_used(const report_view *v, int proto) {
  return (proto == STREAM_TCP ? v->opt->tcp : v->opt->udp) || streams_of(v->table, proto) > 0;
}

/* Start the live line's rates now; see report.h. */
void report_live_init(report_live *l) {
  memset(l, 0, sizeof(*l));
  l->prev_us = clock_mono_us();
}

/* The live line; see report.h. */
void report_live_line(report_live *l, const report_view *v) {
  char line[512];
  size_t off = 0;
  uint64_t now = clock_mono_us();
  double secs = (double)(now - l->prev_us) / 1e6;
  int p;
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts t;
    int n;
    if (!proto_used(v, p)) {
      continue;
    }
    streams_totals(v->table, p, &t);
    n = snprintf(line + off, sizeof(line) - off,
                 "%s%s %" PRIu64 " received, %" PRIu64 " lost, %" PRIu64 " dup, %" PRIu64
                 " reordered, %.1f rec/s, p99 %.1f ms",
                 off > 0 ? " | " : "", stream_proto_name(p), t.received, t.lost, t.duplicates,
                 t.reordered, secs > 0 ? (double)(t.received - l->prev_received[p]) / secs : 0.0,
                 (double)stats_hist_percentile(&t.latency, 99.0) / 1000.0);
    if (n > 0 && (size_t)n < sizeof(line) - off) {
      off += (size_t)n;
    }
    if (p == STREAM_UDP && v->proto[p].kernel_drops_known) {
      n = snprintf(line + off, sizeof(line) - off, ", %" PRIu64 " kernel drops",
                   v->proto[p].kernel_drops);
      if (n > 0 && (size_t)n < sizeof(line) - off) {
        off += (size_t)n;
      }
    }
    l->prev_received[p] = t.received;
  }
  l->prev_us = now;
  /* LOG_ASKED: --quiet keeps the live line, which was asked for, and it is no warning. */
  log_msg(LOG_ASKED, "stats: %s", off > 0 ? line : "nothing yet");
}

/* One row of the table. */
static void summary_row(FILE *out, const char *proto, const char *name, const char *producer,
                        const stats_counts *t) {
  char rate[32];
  /* "-" when the records span too short a time for a rate to mean anything (stats.h). */
  if (stats_counts_rate_known(t)) {
    snprintf(rate, sizeof rate, "%.1f", stats_counts_rate(t));
  } else {
    snprintf(rate, sizeof rate, "-");
  }
  fprintf(out,
          "%-5s %-20.20s %-16s %9" PRIu64 " %7" PRIu64 " %6" PRIu64 " %7" PRIu64 " %11" PRIu64
          " %9s %8.2f %8.2f %8.2f %9.3f\n",
          proto, name, producer, t->received, t->lost, t->duplicates, t->reordered, t->bytes, rate,
          (double)stats_hist_percentile(&t->latency, 50.0) / 1000.0,
          (double)stats_hist_percentile(&t->latency, 99.0) / 1000.0,
          (double)t->latency.max / 1000.0, t->jitter_us / 1000.0);
}

/* The summary table; see report.h. */
void report_summary(const report_view *v, FILE *out) {
  const ingest_proto *tcp = &v->proto[STREAM_TCP], *udp = &v->proto[STREAM_UDP];
  int p;
  size_t i;
  fprintf(out, "\nconsumer summary\n");
  fprintf(out, "%-5s %-20s %-16s %9s %7s %6s %7s %11s %9s %8s %8s %8s %9s\n", "proto", "stream",
          "producer", "received", "lost", "dup", "reord", "bytes", "rec/s", "p50 ms", "p99 ms",
          "max ms", "jitter ms");
  for (p = 0; p < STREAM_NPROTO; p++) {
    stats_counts t;
    char all[32];
    if (!proto_used(v, p)) {
      continue;
    }
    streams_totals(v->table, p, &t);
    snprintf(all, sizeof(all), "(all %zu streams)", streams_of(v->table, p));
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
  if (proto_used(v, STREAM_TCP)) {
    fprintf(out, "tcp: %" PRIu64 " connections, %" PRIu64 " garbage (connections closed)",
            tcp->connections, tcp->garbage);
    if (tcp->timed_out > 0 || tcp->evicted > 0) {
      fprintf(out,
              ", %" PRIu64 " timed out (no hello, or an incomplete frame held too long), %" PRIu64
              " closed to keep incomplete frames under their cap",
              tcp->timed_out, tcp->evicted);
    }
    fprintf(out, "\n");
  }
  if (proto_used(v, STREAM_UDP)) {
    fprintf(out, "udp: %" PRIu64 " datagrams, %" PRIu64 " garbage, ", udp->datagrams, udp->garbage);
    if (udp->kernel_drops_known) {
      fprintf(out, "%" PRIu64 " dropped by the kernel (receive buffer full)\n", udp->kernel_drops);
    } else {
      fprintf(out, "kernel drops unknown\n");
    }
  }
  for (i = 0; i < v->table->n; i++) {
    const stream *e = v->table->v[i];
    if (e->stats.too_late > 0) {
      fprintf(out, "%s %s: %" PRIu64 " records arrived too late to tell from duplicates\n",
              e->sink.protocol, e->label, e->stats.too_late);
    }
  }
  sinks_report_text(v->sinks, out);
  fflush(out);
}

/* The --stats-json file; see report.h. */
int report_json(const report_view *v, const char *path, char *err, size_t errlen) {
  json_out j;
  int p, rc;
  size_t i;
  json_init(&j);
  json_object_begin(&j, NULL);
  for (p = 0; p < STREAM_NPROTO; p++) {
    const ingest_proto *t = &v->proto[p];
    stats_counts c;
    streams_totals(v->table, p, &c);
    json_object_begin(&j, stream_proto_name(p));
    stats_counts_json(&j, &c);
    json_uint(&j, "streams", streams_of(v->table, p));
    json_uint(&j, "garbage", t->garbage);
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
  for (i = 0; i < v->table->n; i++) {
    stream *e = v->table->v[i];
    char id[17];
    snprintf(id, sizeof(id), "%016" PRIx64, e->sink.producer_id);
    stats_stream_lost(&e->stats);
    json_object_begin(&j, NULL);
    json_string(&j, "protocol", e->sink.protocol);
    json_string(&j, "producer_id", id);
    json_string(&j, "stream", e->sink.name);
    json_string(&j, "peer", e->sink.peer);
    sinks_report_stream_json(v->sinks, &e->sink, &j); /* "file": the CSV file it went to */
    stats_counts_json(&j, &e->stats.c);
    json_uint(&j, "too_late", e->stats.too_late);
    json_bool(&j, "ended", e->ended);
    if (e->ended) {
      json_uint(&j, "last_seq", e->stats.announced_seq);
    } else {
      json_string(&j, "last_seq", NULL);
    }
    json_object_end(&j);
  }
  json_array_end(&j);
  sinks_report_json(v->sinks, &j); /* "out", "db" */
  json_object_end(&j);
  rc = json_write_file(&j, path, err, errlen);
  json_free(&j);
  return rc;
}
