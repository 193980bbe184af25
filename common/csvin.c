/* csvin.c -- streaming CSV reader on libcsv: RFC 4180 fields byte for byte, BOM stripped, the
 * line where each record starts, and flat memory whatever the file size. */
#include "csvin.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

#define CSVIN_BLOCK (64 * 1024)
#define CSVIN_ERRLEN 1024

/* What this file reads of libcsv's internals, and why it is tied to libcsv 3.0.3.
 *
 * csv.h exposes struct csv_parser but documents none of its members. Three are read here,
 * never written, between calls (never inside a callback):
 *   pstate     the parser's state, libcsv.c's private constants: ROW_NOT_BEGUN 0 (between
 *              records), FIELD_NOT_BEGUN 1 (after a delimiter), FIELD_BEGUN 2 (inside a field),
 *              FIELD_MIGHT_HAVE_ENDED 3 (a quote seen inside a quoted field: either the closing
 *              quote or the first half of a doubled one). Used to know whether the next byte
 *              starts a record (its line is then the record's line), and whether a quoted field
 *              is open (for the line an unterminated quote is reported at).
 *   quoted     1 while the field in progress began with a quote (states 2 and 3).
 *   entry_pos  bytes of the field in progress held in libcsv's own buffer (so far), to bound
 *              the memory of one record before libcsv has handed the field over.
 * csv_fini in 3.0.3 fails in strict mode exactly when pstate == FIELD_BEGUN && quoted (an
 * unterminated quote); in state 3 the field counts as closed. Every path below was checked
 * against libcsv 3.0.3's libcsv.c; another version may number or use these differently, so
 * the build stops rather than guess. After checking a new version, update the test below. */
#if !defined(CSV_MAJOR) || !defined(CSV_MINOR) || !defined(CSV_RELEASE) || CSV_MAJOR != 3 ||       \
    CSV_MINOR != 0 || CSV_RELEASE != 3
#error                                                                                             \
    "common/csvin.c reads libcsv 3.0.3's parser internals (pstate, quoted, entry_pos); this csv.h is another version: check them against its libcsv.c (see the comment above) before changing this test"
#endif
#define LIBCSV_ROW_NOT_BEGUN 0
#define LIBCSV_FIELD_BEGUN 2
#define LIBCSV_FIELD_MIGHT_HAVE_ENDED 3

/* Where one field lies in the reader's byte store. */
typedef struct field_span {
  size_t off;
  size_t len;
} field_span;

/* A record completed by libcsv and not yet handed out. */
typedef struct queued_rec {
  size_t first; /* index of its first span */
  size_t nfields;
  uint64_t line;
} queued_rec;

struct csvin {
  char *path;    /* as given; "-" is standard input */
  int fd;        /* owned unless it is standard input */
  int may_block; /* fd is not a regular file: a read can wait for the writer */
  int has_header;
  struct csv_parser parser;
  int parser_live; /* csv_init succeeded and csv_free is due */

  char *block; /* CSVIN_BLOCK bytes read from fd */
  size_t block_len;
  size_t block_pos;
  uint64_t block_off; /* file offset of block[0] */
  int bom_checked;
  int eof; /* read returned 0 and csv_fini has run */
  int err; /* sticky error code, returned once the queue is empty */
  char errmsg[CSVIN_ERRLEN];

  /* Line accounting: lines end at LF, CR LF or a lone CR. */
  uint64_t line;       /* line of the next byte to feed */
  int prev_cr;         /* the last byte fed was CR (an LF now ends no new line) */
  uint64_t rec_line;   /* line where the record being parsed starts */
  uint64_t quote_line; /* line where the open quoted field starts */
  size_t nfields_seen; /* fields libcsv has submitted so far */

  /* Completed and in-progress fields: bytes, spans, and the records they make up. */
  cs_buf bytes;
  field_span *spans;
  size_t nspans;
  size_t spans_cap;
  size_t cur_first; /* first span of the record in progress */
  queued_rec *queue;
  size_t qlen;
  size_t qcap;
  size_t qhead;
  int cb_err;          /* CS_ENOMEM inside a libcsv callback */
  int too_many_fields; /* the record in progress passed CSVIN_MAX_FIELDS */

  cs_field *out_fields; /* what csvin_next hands out */
  size_t out_cap;

  /* The header, copied out of the queue. */
  int header_ready;
  csvin_rec header;
  cs_buf header_bytes;
  cs_field *header_fields;

  /* Where the first data record starts, for csvin_rewind. */
  uint64_t data_off;
  uint64_t data_line;
  int data_prev_cr;
};

/* libcsv trims spaces and tabs around unquoted fields unless told that nothing is a space. */
static int no_space(unsigned char c) {
  (void)c;
  return 0;
}

/* libcsv field callback: copy the field out (libcsv's pointer dies with the call). */
static void on_field(void *data, size_t len, void *arg) {
  csvin *r = arg;
  r->nfields_seen++;
  if (r->cb_err || r->too_many_fields) {
    return;
  }
  if (r->nspans - r->cur_first >= CSVIN_MAX_FIELDS) {
    r->too_many_fields = 1; /* reported by feed_piece once libcsv returns */
    return;
  }
  if (r->nspans == r->spans_cap) {
    size_t cap = r->spans_cap < 64 ? 64 : r->spans_cap * 2;
    field_span *s = realloc(r->spans, cap * sizeof *s);
    if (s == NULL) {
      r->cb_err = CS_ENOMEM;
      return;
    }
    r->spans = s;
    r->spans_cap = cap;
  }
  size_t off = r->bytes.len;
  if (cs_buf_append(&r->bytes, data, len) != 0) {
    r->cb_err = CS_ENOMEM;
    return;
  }
  r->spans[r->nspans].off = off;
  r->spans[r->nspans].len = len;
  r->nspans++;
}

/* libcsv record callback: queue the fields submitted since the last record. */
static void on_record(int term, void *arg) {
  csvin *r = arg;
  (void)term;
  if (r->cb_err || r->too_many_fields) {
    return;
  }
  if (r->qlen == r->qcap) {
    size_t cap = r->qcap < 4 ? 4 : r->qcap * 2;
    queued_rec *q = realloc(r->queue, cap * sizeof *q);
    if (q == NULL) {
      r->cb_err = CS_ENOMEM;
      return;
    }
    r->queue = q;
    r->qcap = cap;
  }
  r->queue[r->qlen].first = r->cur_first;
  r->queue[r->qlen].nfields = r->nspans - r->cur_first;
  r->queue[r->qlen].line = r->rec_line;
  r->qlen++;
  r->cur_first = r->nspans;
}

/* libcsv's field buffer, grown geometrically.
 *
 * libcsv 3.0.3 grows its buffer for the field in progress by a fixed step: when it is full it
 * calls realloc_func(entry_buf, entry_size + blk_size) and from then on believes the buffer
 * holds exactly entry_size + blk_size bytes (on failure it halves the step and asks again). A
 * field of n bytes thus costs n / blk_size reallocations, each of which may copy the whole
 * field: quadratic, and under AddressSanitizer, whose realloc always copies, a 64 MiB field
 * took minutes. libcsv gives the function no context, so the true capacity is kept in a header
 * in front of the block: a request that still fits returns the same block, a larger one at
 * least doubles it (up to the most a record can hold, see feed_piece), so the copying is
 * linear in the field's length. The block is freed only by field_buf_free (csv_free). */
typedef union field_buf_head {
  size_t cap; /* bytes usable after the header */
  max_align_t align;
} field_buf_head;

/* The first capacity, and the largest one reached by doubling: a field never grows past the
 * record limit plus one read block before feed_piece refuses it. */
#define FIELD_BUF_MIN 4096
#define FIELD_BUF_MAX ((size_t)CSVIN_MAX_RECORD + 2 * CSVIN_BLOCK)

/* libcsv realloc_func: at least `size` bytes, keeping the contents of `block` (or NULL). */
static void *field_buf_realloc(void *block, size_t size) {
  field_buf_head *head = block == NULL ? NULL : (field_buf_head *)block - 1;
  size_t cap = head == NULL ? 0 : head->cap;
  if (size <= cap) {
    return block;
  }
  if (size > SIZE_MAX - sizeof *head) {
    return NULL;
  }
  size_t want = cap < FIELD_BUF_MIN ? FIELD_BUF_MIN : cap;
  while (want < size && want <= (SIZE_MAX - sizeof *head) / 2) {
    want *= 2;
  }
  if (want > FIELD_BUF_MAX && size <= FIELD_BUF_MAX) {
    want = FIELD_BUF_MAX;
  }
  if (want < size) {
    want = size;
  }
  field_buf_head *grown = realloc(head, sizeof *head + want);
  if (grown == NULL && want > size) {
    /* Short of memory: exactly what libcsv asked for may still fit. */
    want = size;
    grown = realloc(head, sizeof *head + want);
  }
  if (grown == NULL) {
    return NULL; /* the old block is untouched and still libcsv's */
  }
  grown->cap = want;
  return grown + 1;
}

/* libcsv free_func for the blocks of field_buf_realloc. */
static void field_buf_free(void *block) {
  if (block != NULL) {
    free((field_buf_head *)block - 1);
  }
}

/* Set up libcsv: strict quoting, errors for an unterminated quote at the end, no trimming,
 * and a field buffer that grows geometrically (libcsv asks for 4 KiB more each time). */
static int parser_start(csvin *r) {
  if (csv_init(&r->parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    return CS_ENOMEM;
  }
  csv_set_space_func(&r->parser, no_space);
  csv_set_realloc_func(&r->parser, field_buf_realloc);
  csv_set_free_func(&r->parser, field_buf_free);
  csv_set_blk_size(&r->parser, 4096);
  r->parser_live = 1;
  return 0;
}

/* Once every queued record was handed out, move the fields of the record in progress to the
 * front of the store so memory stays bounded by one record plus one line's worth. */
static void compact(csvin *r) {
  if (r->qhead < r->qlen) {
    return;
  }
  r->qhead = 0;
  r->qlen = 0;
  size_t keep = r->nspans - r->cur_first;
  size_t base = keep > 0 ? r->spans[r->cur_first].off : r->bytes.len;
  cs_buf_consume(&r->bytes, base);
  for (size_t i = 0; i < keep; i++) {
    r->spans[i].off = r->spans[r->cur_first + i].off - base;
    r->spans[i].len = r->spans[r->cur_first + i].len;
  }
  r->nspans = keep;
  r->cur_first = 0;
}

/* Read the next block; returns bytes read, 0 at end of input, or CS_EIO (message set). The
 * first read of the input also strips a UTF-8 byte order mark. */
static ssize_t read_block(csvin *r) {
  r->block_off += r->block_len;
  r->block_len = 0;
  r->block_pos = 0;
  for (;;) {
    ssize_t n = read(r->fd, r->block + r->block_len, CSVIN_BLOCK - r->block_len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      snprintf(r->errmsg, sizeof r->errmsg, "%s: read failed: %s", csvin_path(r), strerror(errno));
      return CS_EIO;
    }
    r->block_len += (size_t)n;
    if (r->bom_checked || n == 0) {
      break;
    }
    /* A pipe may deliver the BOM a byte at a time: read on while what arrived is only the start
     * of one, but not longer (a short first record must not wait for a third byte). */
    if (r->block_len < 3 && memcmp(r->block, "\xEF\xBB\xBF", r->block_len) == 0) {
      continue;
    }
    r->bom_checked = 1;
    if (r->block_len >= 3 && memcmp(r->block, "\xEF\xBB\xBF", 3) == 0) {
      if (r->block_len > 3) {
        r->block_pos = 3;
        break;
      }
      /* The BOM alone: what follows has not arrived yet, and 0 bytes would mean the end. */
      r->block_off += 3;
      r->block_len = 0;
      continue;
    }
    break;
  }
  r->bom_checked = 1; /* also at the end of an input shorter than a BOM */
  return (ssize_t)(r->block_len - r->block_pos);
}

/* Set the sticky error: "PATH:LINE: what". */
static void set_csv_error(csvin *r, uint64_t line, const char *what) {
  snprintf(r->errmsg, sizeof r->errmsg, "%s:%llu: %s", csvin_path(r), (unsigned long long)line,
           what);
  r->err = CS_ECSV;
}

/* True while libcsv is inside a quoted field that has not been closed: the end of the input
 * now would be an unterminated quote (csv_fini's own test in 3.0.3). */
static int in_quoted_field(const csvin *r) {
  return r->parser.pstate == LIBCSV_FIELD_BEGUN && r->parser.quoted;
}

/* True while libcsv holds a quoted field, including just after a quote inside it (which may be
 * the first half of a doubled quote: the same field then goes on). */
static int quoted_field_held(const csvin *r) {
  return r->parser.quoted && (r->parser.pstate == LIBCSV_FIELD_BEGUN ||
                              r->parser.pstate == LIBCSV_FIELD_MIGHT_HAVE_ENDED);
}

/* Report a record with more than CSVIN_MAX_FIELDS fields. */
static void set_fields_error(csvin *r) {
  char what[128];
  snprintf(what, sizeof what, "record of more than %u fields starting on this line",
           (unsigned)CSVIN_MAX_FIELDS);
  set_csv_error(r, r->rec_line, what);
}

/* The input ended: let libcsv finish the last record and name what is wrong with it, if
 * anything (a quote never closed, say). Sets r->eof, and r->err on an error. */
static void finish_input(csvin *r) {
  if (r->parser.pstate == LIBCSV_ROW_NOT_BEGUN) {
    r->rec_line = r->line;
  }
  int unterminated = in_quoted_field(r);
  if (csv_fini(&r->parser, on_field, on_record, r) != 0) {
    if (unterminated) {
      set_csv_error(r, r->quote_line,
                    "unterminated quote (the quoted field that starts on this line never "
                    "ends)");
    } else {
      set_csv_error(r, r->line, "malformed quoting");
    }
  } else if (r->cb_err) {
    r->err = r->cb_err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
  } else if (r->too_many_fields) {
    set_fields_error(r);
  }
  r->eof = 1;
}

/* Feed libcsv the next piece of input: the bytes up to and including the next CR or LF (or to
 * the end of the block). Pieces end at every line break, so at most one record completes per
 * piece and its first line is known. Returns 0, or sets r->err / r->eof. */
static void feed_piece(csvin *r) {
  if (r->block_pos == r->block_len) {
    ssize_t n = read_block(r);
    if (n < 0) {
      r->err = (int)n;
      return;
    }
    if (n == 0) {
      finish_input(r);
      return;
    }
  }
  const char *start = r->block + r->block_pos;
  size_t avail = r->block_len - r->block_pos;
  size_t len = avail;
  for (size_t i = 0; i < avail; i++) {
    if (start[i] == '\n' || start[i] == '\r') {
      len = i + 1;
      break;
    }
  }
  if (r->parser.pstate == LIBCSV_ROW_NOT_BEGUN) {
    r->rec_line = r->line;
  }
  int was_quoted = quoted_field_held(r);
  size_t fields_before = r->nfields_seen;
  size_t done = csv_parse(&r->parser, start, len, on_field, on_record, r);
  if (r->cb_err) {
    r->err = r->cb_err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
    return;
  }
  if (r->too_many_fields) {
    set_fields_error(r);
    return;
  }
  if (done < len) {
    if (csv_error(&r->parser) == CSV_EPARSE) {
      set_csv_error(r, r->line, "malformed quoting");
    } else {
      r->err = CS_ENOMEM;
      snprintf(r->errmsg, sizeof r->errmsg, "%s:%llu: %s", csvin_path(r),
               (unsigned long long)r->line, csv_strerror(csv_error(&r->parser)));
    }
    return;
  }
  /* Bound the memory one record can take: without this, a quote left open would make libcsv
   * swallow the rest of the file into one field. */
  size_t held = r->parser.entry_pos;
  if (r->nspans > r->cur_first) {
    held += r->bytes.len - r->spans[r->cur_first].off;
  }
  if (held > CSVIN_MAX_RECORD) {
    set_csv_error(r, quoted_field_held(r) ? r->quote_line : r->rec_line,
                  "record longer than 64 MiB starting on this line (a quoted field that never "
                  "ends?)");
    return;
  }
  /* A quoted field open now began in this piece if it was not open before, or if another field
   * ended in this piece (then the open one started after it). */
  if (quoted_field_held(r) && (!was_quoted || r->nfields_seen != fields_before)) {
    r->quote_line = r->line;
  }
  char last = start[len - 1];
  if (last == '\r') {
    r->line++;
    r->prev_cr = 1;
  } else if (last == '\n') {
    if (!r->prev_cr) {
      r->line++;
    }
    r->prev_cr = 0;
  } else {
    r->prev_cr = 0;
  }
  r->block_pos += len;
}

/* Take the next record off the queue, parsing more input as needed. Returns 1, 0 at the end, or
 * the sticky error once every record before it was handed out. */
static int next_queued(csvin *r, csvin_rec *rec) {
  compact(r);
  while (r->qhead == r->qlen) {
    if (r->err) {
      return r->err;
    }
    if (r->eof) {
      return 0;
    }
    feed_piece(r);
  }
  queued_rec *q = &r->queue[r->qhead++];
  if (q->nfields > r->out_cap) {
    size_t cap = r->out_cap < 16 ? 16 : r->out_cap;
    while (cap < q->nfields) {
      cap *= 2;
    }
    cs_field *f = realloc(r->out_fields, cap * sizeof *f);
    if (f == NULL) {
      r->err = CS_ENOMEM;
      snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
      return r->err;
    }
    r->out_fields = f;
    r->out_cap = cap;
  }
  /* Until a field holds a byte the store has no memory (data is NULL), and NULL + 0 is
   * undefined: empty fields then point at a static empty string. */
  const char *base = r->bytes.data != NULL ? r->bytes.data : "";
  for (size_t i = 0; i < q->nfields; i++) {
    r->out_fields[i].data = base + r->spans[q->first + i].off;
    r->out_fields[i].len = r->spans[q->first + i].len;
  }
  rec->nfields = q->nfields;
  rec->fields = r->out_fields;
  rec->line = q->line;
  return 1;
}

/* Remember where the data records start: right after the piece that completed the header. */
static void mark_data_start(csvin *r) {
  r->data_off = r->block_off + r->block_pos;
  r->data_line = r->line;
  r->data_prev_cr = r->prev_cr;
}

/* Copy the first record into the reader's own header storage. Returns 0 or a code (message
 * set). An input with no record at all leaves the header absent. */
static int read_header(csvin *r) {
  csvin_rec rec;
  int rc = next_queued(r, &rec);
  if (rc < 0) {
    return rc;
  }
  /* The data starts after the header; in an input with no record at all, at its end, so that
   * a rewind finds the same nothing (and does not re-read a BOM as data). */
  mark_data_start(r);
  if (rc == 0) {
    return 0;
  }
  size_t total = 0;
  for (size_t i = 0; i < rec.nfields; i++) {
    total += rec.fields[i].len;
  }
  r->header_fields = calloc(rec.nfields > 0 ? rec.nfields : 1, sizeof *r->header_fields);
  if (r->header_fields == NULL || cs_buf_reserve(&r->header_bytes, total + 1) != 0) {
    snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
    return CS_ENOMEM;
  }
  for (size_t i = 0; i < rec.nfields; i++) {
    size_t off = r->header_bytes.len;
    /* Cannot fail: the whole size was reserved above. */
    (void)cs_buf_append(&r->header_bytes, rec.fields[i].data, rec.fields[i].len);
    r->header_fields[i].len = rec.fields[i].len;
    r->header_fields[i].data = (const char *)(uintptr_t)off;
  }
  for (size_t i = 0; i < rec.nfields; i++) {
    r->header_fields[i].data = r->header_bytes.data + (uintptr_t)r->header_fields[i].data;
  }
  r->header.nfields = rec.nfields;
  r->header.fields = r->header_fields;
  r->header.line = rec.line;
  r->header_ready = 1;
  return 0;
}

int csvin_open(csvin **out, const char *path, int has_header, char *err, size_t errlen) {
  csvin *r = calloc(1, sizeof *r);
  int rc = CS_ENOMEM;
  *out = NULL;
  if (r == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    return CS_ENOMEM;
  }
  r->fd = -1;
  r->line = 1;
  r->data_line = 1;
  r->has_header = has_header;
  cs_buf_init(&r->bytes);
  cs_buf_init(&r->header_bytes);
  r->path = strdup(path);
  r->block = malloc(CSVIN_BLOCK);
  if (r->path == NULL || r->block == NULL) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto fail;
  }
  if (strcmp(path, "-") == 0) {
    r->fd = STDIN_FILENO;
    struct stat st;
    r->may_block = fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode);
  } else {
    do {
      r->fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (r->fd < 0 && errno == EINTR);
    if (r->fd < 0) {
      rc = -errno;
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
      goto fail;
    }
    struct stat st;
    int stat_ok = fstat(r->fd, &st) == 0;
    if (stat_ok && S_ISDIR(st.st_mode)) {
      rc = -EISDIR;
      snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
      goto fail;
    }
    r->may_block = !stat_ok || !S_ISREG(st.st_mode); /* a FIFO or device given by name */
  }
  rc = parser_start(r);
  if (rc != 0) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto fail;
  }
  if (has_header) {
    rc = read_header(r);
    if (rc < 0) {
      snprintf(err, errlen, "%s", r->errmsg);
      goto fail;
    }
  } else {
    /* Without a header the data starts at the first byte after a BOM: peek at it now. */
    ssize_t n = read_block(r);
    if (n < 0) {
      rc = (int)n;
      snprintf(err, errlen, "%s", r->errmsg);
      goto fail;
    }
    r->data_off = r->block_off + r->block_pos;
  }
  *out = r;
  return 0;
fail:
  csvin_close(r);
  return rc;
}

int csvin_next(csvin *r, csvin_rec *rec) {
  return next_queued(r, rec);
}

/* Bytes parsed; see csvin.h. Pieces end at line breaks, so this is the end of the last line fed. */
uint64_t csvin_offset(const csvin *r) {
  return r->block_off + r->block_pos;
}

/* Parse what is buffered until a record completes or the buffer runs dry; only then, and only
 * for an input that can block, ask the kernel whether a read would wait. */
int csvin_would_block(csvin *r) {
  compact(r);
  while (r->qhead == r->qlen && !r->err && !r->eof && r->block_pos < r->block_len) {
    feed_piece(r); /* cannot read: bytes are left in the block */
  }
  if (r->qhead < r->qlen || r->err || r->eof || !r->may_block) {
    return 0;
  }
  struct pollfd pfd = {.fd = r->fd, .events = POLLIN, .revents = 0};
  int n;
  do {
    n = poll(&pfd, 1, 0);
  } while (n < 0 && errno == EINTR);
  /* Readable, hung up or in error: the read returns at once either way. */
  return n == 0;
}

int csvin_fd(const csvin *r) {
  return r->fd;
}

const csvin_rec *csvin_header(const csvin *r) {
  return r->header_ready ? &r->header : NULL;
}

/* Seek back to the first data record and restart libcsv with an empty queue. */
int csvin_rewind(csvin *r) {
  if (r->fd == STDIN_FILENO) {
    return CS_EINVAL;
  }
  if (lseek(r->fd, (off_t)r->data_off, SEEK_SET) < 0) {
    snprintf(r->errmsg, sizeof r->errmsg, "%s: cannot rewind: %s", csvin_path(r), strerror(errno));
    return CS_EINVAL;
  }
  if (r->parser_live) {
    csv_free(&r->parser);
    r->parser_live = 0;
  }
  int rc = parser_start(r);
  if (rc != 0) {
    r->err = rc;
    snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
    return rc;
  }
  r->block_off = r->data_off;
  r->block_len = 0;
  r->block_pos = 0;
  r->eof = 0;
  r->err = 0;
  r->too_many_fields = 0;
  r->errmsg[0] = '\0';
  r->line = r->data_line;
  r->prev_cr = r->data_prev_cr;
  r->rec_line = r->data_line;
  r->quote_line = r->data_line;
  cs_buf_reset(&r->bytes);
  r->nspans = 0;
  r->cur_first = 0;
  r->qlen = 0;
  r->qhead = 0;
  return 0;
}

const char *csvin_path(const csvin *r) {
  return strcmp(r->path, "-") == 0 ? "<stdin>" : r->path;
}

const char *csvin_error(const csvin *r) {
  return r->errmsg;
}

void csvin_close(csvin *r) {
  if (r == NULL) {
    return;
  }
  if (r->parser_live) {
    csv_free(&r->parser);
  }
  if (r->fd >= 0 && r->fd != STDIN_FILENO) {
    close(r->fd);
  }
  free(r->path);
  free(r->block);
  cs_buf_free(&r->bytes);
  cs_buf_free(&r->header_bytes);
  free(r->spans);
  free(r->queue);
  free(r->out_fields);
  free(r->header_fields);
  free(r);
}
