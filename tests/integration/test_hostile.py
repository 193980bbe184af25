"""test_hostile.py -- a hostile peer that knows a running stream's producer id (the consumer logs
it) sends that stream frames, over UDP and over TCP, while the real producer streams: without
the stream's session key (protocol version 2 frames), with a guessed key (version 3), or from a
connection that opened a stream of its own. Each is refused and counted as spoofed, and every
real record arrives. A record numbered 2^64-2 in a stream of the peer's own is refused as
garbage and changes nothing."""

import os

import random
import re
import socket
import struct
import time

import harness
import wireframes

HUGE = 2 ** 64 - 2


def frame(ftype, payload, version=1):
    """A wire frame as docs/protocol.md version 1 describes it."""
    return b"CS" + bytes([version, ftype]) + struct.pack(">I", len(payload)) + payload


def message(ftype, producer_id, stream, fields, seq=0, key=None):
    """A HELLO (1), RECORD (2) or END (3) frame; stream and fields are bytes. With key (16
    bytes), a version 3 frame (HELLO and END carry the key); without, version 2."""
    payload = struct.pack(">QQQQB", producer_id, seq, int(time.time() * 1e6), 0, len(stream))
    payload += stream
    if key is not None and ftype in (1, 3):
        payload += key
    payload += struct.pack(">I", len(fields))
    for f in fields:
        payload += struct.pack(">I", len(f)) + f
    return frame(ftype, payload, 3 if key is not None else 2)


def refusal(sock):
    """Everything the consumer sends before it closes: the REFUSE frame's reason, or ''."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    while len(data) >= 8:
        n = struct.unpack(">I", data[4:8])[0]
        if data[3] == 5:
            body = data[8:8 + n]
            name_len = body[32]
            off = 33 + name_len + 4
            why_len = struct.unpack(">I", body[off:off + 4])[0]
            return body[off + 4:off + 4 + why_len].decode()
        data = data[8 + n:]
    return ""


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

    def under_attack(self, protocol, hostile, expect_log, counter):
        """Stream 600 records to the victim while hostile(pid, port) attacks it; then check the
        victim arrived whole, the log says expect_log, and counter (per protocol) counted it."""
        n = 600
        src, rows = self.source(n)
        cons = self.consumer()
        prod = self.start_producer(src, cons.port, protocol, ["--rate", "300"])
        pid = self.victim_id(cons, protocol)
        hostile(pid, cons.port)
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "the victim producer")
        harness.wait_for_rows(cons.out_path(), n, 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()),
                             "every real record, and no injected one")
        self.assertIn(expect_log, res.stderr, res.describe())
        totals = res.stats[protocol]
        self.assertGreaterEqual(totals[counter], 1, res.describe())
        streams = [s for s in res.stats["streams"] if s["stream"] == "victim"]
        self.assertEqual(1, len(streams), res.describe())
        self.assertEqual(n, streams[0]["received"], res.describe())
        self.assertEqual(0, streams[0]["too_late"], res.describe())
        if protocol == "tcp":
            self.assertEqual(0, streams[0]["lost"], res.describe())
        self.assertLess(totals["lost"], 2 ** 63, "a total must not take the hostile number")
        return res

    def send(self, protocol, port, data):
        """Send data as one datagram, or over a new connection; over TCP return the refusal."""
        if protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data, ("127.0.0.1", port))
            return None
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            s.settimeout(5)
            return refusal(s)

    def hijack(self, protocol, key):
        def hostile(pid, port):
            data = message(1, pid, b"victim", [b"id", b"value"], key=key) + \
                message(2, pid, b"victim", [b"999", b"injected"], seq=HUGE)
            why = self.send(protocol, port, data)
            if protocol == "tcp":
                self.assertIn("belongs to another sender", why,
                              "the consumer refuses the hostile connection and says why")
        res = self.under_attack(protocol, hostile, "spoofed frame from", "spoofed")
        self.assertEqual(0, res.stats[protocol]["garbage"], res.describe())

    def test_udp_hijack_without_the_session_key_is_spoofed(self):
        self.hijack("udp", None)

    def test_tcp_hijack_without_the_session_key_is_spoofed(self):
        self.hijack("tcp", None)

    def test_udp_hijack_with_a_guessed_key_is_spoofed(self):
        self.hijack("udp", os.urandom(16))

    def test_tcp_hijack_with_a_guessed_key_is_spoofed(self):
        self.hijack("tcp", os.urandom(16))

    def test_udp_record_without_the_hello_in_its_datagram_is_spoofed(self):
        def hostile(pid, port):
            self.send("udp", port, message(2, pid, b"victim", [b"999", b"injected"], seq=601))
        self.under_attack("udp", hostile, "did not present its session key", "spoofed")

    def test_tcp_records_for_another_connections_stream_are_spoofed(self):
        def hostile(pid, port):
            data = message(1, 77, b"mine", [b"id", b"value"], key=os.urandom(16)) + \
                message(2, pid, b"victim", [b"999", b"injected"], seq=601)
            self.assertIn("belongs to another sender", self.send("tcp", port, data))
        self.under_attack("tcp", hostile, "did not present its session key", "spoofed")

    def beyond_window(self, protocol):
        def hostile(pid, port):
            key = os.urandom(16)
            data = message(1, pid ^ 1, b"mine", [b"id", b"value"], key=key) + \
                message(2, pid ^ 1, b"mine", [b"999", b"injected"], seq=HUGE)
            if protocol == "tcp":
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(data)
                    s.settimeout(5)
                    self.assertEqual(b"", s.recv(1), "the consumer closes the connection")
            else:
                self.send(protocol, port, data)
        res = self.under_attack(protocol, hostile, "beyond the highest sequence number seen",
                                "garbage")
        mine = [s for s in res.stats["streams"] if s["stream"] == "mine"]
        self.assertEqual(1, len(mine), res.describe())
        self.assertEqual(0, mine[0]["received"], "the hostile record is not taken")
        self.assertEqual(0, mine[0]["lost"], "nor does it make the stream's loss absurd")

    def test_udp_record_far_beyond_the_window_is_refused(self):
        self.beyond_window("udp")

    def test_tcp_record_far_beyond_the_window_is_refused(self):
        self.beyond_window("tcp")


class SendTimeRangeTest(harness.IntegrationCase):

    def test_send_times_past_two_to_the_63_are_garbage(self):
        """A peer's send time past 2^63 us fits no SQLite INTEGER (and no clock gives it): the
        frame is malformed, counted as garbage; the others are stored exactly (exit 0)."""
        import sqlite3
        db = self.path("times.db")
        cons = self.consumer("--udp", "--db", db, protocols=("udp",))
        times = [0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]
        stream = b"times"
        for seq, us in enumerate(times, 1):
            datagram = (wireframes.encode(wireframes.HELLO, 0x7133, stream, [b"a"], sent_us=us) +
                        wireframes.encode(wireframes.RECORD, 0x7133, stream, [str(seq)], seq=seq,
                                          sent_us=us))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(datagram, ("127.0.0.1", cons.port))
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT _seq, _sent_us FROM times ORDER BY _seq").fetchall()
        self.assertEqual([(1, 0), (2, 1), (3, 2 ** 63 - 1)], rows)
        self.assertGreaterEqual(res.stats["udp"]["garbage"], 2, res.describe())


class StreamFloodTest(harness.IntegrationCase):
    """Datagrams opening streams with random producer ids, beside a good TCP and a good UDP
    stream: memory stays within --max-memory, new streams past it are refused (counted; a TCP
    producer is told why and exits 1), the good streams arrive whole, and once the flood's
    streams are idle they are retired, so the table takes new streams again."""

    def good(self, name, n):
        rows = [["id", "value"]] + [[str(i), "%s %d" % (name, i)] for i in range(1, n + 1)]
        path = self.path(name + ".csv")
        harness.write_csv(path, rows, lineterminator="\n")
        return path, rows

    def test_random_ids_are_bounded_refused_and_retired(self):
        cons = self.consumer("--max-memory", "4M", "--stream-idle", "2", "--rcvbuf", "16777216")
        base = cons.proc.vmrss_kb()
        n = 600
        tcp_src, tcp_rows = self.good("good_tcp", n)
        udp_src, udp_rows = self.good("good_udp", n)
        tcp = self.start_producer(tcp_src, cons.port, "tcp", ["--rate", "200"])
        udp = self.start_producer(udp_src, cons.port, "udp", ["--rate", "200"])
        harness.wait_until(lambda: cons.proc.stderr().count("stream good_") >= 2, 10)
        rnd = random.Random(9)
        peak = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20000):
                pid = rnd.getrandbits(64)
                s.sendto(message(1, pid, b"flood", [b"a", b"b", b"c"], key=os.urandom(16)),
                         ("127.0.0.1", cons.port))
                if i % 2000 == 1999:
                    time.sleep(0.05)
                    peak = max(peak, cons.proc.vmrss_kb())
        harness.wait_until(lambda: "memory budget" in cons.proc.stderr(), 10)
        # A new TCP stream while the budget is in use: refused, and the producer says why.
        late_src, late_rows = self.good("late", 5)
        refused = self.run_producer(late_src, cons.port, "tcp", ["--interval", "0",
                                                                 "--retry", "0"])
        self.assertExit(refused, 1, "a TCP producer refused for the memory budget")
        self.assertIn("memory budget", refused.stderr, refused.describe())
        for started, what in ((tcp, "good tcp"), (udp, "good udp")):
            res_p = self.finish_producer(started, timeout=30)
            self.assertExit(res_p, 0, what)
        # The flood's streams are idle now: retired within --stream-idle and a sweep.
        harness.wait_until(lambda: "retired" in cons.proc.stderr(), 10)
        time.sleep(3)
        again = self.run_producer(late_src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(again, 0, "a TCP producer once the flood's streams are retired")
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        out = harness.read_csv(cons.out_path())
        for name, rows in (("good_tcp", tcp_rows), ("good_udp", udp_rows)):
            got = [r for r in out[1:] if r[1].startswith(name + " ")]
            self.assertEqual(rows[1:], got, "%s arrived whole and in order" % name)
        udp_totals = res.stats["udp"]
        self.assertGreater(udp_totals["refused"], 0, res.describe())
        self.assertGreater(udp_totals["retired_streams"], 100, res.describe())
        listed = res.stats["streams"]
        self.assertEqual(udp_totals["streams"],
                         len([x for x in listed if x["protocol"] == "udp" and not x["retired"]]))
        # The latest retired streams stay listed (1,024 at most), the others are counted.
        retired = [x for x in listed if x["retired"]]
        self.assertLessEqual(len(retired), 1024)
        self.assertEqual(len(retired) + res.stats["retired_streams"]["unlisted"],
                         udp_totals["retired_streams"] + res.stats["tcp"]["retired_streams"])
        # The totals keep what retired streams received: the good streams' records.
        self.assertEqual(n, udp_totals["received"], res.describe())
        self.assertEqual(n + 5, res.stats["tcp"]["received"], res.describe())
        self.assertLess(res.stderr.count("stream flood from"), 200, "new-stream lines are limited")
        self.assertEqual(n, res.stats["retired_streams"]["udp"]["received"] +
                         sum(x["received"] for x in listed
                             if x["protocol"] == "udp" and not x["retired"]), res.describe())
        good = [x for x in listed if x["stream"] == "good_udp"]
        self.assertEqual(1, len(good), "the ended good stream is listed, retired")
        self.assertEqual((n, True), (good[0]["received"], good[0]["retired"]))
        if os.environ.get("CSVSTREAM_SANITIZE"):
            return  # ASan's allocator keeps freed memory in quarantine: the counts above tell
        self.assertLess((peak - base) / 1024.0, 4 + 12,
                        "consumer grew from %d to %d kB under the flood (budget 4 MiB)" %
                        (base, peak))


if __name__ == "__main__":
    harness.main()
