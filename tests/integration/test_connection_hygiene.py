"""test_connection_hygiene.py -- TCP peers that hold the consumer's resources without sending
records: a connection with no HELLO is closed after 10 s, one holding an incomplete frame after
30 s, and the bytes held in incomplete frames over all connections are capped (the largest
holder closed first), while a real stream beside them arrives intact."""

import os
import socket
import struct
import time

import harness

MIB = 1 << 20


def frame(ftype, payload):
    return b"CS" + bytes([1, ftype]) + struct.pack(">I", len(payload)) + payload


def hello(producer_id, stream):
    payload = struct.pack(">QQQQB", producer_id, 0, int(time.time() * 1e6), 0, len(stream))
    return frame(1, payload + stream + struct.pack(">I", 0))


class ConnectionHygieneTest(harness.IntegrationCase):

    def good_stream(self, cons, n=200):
        rows = [["id", "value"]] + [[str(i), "v%d" % i] for i in range(1, n + 1)]
        src = self.path("good.csv")
        harness.write_csv(src, rows, lineterminator="\n")
        res = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(res, 0, "the good producer")
        harness.wait_for_rows(cons.out_path(), n, 10)
        return rows

    def closed_within(self, sock, low, high):
        """Seconds until the consumer closed sock; asserts it is within [low, high]."""
        start = time.monotonic()
        sock.settimeout(high + 2)
        try:
            data = sock.recv(1)
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - start
        self.assertEqual(b"", data)
        self.assertGreaterEqual(took, low, "closed too early")
        self.assertLessEqual(took, high, "not closed in time")
        return took

    def test_idle_and_stalled_connections_time_out(self):
        cons = self.consumer("--tcp", protocols=("tcp",))
        idle = socket.create_connection(("127.0.0.1", cons.port), timeout=5)
        stalled = socket.create_connection(("127.0.0.1", cons.port), timeout=5)
        # A HELLO, then the first 10 bytes of a RECORD frame announcing 1,000 bytes.
        stalled.sendall(hello(42, b"stalled") + b"CS\x01\x02" + struct.pack(">I", 1000) + b"x" * 2)
        rows = self.good_stream(cons)
        self.closed_within(idle, 7, 13)
        self.closed_within(stalled, 15, 33)
        idle.close()
        stalled.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "the good stream")
        self.assertEqual(2, res.stats["tcp"]["timed_out"], res.describe())
        self.assertIn("no hello within 10 s of connecting", res.stderr)
        self.assertIn("an incomplete frame (10 bytes) held for 30 s", res.stderr)
        self.assertIn("2 timed out", res.stdout)

    def test_incomplete_frames_are_capped_largest_first(self):
        cons = self.consumer("--tcp", protocols=("tcp",))
        base = cons.proc.vmrss_kb()
        holders = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", cons.port), timeout=10)
            s.sendall(b"CS\x01\x02" + struct.pack(">I", MIB) + b"y" * (MIB - 64))
            holders.append(s)
        harness.wait_until(lambda: cons.proc.stderr().count("over the cap") > 0, 10)
        time.sleep(0.5)
        rss = cons.proc.vmrss_kb()
        rows = self.good_stream(cons)
        for s in holders:
            s.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "the good stream")
        # Incomplete frames may hold half of the 64 MiB memory budget: 32 of the 200 stay.
        evicted = res.stats["tcp"]["evicted"]
        self.assertGreaterEqual(evicted, 160, res.describe())
        self.assertLessEqual(evicted, 200, res.describe())
        # 64 MiB of incomplete frames at most, plus the consumer's own memory and slack for
        # the decoders' buffers that grow in steps. (Not under AddressSanitizer, whose
        # allocator keeps freed memory in quarantine: there the counts above tell.)
        if os.environ.get("CSVSTREAM_SANITIZE"):
            return
        self.assertLess((rss - base) / 1024.0, 100,
                        "consumer grew from %d to %d kB holding incomplete frames" % (base, rss))


if __name__ == "__main__":
    harness.main()
