/* report.c -- the consumer's live --stats line, its summary table and its --stats-json file. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#include "clock.h"
#include "json.h"
#include "log.h"

static const char *const report_proto_names[2] = {"tcp", "udp"};

/* Streams of one protocol. */
static size_t streams_of(const consumer *c, int proto) {
  size_t i, n = 0;
  for (i = 0; i < c->nstreams; i++)
    if (c->streams[i]->proto == proto)
      n++;
  return n;
}

/* 1 if the protocol is listened on (or has had streams). */
static int proto_used(const consumer *c, int proto) {
  return (proto == CONSUMER_TCP ? c->opt.tcp : c->opt.udp) || streams_of(c, proto) > 0;
}

/* The live line; see report.h. */
void report_live(consumer *c) {
  char line[512];
  size_t off = 0;
  uint64_t now = clock_mono_us();
  double secs = (double)(now - c->live_prev_us) / 1e6;
  int p;
  for (p = 0; p < 2; p++) {
    stats_counts t;
    int n;
    if (!proto_used(c, p))
      continue;
    consumer_totals(c, p, &t);
    n = snprintf(line + off, sizeof(line) - off,
                 "%s%s %" PRIu64 " received, %" PRIu64 " lost, %" PRIu64 " dup, %" PRIu64
                 " reordered, %.1f rec/s, p99 %.1f ms",
                 off > 0 ? " | " : "", report_proto_names[p], t.received, t.lost, t.duplicates,
                 t.reordered,
                 secs > 0 ? (double)(t.received - c->live_prev_received[p]) / secs : 0.0,
                 (double)stats_hist_percentile(&t.latency, 99.0) / 1000.0);
    if (n > 0 && (size_t)n < sizeof(line) - off)
      off += (size_t)n;
    if (p == CONSUMER_UDP && c->proto[p].kernel_drops_known) {
      n = snprintf(line + off, sizeof(line) - off, ", %" PRIu64 " kernel drops",
                   c->proto[p].kernel_drops);
      if (n > 0 && (size_t)n < sizeof(line) - off)
        off += (size_t)n;
    }
    c->live_prev_received[p] = t.received;
  }
  c->live_prev_us = now;
  /* The live line is a warning-level message so that --quiet keeps it: it was asked for. */
  log_msg(c->opt.quiet ? LOG_WARN : LOG_INFO, "stats: %s", off > 0 ? line : "nothing yet");
}

/* One row of the table. */
static void summary_row(FILE *out, const char *proto, const char *stream, const char *producer,
                        const stats_counts *t) {
  char rate[32];
  /* "-" when the records span too short a time for a rate to mean anything (stats.h). */
  if (stats_counts_rate_known(t))
    snprintf(rate, sizeof rate, "%.1f", stats_counts_rate(t));
  else
    snprintf(rate, sizeof rate, "-");
  fprintf(out,
          "%-5s %-20.20s %-16s %9" PRIu64 " %7" PRIu64 " %6" PRIu64 " %7" PRIu64 " %11" PRIu64
          " %9s %8.2f %8.2f %8.2f %9.3f\n",
          proto, stream, producer, t->received, t->lost, t->duplicates, t->reordered, t->bytes,
          rate, (double)stats_hist_percentile(&t->latency, 50.0) / 1000.0,
          (double)stats_hist_percentile(&t->latency, 99.0) / 1000.0,
          (double)t->latency.max / 1000.0, t->jitter_us / 1000.0);
}

/* The summary table; see report.h. */
void report_summary(consumer *c, FILE *out) {
  int p;
  size_t i;
  fprintf(out, "\nconsumer summary\n");
  fprintf(out, "%-5s %-20s %-16s %9s %7s %6s %7s %11s %9s %8s %8s %8s %9s\n", "proto", "stream",
          "producer", "received", "lost", "dup", "reord", "bytes", "rec/s", "p50 ms", "p99 ms",
          "max ms", "jitter ms");
  for (p = 0; p < 2; p++) {
    stats_counts t;
    char all[32];
    if (!proto_used(c, p))
      continue;
    consumer_totals(c, p, &t);
    snprintf(all, sizeof(all), "(all %zu streams)", streams_of(c, p));
    summary_row(out, report_proto_names[p], all, "", &t);
    for (i = 0; i < c->nstreams; i++) {
      consumer_stream *e = c->streams[i];
      char id[17];
      if (e->proto != p)
        continue;
      snprintf(id, sizeof(id), "%016" PRIx64, e->sink.producer_id);
      summary_row(out, report_proto_names[p], e->label, id, &e->stats.c);
    }
  }
  if (proto_used(c, CONSUMER_TCP))
    fprintf(out, "tcp: %" PRIu64 " connections, %" PRIu64 " garbage (connections closed)\n",
            c->proto[CONSUMER_TCP].connections, c->proto[CONSUMER_TCP].garbage);
  if (proto_used(c, CONSUMER_UDP)) {
    fprintf(out, "udp: %" PRIu64 " datagrams, %" PRIu64 " garbage, ",
            c->proto[CONSUMER_UDP].datagrams, c->proto[CONSUMER_UDP].garbage);
    if (c->proto[CONSUMER_UDP].kernel_drops_known)
      fprintf(out, "%" PRIu64 " dropped by the kernel (receive buffer full)\n",
              c->proto[CONSUMER_UDP].kernel_drops);
    else
      fprintf(out, "kernel drops unknown\n");
  }
  for (i = 0; i < c->nstreams; i++)
    if (c->streams[i]->stats.too_late > 0)
      fprintf(out, "%s %s: %" PRIu64 " records arrived too late to tell from duplicates\n",
              c->streams[i]->sink.protocol, c->streams[i]->label, c->streams[i]->stats.too_late);
  if (c->out != NULL) {
    /* One line per file: side files (streams with another header) are counted apart. */
    size_t nfiles = outfile_files(c->out);
    const char *path;
    uint64_t records;
    for (i = 0; outfile_file(c->out, i, &path, &records) == 0; i++)
      fprintf(out, "%s: %" PRIu64 " records written\n", path, records);
    if (nfiles > 1)
      fprintf(out, "%zu CSV files: %" PRIu64 " records written in all\n", nfiles,
              outfile_records(c->out));
    if (outfile_not_written(c->out) > 0)
      fprintf(out,
              "%" PRIu64 " records not written to any CSV file: their streams needed a file "
              "of their own and got none (the %d side files allowed were open, or the file "
              "could not be opened; see the errors above)\n",
              outfile_not_written(c->out), OUTFILE_MAX_SIDE_OPEN);
  }
  if (c->db != NULL)
    fprintf(out,
            "database %s: %" PRIu64 " rows committed, %zu pending, %" PRIu64
            " commit retries while another process held the lock, %" PRIu64
            " not stored (queue full, or more fields than a table takes)\n",
            c->opt.db_path, store_committed(c->db), store_pending(c->db), c->busy_retries,
            c->db_dropped);
  fflush(out);
}

/* Can --stats-json be written at exit? See report.h. */
int report_json_check(const char *path, char *err, size_t errlen) {
  char tmp[4096];
  struct stat sb;
  int fd;
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    snprintf(err, errlen, "%s: path too long", path);
    return CS_EINVAL;
  }
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    snprintf(err, errlen, "%s is a directory (give a file name)", path);
    return CS_EINVAL;
  }
  /* The file is written as FILE.tmp and renamed into place (json_write_file): try that now,
   * leaving no trace, rather than find out after the whole run. */
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    close(fd);
    unlink(tmp);
    return 0;
  }
  if (errno == EEXIST && access(tmp, W_OK) == 0)
    return 0; /* left by an earlier run; it is overwritten at exit */
  snprintf(err, errlen, "%s: cannot create %s: %s (check the directory exists and is writable)",
           path, tmp, strerror(errno));
  return CS_EIO;
}

/* The --stats-json file; see report.h. */
int report_json(consumer *c, const char *path, char *err, size_t errlen) {
  json_out j;
  int p, rc;
  size_t i;
  json_init(&j);
  json_object_begin(&j, NULL);
  for (p = 0; p < 2; p++) {
    stats_counts t;
    consumer_totals(c, p, &t);
    json_object_begin(&j, report_proto_names[p]);
    stats_counts_json(&j, &t);
    json_uint(&j, "streams", streams_of(c, p));
    json_uint(&j, "garbage", c->proto[p].garbage);
    if (p == CONSUMER_TCP) {
      json_uint(&j, "connections", c->proto[p].connections);
    } else {
      json_uint(&j, "datagrams", c->proto[p].datagrams);
      if (c->proto[p].kernel_drops_known)
        json_uint(&j, "kernel_drops", c->proto[p].kernel_drops);
      else
        json_string(&j, "kernel_drops", NULL);
    }
    json_object_end(&j);
  }
  json_array_begin(&j, "streams");
  for (i = 0; i < c->nstreams; i++) {
    consumer_stream *e = c->streams[i];
    char id[17];
    snprintf(id, sizeof(id), "%016" PRIx64, e->sink.producer_id);
    stats_stream_lost(&e->stats);
    json_object_begin(&j, NULL);
    json_string(&j, "protocol", e->sink.protocol);
    json_string(&j, "producer_id", id);
    json_string(&j, "stream", e->sink.name);
    json_string(&j, "peer", e->sink.peer);
    /* The CSV file its records went to: out9.txt or a side file (null: none yet, or refused). */
    json_string(&j, "file", c->out != NULL ? outfile_stream_path(c->out, &e->sink) : NULL);
    stats_counts_json(&j, &e->stats.c);
    json_uint(&j, "too_late", e->stats.too_late);
    json_bool(&j, "ended", e->ended);
    if (e->ended)
      json_uint(&j, "last_seq", e->stats.announced_seq);
    else
      json_string(&j, "last_seq", NULL);
    json_object_end(&j);
  }
  json_array_end(&j);
  json_object_begin(&j, "out");
  json_string(&j, "path", c->out != NULL ? outfile_path(c->out) : c->opt.out_path);
  json_uint(&j, "records", c->out != NULL ? outfile_records(c->out) : 0);
  json_uint(&j, "not_written", c->out != NULL ? outfile_not_written(c->out) : 0);
  json_array_begin(&j, "files");
  if (c->out != NULL) {
    const char *file;
    uint64_t records;
    for (i = 0; outfile_file(c->out, i, &file, &records) == 0; i++) {
      json_object_begin(&j, NULL);
      json_string(&j, "path", file);
      json_uint(&j, "records", records);
      json_object_end(&j);
    }
  }
  json_array_end(&j);
  json_object_end(&j);
  json_object_begin(&j, "db");
  json_string(&j, "path", c->opt.db_path);
  json_uint(&j, "committed", c->db != NULL ? store_committed(c->db) : 0);
  json_uint(&j, "pending", c->db != NULL ? store_pending(c->db) : 0);
  json_uint(&j, "busy_retries", c->busy_retries);
  json_uint(&j, "dropped", c->db_dropped);
  json_object_end(&j);
  json_object_end(&j);
  rc = json_write_file(&j, path, err, errlen);
  json_free(&j);
  return rc;
}
