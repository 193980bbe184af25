/* sink_count.c -- a sink that only counts what it is handed (records and field bytes, in all
 * and per stream): for tests of the fan-out and ingest, and to show what a sink needs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "log.h"
#include "sink.h"

typedef struct sink_count {
  size_t slot;
  uint64_t records, bytes;
  uint64_t *per_stream[256]; /* counters it allocated, freed at close (a test's few streams) */
  size_t nstreams;
} sink_count;

/* Always on when asked for (the registry opens it only on request). */
static int sink_count_open(void **self, const consumer_options *opt, const sink_env *env) {
  sink_count *k = calloc(1, sizeof(*k));
  (void)opt;
  *self = NULL;
  if (k == NULL) {
    log_error("sink count: out of memory");
    return CS_ENOMEM;
  }
  k->slot = env->slot;
  *self = k;
  return 0;
}

/* Count one record, in all and in its stream's slot. */
static int sink_count_add(void *self, const sink_record *r) {
  sink_count *k = self;
  uint64_t *n = r->stream->slot[k->slot];
  size_t i;
  if (n == NULL) {
    if (k->nstreams == sizeof(k->per_stream) / sizeof(k->per_stream[0])) {
      log_error("sink count: more than %zu streams", k->nstreams);
      return CS_ENOMEM;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
      log_error("sink count: out of memory");
      return CS_ENOMEM;
    }
    k->per_stream[k->nstreams++] = n;
    r->stream->slot[k->slot] = n;
  }
  (*n)++;
  k->records++;
  for (i = 0; i < r->nfields; i++) {
    k->bytes += r->fields[i].len;
  }
  return 0;
}

/* A stream leaves the table: its count goes (the totals keep it). */
static void sink_count_forget(void *self, sink_stream *st) {
  sink_count *k = self;
  uint64_t *n = st->slot[k->slot];
  for (size_t i = 0; n != NULL && i < k->nstreams; i++) {
    if (k->per_stream[i] == n) {
      k->per_stream[i] = k->per_stream[--k->nstreams];
      free(n);
      break;
    }
  }
  st->slot[k->slot] = NULL;
}

static void sink_count_report_text(void *self, FILE *out) {
  sink_count *k = self;
  fprintf(out, "count sink: %" PRIu64 " records, %" PRIu64 " field bytes\n", k->records, k->bytes);
}

static void sink_count_report_json(void *self, json_out *j) {
  sink_count *k = self;
  json_object_begin(j, "count");
  json_uint(j, "records", k->records);
  json_uint(j, "bytes", k->bytes);
  json_object_end(j);
}

static void sink_count_report_stream_json(void *self, const sink_stream *st, json_out *j) {
  sink_count *k = self;
  const uint64_t *n = st->slot[k->slot];
  json_uint(j, "counted", n != NULL ? *n : 0);
}

static int sink_count_close(void *self, int discard) {
  sink_count *k = self;
  size_t i;
  (void)discard;
  if (k == NULL) {
    return 0;
  }
  for (i = 0; i < k->nstreams; i++) {
    free(k->per_stream[i]);
  }
  free(k);
  return 0;
}

const sink_ops sink_count_ops = {
    .name = "count",
    .open = sink_count_open,
    .add = sink_count_add,
    .forget = sink_count_forget,
    .summary = sink_count_report_text,
    .json = sink_count_report_json,
    .stream_json = sink_count_report_stream_json,
    .close = sink_count_close,
};
