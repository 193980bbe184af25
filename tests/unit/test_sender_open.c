/* test_sender_open.c -- unit tests for sender_open (producer/sender.c): a TCP sender tries every
 * address of the host in order until one connects, a UDP sender takes the first, a stop ends the
 * tries. The addresses are made up here (refused and listening ports on loopback), so the test
 * needs no name that resolves to several addresses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "sender.h"

/* A socket bound to 127.0.0.1 on a port the kernel picks; listening if listen_too, else
 * closed again, so that its port refuses connections. Returns the port; *fd is the listening
 * socket or -1. */
static int loopback_port(int listen_too, int *fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  if (listen_too) {
    assert_int_equal(listen(s, 4), 0);
    *fd = s;
  } else {
    close(s);
    *fd = -1;
  }
  return ntohs(a.sin_port);
}

/* Append 127.0.0.1:port to the list. */
static void add_addr(net_addrs *a, int port) {
  struct sockaddr_in *in = (struct sockaddr_in *)(void *)&a->addr[a->count];
  assert_true(a->count < NET_ADDRS_MAX);
  memset(&a->addr[a->count], 0, sizeof a->addr[0]);
  in->sin_family = AF_INET;
  in->sin_port = htons((uint16_t)port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a->len[a->count] = sizeof *in;
  a->count++;
}

/* Refused, refused, listening: the third address is the one connected, and s->peer says so. */
static void test_tcp_tries_every_address_in_order(void **state) {
  (void)state;
  static volatile sig_atomic_t stop = 0;
  net_addrs a = {0};
  char err[512] = "";
  char want[64];
  int fd1, fd2, lfd;
  int p1 = loopback_port(0, &fd1);
  int p2 = loopback_port(0, &fd2);
  int lp = loopback_port(1, &lfd);
  add_addr(&a, p1);
  add_addr(&a, p2);
  add_addr(&a, lp);
  sender *s = tcp_sender_new(&stop, 0);
  assert_non_null(s);
  assert_int_equal(sender_open(s, &a, "testhost", err, sizeof err), 0);
  snprintf(want, sizeof want, "127.0.0.1:%d", lp);
  assert_string_equal(s->peer, want);
  int conn = accept(lfd, NULL, NULL);
  assert_true(conn >= 0);
  close(conn);
  s->ops->close(s);
  close(lfd);
}

/* Every address refused: the last one's message, and that all were tried. One address: the
 * message as it always was. */
static void test_tcp_all_refused_says_all_were_tried(void **state) {
  (void)state;
  static volatile sig_atomic_t stop = 0;
  net_addrs a = {0};
  char err[512] = "";
  char want[256];
  int fd;
  int p1 = loopback_port(0, &fd);
  int p2 = loopback_port(0, &fd);
  add_addr(&a, p1);
  add_addr(&a, p2);
  sender *s = tcp_sender_new(&stop, 0);
  assert_non_null(s);
  assert_int_equal(sender_open(s, &a, "testhost", err, sizeof err), -ECONNREFUSED);
  snprintf(want, sizeof want,
           "cannot connect to 127.0.0.1:%d/tcp: connection refused (is the consumer running? is "
           "it listening on TCP, at this host and --port?); tried all 2 addresses of 'testhost', "
           "in order",
           p2);
  assert_string_equal(err, want);
  a.count = 1;
  assert_int_equal(sender_open(s, &a, "testhost", err, sizeof err), -ECONNREFUSED);
  assert_null(strstr(err, "tried all"));
  s->ops->close(s);
}

/* A stop signal ends the tries: the next address is not attempted. */
static void test_tcp_stop_tries_no_further_address(void **state) {
  (void)state;
  static volatile sig_atomic_t stop = 1;
  net_addrs a = {0};
  char err[512] = "";
  char want[64];
  int fd, lfd;
  int p1 = loopback_port(0, &fd);
  int lp = loopback_port(1, &lfd);
  add_addr(&a, p1);
  add_addr(&a, lp);
  sender *s = tcp_sender_new(&stop, 0);
  assert_non_null(s);
  assert_true(sender_open(s, &a, "testhost", err, sizeof err) < 0);
  snprintf(want, sizeof want, "127.0.0.1:%d", p1);
  assert_string_equal(s->peer, want);
  s->ops->close(s);
  close(lfd);
}

/* UDP cannot learn which address has a listener: it sends to the first. */
static void test_udp_takes_the_first_address(void **state) {
  (void)state;
  static volatile sig_atomic_t stop = 0;
  net_addrs a = {0};
  char err[512] = "";
  char want[64];
  int fd;
  int p1 = loopback_port(0, &fd);
  int p2 = loopback_port(0, &fd);
  add_addr(&a, p1);
  add_addr(&a, p2);
  sender *s = udp_sender_new(&stop, 0);
  assert_non_null(s);
  assert_int_equal(sender_open(s, &a, "testhost", err, sizeof err), 0);
  snprintf(want, sizeof want, "127.0.0.1:%d", p1);
  assert_string_equal(s->peer, want);
  s->ops->close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tcp_tries_every_address_in_order),
      cmocka_unit_test(test_tcp_all_refused_says_all_were_tried),
      cmocka_unit_test(test_tcp_stop_tries_no_further_address),
      cmocka_unit_test(test_udp_takes_the_first_address),
  };
  log_init("producer", LOG_WARN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
