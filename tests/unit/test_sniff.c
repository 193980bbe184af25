/* test_sniff.c -- unit tests of --delimiter auto: each candidate, quotes, titles and comments,
 * ties and files of one column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sniff.h"

typedef struct sniff_case {
  const char *name;
  const char *text;
  uint64_t skip;
  char comment;
  char want;
} sniff_case;

static const sniff_case cases[] = {
    {"commas", "a,b,c\n1,2,3\n4,5,6\n", 0, 0, ','},
    {"semicolons with decimal commas", "a;b;c\n1,5;2;3\n4;5,25;6\n7;8;9\n", 0, 0, ';'},
    {"tabs", "a\tb\n1\t2\n3\t4\n", 0, 0, '\t'},
    {"pipes", "a|b|c\r\n1|2|3\r\n", 0, 0, '|'},
    {"colons", "a:b\n1:2\n3:4\n", 0, 0, ':'},
    {"times do not make colons win", "t;v\n12:30:00;1\n12:31:00;2\n", 0, 0, ';'},
    {"quoted delimiters do not count", "a;b\n\"x,y,z\";1\n\"p,q,r\";2\n", 0, 0, ';'},
    {"a quoted line break", "a;b\n\"line\none,two\";1\n2;3\n", 0, 0, ';'},
    {"a title line skipped", "Report, 2025: all, of, it\na;b\n1;2\n", 1, 0, ';'},
    {"comment lines ignored", "# a, b, c, d\na|b\n1|2\n# x,y\n3|4\n", 0, '#', '|'},
    {"one column", "name\nalpha\nbeta\n", 0, 0, ','},
    {"a tie goes to the comma", "a,b;c\n1,2;3\n", 0, 0, ','},
    {"a last line cut off is left out", "a;b;c\n1;2;3\n4;5", 0, 0, ';'},
    {"blank lines ignored", "a;b\n\n1;2\n\r\n3;4\n", 0, 0, ';'},
};

/* Table-driven: each text gives its delimiter, and the reason names it. */
static void test_sniff_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const sniff_case *c = &cases[i];
    char why[200], name[16];
    print_message("case: %s\n", c->name);
    char got = sniff_delimiter(c->text, strlen(c->text), c->skip, c->comment, why, sizeof why);
    assert_int_equal(got, c->want);
    assert_non_null(strstr(why, sniff_delimiter_name(c->want, name, sizeof name)));
  }
}

/* Empty input: a comma, and the reason says there was nothing to go on. */
static void test_sniff_empty(void **state) {
  char why[200];
  (void)state;
  assert_int_equal(sniff_delimiter("", 0, 0, 0, why, sizeof why), ',');
  assert_non_null(strstr(why, "one column"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sniff_table),
      cmocka_unit_test(test_sniff_empty),
  };
  return cmocka_run_group_tests_name("sniff", tests, NULL, NULL);
}
