"""test_connect_every_address.py -- `producer --host localhost` over TCP tries every address the
name resolves to, in order: it reaches a consumer listening on ::1 only and one listening on
127.0.0.1 only (whichever address comes first, one of the two runs needs the second), and when
nothing listens it says that it tried them all. It needs localhost to resolve to both ::1 and
127.0.0.1 (an /etc/hosts line '::1 localhost'); without that it prints the reason and exits
with SKIP_CODE, which ctest reports as skipped. (unit.test_sender_open covers the loop itself
with made-up addresses, everywhere.)"""

import os
import socket
import sys

import harness

# ctest's SKIP_RETURN_CODE for this test (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77


def localhost_addresses():
    """The addresses getaddrinfo gives for localhost over TCP, in its order."""
    try:
        infos = socket.getaddrinfo("localhost", 9, 0, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return [info[4][0] for info in infos]


def why_not_runnable():
    """None when this machine can run the test, else the reason for a person."""
    addrs = localhost_addresses()
    if "::1" not in addrs or "127.0.0.1" not in addrs:
        return ("localhost resolves to %s here, not to both ::1 and 127.0.0.1 (add '::1 "
                "localhost' to /etc/hosts to run it)" % (", ".join(addrs) or "nothing"))
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
    except OSError as e:
        return "cannot bind ::1 (IPv6 loopback unavailable: %s)" % e
    return None


def free_port(family, host):
    """A TCP port free on host right now."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class ConnectEveryAddress(harness.IntegrationCase):
    def listen_and_send(self, listen_host, family):
        """A TCP consumer on listen_host only, a producer --host localhost: every record lands.
        Returns the producer's stderr."""
        port = free_port(family, listen_host)
        shown = "[%s]" % listen_host if ":" in listen_host else listen_host
        consumer = harness.Proc([harness.CONSUMER, "--tcp", "-H", listen_host, "-p", str(port),
                                 "-o", "out9.txt"], self.dir, "consumer")
        self.procs.append(consumer)
        ok = harness.wait_until(lambda: "listening on %s:%d/tcp" % (shown, port)
                                in consumer.stderr(), harness.LISTEN_TIMEOUT)
        self.assertTrue(ok, consumer.stderr())
        src = self.path("a.csv")
        harness.write_csv(src, [["id", "v"], ["1", "x"], ["2", "y"], ["3", "z"]])
        res = self.run_program([harness.PRODUCER, "-t", "-H", "localhost", "-p", str(port),
                                "-i", "0", src])
        self.assertExit(res, 0, "producer --host localhost, consumer on %s" % listen_host)
        self.assertIn("over tcp to %s:%d" % (shown, port), res.stderr)
        harness.wait_for_rows(self.path("out9.txt"), 4, 10)
        consumer.popen.terminate()
        self.assertEqual(consumer.wait(30), 0, consumer.stderr())
        self.assertRowsEqual([["id", "v"], ["1", "x"], ["2", "y"], ["3", "z"]],
                             harness.read_csv(self.path("out9.txt")), "out9.txt")
        return res.stderr

    def test_reaches_a_consumer_on_ipv6_loopback_only(self):
        err = self.listen_and_send("::1", socket.AF_INET6)
        if localhost_addresses()[0] != "::1":
            self.assertIn("trying the next address of 'localhost'", err)

    def test_reaches_a_consumer_on_ipv4_loopback_only(self):
        err = self.listen_and_send("127.0.0.1", socket.AF_INET)
        if localhost_addresses()[0] != "127.0.0.1":
            self.assertIn("trying the next address of 'localhost'", err)

    def test_nothing_listening_says_every_address_was_tried(self):
        port = free_port(socket.AF_INET, "127.0.0.1")
        src = self.path("a.csv")
        harness.write_csv(src, [["id"], ["1"]])
        res = self.run_program([harness.PRODUCER, "-H", "localhost", "-p", str(port), "-i", "0",
                                "--retry", "0", src])
        self.assertExit(res, 1)
        self.assertIn("connection refused", res.stderr)
        self.assertIn("tried all %d addresses of 'localhost', in order"
                      % len(localhost_addresses()), res.stderr)


if __name__ == "__main__":
    reason = why_not_runnable()
    if reason is not None:
        print("skipped: %s" % reason)
        sys.exit(SKIP_CODE)
    harness.main()
