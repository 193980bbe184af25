/* sink_csv.c -- the out9.txt sink: every new record appended as RFC 4180 CSV (outfile.c), the
 * main file and its side files, written once per loop turn. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "log.h"
#include "outfile.h"
#include "sink.h"
#include "words.h"

/* How often the files are looked at (deleted, moved or replaced while the consumer writes):
 * about once a second, on the loop's tick (which may come a little early, hence the margin),
 * or in a turn that wrote if that comes first. */
#define SINK_CSV_CHECK_US 1000000
#define SINK_CSV_CHECK_MARGIN_US 100000

typedef struct sink_csv {
  outfile *out;
  int dirty;            /* records were added since the last flush */
  int failed;           /* the last write failed and was reported: the close says nothing more */
  uint64_t checked_us;  /* monotonic time of the last outfile_check */
  checkpoint *progress; /* the files' lengths and the streams' numbers (NULL for --out -) */
  size_t slot;
  int fsync;
} sink_csv;

/* Open --out (created or appended to). Logs and returns a negative code on failure. */
static int sink_csv_open(void **self, const consumer_options *opt, const sink_env *env) {
  sink_csv *k = calloc(1, sizeof(*k));
  char err[4096]; /* a log line's worth: a progress file's error names it, however long */
  int rc;
  *self = NULL;
  if (k == NULL) {
    log_error("--out: out of memory");
    return CS_ENOMEM;
  }
  k->slot = env->slot;
  k->fsync = opt->fsync;
  /* The progress file first: it cuts the files back to what was acknowledged before the
   * files are opened and their last lines read. */
  if (strcmp(opt->out_path, "-") != 0) {
    rc = checkpoint_open(&k->progress, opt->out_path, opt->fsync, err, sizeof(err));
    if (rc != 0) {
      log_error("--out: %s", err);
      free(k);
      return rc;
    }
  }
  rc = outfile_open(&k->out, opt->out_path, env->slot, err, sizeof(err));
  if (rc != 0) {
    log_error("--out: %s", err);
    checkpoint_free(k->progress);
    free(k);
    return rc;
  }
  outfile_set_fsync(k->out, k->fsync);
  *self = k;
  return 0;
}

/* An acknowledged stream resumes after the number the progress file had for it. */
static void sink_csv_resume(void *self, sink_stream *st) {
  sink_csv *k = self;
  if (k->progress != NULL) {
    st->durable[k->slot] = checkpoint_track(k->progress, st, k->slot);
  }
}

/* A stream leaves the table: the progress file keeps its number, the files forget it. */
static void sink_csv_forget(void *self, sink_stream *st) {
  sink_csv *k = self;
  if (k->progress != NULL) {
    checkpoint_untrack(k->progress, st);
  }
  outfile_forget(k->out, st);
}

/* After a write: the progress file says how far the files and the streams got. A failure is
 * the sink's: nothing more may be acknowledged. Returns 0 or CS_EIO (logged). */
static int sink_csv_checkpoint(sink_csv *k) {
  char err[600];
  if (k->progress == NULL || checkpoint_write(k->progress, k->out, err, sizeof(err)) == 0) {
    return 0;
  }
  log_error("%s; stopping (nothing more can be acknowledged)", err);
  k->failed = 1;
  return CS_EIO;
}

/* Queue one record for its stream's file. A stream refused a file of its own is counted by
 * outfile and logged once there: the others go on, and the record still reaches the other
 * sinks. */
static int sink_csv_add(void *self, const sink_record *r) {
  sink_csv *k = self;
  int rc = outfile_add(k->out, r);
  if (rc == CS_ENOFILE && r->stream->acked) {
    return CS_EREFUSED; /* no file for it (logged once by outfile): refuse, never drop */
  }
  if (rc == 0 || rc == CS_ENOFILE) {
    k->dirty = k->dirty || rc == 0;
    return 0;
  }
  log_error("%s: %s; stopping", outfile_path(k->out),
            rc == CS_ENOMEM ? "out of memory" : outfile_error(k->out));
  return rc;
}

/* A header-only stream: its file (and header line) now. */
static int sink_csv_ended_empty(void *self, sink_stream *st) {
  sink_csv *k = self;
  int queued = 0;
  int rc = outfile_begin(k->out, st, &queued);
  if (rc != 0) {
    log_error("%s: out of memory; stopping", outfile_path(k->out));
    return rc;
  }
  k->dirty = k->dirty || queued;
  return 0;
}

/* Write what arrived since the last turn; about once a second, see that the files are still
 * there. No wake-up of its own: the loop's tick brings the check (an idle consumer wakes once
 * a second, not once for each thing it looks at). */
static int sink_csv_flush(void *self, uint64_t now_us, uint64_t *next_us) {
  sink_csv *k = self;
  if (now_us - k->checked_us >= SINK_CSV_CHECK_US - SINK_CSV_CHECK_MARGIN_US) {
    outfile_check(k->out);
    k->checked_us = now_us;
  }
  *next_us = 0;
  if (!k->dirty) {
    return 0;
  }
  k->dirty = 0;
  if (outfile_flush(k->out) != 0) {
    log_error("%s; stopping", outfile_error(k->out));
    k->failed = 1;
    return CS_EIO;
  }
  return sink_csv_checkpoint(k);
}

/* At the stop: write everything still queued, and say if records went to a deleted file. */
static int sink_csv_drain(void *self, uint64_t now_us, int give_up, uint64_t *next_us) {
  sink_csv *k = self;
  uint64_t lost, held;
  (void)now_us;
  (void)give_up;
  (void)next_us;
  if (outfile_flush(k->out) != 0) {
    char bytes[WORDS_BUF];
    log_error("%s (records not written: %s)", outfile_error(k->out),
              words_count_of(bytes, sizeof bytes, outfile_pending_bytes(k->out), "byte", "bytes"));
    k->failed = 1;
    return 1;
  }
  if (sink_csv_checkpoint(k) != 0) {
    return 1;
  }
  outfile_check(k->out);
  lost = outfile_lost(k->out, SIZE_MAX);
  held = outfile_held(k->out, SIZE_MAX);
  if (lost > 0) {
    log_error("%" PRIu64 " records were written to a CSV file that was deleted: they are not on "
              "disk (the summary names the file)",
              lost);
  }
  if (held > 0) {
    log_error("%" PRIu64 " records came after a CSV file was deleted and are not on disk: they "
              "were not acknowledged, so their TCP producers still have them (UDP records among "
              "them are lost); SIGHUP before the stop writes them to a new file",
              held);
  }
  return lost > 0 || held > 0;
}

/* SIGHUP: reopen the files at their paths (after logrotate moved them, say). */
static int sink_csv_reopen(void *self) {
  sink_csv *k = self;
  k->dirty = 1; /* a new file's header is queued */
  if (outfile_reopen(k->out) != 0) {
    log_error("%s", outfile_error(k->out));
    /* Some files may have been reopened (their held records durable now): the progress
     * file says so before anything more is acknowledged. */
    (void)sink_csv_checkpoint(k);
    return CS_EIO;
  }
  if (strcmp(outfile_path(k->out), "-") != 0) {
    log_info("SIGHUP: reopened %s%s", outfile_path(k->out),
             outfile_files(k->out) > 1 ? " and its side files" : "");
  } else {
    log_info("SIGHUP: nothing to reopen (records go to standard output)");
  }
  return sink_csv_checkpoint(k); /* records a deleted file held are durable now */
}

/* Where st's records are as CSV: its own file (a side file, perhaps, or none when it was
 * refused one), or for every stream the main file and, if there are any, its side files. */
static const char *sink_csv_where(void *self, const sink_stream *st, char *buf, size_t len) {
  sink_csv *k = self;
  const char *path = st != NULL ? outfile_stream_path(k->out, st) : outfile_path(k->out);
  if (path == NULL) {
    snprintf(buf, len, "no CSV file (its stream was refused one)");
  } else if (strcmp(path, "-") == 0) {
    snprintf(buf, len, "standard output");
  } else if (st == NULL && outfile_files(k->out) > 1) {
    snprintf(buf, len, "%s and its side files", path);
  } else {
    snprintf(buf, len, "%s", path);
  }
  return buf;
}

/* One line per file (side files, for streams with another header, are counted apart). */
static void sink_csv_report_text(void *self, FILE *out) {
  sink_csv *k = self;
  size_t nfiles = outfile_files(k->out), i;
  const char *path;
  uint64_t records;
  char n[WORDS_BUF];
  for (i = 0; outfile_file(k->out, i, &path, &records) == 0; i++) {
    /* --out - is named for people ("-: 3 records written" reads as a typo). */
    const char *name = strcmp(path, "-") == 0 ? "standard output" : path;
    uint64_t lost = outfile_lost(k->out, i), held = outfile_held(k->out, i);
    char m[WORDS_BUF], h[WORDS_BUF];
    fprintf(out, "%s: %s written", name, words_count_of(n, sizeof n, records, "record", "records"));
    if (lost > 0) {
      fprintf(out,
              ", %s of them in the file when it was deleted (acknowledged before): those "
              "are not on disk",
              words_count(m, sizeof m, lost));
    }
    if (held > 0) {
      fprintf(out, "%s %s written after it was deleted and not acknowledged: not on disk either",
              lost > 0 ? ";" : ",", words_count(h, sizeof h, held));
    }
    fputc('\n', out);
  }
  if (nfiles > 1) {
    char files[WORDS_BUF];
    fprintf(out, "%s: %s written in all\n",
            words_count_of(files, sizeof files, nfiles, "CSV file", "CSV files"),
            words_count_of(n, sizeof n, outfile_records(k->out), "record", "records"));
  }
  if (outfile_not_written(k->out) > 0) {
    fprintf(out,
            "%s not written to any CSV file: their streams needed a file of their own and got "
            "none (the %d side files allowed were open, or the file could not be opened; see "
            "the errors above)\n",
            words_count_of(n, sizeof n, outfile_not_written(k->out), "record", "records"),
            OUTFILE_MAX_SIDE_OPEN);
  }
}

/* "out": the main file, the records written and refused, and every file. */
static void sink_csv_report_json(void *self, json_out *j) {
  sink_csv *k = self;
  const char *file;
  uint64_t records;
  size_t i;
  json_object_begin(j, "out");
  json_string(j, "path", k != NULL ? outfile_path(k->out) : NULL);
  json_uint(j, "records", k != NULL ? outfile_records(k->out) : 0);
  json_uint(j, "not_written", k != NULL ? outfile_not_written(k->out) : 0);
  json_uint(j, "lost", k != NULL ? outfile_lost(k->out, SIZE_MAX) : 0);
  json_uint(j, "held", k != NULL ? outfile_held(k->out, SIZE_MAX) : 0);
  json_array_begin(j, "files");
  for (i = 0; k != NULL && outfile_file(k->out, i, &file, &records) == 0; i++) {
    json_object_begin(j, NULL);
    json_string(j, "path", file);
    json_uint(j, "records", records);
    json_uint(j, "lost", outfile_lost(k->out, i));
    json_uint(j, "held", outfile_held(k->out, i));
    json_object_end(j);
  }
  json_array_end(j);
  json_object_end(j);
}

/* A stream's "file": the CSV file its records went to (null: none yet, or refused). */
static void sink_csv_report_stream_json(void *self, const sink_stream *st, json_out *j) {
  sink_csv *k = self;
  json_string(j, "file", outfile_stream_path(k->out, st));
}

/* Close every file; a failure that the drain did not report already is reported now. */
static int sink_csv_close(void *self, int discard) {
  sink_csv *k = self;
  char err[512];
  int rc = 0;
  if (k == NULL) {
    return 0;
  }
  checkpoint_free(k->progress);
  if (discard) {
    outfile_discard(k->out); /* an out9.txt this failed start created stays empty: removed */
  } else if (outfile_close(k->out, err, sizeof(err)) != 0 && !k->failed) {
    log_error("%s", err);
    rc = 1;
  }
  free(k);
  return rc;
}

const sink_ops sink_csv_ops = {
    .name = "csv",
    .open = sink_csv_open,
    .add = sink_csv_add,
    .ended_empty = sink_csv_ended_empty,
    .resume = sink_csv_resume,
    .forget = sink_csv_forget,
    .flush = sink_csv_flush,
    .drain = sink_csv_drain,
    .reopen = sink_csv_reopen,
    .where = sink_csv_where,
    .summary = sink_csv_report_text,
    .json = sink_csv_report_json,
    .stream_json = sink_csv_report_stream_json,
    .close = sink_csv_close,
};
