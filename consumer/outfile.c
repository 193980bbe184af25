/* outfile.c -- the CSV files behind sink_csv.c: lines queued per file, written once per turn. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "csvin.h"
#include "csvout.h"
#include "error.h"
#include "fields.h"
#include "log.h"

#define OUTFILE_MAX_SIDE_FILES 1000 /* BASE.STREAM-1000.EXT is the last name tried */
#define OUTFILE_MAX_NAME_PART 100   /* bytes of a sanitised stream name used in a file name */

/* One file on disk and the header its records share. */
typedef struct out_target {
  char *path;         /* owned */
  FILE *fp;           /* opened for appending */
  int claimed;        /* the header below is the file's (read from it, or given) */
  size_t ncolumns;    /* 0: a file without a header */
  cs_field *columns;  /* owned, point into columns_data */
  char *columns_data; /* owned */
  cs_buf pending;     /* CSV bytes queued for the file */
  uint64_t pending_records;
  cs_buf marks;     /* outfile_mark: the streams queued, each with its last sequence number */
  uint64_t size;    /* bytes in the file: its size at open plus what was written since */
  uint64_t records; /* records written to this file */
  int unterminated; /* the file did not end with a line break: one is queued */
  dev_t dev;        /* the file as opened, to notice it deleted, moved or replaced */
  ino_t ino;
  uint64_t records_at_open; /* t->records when the file now open was opened */
  int fate;                 /* OUTFILE_FILE_* as last seen by outfile_check */
  uint64_t lost;            /* records acknowledged into a file that was then deleted */
  /* Once the file is found deleted, what is written after goes on into the deleted file
   * (from held_from on) but is not durable: the acknowledged streams' marks wait in held_marks
   * until SIGHUP reopens the path and those bytes are copied into the new file. */
  uint64_t held_from;
  uint64_t held_records;
  cs_buf held_marks;
  struct out_target *next;
} out_target;

struct outfile {
  int created;         /* outfile_open created the main file (it did not exist) */
  out_target *targets; /* the main file first, then side files in creation order */
  out_target *last;
  out_target refused;   /* the slot of streams refused a side file (never written) */
  uint64_t not_written; /* records of refused streams */
  size_t slot;          /* this object's index into sink_stream.slot */
  int fsync;            /* outfile_set_fsync: each write batch reaches the disk before it counts */
  char err[512];
};

/* 1 if path is "-": the main file is standard output. */
static int path_is_stdout(const char *path) {
  return strcmp(path, "-") == 0;
}

/* The file's name for people: "standard output" for "-". */
static const char *target_name(const out_target *t) {
  return path_is_stdout(t->path) ? "standard output" : t->path;
}

/* Free a target and its file (which must have been flushed). Accepts NULL. */
static void target_free(out_target *t) {
  if (t == NULL) {
    return;
  }
  if (t->fp != NULL && t->fp != stdout) {
    fclose(t->fp); /* standard output stays open for whatever the program prints after */
  }
  free(t->path);
  free(t->columns);
  free(t->columns_data);
  cs_buf_free(&t->pending);
  cs_buf_free(&t->marks);
  cs_buf_free(&t->held_marks);
  free(t);
}

/* Read the last byte of a file of size bytes (> 0) into *last. Returns 0, or -1 with errno. */
static int file_last_byte(const char *path, off_t size, char *last) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  int saved;
  if (fd < 0) {
    return -1;
  }
  do {
    n = pread(fd, last, 1, size - 1);
  } while (n < 0 && errno == EINTR);
  saved = errno;
  close(fd);
  if (n == 1) {
    return 0;
  }
  errno = n == 0 ? EIO : saved;
  return -1;
}

/* path opened for appending, and for reading where it may be: a file deleted while open hands
 * what it held to the reopened path, read back from the open file (target_reopen). A file the
 * user may only write is opened write-only (such a handover then fails, and says so). */
static FILE *outfile_fopen(const char *path) {
  FILE *fp = fopen(path, "a+b");
  if (fp == NULL && errno == EACCES) {
    fp = fopen(path, "ab");
  }
  return fp;
}

/* Open path for appending as a new target. If the file holds data, its first record becomes
 * the target's header (claimed). Returns 0, or a negative code with a message in o->err. */
static int target_open(outfile *o, const char *path, out_target **out) {
  out_target *t = calloc(1, sizeof(*t));
  csvin *in = NULL;
  struct stat sb;
  int rc = CS_ENOMEM;

  *out = NULL;
  if (t == NULL) {
    goto fail;
  }
  cs_buf_init(&t->pending);
  cs_buf_init(&t->marks);
  cs_buf_init(&t->held_marks);
  t->path = strdup(path);
  if (t->path == NULL) {
    goto fail;
  }
  if (path_is_stdout(path)) {
    /* Standard output: one CSV that starts with the first stream's header. What it is
     * redirected to is not read back (it may be a pipe), so it is never taken as having a
     * header of its own. */
    t->fp = stdout;
    if (setvbuf(t->fp, NULL, _IONBF, 0) != 0) {
      rc = CS_EIO;
      snprintf(o->err, sizeof(o->err), "standard output: cannot set up writing");
      goto fail;
    }
    *out = t;
    return 0;
  }
  t->fp = outfile_fopen(path);
  if (t->fp == NULL) {
    rc = CS_EIO;
    snprintf(o->err, sizeof(o->err),
             "%s: cannot open for appending: %s (check the directory "
             "and its permissions, or pick another --out)",
             path, strerror(errno));
    goto fail;
  }
  /* Unbuffered: outfile_flush hands the kernel one block per file and loop turn already, and
   * a failed write then leaves the unwritten bytes in t->pending, not in a stdio buffer. */
  if (setvbuf(t->fp, NULL, _IONBF, 0) != 0) {
    rc = CS_EIO;
    snprintf(o->err, sizeof(o->err), "%s: cannot set up writing: %s", path, strerror(errno));
    goto fail;
  }
  if (fstat(fileno(t->fp), &sb) != 0) {
    rc = CS_EIO;
    snprintf(o->err, sizeof(o->err), "%s: %s", path, strerror(errno));
    goto fail;
  }
  t->dev = sb.st_dev;
  t->ino = sb.st_ino;
  t->size = (uint64_t)sb.st_size;
  if (sb.st_size > 0) {
    /* The file already has records: keep to its header so that it stays one valid CSV. */
    char cerr[256];
    const csvin_rec *hdr;
    rc = csvin_open(&in, path, 1, cerr, sizeof(cerr));
    if (rc != 0) {
      snprintf(o->err, sizeof(o->err), "%s: cannot read its header: %s", path, cerr);
      goto fail;
    }
    hdr = csvin_header(in);
    if (hdr != NULL) {
      rc = cs_fields_copy(hdr->fields, hdr->nfields, &t->columns, &t->columns_data);
      if (rc != 0) {
        goto fail;
      }
      t->ncolumns = hdr->nfields;
    }
    t->claimed = 1;
    /* An earlier run stopped mid-write (or another program wrote the file) without a final
     * line break: the first new record would be glued onto that last line. End the line
     * first, with the first flush (a lone CR gets its LF). */
    char last;
    if (file_last_byte(path, sb.st_size, &last) != 0) {
      rc = CS_EIO;
      snprintf(o->err, sizeof(o->err), "%s: cannot read its last line: %s", path, strerror(errno));
      goto fail;
    }
    if (last != '\n') {
      rc = cs_buf_append(&t->pending, last == '\r' ? "\n" : "\r\n", last == '\r' ? 1 : 2);
      if (rc != 0) {
        goto fail;
      }
      t->unterminated = 1;
    }
  }
  csvin_close(in);
  *out = t;
  return 0;

fail:
  if (rc == CS_ENOMEM && o->err[0] == '\0') {
    snprintf(o->err, sizeof(o->err), "%s: out of memory", path);
  }
  csvin_close(in);
  target_free(t);
  return rc;
}

/* Give an unclaimed (empty) target the stream's header and queue the header line. */
static int target_claim(out_target *t, const sink_stream *st) {
  int rc = cs_fields_copy(st->columns, st->ncolumns, &t->columns, &t->columns_data);
  if (rc != 0) {
    return rc;
  }
  t->ncolumns = st->ncolumns;
  t->claimed = 1;
  if (t->ncolumns > 0) {
    return csvout_record(&t->pending, t->columns, t->ncolumns);
  }
  return 0;
}

/* Append a target to o's list (it is in use from now on: say so if its last line was cut). */
static void outfile_link(outfile *o, out_target *t) {
  if (t->unterminated) {
    log_warn("%s did not end with a line break (an earlier run interrupted mid-write?); new "
             "records start on a new line",
             t->path);
  }
  if (o->last == NULL) {
    o->targets = t;
  } else {
    o->last->next = t;
  }
  o->last = t;
}

/* Open path as the main file; see outfile.h. */
int outfile_open(outfile **out, const char *path, size_t slot, char *err, size_t errlen) {
  outfile *o = calloc(1, sizeof(*o));
  out_target *t = NULL;
  int rc;

  *out = NULL;
  if (o == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return CS_ENOMEM;
  }
  o->slot = slot;
  struct stat sb;
  o->created = !path_is_stdout(path) && stat(path, &sb) != 0 && errno == ENOENT;
  rc = target_open(o, path, &t);
  if (rc != 0) {
    snprintf(err, errlen, "%s", o->err);
    free(o);
    return rc;
  }
  outfile_link(o, t);
  *out = o;
  return 0;
}

/* "out9.txt" + suffix "temps" -> "out9.temps.txt"; a path without an extension gets
 * ".temps" at the end. Returns a malloc'd string or NULL. */
static char *side_path(const char *main_path, const char *suffix) {
  const char *slash = strrchr(main_path, '/');
  const char *base = slash ? slash + 1 : main_path;
  const char *dot = strrchr(base, '.');
  size_t stem, len;
  char *p;
  if (dot == NULL || dot == base) {
    dot = base + strlen(base);
  }
  stem = (size_t)(dot - main_path);
  len = stem + 1 + strlen(suffix) + strlen(dot) + 1;
  p = malloc(len);
  if (p != NULL) {
    snprintf(p, len, "%.*s.%s%s", (int)stem, main_path, suffix, dot);
  }
  return p;
}

/* Stream name reduced to [A-Za-z0-9._-] (anything else becomes '_'), at most
 * OUTFILE_MAX_NAME_PART bytes, never empty, never a leading dot. */
static void sanitise(const char *name, char *out, size_t outlen) {
  size_t i, n = 0;
  for (i = 0; name[i] != '\0' && n + 1 < outlen && n < OUTFILE_MAX_NAME_PART; i++) {
    char c = name[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    if (n == 0 && c == '.') {
      ok = 0; /* no hidden files */
    }
    out[n] = ok ? c : '_';
    n++;
  }
  if (n == 0 && outlen > 1) {
    out[n++] = '_';
  }
  out[n] = '\0';
}

/* The target for a stream whose header no existing target shares: its own side file. Returns
 * 0, CS_ENOMEM, or CS_ENOFILE (OUTFILE_MAX_SIDE_OPEN side files are open) or CS_EIO (none could
 * be opened) with the reason in o->err. */
static int outfile_side_target(outfile *o, const sink_stream *st, out_target **out) {
  char name[OUTFILE_MAX_NAME_PART + 1];
  char suffix[OUTFILE_MAX_NAME_PART + 16];
  int i, rc;

  if (path_is_stdout(o->targets->path)) {
    /* Standard output is one CSV with one header, and there is no file to put another next
     * to: such a stream is refused, as when no side file can be had. */
    snprintf(o->err, sizeof(o->err),
             "its header differs from the first stream's, and --out - (standard output) holds "
             "one header: its records are not written as CSV (name a file with --out for side "
             "files)");
    return CS_ENOFILE;
  }
  if (outfile_files(o) - 1 >= OUTFILE_MAX_SIDE_OPEN) { /* the main file, then side files */
    snprintf(o->err, sizeof(o->err),
             "%s: its header differs from every open file's, and %d side files are open "
             "already (the limit): its records are not written to a CSV file (restart the "
             "consumer for new side files)",
             o->targets->path, OUTFILE_MAX_SIDE_OPEN);
    return CS_ENOFILE;
  }
  sanitise(st->name, name, sizeof(name));
  for (i = 1; i <= OUTFILE_MAX_SIDE_FILES; i++) {
    out_target *t, *cur;
    char *path;
    int taken = 0;
    if (i == 1) {
      snprintf(suffix, sizeof(suffix), "%s", name);
    } else {
      snprintf(suffix, sizeof(suffix), "%s-%d", name, i);
    }
    path = side_path(o->targets->path, suffix);
    if (path == NULL) {
      return CS_ENOMEM;
    }
    for (cur = o->targets; cur != NULL; cur = cur->next) {
      if (strcmp(cur->path, path) == 0) {
        taken = 1; /* open already, and its header did not match */
      }
    }
    if (taken) {
      free(path);
      continue;
    }
    rc = target_open(o, path, &t);
    free(path);
    if (rc != 0) {
      return rc;
    }
    if (t->claimed && !cs_fields_equal(t->columns, t->ncolumns, st->columns, st->ncolumns)) {
      target_free(t); /* a file left by an earlier run, with another header */
      continue;
    }
    if (!t->claimed) {
      rc = target_claim(t, st);
      if (rc != 0) {
        target_free(t);
        return rc;
      }
    }
    outfile_link(o, t);
    *out = t;
    return 0;
  }
  snprintf(o->err, sizeof(o->err), "%s: no free side file name for stream %s (tried %d)",
           o->targets->path, log_escape(name, sizeof(name), st->name, strlen(st->name)),
           OUTFILE_MAX_SIDE_FILES);
  return CS_EIO;
}

/* Say which side file a stream's records go to: every stream in a side file gets this line,
 * the one that opened it and each later one that shares it, so that the log tells which
 * stream is in which file (streams in the main file are not logged: that is the default). */
static void outfile_log_side(const outfile *o, const sink_stream *st, const out_target *t,
                             int opened) {
  char nm[LOG_ESCAPE_BUF];
  log_escape(nm, sizeof(nm), st->name, strlen(st->name));
  if (opened) {
    log_info("stream '%s' (producer %016" PRIx64 ", %s %s) -> %s (has another header than %s)", nm,
             st->producer_id, st->protocol, st->peer, t->path, o->targets->path);
  } else {
    log_info("stream '%s' (producer %016" PRIx64 ", %s %s) -> %s (same header)", nm,
             st->producer_id, st->protocol, st->peer, t->path);
  }
}

/* Find or make the target for a stream. */
static int outfile_target_for(outfile *o, const sink_stream *st, out_target **out) {
  out_target *t;
  int rc;
  for (t = o->targets; t != NULL; t = t->next) {
    if (t->claimed && cs_fields_equal(t->columns, t->ncolumns, st->columns, st->ncolumns)) {
      if (t != o->targets) {
        outfile_log_side(o, st, t, 0);
      }
      *out = t;
      return 0;
    }
  }
  if (!o->targets->claimed) {
    /* The main file is empty: the first stream to arrive gives it its header. */
    rc = target_claim(o->targets, st);
    if (rc != 0) {
      return rc;
    }
    *out = o->targets;
    return 0;
  }
  rc = outfile_side_target(o, st, out);
  if (rc == 0) {
    outfile_log_side(o, st, *out, 1);
  }
  return rc;
}

/* The header a stream without one (producer --no-header) is written with: column_1 ..
 * column_n, the names the SQLite sink gives such columns, so that no CSV reader takes the
 * first record for the header. *fields and *data are owned by the caller (freed with free).
 * Returns 0 or CS_ENOMEM. */
static int synthetic_header(size_t n, cs_field **fields, char **data) {
  size_t i, off = 0, size = n * 28 + 1; /* "column_" + up to 20 digits each */
  *fields = calloc(n, sizeof(cs_field));
  *data = malloc(size);
  if (*fields == NULL || *data == NULL) {
    free(*fields);
    free(*data);
    *fields = NULL;
    *data = NULL;
    return CS_ENOMEM;
  }
  for (i = 0; i < n; i++) {
    int len = snprintf(*data + off, size - off, "column_%zu", i + 1);
    (*fields)[i].data = *data + off;
    (*fields)[i].len = (size_t)len;
    off += (size_t)len;
  }
  return 0;
}

/* The target for a stream's first record: a stream without a header is routed by its
 * synthetic header (column_1 .. column_N, N the fields of this first record), like any other
 * header. */
static int outfile_target_first(outfile *o, const sink_record *r, out_target **out) {
  sink_stream view;
  cs_field *cols = NULL;
  char *data = NULL;
  int rc;
  if (r->stream->ncolumns > 0 || r->nfields == 0) {
    return outfile_target_for(o, r->stream, out);
  }
  rc = synthetic_header(r->nfields, &cols, &data);
  if (rc != 0) {
    return rc;
  }
  view = *r->stream;
  view.columns = cols;
  view.ncolumns = r->nfields;
  rc = outfile_target_for(o, &view, out);
  free(cols);
  free(data);
  return rc;
}

/* One stream's last queued sequence number in a target: durable once the queue is written. */
typedef struct out_mark {
  sink_stream *stream;
  uint64_t seq;
  uint64_t records; /* of the stream in the queue since the mark began: held until written */
} out_mark;

/* Note r as queued in t: the last mark is updated when it is the same stream (the usual case),
 * else one is added. Returns 0 or CS_ENOMEM. */
static int target_mark(out_target *t, const sink_record *r) {
  out_mark *last = t->marks.len > 0 ? (out_mark *)(void *)(t->marks.data + t->marks.len) - 1 : NULL;
  out_mark m;
  if (last != NULL && last->stream == r->stream) {
    last->seq = r->seq;
    last->records++;
    return 0;
  }
  m.stream = r->stream;
  m.seq = r->seq;
  m.records = 1;
  return cs_buf_append(&t->marks, &m, sizeof(m));
}

/* Apply marks (n of them): their streams' records are durable up to them. */
static void marks_apply(const outfile *o, const out_mark *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (m[i].stream->durable[o->slot] < m[i].seq) {
      m[i].stream->durable[o->slot] = m[i].seq;
    }
    m[i].stream->held[o->slot] -= m[i].records;
  }
}

/* The queue of t is written. Into a file at its path its streams' records are durable up to
 * their marks; into a deleted one only the streams nobody acknowledges are done with (their
 * records are counted as held, and the acknowledged streams' marks wait in held_marks for
 * the reopen). Returns 0 or CS_ENOMEM (the marks then stay where they are). */
static int target_marks_done(const outfile *o, out_target *t) {
  const out_mark *m = (const out_mark *)(const void *)t->marks.data;
  size_t i, n = t->marks.len / sizeof(*m);
  if (t->fate != OUTFILE_FILE_DELETED) {
    marks_apply(o, m, n);
    cs_buf_reset(&t->marks);
    return 0;
  }
  for (i = 0; i < n; i++) {
    const out_mark *last =
        t->held_marks.len > 0
            ? (const out_mark *)(const void *)(t->held_marks.data + t->held_marks.len) - 1
            : NULL;
    if (!m[i].stream->acked) {
      marks_apply(o, &m[i], 1);
    } else if (last != NULL && last->stream == m[i].stream) {
      out_mark *grown = (out_mark *)(void *)(t->held_marks.data + t->held_marks.len) - 1;
      grown->seq = m[i].seq;
      grown->records += m[i].records;
    } else if (cs_buf_append(&t->held_marks, &m[i], sizeof(m[i])) != 0) {
      /* The marks before i are applied or held: keep the rest for the next try. */
      memmove(t->marks.data, m + i, (n - i) * sizeof(*m));
      t->marks.len = (n - i) * sizeof(*m);
      return CS_ENOMEM;
    }
  }
  cs_buf_reset(&t->marks);
  return 0;
}

/* t's file is found deleted: the records written to it since it was opened are lost (they were
 * acknowledged), and from offset from on what it gets is held (see out_target). */
static void target_deleted(out_target *t, uint64_t from) {
  uint64_t gone = t->records - t->records_at_open;
  t->fate = OUTFILE_FILE_DELETED;
  t->lost += gone;
  t->held_from = from;
  t->held_records = 0;
  log_error("%s was deleted while the consumer writes it: the %" PRIu64 " records written to "
            "it since it was opened are gone; the records that come now are not acknowledged "
            "(their producers keep them) until SIGHUP makes the consumer reopen the path and "
            "write them there",
            t->path, gone);
}

/* Queue one record; see outfile.h. */
int outfile_add(outfile *o, const sink_record *r) {
  out_target *t = r->stream->slot[o->slot];
  int rc;
  if (t == NULL) {
    rc = outfile_target_first(o, r, &t);
    if (rc != 0 && rc != CS_ENOMEM) {
      /* No file for this stream (the cap, or its side file could not be opened or read as
       * CSV, whatever the code): its records are counted and dropped from now on, said once;
       * everybody else's go on. */
      char nm[LOG_ESCAPE_BUF];
      log_error("stream %s (%s %s, producer %016" PRIx64 "): %s",
                log_escape(nm, sizeof(nm), r->stream->name, strlen(r->stream->name)),
                r->stream->protocol, r->stream->peer, r->stream->producer_id, o->err);
      r->stream->slot[o->slot] = &o->refused;
      t = &o->refused;
    } else if (rc != 0) {
      return rc; /* CS_ENOMEM */
    } else {
      r->stream->slot[o->slot] = t;
    }
  }
  if (t == &o->refused) {
    o->not_written++;
    return CS_ENOFILE;
  }
  rc = csvout_record(&t->pending, r->fields, r->nfields);
  if (rc != 0) {
    return rc;
  }
  t->pending_records++;
  rc = target_mark(t, r);
  if (rc == 0) {
    r->stream->held[o->slot]++;
  }
  return rc;
}

/* st leaves the table; see outfile.h. */
void outfile_forget(outfile *o, sink_stream *st) {
  st->slot[o->slot] = NULL;
}

/* A stream without records; see outfile.h. */
int outfile_begin(outfile *o, sink_stream *st, int *queued) {
  out_target *t = NULL;
  int rc;
  *queued = 0;
  if (st->slot[o->slot] != NULL || st->ncolumns == 0) {
    return 0;
  }
  rc = outfile_target_for(o, st, &t);
  if (rc == CS_ENOMEM) {
    return rc;
  }
  if (rc != 0) {
    char nm[LOG_ESCAPE_BUF];
    log_error("stream %s (%s %s, producer %016" PRIx64 "): %s",
              log_escape(nm, sizeof(nm), st->name, strlen(st->name)), st->protocol, st->peer,
              st->producer_id, o->err);
    st->slot[o->slot] = &o->refused;
    return 0;
  }
  st->slot[o->slot] = t;
  *queued = t->pending.len > 0;
  return 0;
}

/* What a person can do about a failed write, by its errno. */
static const char *outfile_write_hint(int e) {
  switch (e) {
  case ENOSPC:
  case EDQUOT:
    return "the disk is full: free some space, or pick another --out";
  case EPERM:
  case EACCES:
  case EROFS:
    return "the file cannot be written: check its permissions and attributes (chattr), or pick "
           "another --out";
  case EIO:
    return "the disk reported an error: check it, or pick another --out";
  default:
    return "check the disk and the file, or pick another --out";
  }
}

/* Write one target's queue. Returns 0 or CS_EIO with o->err set; unwritten bytes stay. */
static int target_flush(outfile *o, out_target *t) {
  size_t n;
  if (t->pending.len == 0) {
    return 0;
  }
  clearerr(t->fp);
  n = fwrite(t->pending.data, 1, t->pending.len, t->fp);
  t->size += n;
  if (n == t->pending.len && fflush(t->fp) == 0 &&
      (!o->fsync || fdatasync(fileno(t->fp)) == 0 || errno == EINVAL)) {
    struct stat sb;
    /* A file deleted since the last look: found before its records count as durable (one
     * fstat a write batch), so that nothing is acknowledged into a file no path leads to. */
    if (t->fate != OUTFILE_FILE_DELETED && t->fp != stdout && fstat(fileno(t->fp), &sb) == 0 &&
        sb.st_nlink == 0) {
      target_deleted(t, t->size - n);
    }
    cs_buf_reset(&t->pending);
    t->records += t->pending_records;
    if (t->fate == OUTFILE_FILE_DELETED) {
      t->held_records += t->pending_records;
    }
    t->pending_records = 0;
    if (target_marks_done(o, t) != 0) {
      snprintf(o->err, sizeof(o->err), "%s: out of memory", target_name(t));
      return CS_ENOMEM;
    }
    return 0;
  }
  snprintf(o->err, sizeof(o->err), "%s: write failed: %s (%s)", target_name(t), strerror(errno),
           outfile_write_hint(errno));
  /* Keep what did not reach the file, so a later flush can try again (a half-written line may
   * remain in the file). */
  cs_buf_consume(&t->pending, n);
  return CS_EIO;
}

/* What became of the file a target has open: still at its path, deleted, or moved or replaced
 * (the path leads to another file, or to none while the open file still has a name). */
static int target_fate(const out_target *t) {
  struct stat open_sb, path_sb;
  if (t->fp == stdout) {
    return OUTFILE_FILE_OK; /* no path to look at */
  }
  if (fstat(fileno(t->fp), &open_sb) == 0 && open_sb.st_nlink == 0) {
    return OUTFILE_FILE_DELETED;
  }
  if (stat(t->path, &path_sb) != 0 || path_sb.st_dev != t->dev || path_sb.st_ino != t->ino) {
    return OUTFILE_FILE_MOVED;
  }
  return OUTFILE_FILE_OK;
}

void outfile_set_fsync(outfile *o, int on) {
  o->fsync = on;
}

/* Look at every file; see outfile.h. */
int outfile_check(outfile *o) {
  out_target *t;
  int changed = 0;
  for (t = o->targets; t != NULL; t = t->next) {
    int fate = target_fate(t);
    if (fate == t->fate) {
      continue;
    }
    changed++;
    if (fate == OUTFILE_FILE_DELETED) {
      target_deleted(t, t->size);
      continue;
    }
    if (t->fate == OUTFILE_FILE_DELETED) {
      continue; /* deleted stays deleted until the reopen, whatever the path now leads to */
    }
    if (fate == OUTFILE_FILE_MOVED) {
      log_warn("%s was moved or replaced while the consumer writes it: records go on to the "
               "file it was moved to until SIGHUP reopens %s",
               t->path, t->path);
    }
    t->fate = fate;
  }
  return changed;
}

/* How many bytes at from (of [from, to) in the file open as fd) are not records: the header
 * line (head's bytes) when from is 0, then a lone line break (the mend of an unterminated last
 * line; no record is an empty line: csvout writes an empty one-field record as ""). */
static uint64_t held_prefix(int fd, uint64_t from, uint64_t to, const cs_buf *head) {
  char buf[4096];
  uint64_t skip = 0;
  size_t want = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
  ssize_t n = want > 0 ? pread(fd, buf, want, (off_t)from) : 0;
  if (n <= 0) {
    return 0;
  }
  if (from == 0 && head->len > 0 && (size_t)n >= head->len &&
      memcmp(buf, head->data, head->len) == 0) {
    skip = head->len;
  }
  if ((size_t)n >= skip + 2 && buf[skip] == '\r' && buf[skip + 1] == '\n') {
    skip += 2;
  } else if ((size_t)n >= skip + 1 && buf[skip] == '\n') {
    skip += 1;
  }
  return skip;
}

/* Copy bytes [from, to) of the file open as src to the end of dst. Returns 0 or -1 (errno). */
static int copy_range(int src, FILE *dst, uint64_t from, uint64_t to) {
  char buf[65536];
  while (from < to) {
    size_t want = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
    ssize_t n = pread(src, buf, want, (off_t)from);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        errno = EIO; /* shorter than written: cut by someone else */
      }
      return -1;
    }
    if (fwrite(buf, 1, (size_t)n, dst) != (size_t)n) {
      return -1;
    }
    from += (uint64_t)n;
  }
  return fflush(dst);
}

/* Reopen one target at its path (SIGHUP): what is queued is written first; a new, empty file
 * gets the target's header line. A file that was deleted hands over what it held: the bytes
 * written to it since it was found deleted are copied into the new file, and become durable
 * there. Standard output stays as it is. Returns 0 or CS_EIO/CS_ENOMEM with o->err set. */
static int target_reopen(outfile *o, out_target *t) {
  struct stat sb;
  FILE *fp;
  int rc = target_flush(o, t);
  if (rc != 0 || t->fp == stdout) {
    return rc;
  }
  /* Deleted a moment ago (rm, then SIGHUP at once): found now, so that what the file had is
   * counted as lost, not forgotten. */
  if (t->fate != OUTFILE_FILE_DELETED && target_fate(t) == OUTFILE_FILE_DELETED) {
    target_deleted(t, t->size);
  }
  int handover = t->fate == OUTFILE_FILE_DELETED;
  fp = outfile_fopen(t->path);
  if (fp == NULL || setvbuf(fp, NULL, _IONBF, 0) != 0 || fstat(fileno(fp), &sb) != 0) {
    snprintf(o->err, sizeof(o->err), "%s: cannot reopen for appending: %s (%s)", t->path,
             strerror(errno), outfile_write_hint(errno));
    if (fp != NULL) {
      fclose(fp);
    }
    return CS_EIO;
  }
  int header = sb.st_size == 0 && t->claimed && t->ncolumns > 0;
  if (handover) {
    cs_buf head;
    uint64_t from = t->held_from;
    off_t before = sb.st_size;
    cs_buf_init(&head);
    rc = t->claimed && t->ncolumns > 0 ? csvout_record(&head, t->columns, t->ncolumns) : 0;
    /* What the held bytes begin with that is not a record: the header line (the file was
     * new) and the line break that mended an unterminated last line. The new file gets its
     * own header, or none if it has lines already. */
    if (rc == 0) {
      from += held_prefix(fileno(t->fp), from, t->size, &head);
    }
    if (rc != 0 || (header && fwrite(head.data, 1, head.len, fp) != head.len) ||
        copy_range(fileno(t->fp), fp, from, t->size) != 0 ||
        (o->fsync && fdatasync(fileno(fp)) != 0 && errno != EINVAL) ||
        fstat(fileno(fp), &sb) != 0) {
      snprintf(o->err, sizeof(o->err),
               "%s: cannot write the %" PRIu64 " records it held into the reopened file: %s (%s)",
               t->path, t->held_records, rc != 0 ? "out of memory" : strerror(errno),
               outfile_write_hint(errno));
      /* Nothing half-copied stays: a later SIGHUP copies them whole. */
      if (ftruncate(fileno(fp), before) != 0) {
        log_warn("%s: cannot cut back the partial copy: %s", t->path, strerror(errno));
      }
      cs_buf_free(&head);
      fclose(fp);
      return rc != 0 ? rc : CS_EIO;
    }
    cs_buf_free(&head);
    header = 0;
  }
  if (fclose(t->fp) != 0) {
    log_warn("%s: closing the file it replaced: %s", t->path, strerror(errno));
  }
  t->fp = fp;
  t->dev = sb.st_dev;
  t->ino = sb.st_ino;
  t->fate = OUTFILE_FILE_OK;
  t->records_at_open = t->records - t->held_records;
  t->size = (uint64_t)sb.st_size;
  if (handover) {
    const out_mark *m = (const out_mark *)(const void *)t->held_marks.data;
    if (t->held_records > 0) {
      log_info("%s: the %" PRIu64 " records written after it was deleted are in the new file",
               t->path, t->held_records);
    }
    marks_apply(o, m, t->held_marks.len / sizeof(*m));
    cs_buf_reset(&t->held_marks);
    t->held_records = 0;
  }
  if (header) {
    return csvout_record(&t->pending, t->columns, t->ncolumns); /* a new file: its header */
  }
  return 0;
}

/* Apply fn to every target, going on after a failure. Returns the first failure's code, or 0. */
static int outfile_each(outfile *o, int (*fn)(outfile *o, out_target *t)) {
  out_target *t;
  int rc = 0, r;
  for (t = o->targets; t != NULL; t = t->next) {
    r = fn(o, t);
    if (r != 0 && rc == 0) {
      rc = r;
    }
  }
  return rc;
}

/* Target i (0: the main file, then side files in the order they were opened), or NULL. */
static const out_target *outfile_target_at(const outfile *o, size_t i) {
  const out_target *t = o->targets;
  while (t != NULL && i > 0) {
    t = t->next;
    i--;
  }
  return t;
}

/* Reopen every file; see outfile.h. */
int outfile_reopen(outfile *o) {
  return outfile_each(o, target_reopen);
}

/* File i's size as this object wrote it; see outfile.h. */
int outfile_file_size(const outfile *o, size_t i, uint64_t *size) {
  const out_target *t = outfile_target_at(o, i);
  if (t == NULL) {
    return CS_ERANGE;
  }
  *size = t->size;
  return 0;
}

/* The sum over file i (SIZE_MAX: over all files) of a count each target keeps: lost (1) or
 * held (0). */
static uint64_t outfile_sum(const outfile *o, size_t i, int lost) {
  const out_target *t;
  uint64_t n = 0;
  size_t k = 0;
  for (t = o->targets; t != NULL; t = t->next, k++) {
    if (i == SIZE_MAX || i == k) {
      n += lost ? t->lost : t->held_records;
    }
  }
  return n;
}

/* Records written to deleted files; see outfile.h. */
uint64_t outfile_lost(const outfile *o, size_t i) {
  return outfile_sum(o, i, 1);
}

/* Records held in deleted files; see outfile.h. */
uint64_t outfile_held(const outfile *o, size_t i) {
  return outfile_sum(o, i, 0);
}

/* Write and flush every queue; see outfile.h. */
int outfile_flush(outfile *o) {
  return outfile_each(o, target_flush);
}

size_t outfile_pending_bytes(const outfile *o) {
  const out_target *t;
  size_t n = 0;
  for (t = o->targets; t != NULL; t = t->next) {
    n += t->pending.len;
  }
  return n;
}

uint64_t outfile_records(const outfile *o) {
  const out_target *t;
  uint64_t n = 0;
  for (t = o->targets; t != NULL; t = t->next) {
    n += t->records;
  }
  return n;
}

uint64_t outfile_not_written(const outfile *o) {
  return o->not_written;
}

size_t outfile_files(const outfile *o) {
  const out_target *t;
  size_t n = 0;
  for (t = o->targets; t != NULL; t = t->next) {
    n++;
  }
  return n;
}

/* File i's path and records; see outfile.h. */
int outfile_file(const outfile *o, size_t i, const char **path, uint64_t *records) {
  const out_target *t = outfile_target_at(o, i);
  if (t == NULL) {
    return CS_ERANGE;
  }
  *path = t->path;
  *records = t->records;
  return 0;
}

/* The file of a stream; see outfile.h. */
const char *outfile_stream_path(const outfile *o, const sink_stream *st) {
  const out_target *t = st->slot[o->slot];
  if (t == NULL || t == &o->refused) {
    return NULL;
  }
  return t->path;
}

const char *outfile_path(const outfile *o) {
  return o->targets->path;
}

const char *outfile_error(const outfile *o) {
  return o->err;
}

/* Close without writing, removing a main file this object created and left empty; see
 * outfile.h. */
void outfile_discard(outfile *o) {
  out_target *t, *next;
  struct stat sb;
  if (o == NULL) {
    return;
  }
  t = o->targets;
  if (o->created && fstat(fileno(t->fp), &sb) == 0 && sb.st_size == 0 && unlink(t->path) != 0) {
    log_warn("%s: cannot remove the empty file: %s", t->path, strerror(errno));
  }
  for (t = o->targets; t != NULL; t = next) {
    next = t->next;
    target_free(t);
  }
  free(o);
}

/* Flush, close and free; see outfile.h. */
int outfile_close(outfile *o, char *err, size_t errlen) {
  out_target *t, *next;
  int rc;
  if (o == NULL) {
    return 0;
  }
  rc = outfile_flush(o);
  for (t = o->targets; t != NULL; t = next) {
    next = t->next;
    /* Standard output is flushed, not closed (target_free). */
    if ((t->fp == stdout ? fflush(t->fp) != 0 || ferror(t->fp) : fclose(t->fp) != 0) && rc == 0) {
      snprintf(o->err, sizeof(o->err), "%s: close failed: %s", target_name(t), strerror(errno));
      rc = CS_EIO;
    }
    t->fp = NULL;
    target_free(t);
  }
  if (rc != 0 && err != NULL) {
    snprintf(err, errlen, "%s", o->err);
  }
  free(o);
  return rc;
}
