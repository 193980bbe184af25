/* test_log_escape.c -- log_escape: peer text made safe for a log line (control bytes and bad
 * UTF-8 as \xNN, valid UTF-8 kept, long text cut with "..."). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "log.h"

typedef struct escape_case {
  const char *in;
  size_t len; /* 0: strlen(in) */
  size_t dstlen;
  const char *want;
} escape_case;

static void test_escape_table(void **state) {
  static const escape_case cases[] = {
      {"temperatures", 0, 64, "temperatures"},
      {"a\nb", 0, 64, "a\\x0ab"},
      {"\x1b[31mred", 0, 64, "\\x1b[31mred"},
      {"tab\there\r", 0, 64, "tab\\x09here\\x0d"},
      {"del\x7f", 0, 64, "del\\x7f"},
      {"nul\0x", 5, 64, "nul\\x00x"},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xb2", 0, 64,
       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xb2"},
      {"c1 \xc2\x9b", 0, 64, "c1 \\xc2\\x9b"},             /* U+009B: CSI in some terminals */
      {"raw \x9b[2J", 0, 64, "raw \\x9b[2J"},              /* a lone C1 byte */
      {"overlong \xc0\xaf", 0, 64, "overlong \\xc0\\xaf"}, /* "/" in two bytes */
      {"cut \xe2\x82", 0, 64, "cut \\xe2\\x82"},           /* a sequence cut short */
      {"abcdefghij", 0, 8, "abcd..."},
      {"abcdefg", 0, 8, "abcdefg"},
      {"\n\n\n\n", 0, 8, "\\x0a..."},
      {"", 0, 8, ""},
  };
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char dst[64];
    const escape_case *c = &cases[i];
    size_t len = c->len ? c->len : strlen(c->in);
    memset(dst, 'Z', sizeof(dst));
    assert_ptr_equal(log_escape(dst, c->dstlen, c->in, len), dst);
    if (strcmp(dst, c->want) != 0) {
      fail_msg("case %zu: got \"%s\", want \"%s\"", i, dst, c->want);
    }
    assert_true(strlen(dst) < c->dstlen);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escape_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
