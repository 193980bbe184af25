/* summary.c -- the producer's end-of-run summary lines and its --stats-json object. */
#include "summary.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json.h"

/* Group digits by thousands with commas. */
char *summary_thousands(uint64_t v, char *buf, size_t len) {
  char digits[32];
  size_t n = (size_t)snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
  size_t out = 0, i;
  for (i = 0; i < n && out + 1 < len; i++) {
    if (i > 0 && (n - i) % 3 == 0) {
      buf[out++] = ',';
      if (out + 1 >= len) {
        break;
      }
    }
    buf[out++] = digits[i];
  }
  buf[out] = '\0';
  return buf;
}

/* Seconds from the first record to the end of the stream. */
static double summary_duration_s(const producer *p) {
  if (p->st.end_us <= p->st.start_us) {
    return 0.0;
  }
  return (double)(p->st.end_us - p->st.start_us) / 1e6;
}

static double summary_rate(const producer *p) {
  double d = summary_duration_s(p);
  return d > 0 ? (double)p->st.sent / d : 0.0;
}

/* The summary lines to out; see summary.h. A result, not a log line: no time stamp, and
 * --quiet keeps it (its promise is warnings, errors and the summary). */
int summary_print(const producer *p, FILE *out) {
  char sent[32], bytes[32], read[32];
  fprintf(out,
          "summary: sent %s record%s (%s bytes) over %s to %s in %.3f s (%.1f records/s); "
          "read %s record%s",
          summary_thousands(p->st.sent, sent, sizeof sent), p->st.sent == 1 ? "" : "s",
          summary_thousands(p->st.bytes, bytes, sizeof bytes), p->opt->udp ? "udp" : "tcp",
          p->peer[0] != '\0' ? p->peer : p->opt->host, summary_duration_s(p), summary_rate(p),
          summary_thousands(p->st.records_read, read, sizeof read),
          p->st.records_read == 1 ? "" : "s");
  fputc('\n', out);
  if (p->opt->udp) {
    fprintf(out,
            "summary: connection: none (UDP is connectionless; it cannot tell whether anyone "
            "received); ICMP port unreachable %llu times (over every datagram sent, the %d "
            "repeated end-of-stream datagrams included); too big %llu",
            (unsigned long long)p->st.icmp_refused, SENDER_END_REPEATS,
            (unsigned long long)p->st.too_big);
    fputc('\n', out);
  } else {
    fprintf(out,
            "summary: connection %s; waited %llu ms for the consumer to read "
            "(backpressure); too big %llu",
            p->st.connection, (unsigned long long)(p->st.blocked_us / 1000u),
            (unsigned long long)p->st.too_big);
    fputc('\n', out);
    if (p->st.written != p->st.sent) {
      char written[32];
      log_warn("summary: only %s of the %s records were written to the connection before it "
               "ended; the rest never left this process",
               summary_thousands(p->st.written, written, sizeof written), sent);
    }
  }
  if (p->opt->impair_on) {
    fprintf(out,
            "summary: impairment dropped %llu, duplicated %llu, reordered %llu (the consumer "
            "should count lost %llu, duplicates %llu, reordered %llu)",
            (unsigned long long)p->impair.dropped, (unsigned long long)p->impair.duplicated,
            (unsigned long long)p->impair.reordered, (unsigned long long)p->impair.dropped,
            (unsigned long long)p->impair.duplicated, (unsigned long long)p->impair.reordered);
    fputc('\n', out);
  }
  return fflush(out) != 0 || ferror(out) ? CS_EIO : 0;
}

/* The --stats-json object, as the shared contract lists it. */
int summary_write_json(const producer *p, const char *path, char *err, size_t errlen) {
  json_out j;
  char id[17];
  int rc;

  snprintf(id, sizeof id, "%016llx", (unsigned long long)p->producer_id);
  json_init(&j);
  json_object_begin(&j, NULL);
  json_string(&j, "protocol", p->opt->udp ? "udp" : "tcp");
  json_string(&j, "host", p->opt->host);
  json_uint(&j, "port", (uint64_t)p->opt->port);
  json_string(&j, "stream", p->stream);
  json_string(&j, "producer_id", id);
  json_uint(&j, "sent", p->st.sent);
  if (!p->opt->udp) {
    json_uint(&j, "written", p->st.written);
  }
  json_uint(&j, "bytes", p->st.bytes);
  json_uint(&j, "records_read", p->st.records_read);
  json_uint(&j, "too_big", p->st.too_big);
  json_double(&j, "duration_s", summary_duration_s(p));
  json_double(&j, "records_per_s", summary_rate(p));
  json_uint(&j, "blocked_ms", p->st.blocked_us / 1000u);
  json_uint(&j, "icmp_refused", p->st.icmp_refused);
  json_string(&j, "connection", p->st.connection);
  if (p->opt->impair_on) {
    json_object_begin(&j, "impaired");
    json_uint(&j, "dropped", p->impair.dropped);
    json_uint(&j, "duplicated", p->impair.duplicated);
    json_uint(&j, "reordered", p->impair.reordered);
    json_object_end(&j);
  }
  json_object_end(&j);
  rc = json_write_file(&j, path, err, errlen);
  json_free(&j);
  return rc;
}
