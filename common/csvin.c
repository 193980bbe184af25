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
#include "bytescan.h"
#include "error.h"
#include "sniff.h"
#include "textenc.h"
#include "utf8.h"

#define CSVIN_BLOCK (64 * 1024)
#define CSVIN_ERRLEN 1024
/* Decoded text per raw block, at most: 3 bytes of UTF-8 for each input byte (windows-1252's
 * euro sign), plus room for a character cut at the end. */
#define CSVIN_DECODED_BLOCK (3 * CSVIN_BLOCK + 16)
/* Zeroed bytes after the block's end: the fast path reads 64 bytes at a time and may look past
 * the last byte read (it never uses what it sees there). */
#define CSVIN_SLACK 64
/* Bytes either side of a bad quote shown in the message. */
#define CSVIN_EXCERPT 24

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

  /* Dialect (csvin_dialect) and the lines that are not records. */
  unsigned char delim;
  char comment;       /* 0: none */
  uint64_t skip_left; /* lines still to skip before the header */
  int skipping;       /* inside a skipped line that goes on in the next piece */
  int at_line_start;  /* the next byte fed starts a line */
  uint64_t line_off;  /* offset (of the text parsed) where the current line starts */
  uint64_t skipped_lines, comment_lines;
  int one_column;      /* records have one field: an empty line is one empty value */
  int mark_data_after; /* the skipped lines end with this piece (no header): data starts here */
  int data_marked;
  int width_known;       /* one_column is decided (by the header or the first record) */
  uint64_t pass_records; /* records completed since the open or the last rewind */
  uint64_t skip_total;   /* skip_lines as given */
  char choices[320];     /* what "auto" chose, for the log */

  /* UTF-8 checking of the bytes as read (encoding utf-8): a warning per line. */
  int check_utf8;
  utf8_scan u8;
  uint64_t u8_lead; /* offset of the first byte of the character u8 is inside */
  int line_warned;
  uint64_t bad_utf8_lines;
  void (*warn_cb)(void *arg, const char *msg);
  void *warn_arg;

  /* Decoding (another encoding, or "auto"): raw bytes read into raw, decoded into block. dec is
   * NULL when the bytes are copied as they are (auto chose UTF-8). */
  int decoding;
  textenc *dec;
  char *raw;
  size_t raw_len, raw_pos;
  size_t raw_skip;  /* a byte-order mark at the file's start, not decoded */
  uint64_t raw_off; /* file offset of raw[0] */
  int raw_eof;
  int raw_incomplete; /* raw ends inside a character: more must be read */
  int dec_err;        /* a decoding error, raised once the text before it was parsed */
  uint64_t dec_err_off;
  unsigned char dec_err_byte;

  /* The fast path (fast_scan): plain records split here, without libcsv. */
  int fast;
  bytescan scan;         /* the bytes a field may end at */
  cs_field *scan_fields; /* fast_record's fields before they are copied into the store */
  size_t scan_cap;
  cs_buf unquoted;    /* values whose doubled quotes were made single */
  size_t scan_chunk;  /* the block's 64-byte chunk scan_bits are of (SIZE_MAX: none) */
  uint64_t scan_bits; /* its stop bits after the last record the fast path read */
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
  if (len > 0 && r->bytes.cap - off >= len) {
    memcpy(r->bytes.data + off, data, len); /* the usual case: room left, no call to grow */
    r->bytes.len += len;
  } else if (cs_buf_append(&r->bytes, data, len) != 0) {
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
  r->pass_records++;
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
  csv_set_delim(&r->parser, r->delim);
  r->parser_live = 1;
  return 0;
}

/* Once every queued record was handed out, move the fields of the record in progress to the
 * front of the store so memory stays bounded by one record plus one line's worth. */
static void compact(csvin *r) {
  if (r->qhead < r->qlen || (r->qlen == 0 && r->nspans == 0 && r->bytes.len == 0)) {
    return; /* records still to hand out, or nothing stored */
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

static ssize_t read_decoded(csvin *r);

/* A UTF-16 byte-order mark at the start of input read as UTF-8: the text would be garbage (a
 * NUL after every letter), so it is an error that says what to do. Returns 1 when it is one. */
static int utf16_bom_refused(csvin *r) {
  size_t bom_len;
  int bom = textenc_bom(r->block, r->block_len, &bom_len);
  if (bom != TEXTENC_BOM_UTF16LE && bom != TEXTENC_BOM_UTF16BE) {
    return 0;
  }
  snprintf(r->errmsg, sizeof r->errmsg,
           "%s: starts with a %s byte-order mark: the file is UTF-16 (Excel's \"Unicode text\"), "
           "not UTF-8; read it with --encoding auto (or --encoding %s)",
           csvin_path(r), textenc_bom_name(bom),
           bom == TEXTENC_BOM_UTF16LE ? "utf-16le" : "utf-16be");
  return 1;
}

/* Read the next block; returns bytes read, 0 at end of input, or CS_EIO (message set). The
 * first read of the input also strips a UTF-8 byte order mark. */
static ssize_t read_block(csvin *r) {
  r->scan_chunk = SIZE_MAX; /* the block changes: its stop bits with it */
  if (r->decoding) {
    return read_decoded(r);
  }
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
    if (utf16_bom_refused(r)) {
      r->block_len = 0;
      return CS_ECSV;
    }
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

/* Read more raw bytes after what is left in raw (moved to the front). Returns 0 or CS_EIO. */
static int read_raw(csvin *r) {
  size_t left = r->raw_len - r->raw_pos;
  memmove(r->raw, r->raw + r->raw_pos, left);
  r->raw_off += r->raw_pos;
  r->raw_pos = 0;
  r->raw_len = left;
  for (;;) {
    ssize_t n = read(r->fd, r->raw + left, CSVIN_BLOCK - left);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      snprintf(r->errmsg, sizeof r->errmsg, "%s: read failed: %s", csvin_path(r), strerror(errno));
      return CS_EIO;
    }
    if (n == 0) {
      r->raw_eof = 1;
    }
    r->raw_len += (size_t)n;
    if (r->raw_off == 0 && r->raw_pos < r->raw_skip) {
      r->raw_pos = r->raw_skip < r->raw_len ? r->raw_skip : r->raw_len; /* the byte-order mark */
    }
    return 0;
  }
}

/* The message of a decoding error; line is where the text parsed so far ends. */
static void set_decode_error(csvin *r, int cut) {
  const char *name = r->dec != NULL ? textenc_name(r->dec) : "UTF-8";
  if (cut) {
    snprintf(r->errmsg, sizeof r->errmsg,
             "%s:%llu: the input ends inside a character (byte offset %llu): it is not complete "
             "%s; name the file's encoding with --encoding (or try --encoding auto)",
             csvin_path(r), (unsigned long long)r->line, (unsigned long long)r->dec_err_off, name);
  } else {
    snprintf(r->errmsg, sizeof r->errmsg,
             "%s:%llu: byte 0x%02X at offset %llu is not valid %s; name the file's encoding with "
             "--encoding (or try --encoding auto)",
             csvin_path(r), (unsigned long long)r->line, r->dec_err_byte,
             (unsigned long long)r->dec_err_off, name);
  }
}

/* read_block for a decoded input: raw bytes decoded (or copied, dec NULL) into block. A decoding
 * error comes after the text decoded before it, so that every record before it is handed out
 * and the message has the right line. */
static ssize_t read_decoded(csvin *r) {
  r->block_off += r->block_len;
  r->block_len = 0;
  r->block_pos = 0;
  if (r->dec_err) {
    set_decode_error(r, r->dec_err == 2);
    return CS_ECSV;
  }
  for (;;) {
    if (!r->raw_eof && (r->raw_pos == r->raw_len || r->raw_incomplete)) {
      int rc = read_raw(r);
      if (rc != 0) {
        return rc;
      }
    }
    const char *in = r->raw + r->raw_pos;
    size_t inlen = r->raw_len - r->raw_pos;
    int rc = 0;
    if (r->dec != NULL) {
      char *out = r->block + r->block_len;
      size_t outlen = CSVIN_DECODED_BLOCK - r->block_len;
      rc = textenc_convert(r->dec, &in, &inlen, &out, &outlen);
      r->block_len = (size_t)(out - r->block);
    } else {
      memcpy(r->block + r->block_len, in, inlen);
      r->block_len += inlen;
      in += inlen;
    }
    r->raw_pos = (size_t)(in - r->raw);
    r->raw_incomplete = rc == 1;
    if (rc == CS_EINVAL || (rc == 1 && r->raw_eof)) {
      r->dec_err = rc == 1 ? 2 : 1;
      r->dec_err_off = r->raw_off + r->raw_pos;
      r->dec_err_byte = (unsigned char)r->raw[r->raw_pos];
      if (r->block_len == 0) {
        set_decode_error(r, r->dec_err == 2);
        return CS_ECSV;
      }
      break;
    }
    if (!r->bom_checked && r->block_len >= 3) {
      /* A decoder that keeps the byte-order mark (UTF-16LE named with a BOM) gives U+FEFF. */
      r->bom_checked = 1;
      if (memcmp(r->block, "\xEF\xBB\xBF", 3) == 0) {
        r->block_pos = 3;
      }
    }
    if (r->block_len > r->block_pos || (r->raw_eof && r->raw_pos == r->raw_len)) {
      break;
    }
  }
  r->bom_checked = 1;
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

static void mark_data_start(csvin *r);

/* One warning for a line that is not valid UTF-8, at offset off (of the text parsed). */
static void bad_utf8(csvin *r, uint64_t off) {
  if (r->line_warned) {
    return;
  }
  r->line_warned = 1;
  r->bad_utf8_lines++;
  if (r->warn_cb != NULL) {
    char msg[CSVIN_ERRLEN];
    snprintf(msg, sizeof msg,
             "%s:%llu: not valid UTF-8 at byte %llu of the line (offset %llu in the file); its "
             "bytes are sent as they are (is the file in another encoding? --encoding auto or "
             "--encoding windows-1252 reads it as text)",
             csvin_path(r), (unsigned long long)r->line,
             (unsigned long long)(off - r->line_off + 1), (unsigned long long)off);
    r->warn_cb(r->warn_arg, msg);
  }
}

/* 8 bytes at p hold a CR, an LF, or (high set) a byte of 0x80 or more. */
static int has_special8(const char *p, uint64_t high) {
  const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
  uint64_t w, lf, cr;
  memcpy(&w, p, sizeof w);
  lf = w ^ (ones * '\n');
  cr = w ^ (ones * '\r');
  return (((lf - ones) & ~lf) | ((cr - ones) & ~cr) | (w & high)) & tops ? 1 : 0;
}

/* Length of the piece at s: up to and including the first CR or LF (and the LF of a CR LF), else
 * all n bytes. Checks UTF-8 on the way when asked (a character may go on in the next piece), 8
 * bytes at a time while there is nothing to look at. */
static size_t scan_line(csvin *r, const char *s, size_t n, int check) {
  const uint64_t high = check ? 0x8080808080808080ULL : 0;
  size_t i = 0;
  while (i < n) {
    if (r->u8.need == 0) {
      while (i + 8 <= n && !has_special8(s + i, high)) {
        i += 8;
      }
    }
    size_t stop = i + 8 < n ? i + 8 : n;
    for (; i < stop; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c == '\n' || c == '\r') {
        if (r->u8.need != 0) {
          bad_utf8(r, r->u8_lead); /* a character cut by the line's end */
          r->u8.need = 0;
        }
        /* A CR LF stays in one piece: one csv_parse call per line, not two. */
        return c == '\r' && i + 1 < n && s[i + 1] == '\n' ? i + 2 : i + 1;
      }
      if (high != 0 && (c >= 0x80 || r->u8.need != 0)) {
        /* A bad byte inside a character is reported at the character's first byte. */
        int inside = r->u8.need != 0;
        uint64_t here = r->block_off + r->block_pos + i;
        if (utf8_scan_feed(&r->u8, s + i, 1) == 0) {
          bad_utf8(r, inside ? r->u8_lead : here);
        } else if (!inside) {
          r->u8_lead = here;
        }
      }
    }
  }
  return n;
}

/* Line accounting after a piece of len bytes at start was used (fed or skipped). */
static void advance(csvin *r, const char *start, size_t len) {
  char last = start[len - 1];
  if (last == '\r') {
    r->line++;
    r->prev_cr = 1;
  } else if (last == '\n') {
    /* Only an LF that comes right after a CR ends no new line: a piece that starts with it. */
    if (len > 1 || !r->prev_cr) {
      r->line++;
    }
    r->prev_cr = 0;
  } else {
    r->prev_cr = 0;
  }
  r->block_pos += len;
  r->at_line_start = last == '\r' || last == '\n';
  if (r->at_line_start) {
    r->line_off = r->block_off + r->block_pos;
    r->line_warned = 0;
  }
}

/* Between records, a piece that is not CSV: a skipped line (--skip-lines), a comment, or the
 * empty line that is an empty value in a one-column file (queued as a record here). Returns 1
 * when the piece is used up so. */
static int skip_piece(csvin *r, const char *start, size_t len) {
  int ends = start[len - 1] == '\n' || start[len - 1] == '\r';
  if (r->skipping) {
    r->skipping = !ends;
  } else if (!r->at_line_start || (len == 1 && start[0] == '\n' && r->prev_cr)) {
    return 0; /* the LF of a CR LF: libcsv takes it as the end of the line it ended */
  } else if (r->skip_left > 0) {
    r->skip_left--;
    r->skipped_lines++;
    r->skipping = !ends;
  } else if (r->comment != 0 && start[0] == r->comment) {
    r->comment_lines++;
    r->skipping = !ends;
  } else if (r->one_column && (r->has_header || r->pass_records > 0) &&
             (start[0] == '\n' || start[0] == '\r')) {
    /* Without a header, blank lines before the first record are not values: the width is not
     * known there yet on the first pass, and every pass must read the same records. */
    r->rec_line = r->line;
    on_field(NULL, 0, r);
    on_record(0, r);
    return 1;
  } else {
    return 0;
  }
  /* Without a header the data starts after the skipped lines: --loop comes back there. */
  r->mark_data_after = !r->has_header && !r->skipping && r->skip_left == 0 &&
                       r->skipped_lines > 0 && !r->data_marked;
  return 1;
}

/* Append s[0..n) to out, escaped for a message: printable ASCII as is, the rest as \xNN. */
static void escape_excerpt(const char *s, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < outlen; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\t') {
      o += (size_t)snprintf(out + o, outlen - o, "\\t");
    } else if (c == '\r') {
      o += (size_t)snprintf(out + o, outlen - o, "\\r");
    } else if (c == '\n') {
      o += (size_t)snprintf(out + o, outlen - o, "\\n");
    } else if (c == '\\') {
      o += (size_t)snprintf(out + o, outlen - o, "\\\\");
    } else if (c < 0x20 || c >= 0x7F) {
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02X", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
}

/* When a ','-separated reading fails on a line that has no ',' but another delimiter, the
 * hint that names it. line/n: the line as far as this block holds it. */
static void delimiter_hint(const csvin *r, const char *line, size_t n, char *out, size_t outlen) {
  static const char others[] = ";\t|";
  size_t best = 0;
  char best_c = 0, name[16];
  out[0] = '\0';
  if (r->delim != ',' || memchr(line, ',', n) != NULL) {
    return;
  }
  for (size_t k = 0; k < sizeof others - 1; k++) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
      count += line[i] == others[k];
    }
    if (count > best) {
      best = count;
      best_c = others[k];
    }
  }
  if (best_c != 0) {
    sniff_delimiter_name(best_c, name, sizeof name);
    snprintf(out, outlen,
             "; the line has %zu %s and no ',': if the file is %s-separated, give --delimiter %s "
             "(or --delimiter auto)",
             best, name, name, best_c == '\t' ? "tab" : (best_c == '|' ? "'|'" : "';'"));
  }
}

/* libcsv refused byte bad of the piece at start (len bytes): say what and where. */
static void set_quote_error(csvin *r, const char *start, size_t len, size_t bad) {
  char what[640], excerpt[4 * 2 * CSVIN_EXCERPT + 8], hint[200];
  uint64_t piece_off = r->block_off + r->block_pos;
  /* The line as this block holds it (a line longer than the block shows its end only). */
  size_t line_in_block = r->line_off >= r->block_off ? (size_t)(r->line_off - r->block_off) : 0;
  const char *line = r->block + line_in_block;
  size_t line_len = (size_t)(start + len - line);
  size_t at = (size_t)(start + bad - line);
  size_t from = at > CSVIN_EXCERPT ? at - CSVIN_EXCERPT : 0;
  size_t to = at + CSVIN_EXCERPT < line_len ? at + CSVIN_EXCERPT : line_len;
  const char *problem;
  if (r->parser.pstate == LIBCSV_FIELD_MIGHT_HAVE_ENDED) {
    problem = "text after the closing quote of a quoted field (a quote inside a quoted field "
              "is written twice: \"say \"\"hi\"\"\")";
  } else if (r->parser.pstate == LIBCSV_FIELD_BEGUN && !r->parser.quoted) {
    problem = "a quote inside a field that does not start with one (a field with quotes is "
              "quoted whole, its quotes doubled: \"x\"\"y\")";
  } else {
    problem = "unexpected character";
  }
  while (to > from && (line[to - 1] == '\n' || line[to - 1] == '\r')) {
    to--;
  }
  escape_excerpt(line + from, to - from, excerpt, sizeof excerpt);
  delimiter_hint(r, line, line_len, hint, sizeof hint);
  snprintf(what, sizeof what,
           "malformed quoting in field %zu (byte %llu of the line): %s; near '%s%s%s'%s",
           r->nspans - r->cur_first + 1, (unsigned long long)(piece_off + bad - r->line_off + 1),
           problem, from > 0 ? "..." : "", excerpt,
           to < line_len && line[to] != '\n' && line[to] != '\r' ? "..." : "", hint);
  set_csv_error(r, r->line, what);
}

/* Room for one more span (the fast path's own; on_field grows them likewise). Returns 0, or
 * CS_ENOMEM with nothing changed. */
static int spans_room(csvin *r) {
  if (r->nspans < r->spans_cap) {
    return 0;
  }
  size_t cap = r->spans_cap < 64 ? 64 : r->spans_cap * 2;
  field_span *s = realloc(r->spans, cap * sizeof *s);
  if (s == NULL) {
    return CS_ENOMEM;
  }
  r->spans = s;
  r->spans_cap = cap;
  return 0;
}

/* Whether the reader may take the fast path: not for a delimiter that is a quote or a line
 * break, not for text decoded by iconv, and not when the dialect asks for libcsv alone (tests). */
static void fast_setup(csvin *r, const csvin_dialect *d) {
  r->fast = !(d != NULL && d->no_fast_path) && r->dec == NULL && r->delim != '"' &&
            r->delim != '\r' && r->delim != '\n';
  bytescan_init(&r->scan, r->delim, '"', '\r', '\n', r->check_utf8);
}

/* fast_scan's stop bytes not yet used: those of the block's 64-byte chunk at chunk, lowest
 * first. Chunks lie at multiples of 64 from the block's start, so the next record, which
 * mostly starts in the chunk where the last one ended, finds its bits ready (r->scan_bits). */
typedef struct scan_pos {
  const char *s; /* the block */
  size_t n;      /* its bytes */
  size_t chunk;  /* offset of the chunk in bits */
  uint64_t bits; /* bit i: s[chunk + i] is a stop byte not yet used (none at or past n) */
} scan_pos;

/* The stop bits of the chunk at sp->chunk, without the bytes at or past the block's end. */
static inline void scan_load(scan_pos *sp, const bytescan *k) {
  size_t left = sp->n - sp->chunk;
  sp->bits = bytescan_mask64(k, sp->s + sp->chunk);
  if (left < 64) {
    sp->bits &= ((uint64_t)1 << left) - 1;
  }
}

/* Take the next stop byte: its offset into *at. Returns 0 when there is none before the
 * block's end (the record goes on past it). */
static inline int scan_take(scan_pos *sp, const bytescan *k, size_t *at) {
  while (sp->bits == 0) {
    sp->chunk += 64;
    if (sp->chunk >= sp->n) {
      return 0;
    }
    scan_load(sp, k);
  }
  *at = sp->chunk + (size_t)__builtin_ctzll(sp->bits);
  sp->bits &= sp->bits - 1;
  return 1;
}

/* Room for one more field in *fields (capacity *cap). Returns 0 or CS_ENOMEM. */
static int fields_room(cs_field **fields, size_t *cap, size_t n) {
  if (n < *cap) {
    return 0;
  }
  size_t grown = *cap < 16 ? 16 : *cap * 2;
  cs_field *f = realloc(*fields, grown * sizeof *f);
  if (f == NULL) {
    return CS_ENOMEM;
  }
  *fields = f;
  *cap = grown;
  return 0;
}

/* The value of a quoted field whose text (between its quotes, len bytes at q) holds doubled
 * quotes: each pair made one quote, in r->unquoted, which has room for the whole block (so
 * earlier values there stay where they are). */
static const char *unquote(csvin *r, const char *q, size_t len, size_t *out_len) {
  char *out = r->unquoted.data + r->unquoted.len, *start = out;
  for (size_t i = 0; i < len; i++) {
    *out++ = q[i];
    i += q[i] == '"'; /* the second quote of the pair */
  }
  *out_len = (size_t)(out - start);
  r->unquoted.len += *out_len;
  return start;
}

/* The fast path: when the block holds, from a line's start, one whole plain RFC 4180 record
 * (unquoted fields without quotes, quoted fields closed properly with their quotes doubled,
 * ended by LF or CR LF, valid UTF-8 when that is checked), split it as libcsv would (strict, no
 * trimming): its fields into *fields (*cap grown as needed), pointing into the block (or into
 * r->unquoted, for values whose doubled quotes were made single), their number into *nfields
 * and the line breaks inside its values into *breaks. Returns the record's length in bytes,
 * its line break included. Anything else (a blank line, a lone CR, a stray quote, text after a
 * closing quote, a record that runs past the block, bytes that are not valid UTF-8, no memory)
 * returns 0 with the reader unchanged: libcsv then reads it, with the same messages as ever.
 *
 * The stop bytes (the delimiter, quotes, CR, LF and, when UTF-8 is checked, bytes of 0x80 or
 * more) are found 64 at a time (bytescan.h) and taken in order, so a field costs a few
 * instructions whatever its length, and the bytes between stops are never looked at. */
static size_t fast_scan(csvin *r, cs_field **fields, size_t *cap, size_t *nfields,
                        uint64_t *breaks) {
  /* Offsets below are into the block; the record starts at start. */
  const char *s = r->block;
  size_t n = r->block_len, start = r->block_pos;
  if (!r->at_line_start || r->skipping || r->skip_left > 0 || r->u8.need != 0 || s[start] == '\n' ||
      s[start] == '\r' || (r->comment != 0 && s[start] == r->comment)) {
    return 0;
  }
  const bytescan *k = &r->scan;
  const unsigned char delim = r->delim;
  scan_pos sp = {s, n, start & ~(size_t)63, 0};
  if (r->scan_chunk == sp.chunk) {
    sp.bits = r->scan_bits;
  } else {
    scan_load(&sp, k);
  }
  sp.bits &= ~(uint64_t)0 << (start & 63); /* stops before the record are not its own */
  /* The array and its size in locals: stores through *fields cannot change them then. */
  cs_field *out = *fields;
  size_t room = *cap;
  size_t i = start, nf = 0, p, end;
  uint64_t nbreaks = 0;
  int high = 0, unquoting = 0;
  for (;;) {
    /* A field starts at i: the next stop is its end, or its opening quote. */
    if (nf == room) {
      if (fields_room(fields, cap, nf) != 0) {
        return 0;
      }
      out = *fields;
      room = *cap;
    }
    if (!scan_take(&sp, k, &p)) {
      return 0; /* the field goes on past the block */
    }
    unsigned char c = (unsigned char)s[p];
    const char *value = s + i;
    size_t len = p - i;
    if (c == '"') {
      if (p != i) {
        return 0; /* a quote inside an unquoted field: libcsv's error */
      }
      /* Quoted: up to the quote that is not one of a doubled pair. */
      int doubled = 0;
      for (;;) {
        if (!scan_take(&sp, k, &p)) {
          return 0;
        }
        c = (unsigned char)s[p];
        if (c == '"') {
          if (p + 1 == n) {
            return 0; /* a closing quote, or half of a doubled one? The block cannot say */
          }
          if (s[p + 1] != '"') {
            break;
          }
          doubled = 1;
          scan_take(&sp, k, &p); /* the second quote of the pair, in the bits already */
          continue;
        }
        /* A line break inside the value (LF, CR LF or a lone CR: one line each), a byte of
         * 0x80 or more, or the delimiter, which is text here. */
        if (c == '\n') {
          nbreaks++;
        } else if (c == '\r') {
          if (p + 1 == n) {
            return 0;
          }
          nbreaks += s[p + 1] != '\n';
        } else if (c >= 0x80) {
          high = 1;
        }
      }
      value = s + i + 1;
      len = p - i - 1;
      if (doubled) {
        if (!unquoting) {
          cs_buf_reset(&r->unquoted);
          if (cs_buf_reserve(&r->unquoted, n) != 0) {
            return 0;
          }
          unquoting = 1;
        }
        value = unquote(r, value, len, &len);
      }
      /* What ends it must come right after the closing quote. */
      size_t q = p;
      if (!scan_take(&sp, k, &p) || p != q + 1) {
        return 0; /* text after the closing quote: libcsv's error */
      }
      c = (unsigned char)s[p];
      if (c != delim && c != '\n' && c != '\r') {
        return 0;
      }
    }
    while (c != delim && c >= 0x80) {
      /* Part of an unquoted value, checked as UTF-8 below. */
      high = 1;
      if (!scan_take(&sp, k, &p)) {
        return 0;
      }
      c = (unsigned char)s[p];
      len = p - i;
      if (c == '"') {
        return 0;
      }
    }
    out[nf].data = value;
    out[nf].len = len;
    nf++;
    /* s[p] ends the field: the delimiter, LF, or CR (a record's end only before an LF). */
    if (c == delim) {
      i = p + 1;
      if (i == n) {
        return 0;
      }
      continue;
    }
    if (c == '\r') {
      if (p + 1 == n || s[p + 1] != '\n') {
        return 0; /* a lone CR, or the block ends before we know */
      }
      p++;
    }
    end = p + 1; /* past the LF */
    break;
  }
  if (high) {
    utf8_scan st = {0, 0x80, 0xBF};
    if (utf8_scan_feed(&st, s + start, end - start) != end - start || st.need != 0) {
      return 0; /* libcsv's path warns about the line */
    }
  }
  r->scan_chunk = sp.chunk;
  r->scan_bits = sp.bits;
  *nfields = nf;
  *breaks = nbreaks;
  return end - start;
}

/* Account for a record of len bytes read by fast_scan, with breaks line breaks in its values,
 * as libcsv's callbacks and feed_piece would have (the record itself is counted by the
 * caller). */
static void fast_consumed(csvin *r, size_t len, size_t nfields, uint64_t breaks) {
  const char *s = r->block + r->block_pos;
  r->nfields_seen += nfields;
  r->line += breaks;
  advance(r, s, len); /* the final LF: one line more */
}

/* The fast path for feed_piece: a record split by fast_scan is copied into the byte store and
 * queued as libcsv's callbacks would. Returns 1 when it was, 0 when libcsv must read it. */
static int fast_record(csvin *r) {
  size_t nfields;
  uint64_t breaks;
  size_t len = fast_scan(r, &r->scan_fields, &r->scan_cap, &nfields, &breaks);
  if (len == 0) {
    return 0;
  }
  size_t spans_before = r->nspans, bytes_before = r->bytes.len;
  if (cs_buf_reserve(&r->bytes, len) != 0) {
    return 0;
  }
  for (size_t i = 0; i < nfields; i++) {
    if (spans_room(r) != 0) {
      r->nspans = spans_before;
      r->bytes.len = bytes_before;
      return 0;
    }
    r->spans[r->nspans].off = r->bytes.len;
    r->spans[r->nspans].len = r->scan_fields[i].len;
    r->nspans++;
    /* The values take at most the record's bytes, reserved above. */
    if (r->scan_fields[i].len > 0) {
      memcpy(r->bytes.data + r->bytes.len, r->scan_fields[i].data, r->scan_fields[i].len);
      r->bytes.len += r->scan_fields[i].len;
    }
  }
  r->rec_line = r->line;
  on_record(0, r);
  if (r->cb_err) {
    r->err = r->cb_err;
    snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", csvin_path(r));
    return 1;
  }
  fast_consumed(r, len, nfields, breaks);
  return 1;
}

/* The fast path for next_queued: with nothing queued, a record fast_scan can split is handed
 * out as it lies in the block, without a copy. Returns 1 with *rec set, or 0. */
static int fast_direct(csvin *r, csvin_rec *rec) {
  if (!r->fast || r->qhead != r->qlen || r->err || r->eof || r->block_pos == r->block_len ||
      r->parser.pstate != LIBCSV_ROW_NOT_BEGUN) {
    return 0;
  }
  size_t nfields;
  uint64_t breaks;
  size_t len = fast_scan(r, &r->out_fields, &r->out_cap, &nfields, &breaks);
  if (len == 0) {
    return 0;
  }
  rec->nfields = nfields;
  rec->fields = r->out_fields;
  rec->line = r->line;
  r->rec_line = r->line;
  r->pass_records++;
  fast_consumed(r, len, nfields, breaks);
  return 1;
}

/* Feed libcsv the next piece of input: the bytes up to and including the next CR or LF (a CR
 * LF together), or to the end of the block. Pieces end at every line break, so at most one record
 * completes per piece and its first line is known. Lines that are not records (titles, comments)
 * are used up here. Returns 0, or sets r->err / r->eof. */
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
  if (r->fast && r->parser.pstate == LIBCSV_ROW_NOT_BEGUN && fast_record(r)) {
    return;
  }
  const char *start = r->block + r->block_pos;
  /* A line skipped as a title or comment is not sent: its UTF-8 is nobody's concern. */
  int skipped =
      r->parser.pstate == LIBCSV_ROW_NOT_BEGUN &&
      (r->skipping ||
       (r->at_line_start && (r->skip_left > 0 || (r->comment != 0 && start[0] == r->comment))));
  size_t len = scan_line(r, start, r->block_len - r->block_pos, r->check_utf8 && !skipped);
  if (r->parser.pstate == LIBCSV_ROW_NOT_BEGUN) {
    if (skip_piece(r, start, len)) {
      advance(r, start, len);
      if (r->mark_data_after) {
        r->mark_data_after = 0;
        r->data_marked = 1;
        mark_data_start(r);
      }
      return;
    }
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
      set_quote_error(r, start, len, done);
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
  advance(r, start, len);
}

/* Without a header the first record handed out says whether the file has one column. */
static void note_width(csvin *r, size_t nfields) {
  if (!r->width_known) {
    r->width_known = !r->has_header;
    r->one_column = r->width_known && nfields == 1;
  }
}

/* Take the next record off the queue, parsing more input as needed. Returns 1, 0 at the end, or
 * the sticky error once every record before it was handed out. */
static int next_queued(csvin *r, csvin_rec *rec) {
  compact(r);
  if (fast_direct(r, rec)) {
    note_width(r, rec->nfields);
    return 1;
  }
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
  note_width(r, q->nfields);
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
  r->one_column = rec.nfields == 1;
  r->width_known = 1;
  r->header.line = rec.line;
  r->header_ready = 1;
  return 0;
}

/* Append "; " and text to the log line of automatic choices. */
static void add_choice(csvin *r, const char *text) {
  size_t n = strlen(r->choices);
  snprintf(r->choices + n, sizeof r->choices - n, "%s%s", n > 0 ? "; " : "", text);
}

/* Whether the input is valid UTF-8: a regular file is read whole (pread, from the start), other
 * input judged by the raw block already read (a character cut at its end is fine). Returns 1
 * valid, 0 not (*bad_off and *bad_byte say where), or CS_EIO (message set). */
static int input_is_utf8(csvin *r, uint64_t *bad_off, unsigned char *bad_byte) {
  utf8_scan st = {0, 0x80, 0xBF};
  if (r->may_block) {
    size_t ok = utf8_scan_feed(&st, r->raw, r->raw_len);
    if (ok < r->raw_len) {
      size_t lead = utf8_invalid_at(r->raw, ok + 1);
      ok = lead < ok ? lead : ok;
    }
    *bad_off = ok;
    *bad_byte = ok < r->raw_len ? (unsigned char)r->raw[ok] : 0;
    return ok == r->raw_len;
  }
  uint64_t off = 0;
  for (;;) {
    ssize_t n = pread(r->fd, r->block, CSVIN_BLOCK, (off_t)off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      snprintf(r->errmsg, sizeof r->errmsg, "%s: read failed: %s", csvin_path(r), strerror(errno));
      return CS_EIO;
    }
    if (n == 0) {
      *bad_off = off;
      *bad_byte = 0;
      return st.need == 0;
    }
    size_t ok = utf8_scan_feed(&st, r->block, (size_t)n);
    if (ok < (size_t)n) {
      /* Said at the first byte of the character that failed (the Latin-1 letter). */
      size_t lead = utf8_invalid_at(r->block, ok + 1);
      ok = lead < ok ? lead : ok;
      *bad_off = off + ok;
      *bad_byte = (unsigned char)r->block[ok];
      return 0;
    }
    off += (uint64_t)n;
  }
}

/* --encoding auto: a byte-order mark says it; else UTF-8 when the input is valid UTF-8, else
 * windows-1252 (whose every byte is text, as Latin-1's are). Returns 0 or a code (message in
 * err). */
static int choose_encoding(csvin *r, char *err, size_t errlen) {
  char why[200];
  size_t bom_len;
  uint64_t bad_off = 0;
  unsigned char bad_byte = 0;
  int rc = read_raw(r);
  if (rc != 0) {
    snprintf(err, errlen, "%s", r->errmsg);
    return rc;
  }
  int bom = textenc_bom(r->raw, r->raw_len, &bom_len);
  if (bom != TEXTENC_BOM_NONE) {
    r->raw_skip = bom_len;
    r->raw_pos = bom_len;
    snprintf(why, sizeof why, "encoding %s (byte-order mark)", textenc_bom_name(bom));
    add_choice(r, why);
    if (bom == TEXTENC_BOM_UTF8) {
      r->check_utf8 = 1;
      return 0;
    }
    return textenc_open(&r->dec, textenc_bom_name(bom), err, errlen);
  }
  rc = input_is_utf8(r, &bad_off, &bad_byte);
  if (rc < 0) {
    snprintf(err, errlen, "%s", r->errmsg);
    return rc;
  }
  if (rc == 1) {
    r->check_utf8 = 1;
    add_choice(r, r->may_block ? "encoding UTF-8 (no byte-order mark; the first block read is "
                                 "valid UTF-8)"
                               : "encoding UTF-8 (no byte-order mark; the whole file is valid "
                                 "UTF-8)");
    return 0;
  }
  snprintf(why, sizeof why,
           "encoding windows-1252 (not UTF-8: byte 0x%02X at offset %llu is not valid UTF-8)",
           bad_byte, (unsigned long long)bad_off);
  add_choice(r, why);
  return textenc_open(&r->dec, "WINDOWS-1252", err, errlen);
}

/* Set the dialect and the encoding from d; see csvin_dialect. */
static int apply_dialect(csvin *r, const csvin_dialect *d, char *err, size_t errlen) {
  const char *enc = d != NULL ? d->encoding : NULL;
  r->delim = d != NULL && d->delimiter != 0 ? (unsigned char)d->delimiter : ',';
  if (d != NULL) {
    r->comment = d->comment;
    r->skip_left = d->skip_lines;
    r->skip_total = d->skip_lines;
    r->warn_cb = d->warn_cb;
    r->warn_arg = d->warn_arg;
  }
  if (enc == NULL || textenc_is_utf8(enc)) {
    r->check_utf8 = 1;
    r->block = calloc(1, CSVIN_BLOCK + CSVIN_SLACK);
    return r->block == NULL ? CS_ENOMEM : 0;
  }
  r->decoding = 1;
  r->block = calloc(1, CSVIN_DECODED_BLOCK + CSVIN_SLACK);
  r->raw = malloc(CSVIN_BLOCK);
  if (r->block == NULL || r->raw == NULL) {
    return CS_ENOMEM;
  }
  if (strcmp(enc, "auto") == 0) {
    return choose_encoding(r, err, errlen);
  }
  return textenc_open(&r->dec, enc, err, errlen);
}

int csvin_open(csvin **out, const char *path, int has_header, char *err, size_t errlen) {
  return csvin_open_dialect(out, path, has_header, NULL, err, errlen);
}

int csvin_open_dialect(csvin **out, const char *path, int has_header, const csvin_dialect *d,
                       char *err, size_t errlen) {
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
  r->at_line_start = 1;
  r->has_header = has_header;
  r->u8.lo = 0x80;
  r->u8.hi = 0xBF;
  cs_buf_init(&r->bytes);
  cs_buf_init(&r->header_bytes);
  cs_buf_init(&r->unquoted);
  r->scan_chunk = SIZE_MAX;
  r->path = strdup(path);
  if (r->path == NULL) {
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
  err[0] = '\0';
  rc = apply_dialect(r, d, err, errlen);
  if (rc != 0) {
    if (err[0] == '\0') {
      snprintf(err, errlen, "%s: out of memory", path);
    }
    goto fail;
  }
  /* The first block: the data starts after a BOM, and sniffing reads the first lines. */
  ssize_t n = read_block(r);
  if (n < 0) {
    rc = (int)n;
    snprintf(err, errlen, "%s", r->errmsg);
    goto fail;
  }
  r->data_off = r->block_off + r->block_pos;
  r->line_off = r->data_off;
  if (d != NULL && d->delimiter_auto) {
    char why[200], text[240];
    r->delim = (unsigned char)sniff_delimiter(r->block + r->block_pos, (size_t)n, d->skip_lines,
                                              d->comment, why, sizeof why);
    snprintf(text, sizeof text, "delimiter %s", why);
    add_choice(r, text);
  }
  fast_setup(r, d);
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
  }
  *out = r;
  return 0;
fail:
  csvin_close(r);
  return rc;
}

const char *csvin_choices(const csvin *r) {
  return r->choices;
}

char csvin_delimiter(const csvin *r) {
  return (char)r->delim;
}

uint64_t csvin_skipped_lines(const csvin *r) {
  return r->skipped_lines;
}

uint64_t csvin_comment_lines(const csvin *r) {
  return r->comment_lines;
}

uint64_t csvin_invalid_utf8_lines(const csvin *r) {
  return r->bad_utf8_lines;
}

int csvin_next(csvin *r, csvin_rec *rec) {
  return next_queued(r, rec);
}

/* Bytes parsed; see csvin.h. Pieces end at line breaks, so this is the end of the last line fed. */
uint64_t csvin_offset(const csvin *r) {
  if (r->decoding) {
    return r->raw_off + r->raw_pos; /* raw bytes decoded: against the file's size */
  }
  return r->block_off + r->block_pos;
}

/* Parse what is buffered until a record completes or the buffer runs dry; only then, and only
 * for an input that can block, ask the kernel whether a read would wait. */
int csvin_would_block(csvin *r) {
  if (!r->may_block) {
    return 0; /* a regular file: a read never waits */
  }
  compact(r);
  while (r->qhead == r->qlen && !r->err && !r->eof && r->block_pos < r->block_len) {
    feed_piece(r); /* cannot read: bytes are left in the block */
  }
  if (r->qhead < r->qlen || r->err || r->eof || !r->may_block) {
    return 0;
  }
  if (r->decoding && (r->dec_err || (r->raw_pos < r->raw_len && !r->raw_incomplete))) {
    return 0; /* raw bytes wait to be decoded (or an error to be told) */
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

/* A decoded input is read again from its start, up to where the data starts (an offset in the
 * decoded text). Returns 0 or a code (message set). */
static int rewind_decoded(csvin *r) {
  r->raw_off = 0;
  r->raw_len = 0;
  r->raw_pos = 0;
  r->raw_eof = 0;
  r->raw_incomplete = 0;
  r->dec_err = 0;
  r->bom_checked = 0;
  r->block_off = 0;
  r->block_len = 0;
  r->block_pos = 0;
  if (r->dec != NULL) {
    textenc_reset(r->dec);
  }
  while (r->block_off + r->block_len < r->data_off) {
    ssize_t n = read_decoded(r);
    if (n <= 0) {
      r->err = n < 0 ? (int)n : CS_EIO;
      if (n == 0) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: cannot rewind: the file got shorter",
                 csvin_path(r));
      }
      return r->err;
    }
  }
  r->block_pos = (size_t)(r->data_off - r->block_off);
  return 0;
}

/* Seek back to the first data record and restart libcsv with an empty queue. */
int csvin_rewind(csvin *r) {
  r->scan_chunk = SIZE_MAX;
  if (r->fd == STDIN_FILENO) {
    return CS_EINVAL;
  }
  if (lseek(r->fd, r->decoding ? 0 : (off_t)r->data_off, SEEK_SET) < 0) {
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
  if (!r->has_header && !r->data_marked && r->skip_total > 0) {
    /* The input ended inside the lines to skip: the data never started, and each pass skips
     * the same lines again (counted once). */
    r->skip_left = r->skip_total;
    r->skipped_lines = 0;
  }
  r->skipping = 0;
  r->at_line_start = 1;
  r->pass_records = 0;
  r->line_off = r->data_off;
  r->line_warned = 0;
  r->u8.need = 0;
  if (r->decoding) {
    return rewind_decoded(r);
  }
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
  free(r->scan_fields);
  cs_buf_free(&r->unquoted);
  free(r->header_fields);
  free(r->raw);
  textenc_close(r->dec);
  free(r);
}
