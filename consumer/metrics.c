/* metrics.c -- the Prometheus text for GET /metrics and the --stats-format json line. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "json.h"

/* The latency histogram's buckets, in seconds (Prometheus "le"): 100 µs to 10 s. */
static const double metrics_latency_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                            1,      2.5,     5,      10};

/* The text under construction; a failed append is remembered, not returned each time. */
typedef struct prom {
  cs_buf *out;
  int failed;
} prom;

static void prom_printf(prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void prom_printf(prom *p, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0) {
    return;
  }
  if ((size_t)n >= sizeof(line)) {
    n = (int)sizeof(line) - 1;
  }
  if (!p->failed && cs_buf_append(p->out, line, (size_t)n) != 0) {
    p->failed = 1;
  }
}

/* HELP and TYPE, once before a family's samples. */
static void prom_family(prom *p, const char *name, const char *type, const char *help) {
  prom_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped (the text format's rule). The
 * stream's label is already printable ASCII (log_escape). */
static const char *prom_label(char *buf, size_t len, const char *s) {
  size_t o = 0;
  for (; *s != '\0' && o + 3 < len; s++) {
    if (*s == '\\' || *s == '"') {
      buf[o++] = '\\';
      buf[o++] = *s;
    } else if (*s == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    } else {
      buf[o++] = *s;
    }
  }
  buf[o] = '\0';
  return buf;
}

/* 1 if protocol p is listened on or has been used. */
static int metrics_proto_on(const report_view *v, int p) {
  switch (p) {
  case STREAM_TCP:
    return v->opt->tcp || streams_of(v->table, p) > 0;
  case STREAM_UDP:
    return v->opt->udp || streams_of(v->table, p) > 0;
  default:
    return (v->opt->plain_port != 0 && (p == STREAM_PLAIN_TCP ? v->opt->tcp : v->opt->udp)) ||
           streams_of(v->table, p) > 0;
  }
}

/* One sample per protocol in use (sequenced_only: tcp and udp alone) of what get reads. */
typedef uint64_t (*metrics_get)(const report_view *v, int p, const stats_counts *t);

static void prom_per_proto(prom *pr, const report_view *v, const stats_counts *totals,
                           const char *name, const char *type, const char *help, int sequenced_only,
                           metrics_get get) {
  int p, any = 0;
  for (p = 0; p < STREAM_NPROTO; p++) {
    if (!metrics_proto_on(v, p) || (sequenced_only && !stream_proto_sequenced(p))) {
      continue;
    }
    if (!any) {
      prom_family(pr, name, type, help);
      any = 1;
    }
    prom_printf(pr, "%s{protocol=\"%s\"} %" PRIu64 "\n", name, stream_proto_name(p),
                get(v, p, &totals[p]));
  }
}

static uint64_t get_received(const report_view *v, int p, const stats_counts *t) {
  (void)v, (void)p;
  return t->received;
}
static uint64_t get_lost(const report_view *v, int p, const stats_counts *t) {
  (void)v, (void)p;
  return t->lost;
}
static uint64_t get_duplicates(const report_view *v, int p, const stats_counts *t) {
  (void)v, (void)p;
  return t->duplicates;
}
static uint64_t get_reordered(const report_view *v, int p, const stats_counts *t) {
  (void)v, (void)p;
  return t->reordered;
}
static uint64_t get_bytes(const report_view *v, int p, const stats_counts *t) {
  (void)v, (void)p;
  return t->bytes;
}
static uint64_t get_garbage(const report_view *v, int p, const stats_counts *t) {
  (void)t;
  return v->proto[p].garbage;
}
static uint64_t get_streams(const report_view *v, int p, const stats_counts *t) {
  (void)t;
  return streams_of(v->table, p);
}

/* Connections (the stream protocols) and datagrams (the datagram ones). */
static void prom_transport(prom *pr, const report_view *v) {
  static const int conn_protos[] = {STREAM_TCP, STREAM_PLAIN_TCP};
  static const int dgram_protos[] = {STREAM_UDP, STREAM_PLAIN_UDP};
  size_t i;
  prom_family(pr, "csvstream_connections_total", "counter", "TCP connections accepted.");
  for (i = 0; i < 2; i++) {
    prom_printf(pr, "csvstream_connections_total{protocol=\"%s\"} %" PRIu64 "\n",
                stream_proto_name(conn_protos[i]), v->proto[conn_protos[i]].connections);
  }
  prom_family(pr, "csvstream_connections_closed_total", "counter",
              "TCP connections the consumer closed for taking too long (timed_out) or to keep "
              "incomplete data under its cap (evicted).");
  for (i = 0; i < 2; i++) {
    const ingest_proto *t = &v->proto[conn_protos[i]];
    prom_printf(pr,
                "csvstream_connections_closed_total{protocol=\"%s\",reason=\"timed_out\"} "
                "%" PRIu64 "\n"
                "csvstream_connections_closed_total{protocol=\"%s\",reason=\"evicted\"} "
                "%" PRIu64 "\n",
                stream_proto_name(conn_protos[i]), t->timed_out, stream_proto_name(conn_protos[i]),
                t->evicted);
  }
  prom_family(pr, "csvstream_datagrams_total", "counter", "UDP datagrams received.");
  for (i = 0; i < 2; i++) {
    prom_printf(pr, "csvstream_datagrams_total{protocol=\"%s\"} %" PRIu64 "\n",
                stream_proto_name(dgram_protos[i]), v->proto[dgram_protos[i]].datagrams);
  }
  if (v->proto[STREAM_UDP].kernel_drops_known) {
    prom_family(pr, "csvstream_udp_kernel_drops_total", "counter",
                "Datagrams the kernel dropped for the UDP socket (receive buffer full).");
    prom_printf(pr, "csvstream_udp_kernel_drops_total %" PRIu64 "\n",
                v->proto[STREAM_UDP].kernel_drops);
  }
}

/* The latency histogram of the sequenced protocols, in seconds. */
static void prom_latency(prom *pr, const report_view *v, const stats_counts *totals) {
  int p;
  size_t i;
  prom_family(pr, "csvstream_latency_seconds", "histogram",
              "Receive time minus the producer's send time of each first copy.");
  for (p = 0; p < STREAM_NPROTO; p++) {
    const stats_hist *h = &totals[p].latency;
    if (!stream_proto_sequenced(p) || !metrics_proto_on(v, p)) {
      continue;
    }
    for (i = 0; i < sizeof(metrics_latency_le) / sizeof(metrics_latency_le[0]); i++) {
      prom_printf(pr, "csvstream_latency_seconds_bucket{protocol=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                  stream_proto_name(p), metrics_latency_le[i],
                  stats_hist_count_le(h, (uint64_t)(metrics_latency_le[i] * 1e6 + 0.5)));
    }
    prom_printf(pr,
                "csvstream_latency_seconds_bucket{protocol=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
                "csvstream_latency_seconds_sum{protocol=\"%s\"} %.6f\n"
                "csvstream_latency_seconds_count{protocol=\"%s\"} %" PRIu64 "\n",
                stream_proto_name(p), h->count, stream_proto_name(p), (double)h->sum / 1e6,
                stream_proto_name(p), h->count);
  }
}

/* Per stream: one family at a time, a sample per stream. */
static void prom_per_stream(prom *pr, const report_view *v, const char *name, const char *type,
                            const char *help, int sequenced_only, int what) {
  size_t i;
  int any = 0;
  for (i = 0; i < v->table->n; i++) {
    const stream *e = v->table->v[i];
    char label[2 * LOG_ESCAPE_BUF];
    uint64_t value;
    if (sequenced_only && !stream_proto_sequenced(e->proto)) {
      continue;
    }
    if (!any) {
      prom_family(pr, name, type, help);
      any = 1;
    }
    value = what == 0   ? e->stats.c.received
            : what == 1 ? e->stats.c.lost
            : what == 2 ? e->stats.c.duplicates
            : what == 3 ? e->stats.c.reordered
                        : e->stats.c.bytes;
    prom_printf(pr, "%s{protocol=\"%s\",stream=\"%s\",producer=\"%s\"} %" PRIu64 "\n", name,
                e->sink.protocol, prom_label(label, sizeof(label), e->label), e->sink.producer_hex,
                value);
  }
}

/* The sinks' numbers, from their members of the JSON document: each object "K" at the top with
 * a number member "N" becomes the gauge csvstream_sink_K_N ("db": {"committed": 5} gives
 * csvstream_sink_db_committed 5), so a new sink's counts appear without a line here. The text
 * is this program's own JSON writer's: compact, keys without escapes. */
static void prom_sinks(prom *pr, const report_view *v) {
  json_out j;
  const char *s, *end;
  char object[64] = "", key[64];
  int depth = 0;
  json_init(&j);
  json_object_begin(&j, NULL);
  sinks_report_json(v->sinks, &j);
  json_object_end(&j);
  s = j.buf.data;
  end = s + j.buf.len;
  while (s != NULL && s < end) {
    if (*s == '{' || *s == '[') {
      depth++;
      s++;
    } else if (*s == '}' || *s == ']') {
      depth--;
      s++;
    } else if (*s == '"') {
      /* A string: a key when a ':' follows. */
      const char *start = ++s;
      size_t len;
      while (s < end && *s != '"') {
        s += *s == '\\' ? 2 : 1;
      }
      len = (size_t)(s - start);
      s++;
      if (s < end && *s == ':') {
        char *into = depth == 1 ? object : key;
        size_t i, n = len < 63 ? len : 63;
        for (i = 0; i < n; i++) {
          char c = start[i];
          into[i] =
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
        }
        into[n] = '\0';
        s++;
        if (depth == 2 && s < end && ((*s >= '0' && *s <= '9') || *s == '-')) {
          char name[160];
          const char *num = s;
          while (s < end && *s != ',' && *s != '}' && *s != ']') {
            s++;
          }
          snprintf(name, sizeof(name), "csvstream_sink_%s_%s", object, key);
          prom_family(pr, name, "gauge", "A sink's count, as in --stats-json's sink members.");
          prom_printf(pr, "%s %.*s\n", name, (int)(s - num), num);
        }
      }
    } else {
      s++;
    }
  }
  json_free(&j);
}

/* The Prometheus text; see metrics.h. */
int metrics_prometheus(const report_view *v, cs_buf *out) {
  stats_counts totals[STREAM_NPROTO];
  prom pr;
  int p;
  pr.out = out;
  pr.failed = 0;
  for (p = 0; p < STREAM_NPROTO; p++) {
    streams_totals(v->table, p, &totals[p]);
  }
  prom_per_proto(&pr, v, totals, "csvstream_records_received_total", "counter",
                 "Distinct records received (first copies).", 0, get_received);
  prom_per_proto(&pr, v, totals, "csvstream_records_lost", "gauge",
                 "Sequence numbers not received (yet): a late record can still fill a gap.", 1,
                 get_lost);
  prom_per_proto(&pr, v, totals, "csvstream_records_duplicate_total", "counter",
                 "Extra copies of records already received.", 1, get_duplicates);
  prom_per_proto(&pr, v, totals, "csvstream_records_reordered_total", "counter",
                 "Records that arrived after one with a higher sequence number.", 1, get_reordered);
  prom_per_proto(&pr, v, totals, "csvstream_received_bytes_total", "counter",
                 "Bytes of the records received (framed: whole frames, duplicates included).", 0,
                 get_bytes);
  prom_per_proto(&pr, v, totals, "csvstream_garbage_total", "counter",
                 "Malformed input: connections closed or datagrams dropped for it.", 0,
                 get_garbage);
  prom_per_proto(&pr, v, totals, "csvstream_streams", "gauge", "Streams known.", 0, get_streams);
  prom_transport(&pr, v);
  prom_latency(&pr, v, totals);
  prom_per_stream(&pr, v, "csvstream_stream_records_received_total", "counter",
                  "Distinct records received, per stream.", 0, 0);
  prom_per_stream(&pr, v, "csvstream_stream_records_lost", "gauge",
                  "Sequence numbers not received (yet), per stream.", 1, 1);
  prom_per_stream(&pr, v, "csvstream_stream_records_duplicate_total", "counter",
                  "Extra copies, per stream.", 1, 2);
  prom_per_stream(&pr, v, "csvstream_stream_records_reordered_total", "counter",
                  "Records that came after a higher sequence number, per stream.", 1, 3);
  prom_per_stream(&pr, v, "csvstream_stream_received_bytes_total", "counter",
                  "Bytes received, per stream.", 0, 4);
  prom_sinks(&pr, v);
  return pr.failed ? CS_ENOMEM : 0;
}

/* ---- --stats-format json ------------------------------------------------------------------ */

void metrics_interval_init(metrics_interval *m) {
  memset(m, 0, sizeof(*m));
  m->prev_wall_us = clock_wall_us();
}

/* What the "interval" member needs. */
typedef struct metrics_line {
  metrics_interval *m;
  const report_view *v;
  uint64_t now_us;
} metrics_line;

/* The "interval" member: the deltas since the last line, per protocol in use. */
static void metrics_interval_json(json_out *j, void *arg) {
  metrics_line *l = arg;
  double seconds = (double)(l->now_us - l->m->prev_wall_us) / 1e6;
  int p;
  json_object_begin(j, "interval");
  json_uint(j, "start_us", l->m->prev_wall_us);
  json_uint(j, "end_us", l->now_us);
  json_double(j, "seconds", seconds);
  for (p = 0; p < STREAM_NPROTO; p++) {
    metrics_interval_counts now, *prev = &l->m->prev[p];
    stats_counts t;
    if (!metrics_proto_on(l->v, p)) {
      continue;
    }
    streams_totals(l->v->table, p, &t);
    now.received = t.received;
    now.lost = t.lost;
    now.duplicates = t.duplicates;
    now.reordered = t.reordered;
    now.bytes = t.bytes;
    now.garbage = l->v->proto[p].garbage;
    json_object_begin(j, stream_proto_name(p));
    json_uint(j, "received", now.received - prev->received);
    if (stream_proto_sequenced(p)) {
      /* Lost can shrink when a late record fills a gap: a signed delta. */
      json_int(j, "lost", (int64_t)now.lost - (int64_t)prev->lost);
      json_uint(j, "duplicates", now.duplicates - prev->duplicates);
      json_uint(j, "reordered", now.reordered - prev->reordered);
    }
    json_uint(j, "bytes", now.bytes - prev->bytes);
    json_uint(j, "garbage", now.garbage - prev->garbage);
    json_double(j, "records_per_s",
                seconds > 0 ? (double)(now.received - prev->received) / seconds : 0.0);
    json_object_end(j);
    *prev = now;
  }
  json_object_end(j);
}

/* One JSON line; see metrics.h. */
int metrics_json_line(metrics_interval *m, const report_view *v, FILE *out) {
  metrics_line l;
  json_out j;
  int rc = 0;
  l.m = m;
  l.v = v;
  l.now_us = clock_wall_us();
  report_json_doc(v, metrics_interval_json, &l, &j);
  m->prev_wall_us = l.now_us;
  if (j.failed) {
    rc = CS_ENOMEM;
  } else if (fwrite(j.buf.data, 1, j.buf.len, out) != j.buf.len || fputc('\n', out) == EOF ||
             fflush(out) != 0) {
    rc = CS_EIO;
  }
  json_free(&j);
  return rc;
}
