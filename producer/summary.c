/* summary.c -- the producer's end-of-run summary lines and its --stats-json object. */
#include "summary.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "words.h"

/* Group digits by thousands with commas: words_count under the name sender_udp.c uses. */
char *summary_thousands(uint64_t v, char *buf, size_t len) {
  return words_count(buf, len, v);
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

/* "(426,439.2 records/s)", or "(too short for a rate)" under WORDS_RATE_MIN_SPAN_US, as the
 * consumer shows "-" then. */
static char *summary_rate_text(const producer *p, char *buf, size_t len) {
  uint64_t span = p->st.end_us > p->st.start_us ? p->st.end_us - p->st.start_us : 0;
  char rate[WORDS_BUF];
  if (!words_rate_known(span)) {
    snprintf(buf, len, "(too short for a rate)");
  } else {
    snprintf(buf, len, "(%s records/s)", words_rate(rate, sizeof rate, p->st.sent, span));
  }
  return buf;
}

/* A span of file time for people: "12.500 s", "49 min 00 s", "26 h 03 min 10 s". */
static char *summary_span(uint64_t us, char *buf, size_t len) {
  uint64_t secs = us / 1000000u;
  if (secs < 60) {
    snprintf(buf, len, "%.3f s", (double)us / 1e6);
  } else if (secs < 3600) {
    snprintf(buf, len, "%llu min %02llu s", (unsigned long long)(secs / 60),
             (unsigned long long)(secs % 60));
  } else {
    snprintf(buf, len, "%llu h %02llu min %02llu s", (unsigned long long)(secs / 3600),
             (unsigned long long)(secs % 3600 / 60), (unsigned long long)(secs % 60));
  }
  return buf;
}

/* The lines about the input: lines that were not records, text that was not UTF-8, and the
 * replay on the file's clock. Each only when there is something to say. */
static void summary_print_input(const producer *p, FILE *out) {
  char a[WORDS_BUF], b[WORDS_BUF];
  if (p->st.skipped_lines > 0 || p->st.comment_lines > 0) {
    fprintf(out,
            "summary: lines that are not records: %s skipped at the start (--skip-lines), %s\n",
            words_count_of(a, sizeof a, p->st.skipped_lines, "line", "lines"),
            words_count_of(b, sizeof b, p->st.comment_lines, "comment (--comment)",
                           "comments (--comment)"));
  }
  if (p->st.invalid_utf8_lines > 0) {
    fprintf(
        out,
        "summary: %s not valid UTF-8 (their bytes sent as they are; --encoding names the file's "
        "encoding)\n",
        words_count_of(a, sizeof a, p->st.invalid_utf8_lines, "line was", "lines were"));
  }
  if (p->replaying) {
    char span[64], real[64];
    fprintf(
        out,
        "summary: replayed %s of file time (%s) in %s of real time at --speed %g; %s that "
        "did not parse or went back, %s cut to --max-gap\n",
        summary_span(p->replay.file_us, span, sizeof span), p->replay.label,
        summary_span(p->st.last_sent_us > p->st.start_us ? p->st.last_sent_us - p->st.start_us : 0,
                     real, sizeof real),
        p->replay.speed, words_count_of(a, sizeof a, p->replay.bad, "value", "values"),
        words_count_of(b, sizeof b, p->replay.capped, "wait", "waits"));
  }
}

/* The impairment's line: what it did and what the consumer should count. */
static void summary_print_impair(const producer *p, FILE *out) {
  char d[WORDS_BUF], u[WORDS_BUF], r[WORDS_BUF];
  words_count(d, sizeof d, p->impair.dropped);
  words_count(u, sizeof u, p->impair.duplicated);
  words_count(r, sizeof r, p->impair.reordered);
  fprintf(out,
          "summary: impairment dropped %s, duplicated %s, reordered %s (the consumer should "
          "count lost %s, duplicates %s, reordered %s)\n",
          d, u, r, d, u, r);
}

/* --format csv: plain text went out, and nothing can come back. */
static void summary_print_plain(const producer *p, FILE *out, const char *big) {
  char written[WORDS_BUF];
  fprintf(out,
          "summary: format csv (plain CSV text): no acknowledgements and no accounting (the "
          "listener cannot say what it received); %s; too big to send: %s\n",
          p->opt->udp ? "one record per datagram, no header"
                      : words_count_of(written, sizeof written, p->st.written,
                                       "record written to the connection",
                                       "records written to the connection"),
          big);
}

/* The summary lines to out; see summary.h. A result, not a log line: no time stamp, and
 * --quiet keeps it (its promise is warnings, errors and the summary). */
int summary_print(const producer *p, FILE *out) {
  char sent[WORDS_BUF], bytes[WORDS_BUF], read[WORDS_BUF], rate[WORDS_BUF], big[WORDS_BUF];
  fprintf(out, "summary: sent %s (%s) over %s to %s in %.3f s %s; read %s\n",
          words_count_of(sent, sizeof sent, p->st.sent, "record", "records"),
          words_count_of(bytes, sizeof bytes, p->st.bytes, "byte", "bytes"),
          p->opt->udp ? "udp" : "tcp", p->peer[0] != '\0' ? p->peer : p->opt->host,
          summary_duration_s(p), summary_rate_text(p, rate, sizeof rate),
          words_count_of(read, sizeof read, p->st.records_read, "record", "records"));
  words_count_of(big, sizeof big, p->st.too_big, "record", "records");
  if (p->opt->format_csv) {
    summary_print_plain(p, out, big);
  } else if (p->opt->udp) {
    char icmp[WORDS_BUF];
    fprintf(out,
            "summary: connection: none (UDP is connectionless; it cannot tell whether anyone "
            "received); ICMP port unreachable %s (over every datagram sent, the %d repeated "
            "end-of-stream datagrams included); too big to send: %s\n",
            words_count_of(icmp, sizeof icmp, p->st.icmp_refused, "time", "times"),
            SENDER_END_REPEATS, big);
  } else {
    char waited[WORDS_BUF], held[WORDS_BUF], acked[WORDS_BUF], resent[WORDS_BUF], again[WORDS_BUF];
    if (p->st.resumed_after > 0 || p->st.resume_skipped > 0) {
      char had[WORDS_BUF], skipped[WORDS_BUF];
      fprintf(out,
              "summary: resumed: the consumer had the first %s already (--resume); %s skipped, "
              "not sent again\n",
              words_count_of(had, sizeof had, p->st.resumed_after, "record", "records"),
              words_count(skipped, sizeof skipped, p->st.resume_skipped));
    }
    fprintf(out,
            "summary: connection %s; sent %s, acknowledged %s, resent %s, reconnects %s; waited "
            "%s ms for the consumer to read (backpressure), %s ms for its acknowledgements; too "
            "big to send: %s\n",
            p->st.connection, sent, words_count(acked, sizeof acked, p->st.acked),
            words_count(resent, sizeof resent, p->st.resent),
            words_count(again, sizeof again, p->st.reconnects),
            words_count(waited, sizeof waited, p->st.blocked_us / 1000u),
            words_count(held, sizeof held, p->st.ack_wait_us / 1000u), big);
    if (p->st.written != p->st.sent) {
      char written[WORDS_BUF], all[WORDS_BUF];
      log_warn("summary: only %s of the %s were written to the connection before it ended; "
               "the rest never left this process",
               words_count(written, sizeof written, p->st.written),
               words_count_of(all, sizeof all, p->st.sent, "record", "records"));
    }
  }
  if (p->opt->impair_on) {
    summary_print_impair(p, out);
  }
  summary_print_input(p, out);
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
  json_string(&j, "format", p->opt->format_csv ? "csv" : "csvstream");
  json_string(&j, "host", p->opt->host);
  json_uint(&j, "port", (uint64_t)p->opt->port);
  json_string(&j, "stream", p->stream);
  json_string(&j, "producer_id", id);
  json_uint(&j, "sent", p->st.sent);
  if (p->st.acknowledged) {
    json_uint(&j, "acked", p->st.acked);
    json_uint(&j, "resent", p->st.resent);
    json_uint(&j, "reconnects", p->st.reconnects);
    json_uint(&j, "retry_wait_ms", p->st.retry_wait_us / 1000u);
    json_uint(&j, "resumed_after", p->st.resumed_after);
    json_uint(&j, "resume_skipped", p->st.resume_skipped);
  } else {
    json_string(&j, "acked", NULL); /* UDP: nobody acknowledges */
    json_uint(&j, "resent", 0);
    json_uint(&j, "reconnects", 0);
    json_uint(&j, "retry_wait_ms", 0);
    json_uint(&j, "resumed_after", 0);
    json_uint(&j, "resume_skipped", 0);
  }
  if (!p->opt->udp) {
    json_uint(&j, "written", p->st.written);
  }
  json_uint(&j, "bytes", p->st.bytes);
  json_uint(&j, "records_read", p->st.records_read);
  json_uint(&j, "too_big", p->st.too_big);
  json_double(&j, "duration_s", summary_duration_s(p));
  json_double(&j, "records_per_s", summary_rate(p));
  json_uint(&j, "blocked_ms", p->st.blocked_us / 1000u);
  json_uint(&j, "ack_wait_ms", p->st.ack_wait_us / 1000u);
  json_uint(&j, "icmp_refused", p->st.icmp_refused);
  json_string(&j, "connection", p->st.connection);
  json_uint(&j, "skipped_lines", p->st.skipped_lines);
  json_uint(&j, "comment_lines", p->st.comment_lines);
  json_uint(&j, "invalid_utf8_lines", p->st.invalid_utf8_lines);
  if (p->replaying) {
    json_object_begin(&j, "replay");
    json_double(&j, "file_time_s", (double)p->replay.file_us / 1e6);
    json_double(&j, "real_time_s",
                p->st.last_sent_us > p->st.start_us
                    ? (double)(p->st.last_sent_us - p->st.start_us) / 1e6
                    : 0.0);
    json_double(&j, "speed", p->replay.speed);
    json_uint(&j, "bad_values", p->replay.bad);
    json_uint(&j, "capped", p->replay.capped);
    json_object_end(&j);
  }
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
