/* csvin.h -- streaming CSV reader on libcsv: RFC 4180 fields byte for byte, BOM stripped,
 * line numbers for messages, flat memory whatever the file size. */
#ifndef CSVSTREAM_CSVIN_H
#define CSVSTREAM_CSVIN_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct csvin csvin; /* opaque */

/* The largest record the reader holds (bytes of its fields); a longer one is a CS_ECSV error
 * naming the line where it (or its open quoted field) starts. */
#define CSVIN_MAX_RECORD (64u << 20)
/* The most fields a record may have; more is a CS_ECSV error naming the line. (Each field costs
 * the reader two descriptors whatever its length, so a line of commas would otherwise take
 * gigabytes; the wire protocol carries at most about 262,000 fields a record anyway.) */
#define CSVIN_MAX_FIELDS (1u << 20)

/* One record. fields[i] point into the reader and stay valid until the next csvin_next,
 * csvin_would_block, csvin_rewind or csvin_close. */
typedef struct csvin_rec {
  size_t nfields;
  const cs_field *fields;
  uint64_t line; /* 1-based line of the source where the record starts */
} csvin_rec;

/* How to read the input: its dialect and encoding, and lines that are not records. The
 * defaults (all zero, or csvin_open) are RFC 4180 with ',' in UTF-8 taken byte for byte. */
typedef struct csvin_dialect {
  char delimiter;     /* ',' when 0 */
  int delimiter_auto; /* sniff it from the first lines (sniff.h); csvin_choices says what won */
  /* NULL or "utf-8": bytes as they are, with one warning per line that is not valid UTF-8 and an
   * error for a UTF-16 byte-order mark; "auto": a byte-order mark (UTF-8, UTF-16LE/BE), else
   * UTF-8 if the whole file (standard input: its first block) is valid, else windows-1252;
   * anything else: an encoding iconv knows, decoded to UTF-8. */
  const char *encoding;
  uint64_t skip_lines; /* lines skipped at the start, before the header (titles) */
  char comment;        /* lines starting with this byte are skipped (0: none) */
  /* Warnings about the input (a line that is not valid UTF-8): called with the message, which
   * names the file, line and offset. NULL: none are made. */
  void (*warn_cb)(void *arg, const char *msg);
  void *warn_arg;
  /* For tests and the fuzzer only: 1 reads every record through libcsv, without the fast path
   * that splits plain records itself (the records, lines and errors are the same either way). */
  int no_fast_path;
} csvin_dialect;

/* csvin_open with a dialect (d may be NULL: the defaults). Errors as csvin_open's, plus
 * CS_EINVAL for an encoding iconv does not know and CS_ECSV for a UTF-16 byte-order mark read
 * as UTF-8 (the message suggests --encoding auto). */
int csvin_open_dialect(csvin **out, const char *path, int has_header, const csvin_dialect *d,
                       char *err, size_t errlen);

/* What the reader chose for "auto" settings, for the log: "delimiter ';' (3 on each of 12 of
 * the first 12 lines); encoding windows-1252 (not valid UTF-8: byte 0xE9 at offset 40)", or ""
 * when nothing was automatic. */
const char *csvin_choices(const csvin *r);

/* The delimiter in use. */
char csvin_delimiter(const csvin *r);

/* Lines skipped so far: by skip_lines, as comments, and lines that were not valid UTF-8. */
uint64_t csvin_skipped_lines(const csvin *r);
uint64_t csvin_comment_lines(const csvin *r);
uint64_t csvin_invalid_utf8_lines(const csvin *r);

/* Open `path` ("-" for standard input). With has_header, the first record is the header and is
 * available from csvin_header() (not returned by csvin_next). Returns 0, or a negative code
 * with a message naming the file written to err (e.g. "data/x.csv: No such file or directory"). */
int csvin_open(csvin **out, const char *path, int has_header, char *err, size_t errlen);

/* The next record. Returns 1 with *rec filled, 0 at the end of the input, or a negative code
 * (CS_ECSV, CS_EIO, CS_ENOMEM) with the message in csvin_error(), which names the file and
 * line, e.g. "data/x.csv:14: unterminated quote (the quoted field that starts here never
 * ends)". Every record before the error has been returned. */
int csvin_next(csvin *r, csvin_rec *rec);

/* 1 when the next csvin_next would have to wait for input: no complete record is buffered (the
 * bytes already read are parsed first, which ends the life of the last record's fields), and
 * the input is a pipe, terminal or socket with nothing to read right now (poll, zero timeout).
 * 0 when csvin_next will return at once: a record is buffered, the input ended or failed, data
 * is waiting, or the input is a regular file (then no system call is made). A streaming caller
 * sends what it holds before it lets csvin_next block. */
int csvin_would_block(csvin *r);

/* The file descriptor read from, to poll for input when csvin_would_block says 1. */
int csvin_fd(const csvin *r);

/* Bytes of the input parsed so far, from its first byte (a BOM included): just past the last
 * record csvin_next returned, give or take the line that follows. For progress against a
 * file's size; after csvin_rewind it starts again from the data's start. */
uint64_t csvin_offset(const csvin *r);

/* The header record, or NULL (no header wanted, or an empty input). Valid until close. */
const csvin_rec *csvin_header(const csvin *r);

/* Start over at the first data record (for --loop). Returns 0, or CS_EINVAL for standard
 * input or another unseekable input. The header is not re-read. */
int csvin_rewind(csvin *r);

/* Path as given ("-" is shown as "<stdin>"). */
const char *csvin_path(const csvin *r);
const char *csvin_error(const csvin *r);
void csvin_close(csvin *r); /* accepts NULL */

#endif
