"""test_hostile.py -- a hostile peer that knows a running stream's producer id (the consumer logs
it) and sends that stream a record numbered 2^64-2, over UDP and over TCP, while the real
producer streams: the hostile record is refused as garbage and every real record arrives."""

import re
import socket
import struct
import time

import harness

HUGE = 2 ** 64 - 2


def frame(ftype, payload, version=1):
    """A wire frame as docs/protocol.md version 1 describes it."""
    return b"CS" + bytes([version, ftype]) + struct.pack(">I", len(payload)) + payload


def message(ftype, producer_id, stream, fields, seq=0):
    """A HELLO (1), RECORD (2) or END (3) frame; stream and fields are bytes."""
    payload = struct.pack(">QQQQB", producer_id, seq, int(time.time() * 1e6), 0, len(stream))
    payload += stream + struct.pack(">I", len(fields))
    for f in fields:
        payload += struct.pack(">I", len(f)) + f
    return frame(ftype, payload)


class HostileSequenceTest(harness.IntegrationCase):

    def source(self, n):
        rows = [["id", "value"]] + [[str(i), "v%d" % i] for i in range(1, n + 1)]
        path = self.path("victim.csv")
        harness.write_csv(path, rows, lineterminator="\n")
        return path, rows

    def victim_id(self, cons, protocol):
        """The producer id the consumer logged for the victim stream."""
        pattern = re.compile(r"%s \S+: stream victim from producer ([0-9a-f]{16})" % protocol)
        found = []

        def logged():
            found[:] = pattern.findall(cons.proc.stderr())
            return bool(found)
        harness.wait_until(logged, 10)
        self.assertTrue(found, "the consumer never logged the victim stream:\n" +
                        cons.proc.stderr())
        return int(found[0], 16)

    def attack(self, protocol):
        n = 600
        src, rows = self.source(n)
        cons = self.consumer()
        prod = self.start_producer(src, cons.port, protocol, ["--rate", "300"])
        pid = self.victim_id(cons, protocol)
        hostile = message(1, pid, b"victim", [b"id", b"value"]) + \
            message(2, pid, b"victim", [b"999", b"injected"], seq=HUGE)
        if protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(hostile, ("127.0.0.1", cons.port))
        else:
            with socket.create_connection(("127.0.0.1", cons.port), timeout=5) as s:
                s.sendall(hostile)
                s.settimeout(5)
                self.assertEqual(s.recv(1), b"", "the consumer must close the hostile connection")
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "the victim producer")
        harness.wait_for_rows(cons.out_path(), n, 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()),
                             "every real record, and no injected one")
        self.assertIn("beyond the highest sequence number seen", res.stderr, res.describe())
        totals = res.stats[protocol]
        self.assertGreaterEqual(totals["garbage"], 1, res.describe())
        streams = [s for s in res.stats["streams"] if s["stream"] == "victim"]
        self.assertEqual(1, len(streams), res.describe())
        self.assertEqual(n, streams[0]["received"], res.describe())
        self.assertEqual(0, streams[0]["too_late"], res.describe())
        if protocol == "tcp":
            self.assertEqual(0, streams[0]["lost"], res.describe())
        self.assertLess(totals["lost"], 2 ** 63, "a total must not take the hostile number")

    def test_udp_record_far_beyond_the_window_is_refused(self):
        self.attack("udp")

    def test_tcp_record_far_beyond_the_window_is_refused(self):
        self.attack("tcp")


if __name__ == "__main__":
    harness.main()
