"""test_connection_lines.py -- the consumer's connection lines, framed and plain alike: past the
burst the connect and disconnect lines are held back, and the next line shown says how many
were ("connected (N more connection lines not shown)", never "connected after 0 records");
the record counts in the plain listener's lines are words ("1 record")."""

import os
import re
import socket
import struct
import time

import harness

BURST = 20  # connection lines shown at once before the rate limit holds them back


class ConnectionLinesTest(harness.IntegrationCase):

    def flood(self, port, n):
        """Open n connections at once and keep them open."""
        return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]

    def held_back_line_after_a_flood(self, cons, port, proto):
        """Past the burst of lines, wait for the bucket to refill and connect once more: the line
        of that connection is the first one shown after the held-back ones."""
        socks = self.flood(port, BURST + 10)
        harness.wait_until(lambda: cons.proc.stderr().count("%s 127.0.0.1:" % proto) >= BURST,
                           10)
        time.sleep(0.5)  # a few lines a second again
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        pattern = re.compile(r"%s 127\.0\.0\.1:\d+ connected \(\d+ more connection lines not "
                             r"shown\)" % re.escape(proto))
        harness.wait_until(lambda: pattern.search(cons.proc.stderr()) is not None, 10)
        for s in socks:
            s.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRegex(res.stderr, pattern)
        self.assertNotRegex(res.stderr, r" connected after")
        return res

    def test_framed_connect_line_after_held_back_lines_says_how_many(self):
        cons = self.consumer("--tcp", protocols=("tcp",))
        self.held_back_line_after_a_flood(cons, cons.port, "tcp")

    def test_plain_connect_line_after_held_back_lines_says_how_many(self):
        plain_port = harness.free_port()
        cons = self.consumer("--tcp", "--plain-port", str(plain_port), protocols=("tcp",))
        self.held_back_line_after_a_flood(cons, plain_port, "plain-tcp")

    def test_plain_lines_count_records_in_words(self):
        plain_port = harness.free_port()
        cons = self.consumer("--tcp", "--plain-port", str(plain_port), protocols=("tcp",))
        # One record, then a reset: "connection lost ... (after 1 record)".
        s = socket.create_connection(("127.0.0.1", plain_port), timeout=10)
        s.sendall(b"a,b\n1,2\n")
        harness.wait_until(lambda: os.path.exists(cons.out_path()) and
                           len(harness.read_csv(cons.out_path())) >= 2, 10)
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        harness.wait_until(lambda: "connection lost" in cons.proc.stderr(), 10)
        # One record, then one over the limit: "... (after 1 record)".
        time.sleep(1.1)  # garbage lines: at most one a second
        s = socket.create_connection(("127.0.0.1", plain_port), timeout=10)
        s.sendall(b"a,b\n1,2\n")
        try:
            for _ in range(20):
                s.sendall(b"3," + b"x" * (1 << 16))
        except (BrokenPipeError, ConnectionResetError):
            pass
        harness.wait_until(lambda: "longer than the limit" in cons.proc.stderr(), 10)
        s.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRegex(res.stderr, r"plain-tcp 127\.0\.0\.1:\d+: connection lost: .* \(after 1 "
                                     r"record\)")
        self.assertRegex(res.stderr, r"a record longer than the limit[^\n]* \(after 1 record\)")
        self.assertNotIn("1 records", res.stderr)


if __name__ == "__main__":
    harness.main()
