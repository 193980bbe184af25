/* csvpush.c -- a push CSV parser on libcsv: pieces of bytes in, complete records out, each
 * record's bytes and fields bounded. */
#include "csvpush.h"

#include <csv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

/* Memory a parser keeps between records: beyond this, what a long record made it grow to is
 * given back once the record is done, so that many idle connections that each once sent a long
 * record do not hold a megabyte each. */
#define CSVPUSH_KEEP_BYTES (64u * 1024u)

/* libcsv 3.0.3's state "between records" (libcsv.c's ROW_NOT_BEGUN): only then may the parser
 * be started over without losing input. csv.h exposes pstate but documents no values;
 * common/csvin.c reads the same member and stops the build on any other libcsv version. */
#define CSVPUSH_LIBCSV_ROW_NOT_BEGUN 0

/* Where one field of the record in progress lies in the parser's byte store. */
typedef struct csvpush_span {
  size_t off, len;
} csvpush_span;

struct csvpush {
  struct csv_parser parser;
  int parser_live;
  size_t max_record;
  size_t pending; /* bytes fed since the piece in which the last record completed */
  int completed;  /* records completed during the current piece */
  int failed;     /* an error was returned: refuse input until reset */
  int stop_rc;    /* the callback's non-zero value, or an error found inside a callback */
  csvpush_cb cb;  /* for the libcsv callbacks, during one feed */
  void *cb_arg;
  cs_buf bytes; /* the record in progress: its fields back to back */
  csvpush_span *spans;
  size_t nspans, spans_cap;
  cs_field *out; /* the record handed to cb */
  size_t out_cap;
  const char *why;
};

/* libcsv trims spaces around unquoted fields unless told that nothing is a space. */
static int csvpush_no_space(unsigned char c) {
  (void)c;
  return 0;
}

/* (Re)start libcsv. Returns 0 or CS_ENOMEM. */
static int csvpush_parser_init(csvpush *p) {
  if (p->parser_live) {
    csv_free(&p->parser);
    p->parser_live = 0;
  }
  if (csv_init(&p->parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    return CS_ENOMEM;
  }
  p->parser_live = 1;
  csv_set_space_func(&p->parser, csvpush_no_space);
  /* Large steps: libcsv grows its field buffer by this much each time (a 1 MiB field would
   * otherwise take thousands of reallocations). */
  csv_set_blk_size(&p->parser, 64 * 1024);
  return 0;
}

int csvpush_new(csvpush **out, size_t max_record) {
  csvpush *p = calloc(1, sizeof(*p));
  *out = NULL;
  if (p == NULL) {
    return CS_ENOMEM;
  }
  p->max_record = max_record;
  cs_buf_init(&p->bytes);
  if (csvpush_parser_init(p) != 0) {
    free(p);
    return CS_ENOMEM;
  }
  *out = p;
  return 0;
}

void csvpush_free(csvpush *p) {
  if (p == NULL) {
    return;
  }
  if (p->parser_live) {
    csv_free(&p->parser);
  }
  cs_buf_free(&p->bytes);
  free(p->spans);
  free(p->out);
  free(p);
}

/* Forget the record in progress (its fields). */
static void csvpush_clear_record(csvpush *p) {
  cs_buf_reset(&p->bytes);
  p->nspans = 0;
}

/* libcsv field callback: copy the field (libcsv's pointer dies with the call). */
static void csvpush_on_field(void *data, size_t len, void *arg) {
  csvpush *p = arg;
  if (p->stop_rc != 0) {
    return;
  }
  if (p->nspans >= CSVPUSH_MAX_FIELDS) {
    p->why = "a record with more fields than the limit";
    p->stop_rc = CS_ETOOBIG;
    return;
  }
  if (p->nspans == p->spans_cap) {
    size_t cap = p->spans_cap < 16 ? 16 : p->spans_cap * 2;
    csvpush_span *s = realloc(p->spans, cap * sizeof(*s));
    if (s == NULL) {
      p->stop_rc = CS_ENOMEM;
      return;
    }
    p->spans = s;
    p->spans_cap = cap;
  }
  p->spans[p->nspans].off = p->bytes.len;
  p->spans[p->nspans].len = len;
  if (cs_buf_append(&p->bytes, data, len) != 0) {
    p->stop_rc = CS_ENOMEM;
    return;
  }
  p->nspans++;
}

/* libcsv record callback: hand the record over. */
static void csvpush_on_record(int term, void *arg) {
  csvpush *p = arg;
  size_t i;
  (void)term;
  if (p->stop_rc != 0) {
    return;
  }
  if (p->nspans > p->out_cap) {
    cs_field *f = realloc(p->out, p->nspans * sizeof(*f));
    if (f == NULL) {
      p->stop_rc = CS_ENOMEM;
      return;
    }
    p->out = f;
    p->out_cap = p->nspans;
  }
  for (i = 0; i < p->nspans; i++) {
    /* A record of empty fields has no bytes yet: no pointer arithmetic on NULL. */
    p->out[i].data = p->bytes.data != NULL ? p->bytes.data + p->spans[i].off : "";
    p->out[i].len = p->spans[i].len;
  }
  p->completed++;
  p->stop_rc = p->cb(p->out, p->nspans, p->bytes.len + p->nspans, p->cb_arg);
  csvpush_clear_record(p);
}

/* Between records, give back what a long record made the buffers grow to. Returns 0 or
 * CS_ENOMEM (libcsv could not be started again). */
static int csvpush_shrink(csvpush *p) {
  if (p->nspans == 0 && p->bytes.cap > CSVPUSH_KEEP_BYTES) {
    cs_buf_free(&p->bytes);
  }
  if (p->nspans == 0 && p->spans_cap > CSVPUSH_KEEP_BYTES / sizeof(csvpush_span)) {
    free(p->spans);
    p->spans = NULL;
    p->spans_cap = 0;
  }
  if (p->out_cap > CSVPUSH_KEEP_BYTES / sizeof(cs_field)) {
    free(p->out);
    p->out = NULL;
    p->out_cap = 0;
  }
  if (p->parser.pstate == CSVPUSH_LIBCSV_ROW_NOT_BEGUN &&
      csv_get_buffer_size(&p->parser) > CSVPUSH_KEEP_BYTES) {
    return csvpush_parser_init(p);
  }
  return 0;
}

/* After libcsv returned: the error to report, if any (the parser then stays failed). */
static int csvpush_after(csvpush *p, int rc) {
  if (rc != 0) {
    p->failed = 1;
  }
  return rc;
}

/* Feed; see csvpush.h. */
int csvpush_feed(csvpush *p, const char *data, size_t len, csvpush_cb cb, void *arg) {
  size_t off = 0;
  if (p->failed) {
    return CS_EINVAL;
  }
  p->cb = cb;
  p->cb_arg = arg;
  while (off < len) {
    size_t piece = len - off < CSVPUSH_PIECE ? len - off : CSVPUSH_PIECE;
    size_t done;
    p->completed = 0;
    done = csv_parse(&p->parser, data + off, piece, csvpush_on_field, csvpush_on_record, p);
    if (p->stop_rc != 0) {
      return csvpush_after(p, p->stop_rc);
    }
    if (done < piece) {
      p->why = csv_error(&p->parser) == CSV_EPARSE
                   ? "malformed quoting (a quote inside an unquoted field, or text after a "
                     "closing quote)"
                   : "out of memory";
      return csvpush_after(p, csv_error(&p->parser) == CSV_EPARSE ? CS_ECSV : CS_ENOMEM);
    }
    /* The record limit, to one piece's resolution: bytes since the piece in which a record
     * last completed. libcsv's buffer and this parser's hold no more than that. */
    p->pending = p->completed > 0 ? 0 : p->pending + piece;
    if (p->pending > p->max_record) {
      p->why = "a record longer than the limit";
      return csvpush_after(p, CS_ETOOBIG);
    }
    if (p->completed > 0 && csvpush_shrink(p) != 0) {
      p->why = "out of memory";
      return csvpush_after(p, CS_ENOMEM);
    }
    off += piece;
  }
  return 0;
}

/* The end of the input; see csvpush.h. */
int csvpush_finish(csvpush *p, csvpush_cb cb, void *arg) {
  int rc;
  if (p->failed) {
    return CS_EINVAL;
  }
  p->cb = cb;
  p->cb_arg = arg;
  if (csv_fini(&p->parser, csvpush_on_field, csvpush_on_record, p) != 0) {
    p->why = "a quoted field that never ends";
    rc = CS_ECSV;
  } else {
    rc = p->stop_rc;
  }
  csvpush_reset(p);
  return rc;
}

/* Ready for new input; see csvpush.h. */
void csvpush_reset(csvpush *p) {
  csvpush_clear_record(p);
  p->pending = 0;
  p->stop_rc = 0;
  p->failed = csvpush_parser_init(p) != 0;
}

size_t csvpush_pending(const csvpush *p) {
  return p->pending;
}

const char *csvpush_error(const csvpush *p) {
  return p->why != NULL ? p->why : "no error";
}
