/* test_common_misc.c -- unit tests of the small common modules: option parsing, JSON writer,
 * address helpers, logging, byte buffer, error table, clock. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <regex.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>
#include <csv.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "lograte.h"
#include "net.h"
#include "opt.h"

/* Run fn with the file descriptor `target` (1 or 2) redirected to a temporary file; return what
 * was written, NUL-terminated, in out. */
static void capture_fd(int target, void (*fn)(void *), void *arg, char *out, size_t cap) {
  char path[] = "/tmp/test_common_misc_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  fflush(stderr);
  int saved = dup(target);
  assert_true(saved >= 0);
  assert_true(dup2(fd, target) >= 0);
  fn(arg);
  fflush(stdout);
  fflush(stderr);
  assert_true(dup2(saved, target) >= 0);
  close(saved);
  assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
  ssize_t n = read(fd, out, cap - 1);
  assert_true(n >= 0);
  out[n] = '\0';
  close(fd);
  unlink(path);
}

static int matches(const char *text, const char *pattern) {
  regex_t re;
  assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB), 0);
  int ok = regexec(&re, text, 0, NULL, 0) == 0;
  regfree(&re);
  return ok;
}

/* ---- opt ---- */

typedef struct long_case {
  const char *input;
  long long min, max;
  int expect_rc;
  long long expect_value;
  const char *expect_err;
} long_case;

static void test_opt_long(void **state) {
  (void)state;
  static const long_case cases[] = {
      {"9999", 1, 65535, 0, 9999, ""},
      {"1", 1, 65535, 0, 1, ""},
      {"65535", 1, 65535, 0, 65535, ""},
      {"99999", 1, 65535, CS_EINVAL, 0, "--port: '99999' is out of range (1-65535)"},
      {"0", 1, 65535, CS_EINVAL, 0, "--port: '0' is out of range (1-65535)"},
      {"abc", 1, 65535, CS_EINVAL, 0, "--port: 'abc' is not a whole number"},
      {"12x", 1, 65535, CS_EINVAL, 0, "--port: '12x' is not a whole number"},
      {"1.5", 1, 65535, CS_EINVAL, 0, "--port: '1.5' is not a whole number"},
      {"", 1, 65535, CS_EINVAL, 0, "--port: a value is required (1-65535)"},
      {"99999999999999999999", 1, 65535, CS_EINVAL, 0,
       "--port: '99999999999999999999' is out of range (1-65535)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    long long v = -1;
    char err[256] = "";
    print_message("opt_long '%s'\n", cases[i].input);
    assert_int_equal(
        opt_long("--port", cases[i].input, cases[i].min, cases[i].max, &v, err, sizeof err),
        cases[i].expect_rc);
    assert_string_equal(err, cases[i].expect_err);
    if (cases[i].expect_rc == 0) {
      assert_int_equal(v, cases[i].expect_value);
    } else {
      assert_int_equal(v, -1); /* untouched on failure */
    }
  }
}

static void test_opt_double(void **state) {
  (void)state;
  double v = -1;
  char err[256] = "";
  assert_int_equal(opt_double("--rate", "2.5", 0, 1e6, &v, err, sizeof err), 0);
  assert_true(v == 2.5);
  assert_int_equal(opt_double("--rate", "nan", 0, 1e6, &v, err, sizeof err), CS_EINVAL);
  assert_string_equal(err, "--rate: 'nan' is not a number");
  assert_int_equal(opt_double("--rate", "inf", 0, 1e6, &v, err, sizeof err), CS_EINVAL);
  assert_int_equal(opt_double("--rate", "-1", 0, 1e6, &v, err, sizeof err), CS_EINVAL);
  assert_string_equal(err, "--rate: '-1' is out of range (0-1e+06)");
  assert_int_equal(opt_double("--rate", "3x", 0, 1e6, &v, err, sizeof err), CS_EINVAL);
  assert_true(v == 2.5);
}

typedef struct interval_case {
  const char *input;
  int expect_rc;
  double min, max;
} interval_case;

static void test_opt_interval(void **state) {
  (void)state;
  static const interval_case cases[] = {
      {"1-3", 0, 1, 3},
      {"0", 0, 0, 0},
      {"0.5", 0, 0.5, 0.5},
      {"0.25-0.75", 0, 0.25, 0.75},
      {"2-2", 0, 2, 2},
      {"3-1", CS_EINVAL, 0, 0},
      {"-1", CS_EINVAL, 0, 0},
      {"1-", CS_EINVAL, 0, 0},
      {"a-b", CS_EINVAL, 0, 0},
      {"1-3601", CS_EINVAL, 0, 0},
      {"", CS_EINVAL, 0, 0},
      {"1--2", CS_EINVAL, 0, 0},
      /* An exponent's minus is not the MIN-MAX dash. */
      {"1e-3", 0, 0.001, 0.001},
      {"1e-3-2E-3", 0, 0.001, 0.002},
      {"5e-1-1", 0, 0.5, 1},
      {"1-2e-1", CS_EINVAL, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double lo = -1;
    double hi = -1;
    char err[256] = "";
    print_message("interval '%s'\n", cases[i].input);
    assert_int_equal(opt_interval("--interval", cases[i].input, &lo, &hi, err, sizeof err),
                     cases[i].expect_rc);
    if (cases[i].expect_rc == 0) {
      assert_true(lo == cases[i].min && hi == cases[i].max);
    } else {
      assert_true(strncmp(err, "--interval: ", 12) == 0);
    }
  }
  double lo;
  double hi;
  char err[256];
  assert_int_equal(opt_interval("--interval", "3-1", &lo, &hi, err, sizeof err), CS_EINVAL);
  assert_string_equal(err, "--interval: '3-1': MIN is larger than MAX");
}

static void print_version_cb(void *arg) {
  const opt_version_lib libs[] = {{"libuv", uv_version_string()}, {"SQLite", sqlite3_libversion()}};
  opt_print_version(arg, libs, sizeof libs / sizeof libs[0]);
}

/* --version names the program and the libraries actually loaded, the OS and the CPUs. */
static void test_opt_version(void **state) {
  (void)state;
  char out[4096];
  capture_fd(STDOUT_FILENO, print_version_cb, "producer", out, sizeof out);
  assert_true(matches(out, "^producer \\(csvstream\\) [0-9]+\\.[0-9]+\\.[0-9]+$"));
  assert_true(matches(out, "^libuv 1\\.[0-9]+\\.[0-9]+$"));
  assert_true(matches(out, "^SQLite 3\\.[0-9]+\\.[0-9]+$"));
  /* libcsv in one line: the version compiled against (it has no run-time version call), and the
   * object loaded by its soname, not the file that name points to (Debian's libcsv.so.3.0.2 is
   * the library 3.0.3). */
  char want[128];
  snprintf(want, sizeof want,
           "^libcsv %d\\.%d\\.%d \\(compiled against; loaded from /[^ ]*libcsv\\.so\\.%d\\)$",
           CSV_MAJOR, CSV_MINOR, CSV_RELEASE, CSV_MAJOR);
  if (!matches(out, want)) {
    fail_msg("no line matches %s in:\n%s", want, out);
  }
  const char *line = strstr(out, "\nlibcsv ");
  assert_non_null(line);
  assert_null(strstr(line + 1, "\nlibcsv")); /* one line */
  assert_true(matches(out, "^OS Linux [^ ]+ [^ ]+$"));
  assert_true(matches(out, "^CPUs [1-9][0-9]*$"));
}

/* ---- json ---- */

static void test_json_document(void **state) {
  (void)state;
  json_out j;
  json_init(&j);
  json_object_begin(&j, NULL);
  json_string(&j, "protocol", "udp");
  json_uint(&j, "sent", UINT64_MAX);
  json_int(&j, "neg", INT64_MIN);
  json_double(&j, "rate", 2.5);
  json_double(&j, "bad", 0.0 / 0.0);
  json_bool(&j, "ended", 1);
  json_string(&j, "last_seq", NULL);
  json_object_begin(&j, "latency_us");
  json_uint(&j, "p50", 12);
  json_object_end(&j);
  json_array_begin(&j, "streams");
  json_object_begin(&j, NULL);
  json_object_end(&j);
  json_uint(&j, NULL, 3);
  json_array_end(&j);
  json_array_begin(&j, "empty");
  json_array_end(&j);
  json_object_end(&j);
  assert_int_equal(j.failed, 0);
  const char *expect =
      "{\"protocol\":\"udp\",\"sent\":18446744073709551615,\"neg\":-9223372036854775808,"
      "\"rate\":2.5,\"bad\":null,\"ended\":true,\"last_seq\":null,\"latency_us\":{\"p50\":12},"
      "\"streams\":[{},3],\"empty\":[]}";
  assert_int_equal(j.buf.len, strlen(expect));
  assert_memory_equal(j.buf.data, expect, j.buf.len);
  json_free(&j);
}

/* Strings are escaped per RFC 8259: quotes, backslash, control characters; UTF-8 unchanged. */
static void test_json_escaping(void **state) {
  (void)state;
  json_out j;
  json_init(&j);
  json_string(&j, NULL, "q\"b\\n\nr\rt\tc\x01\x1f\x7f \xca\xa4");
  const char *expect = "\"q\\\"b\\\\n\\nr\\rt\\tc\\u0001\\u001f\x7f \xca\xa4\"";
  assert_int_equal(j.buf.len, strlen(expect));
  assert_memory_equal(j.buf.data, expect, j.buf.len);
  json_free(&j);
}

/* Bytes that are not UTF-8 (stream names come from peers) become U+FFFD, one per byte, so the
 * document stays valid JSON (RFC 8259 requires UTF-8); valid sequences pass unchanged. */
static void test_json_invalid_utf8_replaced(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
      {"a\xff"
       "b",
       "\"a\\ufffdb\""},                             /* a byte that never starts UTF-8 */
      {"\xc3", "\"\\ufffd\""},                       /* a sequence cut by the end */
      {"\xc3(", "\"\\ufffd(\""},                     /* a lead byte without continuation */
      {"\xc0\xaf", "\"\\ufffd\\ufffd\""},            /* overlong '/' */
      {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* a UTF-16 surrogate */
      {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
      {"\x80", "\"\\ufffd\""},                                  /* a lone continuation byte */
      {"\xc2\x85\xe2\x82\xac\xf0\x9f\x9a\xb2", "\"\xc2\x85\xe2\x82\xac\xf0\x9f\x9a\xb2\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_out j;
    json_init(&j);
    json_string(&j, NULL, cases[i].in);
    assert_int_equal(j.failed, 0);
    assert_int_equal(j.buf.len, strlen(cases[i].out));
    assert_memory_equal(j.buf.data, cases[i].out, j.buf.len);
    json_free(&j);
  }
}

/* The file is written whole (with a newline) and replaced atomically; errors name it. */
static void test_json_write_file(void **state) {
  (void)state;
  char dir[] = "/tmp/test_json_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/stats.json", dir);
  json_out j;
  json_init(&j);
  json_object_begin(&j, NULL);
  json_uint(&j, "received", 7);
  json_object_end(&j);
  char err[512] = "";
  assert_int_equal(json_write_file(&j, path, err, sizeof err), 0);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char text[128] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  assert_string_equal(text, "{\"received\":7}\n");
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  assert_int_not_equal(access(tmp, F_OK), 0);

  char bad[300];
  snprintf(bad, sizeof bad, "%s/missing/stats.json", dir);
  assert_true(json_write_file(&j, bad, err, sizeof err) < 0);
  assert_true(strstr(err, bad) != NULL);
  assert_true(strstr(err, "No such file or directory") != NULL);
  json_free(&j);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(dir), 0);
}

/* A document {"n":N}; free it with json_free. */
static void json_small(json_out *j, uint64_t n) {
  json_init(j);
  json_object_begin(j, NULL);
  json_uint(j, "n", n);
  json_object_end(j);
}

/* A symlink to a FIFO is written through, without PATH.tmp, and stays a symlink; the start-up
 * check passes with or without a reader and leaves no PATH.tmp either. */
static void test_json_write_fifo_symlink(void **state) {
  (void)state;
  char dir[] = "/tmp/test_json_fifo_XXXXXX";
  char fifo[300], link[300], tmp[320], err[512] = "", text[64] = "";
  struct stat st;
  json_out j;
  assert_non_null(mkdtemp(dir));
  snprintf(fifo, sizeof fifo, "%s/stats.fifo", dir);
  snprintf(link, sizeof link, "%s/stats.json", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", link);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_int_equal(symlink(fifo, link), 0);
  assert_int_equal(json_file_check(link, err, sizeof err), 0); /* no reader yet */
  assert_int_not_equal(access(tmp, F_OK), 0);
  int rd = open(fifo, O_RDONLY | O_NONBLOCK);
  assert_true(rd >= 0);
  assert_int_equal(json_file_check(link, err, sizeof err), 0);
  json_small(&j, 7);
  if (json_write_file(&j, link, err, sizeof err) != 0) {
    fail_msg("json_write_file: %s", err);
  }
  json_free(&j);
  ssize_t n = read(rd, text, sizeof text - 1);
  assert_true(n > 0);
  text[n] = '\0';
  assert_string_equal(text, "{\"n\":7}\n");
  close(rd);
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_not_equal(access(tmp, F_OK), 0);
  assert_int_equal(unlink(link), 0);
  assert_int_equal(unlink(fifo), 0);
  assert_int_equal(rmdir(dir), 0);
}

/* A symlink to a regular file is written through too (a rename would replace the link). */
static void test_json_write_file_symlink(void **state) {
  (void)state;
  char dir[] = "/tmp/test_json_link_XXXXXX";
  char file[300], link[300], err[512] = "", text[64] = "";
  struct stat st;
  json_out j;
  assert_non_null(mkdtemp(dir));
  snprintf(file, sizeof file, "%s/real.json", dir);
  snprintf(link, sizeof link, "%s/stats.json", dir);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  assert_int_equal(fputs("an older, longer document\n", f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(symlink("real.json", link), 0);
  assert_int_equal(json_file_check(link, err, sizeof err), 0);
  json_small(&j, 8);
  assert_int_equal(json_write_file(&j, link, err, sizeof err), 0);
  json_free(&j);
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  f = fopen(file, "r");
  assert_non_null(f);
  text[fread(text, 1, sizeof text - 1, f)] = '\0';
  fclose(f);
  assert_string_equal(text, "{\"n\":8}\n");
  assert_int_equal(unlink(link), 0);
  assert_int_equal(unlink(file), 0);
  assert_int_equal(rmdir(dir), 0);
}

static void json_stdout_cb(void *arg) {
  json_out j;
  char err[256];
  json_small(&j, 9);
  *(int *)arg = json_write_file(&j, "-", err, sizeof err);
  json_free(&j);
}

/* "-" is standard output: the document goes there and no file named "-" appears; the check
 * passes without creating "-.tmp". */
static void test_json_write_stdout(void **state) {
  (void)state;
  char out[256], err[256];
  int rc = -1;
  int had_dash = access("-", F_OK) == 0;
  assert_int_equal(json_file_check("-", err, sizeof err), 0);
  assert_int_not_equal(access("-.tmp", F_OK), 0);
  capture_fd(STDOUT_FILENO, json_stdout_cb, &rc, out, sizeof out);
  assert_int_equal(rc, 0);
  assert_string_equal(out, "{\"n\":9}\n");
  assert_int_equal(access("-", F_OK) == 0, had_dash);
  assert_int_equal(json_path_is_stdout("-"), 1);
  assert_int_equal(json_path_is_stdout("./-"), 0);
  assert_int_equal(json_path_is_stdout(NULL), 0);
}

/* /dev/null, a character device, is written directly: the check makes no /dev/null.tmp (it
 * could not, as a user, and must not try). */
static void test_json_write_device(void **state) {
  (void)state;
  char err[256] = "";
  json_out j;
  assert_int_equal(json_file_check("/dev/null", err, sizeof err), 0);
  json_small(&j, 1);
  assert_int_equal(json_write_file(&j, "/dev/null", err, sizeof err), 0);
  json_free(&j);
  assert_int_not_equal(access("/dev/null.tmp", F_OK), 0);
}

/* An unbalanced document is refused rather than written. */
static void test_json_unbalanced(void **state) {
  (void)state;
  json_out j;
  json_init(&j);
  json_object_begin(&j, NULL);
  char err[256] = "";
  assert_true(json_write_file(&j, "/tmp/never-written.json", err, sizeof err) < 0);
  assert_true(strstr(err, "unbalanced") != NULL);
  assert_int_not_equal(access("/tmp/never-written.json", F_OK), 0);
  json_free(&j);
}

/* ---- net ---- */

/* net_resolve_all keeps every address in the resolver's order; net_resolve is its first. */
static void test_net_resolve_all(void **state) {
  (void)state;
  net_addrs all;
  struct sockaddr_storage first;
  socklen_t len = 0;
  char err[256] = "";
  char text[64];
  assert_int_equal(net_resolve_all("::1", 9999, SOCK_STREAM, &all, err, sizeof err), 0);
  assert_int_equal(all.count, 1);
  assert_string_equal(net_format((struct sockaddr *)&all.addr[0], text, sizeof text), "[::1]:9999");
  assert_int_equal(net_resolve_all("localhost", 9, SOCK_STREAM, &all, err, sizeof err), 0);
  assert_true(all.count >= 1 && all.count <= NET_ADDRS_MAX);
  assert_int_equal(net_resolve("localhost", 9, SOCK_STREAM, &first, &len, err, sizeof err), 0);
  assert_int_equal(len, all.len[0]);
  assert_memory_equal(&first, &all.addr[0], len);
  for (size_t i = 0; i < all.count; i++) {
    net_format((struct sockaddr *)&all.addr[i], text, sizeof text);
    print_message("localhost address %zu: %s\n", i, text);
    assert_true(all.addr[i].ss_family == AF_INET || all.addr[i].ss_family == AF_INET6);
  }
  assert_int_equal(net_resolve_all("no-such-host.invalid", 9, SOCK_STREAM, &all, err, sizeof err),
                   CS_EINVAL);
  assert_int_equal(all.count, 0);
}

static void test_net_resolve_and_format(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char err[256] = "";
  char text[64];
  assert_int_equal(net_resolve("127.0.0.1", 9999, SOCK_STREAM, &ss, &len, err, sizeof err), 0);
  assert_int_equal(len, sizeof(struct sockaddr_in));
  assert_string_equal(net_format((struct sockaddr *)&ss, text, sizeof text), "127.0.0.1:9999");
  assert_int_equal(net_resolve("::1", 53, SOCK_DGRAM, &ss, &len, err, sizeof err), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_string_equal(net_format((struct sockaddr *)&ss, text, sizeof text), "[::1]:53");
  assert_int_equal(net_resolve("localhost", 1, SOCK_DGRAM, &ss, &len, err, sizeof err), 0);
  assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

/* "[::1]", the form net_format prints and the programs log, is accepted as an IPv6 literal. */
static void test_net_resolve_bracketed_ipv6(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char err[256] = "";
  char text[64];
  assert_int_equal(net_resolve("[::1]", 9999, SOCK_STREAM, &ss, &len, err, sizeof err), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(len, sizeof(struct sockaddr_in6));
  assert_string_equal(net_format((struct sockaddr *)&ss, text, sizeof text), "[::1]:9999");
  assert_int_equal(net_resolve("[fe80::1%lo]", 7, SOCK_DGRAM, &ss, &len, err, sizeof err), 0);
  assert_string_equal(net_format((struct sockaddr *)&ss, text, sizeof text), "[fe80::1]:7");
  static const char *const bad[] = {"[::1",        "[]",          "[",      "[::1]:9999",
                                    "[localhost]", "[127.0.0.1]", "[[::1]]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    assert_int_equal(net_resolve(bad[i], 9999, SOCK_STREAM, &ss, &len, err, sizeof err), CS_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "cannot resolve '%s': ", bad[i]);
    if (strncmp(err, want, strlen(want)) != 0) {
      fail_msg("%s: got '%s'", bad[i], err);
    }
  }
}

static void test_net_resolve_error(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char err[256] = "";
  assert_int_equal(
      net_resolve("no-such-host.invalid", 9999, SOCK_STREAM, &ss, &len, err, sizeof err),
      CS_EINVAL);
  assert_true(strncmp(err, "cannot resolve 'no-such-host.invalid': ", 39) == 0);
  struct sockaddr_un_like {
    sa_family_t family;
  } other = {AF_UNIX};
  char text[16];
  assert_string_equal(net_format((struct sockaddr *)(void *)&other, text, sizeof text), "?");
}

/* ---- log ---- */

static void log_lines_cb(void *arg) {
  (void)arg;
  log_init("consumer", LOG_INFO);
  log_info("listening on %s/tcp", "127.0.0.1:9999");
  log_debug("not shown at INFO");
  log_warn("warned");
  log_init("producer", LOG_WARN);
  log_info("not shown at WARN");
  log_msg(LOG_ASKED, "stats: asked for");
  log_error("failed: %d", 3);
}

/* Each line is "YYYY-MM-DDTHH:MM:SS.mmm+HH:MM PROG: [LEVEL: ]message": warnings and errors
 * carry their level word, INFO and LOG_ASKED lines none; levels above the limit are dropped,
 * LOG_ASKED never is. */
static void test_log_lines(void **state) {
  (void)state;
  char out[4096];
  capture_fd(STDERR_FILENO, log_lines_cb, NULL, out, sizeof out);
  const char *stamp =
      "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[+-][0-9]{2}:[0-9]{2}";
  char pattern[1024];
  snprintf(pattern, sizeof pattern,
           "^%s consumer: listening on 127\\.0\\.0\\.1:9999/tcp\n%s consumer: warning: warned\n%s "
           "producer: stats: asked for\n%s producer: error: failed: 3\n$",
           stamp, stamp, stamp, stamp);
  print_message("log output:\n%s", out);
  assert_true(matches(out, pattern));
}

/* The stamp is ISO 8601 in local time with milliseconds and the UTC offset, colon included,
 * for zones east and west of UTC and for half-hour offsets. */
static void test_log_stamp(void **state) {
  (void)state;
  static const struct {
    const char *tz, *want;
  } cases[] = {{"UTC0", "2025-11-29T20:41:07.123+00:00"},
               {"EST5", "2025-11-29T15:41:07.123-05:00"},
               {"IST-5:30", "2025-11-30T02:11:07.123+05:30"},
               {"NPT-5:45", "2025-11-30T02:26:07.123+05:45"}};
  const char *old = getenv("TZ");
  char saved[128] = "";
  char text[LOG_STAMP_BUF];
  if (old != NULL) {
    snprintf(saved, sizeof saved, "%s", old);
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    setenv("TZ", cases[i].tz, 1);
    tzset();
    log_stamp(1764448867123456ULL, text, sizeof text);
    if (strcmp(text, cases[i].want) != 0) {
      fail_msg("TZ=%s: expected %s, got %s", cases[i].tz, cases[i].want, text);
    }
  }
  if (old != NULL) {
    setenv("TZ", saved, 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

static void long_line_cb(void *arg) {
  log_init("x", LOG_INFO);
  log_info("%s", (const char *)arg);
}

/* An over-long message is cut but the line still ends with a newline. */
static void test_log_long_line(void **state) {
  (void)state;
  static char big[10000];
  memset(big, 'a', sizeof big - 1);
  char out[16384];
  capture_fd(STDERR_FILENO, long_line_cb, big, out, sizeof out);
  size_t n = strlen(out);
  assert_true(n > 1000 && n < 8192);
  assert_int_equal(out[n - 1], '\n');
  assert_null(strchr(out, '\n') == out + n - 1 ? NULL : "more than one line");
}

static void test_log_limiter(void **state) {
  (void)state;
  log_limiter l = {0, 0};
  assert_int_equal(log_limiter_allow(&l, 1000000, 1000000), 1);
  assert_int_equal(log_limiter_allow(&l, 1500000, 1000000), 0);
  assert_int_equal(log_limiter_allow(&l, 1999999, 1000000), 0);
  assert_int_equal(l.suppressed, 2);
  assert_int_equal(log_limiter_allow(&l, 2000000, 1000000), 1);
  assert_int_equal(log_limiter_allow(&l, 2000001, 1000000), 0);
}

/* ---- buf, error, clock ---- */

static void test_buf(void **state) {
  (void)state;
  cs_buf b;
  cs_buf_init(&b);
  assert_null(b.data);
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(cs_buf_append(&b, "abc", 3), 0);
  }
  assert_int_equal(b.len, 3000);
  assert_true(b.cap >= 3000);
  assert_int_equal(cs_buf_append_byte(&b, '!'), 0);
  cs_buf_consume(&b, 2998);
  assert_int_equal(b.len, 3);
  assert_memory_equal(b.data, "bc!", 3);
  size_t cap = b.cap;
  cs_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, cap);
  assert_int_equal(cs_buf_reserve(&b, SIZE_MAX), CS_ENOMEM);
  cs_buf_free(&b);
  assert_null(b.data);
  cs_buf_free(&b);
}

static void test_error_table(void **state) {
  (void)state;
  assert_string_equal(cs_strerror(CS_EBUSY), "database is locked");
  assert_string_equal(cs_strerror(CS_ETRUNCATED), "datagram ends inside a frame");
  assert_string_equal(cs_strerror(-111), "Connection refused");
  assert_string_equal(cs_strerror(-99999), "unknown error");
  for (int code = CS_EBUSY; code <= CS_ENOMEM; code++) {
    assert_string_not_equal(cs_strerror(code), "unknown error");
  }
}

static void test_clock(void **state) {
  (void)state;
  uint64_t m0 = clock_mono_us();
  clock_sleep_until(m0 + 20000, NULL);
  uint64_t m1 = clock_mono_us();
  assert_true(m1 - m0 >= 20000 && m1 - m0 < 500000);
  volatile int stop = 1;
  clock_sleep_until(m1 + 5000000, &stop); /* returns at once: stop is set */
  assert_true(clock_mono_us() - m1 < 1000000);
  assert_true(clock_wall_us() > 1600000000ULL * 1000000ULL);
  char text[64];
  clock_format(1764448867123456ULL, text, sizeof text);
  assert_true(matches(text, "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.123$"));
}

/* The token bucket: a burst, then nothing while no time passes (however often it is asked, each
 * refusal counted), a token back after 1/per_s of a second, and a full bucket after the clock
 * stepped back (the wall clock may). */
static void test_lograte(void **state) {
  lograte r;
  (void)state;
  lograte_init(&r, 3, 10);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(lograte_allow(&r, 5000000), 1);
  }
  for (int i = 0; i < 1000; i++) {
    assert_int_equal(lograte_allow(&r, 5000000), 0);
  }
  assert_int_equal(lograte_allow(&r, 5099999), 0);
  assert_int_equal(lograte_take_suppressed(&r), 1001);
  assert_int_equal(lograte_allow(&r, 5100000), 1);
  assert_int_equal(lograte_allow(&r, 5100000), 0);
  assert_int_equal(lograte_allow(&r, 4000000), 1); /* stepped back: full again */
  assert_int_equal(lograte_allow(&r, 4000000), 1);
  assert_int_equal(lograte_allow(&r, 4000000), 1);
  assert_int_equal(lograte_allow(&r, 4000000), 0);
  assert_int_equal(lograte_take_suppressed(&r), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opt_long),
      cmocka_unit_test(test_opt_double),
      cmocka_unit_test(test_opt_interval),
      cmocka_unit_test(test_opt_version),
      cmocka_unit_test(test_json_document),
      cmocka_unit_test(test_json_escaping),
      cmocka_unit_test(test_json_invalid_utf8_replaced),
      cmocka_unit_test(test_json_write_file),
      cmocka_unit_test(test_json_write_fifo_symlink),
      cmocka_unit_test(test_json_write_file_symlink),
      cmocka_unit_test(test_json_write_stdout),
      cmocka_unit_test(test_json_write_device),
      cmocka_unit_test(test_json_unbalanced),
      cmocka_unit_test(test_net_resolve_and_format),
      cmocka_unit_test(test_net_resolve_all),
      cmocka_unit_test(test_net_resolve_bracketed_ipv6),
      cmocka_unit_test(test_net_resolve_error),
      cmocka_unit_test(test_log_lines),
      cmocka_unit_test(test_log_stamp),
      cmocka_unit_test(test_log_long_line),
      cmocka_unit_test(test_log_limiter),
      cmocka_unit_test(test_buf),
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_clock),
      cmocka_unit_test(test_lograte),
  };
  return cmocka_run_group_tests_name("common_misc", tests, NULL, NULL);
}
