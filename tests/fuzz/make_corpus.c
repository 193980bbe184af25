/* make_corpus.c -- writes the fuzz targets' seed corpus from CSV files (scripts/fuzz
 * --make-corpus runs it on the CSV files of data/ and tests/data/conformance/): the files
 * themselves for csvin, their records encoded as a TCP stream (HELLO, RECORDs, END) for
 * wire_stream, as UDP datagrams (HELLO + RECORD, END) for wire_datagram, and the consumer's
 * answers to it (an ACK per record, then a REFUSE) for wire_reply. The frames come from
 * wire_encode with fixed ids, keys and times, so the corpus is the same on every run.
 *
 * Usage: make_corpus OUTDIR FILE.csv... (OUTDIR/csvin, OUTDIR/wire_stream, OUTDIR/wire_datagram
 * and OUTDIR/wire_reply must exist). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csvin.h"
#include "wire.h"

/* Write len bytes to DIR/TARGET/NAME. Returns 0 or -1 (message printed). */
static int write_seed(const char *dir, const char *target, const char *name, const void *data,
                      size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  int ok = (len == 0 || fwrite(data, 1, len, f) == len);
  if (fclose(f) != 0) {
    ok = 0;
  }
  if (!ok) {
    fprintf(stderr, "%s: write failed\n", path);
    return -1;
  }
  return 0;
}

/* Read the whole of path into b. Returns 0 or -1 (message printed). */
static int slurp(const char *path, cs_buf *b) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  char chunk[4096];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (cs_buf_append(b, chunk, n) != 0) {
      rc = -1;
      break;
    }
  }
  if (ferror(f)) {
    rc = -1;
  }
  if (fclose(f) != 0 || rc != 0) {
    fprintf(stderr, "%s: read failed\n", path);
    return -1;
  }
  return 0;
}

/* Encode one message of `stream` onto out. Returns wire_encode's code. */
static int encode(cs_buf *out, int type, const char *stream, uint64_t seq, uint64_t line,
                  const csvin_rec *rec) {
  wire_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  m.producer_id = 0x0123456789abcdefULL;
  m.seq = seq;
  m.sent_us = 1700000000000000ULL + seq;
  m.line = line;
  static const unsigned char key[WIRE_KEY_LEN] = "csvstream-corpus";
  m.stream.data = stream;
  m.stream.len = strlen(stream);
  m.key = key;
  if (rec != NULL) {
    m.nfields = (uint32_t)rec->nfields;
    m.fields = rec->fields;
  }
  return wire_encode(&m, out);
}

/* The seeds made from one CSV file. Returns 0 or -1. */
static int seeds_from(const char *dir, const char *path) {
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", path);
  const char *name = basename(copy);
  cs_buf raw, stream, dgram;
  cs_buf_init(&raw);
  cs_buf_init(&stream);
  cs_buf_init(&dgram);
  csvin *r = NULL;
  char err[1100];
  char seed[4200];
  int rc = -1;
  if (slurp(path, &raw) != 0 || write_seed(dir, "csvin", name, raw.data, raw.len) != 0) {
    goto done;
  }
  if (csvin_open(&r, path, 1, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    goto done;
  }
  /* The split point: the middle of the first frame, read by the target from two bytes. */
  static const char split[2] = {0, 20};
  const csvin_rec *h = csvin_header(r);
  csvin_rec none = {0, NULL, 0};
  if (cs_buf_append(&stream, split, sizeof split) != 0 ||
      encode(&stream, WIRE_HELLO, name, 0, 0, h != NULL ? h : &none) != 0) {
    goto done;
  }
  size_t hello_len = stream.len - sizeof split;
  csvin_rec rec;
  uint64_t seq = 0;
  int got;
  while ((got = csvin_next(r, &rec)) == 1) {
    if (encode(&stream, WIRE_RECORD, name, ++seq, rec.line, &rec) != 0) {
      goto done;
    }
    if (seq <= 2) {
      /* As the UDP sender sends it: the stream's HELLO in front of the record. */
      cs_buf_reset(&dgram);
      if (cs_buf_append(&dgram, stream.data + sizeof split, hello_len) != 0 ||
          encode(&dgram, WIRE_RECORD, name, seq, rec.line, &rec) != 0) {
        goto done;
      }
      snprintf(seed, sizeof seed, "%s.record%llu", name, (unsigned long long)seq);
      if (write_seed(dir, "wire_datagram", seed, dgram.data, dgram.len) != 0) {
        goto done;
      }
    }
  }
  if (got < 0) {
    fprintf(stderr, "%s\n", csvin_error(r));
    goto done;
  }
  if (encode(&stream, WIRE_END, name, seq, 0, NULL) != 0) {
    goto done;
  }
  cs_buf_reset(&dgram);
  if (encode(&dgram, WIRE_END, name, seq, 0, NULL) != 0) {
    goto done;
  }
  snprintf(seed, sizeof seed, "%s.end", name);
  if (write_seed(dir, "wire_datagram", seed, dgram.data, dgram.len) != 0) {
    goto done;
  }
  /* The consumer's side: one read size byte, an ACK per record (at most 8), then a REFUSE. */
  cs_buf_reset(&dgram);
  static const char step = 7;
  static const char words[] = "the consumer's memory budget is in use\x1b[31m";
  cs_field reason = {words, sizeof words - 1};
  csvin_rec why = {1, &reason, 0};
  if (cs_buf_append(&dgram, &step, 1) != 0) {
    goto done;
  }
  for (uint64_t k = 1; k <= seq && k <= 8; k++) {
    if (encode(&dgram, WIRE_ACK, name, k, 0, NULL) != 0) {
      goto done;
    }
  }
  if (encode(&dgram, WIRE_REFUSE, name, 0, 0, &why) != 0 ||
      write_seed(dir, "wire_reply", name, dgram.data, dgram.len) != 0 ||
      write_seed(dir, "wire_stream", name, stream.data, stream.len) != 0) {
    goto done;
  }
  rc = 0;
done:
  csvin_close(r);
  cs_buf_free(&raw);
  cs_buf_free(&stream);
  cs_buf_free(&dgram);
  return rc;
}

/* Seeds no test file holds: the cases the fuzzing found and other small edges. */
static int extra_seeds(const char *dir) {
  static const struct {
    const char *name;
    const char *data;
  } csv[] = {
      {"empty_fields_no_header", ",\n"},      /* UBSan: NULL + 0 in csvin.c (fixed) */
      {"open_quote", "a,b\n1,\"open\n2,3\n"}, /* an unterminated quote */
      {"bom_only", "\xEF\xBB\xBF"},           /* a BOM and nothing else */
      {"quote_after_data", "a\nx\"y\",1\n"},  /* malformed quoting */
      {"cr_only", "a\r1\r\r2"},               /* lone CR line ends, no final one */
  };
  for (size_t i = 0; i < sizeof csv / sizeof csv[0]; i++) {
    if (write_seed(dir, "csvin", csv[i].name, csv[i].data, strlen(csv[i].data)) != 0) {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: make_corpus OUTDIR FILE.csv...\n");
    return 2;
  }
  int rc = extra_seeds(argv[1]) == 0 ? 0 : 1;
  for (int i = 2; i < argc; i++) {
    if (seeds_from(argv[1], argv[i]) != 0) {
      rc = 1;
    }
  }
  return rc;
}
