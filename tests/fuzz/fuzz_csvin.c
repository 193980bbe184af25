/* fuzz_csvin.c -- libFuzzer target for the streaming CSV reader (common/csvin.c): any bytes,
 * read with and without a header, never crash or leak; every record holds at most the input's
 * bytes, its line is within the input and never goes back; and reading again after
 * csvin_rewind gives the same records and the same end. A third reading takes a dialect from
 * the first byte (delimiter, comment, skipped lines, encoding: UTF-8, auto, Latin-1, UTF-16LE),
 * where decoding may grow the text up to three times. Each of the three readings is also done
 * with and without the reader's fast path (csvin_dialect.no_fast_path), which must give the same
 * header, records, lines, warnings, counters and error, byte for byte.
 *
 * Input: the CSV file's bytes (written to a memfd, read by path like any file). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "csvin.h"
#include "msglog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every record left in r into log (fields as length + bytes, then the line); returns the
 * final csvin_next code. lines is the input's line count + 1, the highest line a record may
 * start on. */
static int read_rest(csvin *r, cs_buf *log, size_t size, uint64_t lines) {
  csvin_rec rec;
  uint64_t last_line = 0;
  int rc;
  while ((rc = csvin_next(r, &rec)) == 1) {
    size_t bytes = 0;
    fuzz_check(rec.nfields >= 1 && rec.nfields <= size + 1, "field count out of bounds");
    for (size_t i = 0; i < rec.nfields; i++) {
      fuzz_check(rec.fields[i].data != NULL, "a field without memory");
      bytes += rec.fields[i].len;
      fuzz_check(cs_buf_append(log, &rec.fields[i].len, sizeof rec.fields[i].len) == 0 &&
                     cs_buf_append(log, rec.fields[i].data, rec.fields[i].len) == 0,
                 "out of memory");
    }
    fuzz_check(bytes <= size, "a record holds more bytes than the input");
    fuzz_check(rec.line >= 1 && rec.line <= lines && rec.line >= last_line,
               "record line out of order or beyond the input");
    last_line = rec.line;
    fuzz_check(cs_buf_append(log, &rec.line, sizeof rec.line) == 0, "out of memory");
  }
  fuzz_check(rc <= 0, "csvin_next returned a positive code other than 1");
  fuzz_check(rc == 0 || csvin_error(r)[0] != '\0', "an error without a message");
  return rc;
}

/* Lines in the input as the reader counts them (LF, CR LF or a lone CR), plus one. */
static uint64_t count_lines(const uint8_t *data, size_t size) {
  uint64_t n = 1;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '\r' || (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))) {
      n++;
    }
  }
  return n;
}

/* One reading of path with dialect d (NULL: the defaults): open, read all, rewind, read all
 * again, compare. */
static void read_twice(const char *path, int has_header, const csvin_dialect *d,
                       const uint8_t *data, size_t size) {
  csvin *r = NULL;
  char err[1100];
  int rc = csvin_open_dialect(&r, path, has_header, d, err, sizeof err);
  if (rc != 0) {
    fuzz_check(r == NULL && err[0] != '\0', "a failed open without a message");
    return;
  }
  uint64_t lines = count_lines(data, size);
  if (d != NULL && d->encoding != NULL) {
    /* Decoded text: up to 3 bytes of UTF-8 per input byte, and UTF-16's line breaks are not
     * the bytes' (at most one per byte either way). */
    size = 3 * size + 3;
    lines = size + 1;
  }
  const csvin_rec *h = csvin_header(r);
  fuzz_check(has_header || h == NULL, "a header nobody asked for");
  if (h != NULL) {
    size_t bytes = 0;
    for (size_t i = 0; i < h->nfields; i++) {
      bytes += h->fields[i].len;
    }
    fuzz_check(bytes <= size && h->line >= 1 && h->line <= lines, "header out of bounds");
  }
  cs_buf first, again;
  cs_buf_init(&first);
  cs_buf_init(&again);
  int rc_first = read_rest(r, &first, size, lines);
  char err_first[1100];
  snprintf(err_first, sizeof err_first, "%s", csvin_error(r));
  if (csvin_rewind(r) == 0) {
    int rc_again = read_rest(r, &again, size, lines);
    fuzz_check(rc_again == rc_first, "a second reading ended otherwise");
    fuzz_check(strcmp(err_first, csvin_error(r)) == 0, "a second reading gave another error");
    fuzz_check(first.len == again.len &&
                   (first.len == 0 || memcmp(first.data, again.data, first.len) == 0),
               "a second reading gave other records");
  }
  cs_buf_free(&first);
  cs_buf_free(&again);
  csvin_close(r);
}

/* csvin_dialect.warn_cb for read_logged: the warning appended to the log (a cs_buf). */
static void log_warning(void *arg, const char *msg) {
  fuzz_check(cs_buf_append(arg, msg, strlen(msg) + 1) == 0, "out of memory");
}

/* Read path whole with dialect d (the defaults when NULL), the fast path on or off, into log:
 * the open's code and message, the header, every record with its line, the warnings where they
 * came, the final code and message, and the counters of skipped lines. */
static void read_logged(const char *path, int has_header, const csvin_dialect *d, int no_fast,
                        cs_buf *log) {
  csvin_dialect dd;
  csvin *r = NULL;
  char err[1100];
  if (d != NULL) {
    dd = *d;
  } else {
    memset(&dd, 0, sizeof dd);
  }
  dd.no_fast_path = no_fast;
  dd.warn_cb = log_warning;
  dd.warn_arg = log;
  int rc = csvin_open_dialect(&r, path, has_header, &dd, err, sizeof err);
  fuzz_check(cs_buf_append(log, &rc, sizeof rc) == 0, "out of memory");
  if (rc != 0) {
    fuzz_check(cs_buf_append(log, err, strlen(err) + 1) == 0, "out of memory");
    return;
  }
  const csvin_rec *h = csvin_header(r);
  if (h != NULL) {
    for (size_t i = 0; i < h->nfields; i++) {
      fuzz_check(cs_buf_append(log, &h->fields[i].len, sizeof h->fields[i].len) == 0 &&
                     cs_buf_append(log, h->fields[i].data, h->fields[i].len) == 0,
                 "out of memory");
    }
    fuzz_check(cs_buf_append(log, &h->line, sizeof h->line) == 0, "out of memory");
  }
  csvin_rec rec;
  while ((rc = csvin_next(r, &rec)) == 1) {
    fuzz_check(cs_buf_append(log, &rec.nfields, sizeof rec.nfields) == 0, "out of memory");
    for (size_t i = 0; i < rec.nfields; i++) {
      fuzz_check(cs_buf_append(log, &rec.fields[i].len, sizeof rec.fields[i].len) == 0 &&
                     cs_buf_append(log, rec.fields[i].data, rec.fields[i].len) == 0,
                 "out of memory");
    }
    fuzz_check(cs_buf_append(log, &rec.line, sizeof rec.line) == 0, "out of memory");
  }
  uint64_t counts[4] = {csvin_skipped_lines(r), csvin_comment_lines(r), csvin_invalid_utf8_lines(r),
                        csvin_offset(r)};
  fuzz_check(cs_buf_append(log, &rc, sizeof rc) == 0 &&
                 cs_buf_append(log, csvin_error(r), strlen(csvin_error(r)) + 1) == 0 &&
                 cs_buf_append(log, counts, sizeof counts) == 0,
             "out of memory");
  csvin_close(r);
}

/* The same reading with the fast path and through libcsv alone must log the same bytes. */
static void read_both_ways(const char *path, int has_header, const csvin_dialect *d) {
  cs_buf fast, slow;
  cs_buf_init(&fast);
  cs_buf_init(&slow);
  read_logged(path, has_header, d, 0, &fast);
  read_logged(path, has_header, d, 1, &slow);
  fuzz_check(fast.len == slow.len && (fast.len == 0 || memcmp(fast.data, slow.data, fast.len) == 0),
             "the fast path read otherwise than libcsv");
  cs_buf_free(&fast);
  cs_buf_free(&slow);
}

/* libFuzzer's entry: the input as a file, read without and then with a header. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz_csvin", MFD_CLOEXEC);
  fuzz_check(fd >= 0, "memfd_create failed");
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    fuzz_check(n > 0, "write to the memfd failed");
    done += (size_t)n;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  read_twice(path, 0, NULL, data, size);
  read_twice(path, 1, NULL, data, size);
  read_both_ways(path, 0, NULL);
  read_both_ways(path, 1, NULL);
  if (size > 0) {
    static const char delims[] = ",;\t|";
    static const char *const encodings[] = {NULL, "auto", "latin1", "utf-16le"};
    csvin_dialect d;
    memset(&d, 0, sizeof d);
    d.delimiter = delims[data[0] & 3];
    d.delimiter_auto = (data[0] >> 2) & 1;
    d.comment = (data[0] >> 3) & 1 ? '#' : 0;
    d.skip_lines = (data[0] >> 4) & 1;
    d.encoding = encodings[(data[0] >> 5) & 3];
    read_twice(path, (data[0] >> 7) & 1, &d, data, size);
    read_both_ways(path, (data[0] >> 7) & 1, &d);
  }
  fuzz_check(close(fd) == 0, "close failed");
  return 0;
}
