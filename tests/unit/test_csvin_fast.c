/* test_csvin_fast.c -- unit tests of the CSV reader's fast path (plain records split without
 * libcsv): a table of edge cases, each read with the fast path and through libcsv alone, which
 * must give the same records, lines, warnings and errors, and the records the case expects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "bytescan.h"
#include "csvin.h"
#include "error.h"

/* Write len bytes to a fresh temporary file; path receives its name. */
static void temp_csv(char *path, size_t pathlen, const char *data, size_t len) {
  snprintf(path, pathlen, "/tmp/test_csvin_fast_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    assert_true(n > 0);
    done += (size_t)n;
  }
  assert_int_equal(close(fd), 0);
}

/* warn_cb: count the warnings. */
static void count_warning(void *arg, const char *msg) {
  (void)msg;
  (*(int *)arg)++;
}

/* Read path whole into out as text: "H<line>:f|f\n" for the header, "<line>:f|f|f\n" per
 * record, then "end <rc> <message>; warnings <n>". */
static void read_text(const char *path, int has_header, const csvin_dialect *d, int no_fast,
                      cs_buf *out) {
  csvin_dialect dd;
  csvin *r = NULL;
  char err[1100], line[64];
  int warnings = 0;
  if (d != NULL) {
    dd = *d;
  } else {
    memset(&dd, 0, sizeof dd);
  }
  dd.no_fast_path = no_fast;
  dd.warn_cb = count_warning;
  dd.warn_arg = &warnings;
  cs_buf_init(out);
  int rc = csvin_open_dialect(&r, path, has_header, &dd, err, sizeof err);
  if (rc != 0) {
    snprintf(line, sizeof line, "open %d ", rc);
    assert_int_equal(cs_buf_append(out, line, strlen(line)), 0);
    assert_int_equal(cs_buf_append(out, err, strlen(err) + 1), 0);
    return;
  }
  const csvin_rec *h = csvin_header(r);
  csvin_rec rec;
  for (int first = 1;; first = 0) {
    if (first && h == NULL) {
      continue;
    }
    if (!first && (rc = csvin_next(r, &rec)) != 1) {
      break;
    }
    const csvin_rec *p = first ? h : &rec;
    snprintf(line, sizeof line, "%s%llu:", first ? "H" : "", (unsigned long long)p->line);
    assert_int_equal(cs_buf_append(out, line, strlen(line)), 0);
    for (size_t i = 0; i < p->nfields; i++) {
      assert_int_equal(cs_buf_append(out, p->fields[i].data, p->fields[i].len), 0);
      assert_int_equal(cs_buf_append(out, i + 1 < p->nfields ? "|" : "\n", 1), 0);
    }
  }
  snprintf(line, sizeof line, "end %d ", rc);
  assert_int_equal(cs_buf_append(out, line, strlen(line)), 0);
  assert_int_equal(cs_buf_append(out, csvin_error(r), strlen(csvin_error(r))), 0);
  snprintf(line, sizeof line, "; warnings %d", warnings);
  assert_int_equal(cs_buf_append(out, line, strlen(line) + 1), 0);
  csvin_close(r);
}

/* Read data both ways; the two texts must be equal, and start with want (the records) and hold
 * want_end (the end and its message). */
static void check_case(const char *name, const char *data, size_t len, int has_header,
                       const csvin_dialect *d, const char *want, const char *want_end) {
  char path[64];
  cs_buf fast, slow;
  temp_csv(path, sizeof path, data, len);
  read_text(path, has_header, d, 0, &fast);
  read_text(path, has_header, d, 1, &slow);
  assert_int_equal(unlink(path), 0);
  if (fast.len != slow.len || memcmp(fast.data, slow.data, fast.len) != 0) {
    fail_msg("%s: the fast path read\n%s\nlibcsv alone read\n%s", name, fast.data, slow.data);
  }
  if (strncmp(fast.data, want, strlen(want)) != 0 ||
      memmem(fast.data, fast.len, want_end, strlen(want_end)) == NULL) {
    fail_msg("%s: read\n%s\nwanted\n%s...%s", name, fast.data, want, want_end);
  }
  cs_buf_free(&fast);
  cs_buf_free(&slow);
}

typedef struct fast_case {
  const char *name;
  const char *data;
  int has_header;
  char delimiter; /* 0: ',' */
  char comment;
  uint64_t skip_lines;
  const char *want;     /* the records, as read_text writes them */
  const char *want_end; /* a part of the end line */
} fast_case;

static const fast_case cases[] = {
    {"plain LF", "a,b\nc,d\n", 0, 0, 0, 0, "1:a|b\n2:c|d\nend 0 ", "warnings 0"},
    {"CR LF", "a,b\r\nc,d\r\n", 0, 0, 0, 0, "1:a|b\n2:c|d\nend 0 ", "warnings 0"},
    {"quoted delimiter, doubled quotes, newline", "\"x,\"\"y\"\"\nz\",2\nq,3\n", 0, 0, 0, 0,
     "1:x,\"y\"\nz|2\n3:q|3\n", "end 0 "},
    {"CR LF inside quotes", "\"a\r\nb\",c\r\nd,e\r\n", 0, 0, 0, 0, "1:a\r\nb|c\n3:d|e\n", "end 0"},
    {"lone CR inside quotes", "\"a\rb\",c\nd,e\n", 0, 0, 0, 0, "1:a\rb|c\n3:d|e\n", "end 0"},
    {"empty fields", ",\n,,x\n\"\",\"\"\n", 0, 0, 0, 0, "1:|\n2:||x\n3:|\n", "end 0"},
    {"quoted field last, then CR LF", "a,\"b\"\r\n\"c\"\r\n", 0, 0, 0, 0, "1:a|b\n2:c\n", "end 0"},
    {"lone CR ends a record", "a,b\rc,d\n", 0, 0, 0, 0, "1:a|b\n2:c|d\n", "end 0"},
    {"no final line break", "a,b\nc,\"d\"", 0, 0, 0, 0, "1:a|b\n2:c|d\n", "end 0"},
    {"blank lines in one column", "a\n\n\r\nb\n", 0, 0, 0, 0, "1:a\n2:\n3:\n4:b\n", "end 0"},
    {"blank lines in two columns", "a,b\n\n\nc,d\n", 0, 0, 0, 0, "1:a|b\n4:c|d\n", "end 0"},
    {"spaces kept", " a , b \n\" q \",\t\n", 0, 0, 0, 0, "1: a | b \n2: q |\t\n", "end 0"},
    {"a quote inside an unquoted field", "a,b\nc,d\"e\nf,g\n", 0, 0, 0, 0, "1:a|b\nend -",
     ":2: malformed quoting in field 2 (byte 4 of the line): a quote inside a field"},
    {"text after a closing quote", "a\n\"x\"y,z\n", 0, 0, 0, 0, "1:a\nend -",
     ":2: malformed quoting in field 1 (byte 4 of the line): text after the closing quote"},
    {"space after a closing quote", "\"x\" ,z\n", 0, 0, 0, 0, "end -", ":1: malformed quoting"},
    {"unterminated quote", "a,b\n\"x,\ny\n", 0, 0, 0, 0, "1:a|b\nend -", ":2: unterminated quote"},
    {"byte-order mark and header", "\xEF\xBB\xBFid,v\n1,\"2\"\n", 1, 0, 0, 0, "H1:id|v\n2:1|2\n",
     "end 0"},
    {"header quoted over two lines", "\"i\nd\",v\n1,2\n", 1, 0, 0, 0, "H1:i\nd|v\n3:1|2\n",
     "end 0"},
    {"tab delimiter", "a\tb\n\"c\td\"\te\n", 0, '\t', 0, 0, "1:a|b\n2:c\td|e\n", "end 0"},
    {"semicolon delimiter, comma in a value", "a;b,c\n", 0, ';', 0, 0, "1:a|b,c\n", "end 0"},
    {"valid UTF-8", "\xC3\xA9t\xC3\xA9,\"\xE2\x82\xAC\"\n", 0, 0, 0, 0,
     "1:\xC3\xA9t\xC3\xA9|\xE2\x82\xAC\n", "warnings 0"},
    {"invalid UTF-8 warned once per line", "ok,\xE9x\n\"\xC3\",y\nz,w\n", 0, 0, 0, 0,
     "1:ok|\xE9x\n2:\xC3|y\n3:z|w\n", "warnings 2"},
    {"comment and skipped title", "title,x\n#c,d\na,b\n#e\nc,d\n", 0, 0, '#', 1, "3:a|b\n5:c|d\n",
     "end 0"},
    {"NUL bytes are data", "a\0b,c\n", 0, 0, 0, 0, "1:a", "end 0"},
};

/* Every case of the table, both ways. */
static void test_fast_cases(void **state) {
  (void)state;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const fast_case *c = &cases[k];
    csvin_dialect d;
    memset(&d, 0, sizeof d);
    d.delimiter = c->delimiter;
    d.comment = c->comment;
    d.skip_lines = c->skip_lines;
    size_t len = strlen(c->data);
    if (strcmp(c->name, "NUL bytes are data") == 0) {
      len = 6;
    }
    check_case(c->name, c->data, len, c->has_header, &d, c->want, c->want_end);
  }
}

/* Records of every length around the read block's end (64 KiB), quoted fields with line breaks
 * cut there too: both ways give the records written, with their lines. */
static void test_fast_records_across_blocks(void **state) {
  (void)state;
  cs_buf data, want;
  char row[128], path[64];
  cs_buf_init(&data);
  cs_buf_init(&want);
  uint64_t line = 1;
  for (int i = 0; data.len < 3 * 65536; i++) {
    int pad = i % 37;
    snprintf(row, sizeof row, "%d,\"q\"\"%.*s\nz\",%s\r\n", i, pad,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i % 3 ? "" : "end");
    assert_int_equal(cs_buf_append(&data, row, strlen(row)), 0);
    snprintf(row, sizeof row, "%llu:%d|q\"%.*s\nz|%s\n", (unsigned long long)line, i, pad,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i % 3 ? "" : "end");
    assert_int_equal(cs_buf_append(&want, row, strlen(row)), 0);
    line += 2;
  }
  assert_int_equal(cs_buf_append(&want, "end 0 ", 7), 0);
  temp_csv(path, sizeof path, data.data, data.len);
  cs_buf fast, slow;
  read_text(path, 0, NULL, 0, &fast);
  read_text(path, 0, NULL, 1, &slow);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(fast.len, slow.len);
  assert_memory_equal(fast.data, slow.data, fast.len);
  assert_true(strncmp(fast.data, want.data, want.len - 1) == 0);
  cs_buf_free(&fast);
  cs_buf_free(&slow);
  cs_buf_free(&data);
  cs_buf_free(&want);
}

/* A small deterministic generator (xorshift64), so a failure repeats. */
static uint64_t next_rand(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

/* The 64-byte scan (SSE2 where built with it) finds exactly the bytes the portable one does:
 * random text rich in stop bytes, at every offset, with and without the high bytes. */
static void test_bytescan_matches_portable(void **state) {
  (void)state;
  static const char alphabet[] = ",;\t\"\r\nab\x80\xC3\xA9\xFF\x00 ";
  char buf[64 * 3];
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (int round = 0; round < 2000; round++) {
    for (size_t i = 0; i < sizeof buf; i++) {
      buf[i] = alphabet[next_rand(&x) % (sizeof alphabet - 1)];
    }
    bytescan k;
    bytescan_init(&k, (unsigned char)alphabet[next_rand(&x) % (sizeof alphabet - 1)], '"', '\r',
                  '\n', round & 1);
    for (size_t off = 0; off + 64 <= sizeof buf; off++) {
      assert_int_equal(bytescan_mask64(&k, buf + off), bytescan_mask64_portable(&k, buf + off));
    }
  }
}

/* Random records, each field plain, empty, quoted, quoted with doubled quotes, with CR LF, LF
 * or a lone CR inside, with UTF-8 (valid or not), 0 to 150 bytes long: the fast path's 64-byte
 * chunks fall everywhere in them. Both ways must read the same. */
static void test_fast_random_records(void **state) {
  (void)state;
  static const char *pieces[] = {"a",
                                 "bc",
                                 "0042",
                                 " ",
                                 ",",
                                 "\"\"",
                                 "\r\n",
                                 "\n",
                                 "\r",
                                 "\xC3\xA9",
                                 "\xE2\x82\xAC",
                                 "\xE9",
                                 "xxxxxxxxxxxxxxxx"};
  uint64_t x = 0x2545F4914F6CDD1DULL;
  for (int file = 0; file < 40; file++) {
    cs_buf data;
    cs_buf_init(&data);
    while (data.len < 20000 + (size_t)file * 4000) {
      int nfields = 1 + (int)(next_rand(&x) % 9);
      for (int f = 0; f < nfields; f++) {
        int quoted = next_rand(&x) % 3 == 0;
        size_t target = next_rand(&x) % 4 == 0 ? next_rand(&x) % 150 : next_rand(&x) % 12;
        size_t start = data.len;
        if (quoted) {
          assert_int_equal(cs_buf_append_byte(&data, '"'), 0);
        }
        while (data.len - start < target) {
          const char *piece = pieces[next_rand(&x) % (sizeof pieces / sizeof pieces[0])];
          int special = strchr(",\"\r\n", piece[0]) != NULL;
          if (special && !quoted) {
            piece = "z";
          }
          assert_int_equal(cs_buf_append(&data, piece, strlen(piece)), 0);
        }
        if (quoted) {
          assert_int_equal(cs_buf_append_byte(&data, '"'), 0);
        }
        if (f + 1 < nfields) {
          assert_int_equal(cs_buf_append_byte(&data, ','), 0);
        }
      }
      const char *end = next_rand(&x) % 4 == 0 ? "\r\n" : "\n";
      assert_int_equal(cs_buf_append(&data, end, strlen(end)), 0);
    }
    char name[64];
    snprintf(name, sizeof name, "random file %d", file);
    check_case(name, data.data, data.len, file % 2, NULL, "", "end ");
    cs_buf_free(&data);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fast_cases),
      cmocka_unit_test(test_fast_records_across_blocks),
      cmocka_unit_test(test_bytescan_matches_portable),
      cmocka_unit_test(test_fast_random_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
