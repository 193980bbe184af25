"""test_plain_csv.py -- plain CSV text in and out, with no tool but our own programs and Python's
sockets: producer --format csv into consumer --plain-port over TCP and UDP, field for field in
out9.txt and SQLite against Python's csv; a '#stream NAME' first line, --plain-no-header, text
split at every byte; a line over the record limit and broken quoting refused and counted; the
accounting says "unsequenced"."""

import csv
import io
import os
import resource
import socket
import time
import unittest

import harness

HEADER = ["id", "text", "note, with comma", "caf\u00e9"]
PIECES = ["plain", "with, comma", 'say "hi"', "", "line1\nline2", "crlf\r\nnext", "  spaced  ",
          "\u00fcber \U0001F600", "007", "tab\there"]


def make_rows(n, seed=7):
    rows = []
    for i in range(1, n + 1):
        rows.append([str(i), PIECES[(i * seed) % len(PIECES)], PIECES[(i * 3) % len(PIECES)],
                     "x" * (i % 5)])
    return rows


def csv_text(rows, terminator="\r\n"):
    buf = io.StringIO()
    csv.writer(buf, lineterminator=terminator).writerows(rows)
    return buf.getvalue().encode("utf-8")


def table_rows(db, table):
    cols, rows = harness.db_stream_rows(db, table)
    return cols, [[v for _, v in r] for r in rows]


class PlainCsvTest(harness.IntegrationCase):

    def plain_consumer(self, *args):
        self.plain_port = harness.free_port()
        cons = self.consumer("--db", "out.db", "--plain-port", str(self.plain_port), *args)
        text = cons.proc.stderr()
        for proto in ("tcp", "udp"):
            want = "listening on 127.0.0.1:%d/%s (plain CSV)" % (self.plain_port, proto)
            self.assertIn(want, text)
        return cons

    def send_tcp(self, data, chunk=None, pause=0.0):
        """Send data on one connection (in chunks of `chunk` bytes), then close it and wait for
        the consumer's close."""
        s = socket.create_connection(("127.0.0.1", self.plain_port), timeout=10)
        try:
            if chunk is None:
                s.sendall(data)
            else:
                for i in range(0, len(data), chunk):
                    s.sendall(data[i:i + chunk])
                    if pause:
                        time.sleep(pause)
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        finally:
            s.close()

    def stream_file(self, res, name):
        for st in res.stats["streams"]:
            if st["stream"] == name:
                return st
        self.fail("no stream %r in the JSON: %s" % (name, res.describe()))

    def test_producer_format_csv_over_tcp_into_plain_port(self):
        rows = make_rows(400)
        src = self.path("src.csv")
        harness.write_csv(src, [HEADER] + rows)
        cons = self.plain_consumer()
        prod = self.run_producer(src, self.plain_port, "tcp", ["--format", "csv", "-i", "0"])
        self.assertExit(prod, 0, "producer --format csv")
        self.assertIn("no acknowledgements and no accounting", prod.stdout, prod.describe())
        self.assertEqual(prod.stats["format"], "csv", prod.describe())
        self.assertIsNone(prod.stats["acked"], prod.describe())
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 30)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual([HEADER] + rows, harness.read_csv(cons.out_path()), "out9.txt")
        tables = harness.db_tables(self.path("out.db"))
        self.assertEqual(len(tables), 1, tables)
        cols, got = table_rows(self.path("out.db"), tables[0])
        self.assertEqual(cols, HEADER)
        self.assertRowsEqual(rows, got, "SQLite rows by _seq")
        plain = res.stats["plain-tcp"]
        self.assertEqual((plain["received"], plain["garbage"], plain["connections"],
                          plain["sequenced"]), (len(rows), 0, 1, False), res.describe())
        self.assertNotIn("lost", plain)
        self.assertIn("unsequenced", res.stdout, res.describe())

    def test_producer_format_csv_over_udp_one_stream_per_sender(self):
        rows = make_rows(300)
        src = self.path("src.csv")
        harness.write_csv(src, [HEADER] + rows)
        cons = self.plain_consumer()
        prod = self.run_producer(src, self.plain_port, "udp",
                                 ["--format", "csv", "--rate", "2000"])
        self.assertExit(prod, 0, "producer --format csv --udp")
        harness.wait_until(lambda: harness.db_query(
            self.path("out.db"), "SELECT count(*) FROM sqlite_master")[0][0] > 0, 10)
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        plain = res.stats["plain-udp"]
        # One datagram per record, no header datagram: loopback at this rate loses none.
        self.assertEqual((plain["datagrams"], plain["received"], plain["streams"]),
                         (len(rows), len(rows), 1), res.describe())
        tables = harness.db_tables(self.path("out.db"))
        self.assertEqual(len(tables), 1, tables)
        cols, got = table_rows(self.path("out.db"), tables[0])
        self.assertEqual(cols, ["column_%d" % i for i in range(1, len(HEADER) + 1)])
        self.assertRowsEqual(rows, got, "SQLite rows of the UDP stream")
        out = harness.read_csv(cons.out_path())
        self.assertRowsEqual([cols] + rows, out, "out9.txt of the UDP stream")

    def test_stream_line_names_the_stream_and_any_split_parses(self):
        rows = make_rows(60)
        data = b"#stream sensors\r\n" + csv_text([HEADER] + rows)
        cons = self.plain_consumer()
        self.send_tcp(data, chunk=1)  # one byte a send: records split everywhere
        self.send_tcp(csv_text([["a", "b"], ["1", "2"]], "\n"))  # named after the peer
        harness.wait_until(lambda: os.path.exists(cons.out_path("out9.sensors.txt")), 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        st = self.stream_file(res, "sensors")
        self.assertEqual((st["received"], st["ended"], st["sequenced"]), (len(rows), True, False))
        # The first stream heads out9.txt; the second, with another header, goes to a side file.
        self.assertRowsEqual([HEADER] + rows, harness.read_csv(cons.out_path()), "sensors")
        self.assertEqual(harness.db_query(self.path("out.db"),
                                          "SELECT count(*) FROM sensors")[0][0], len(rows))
        peers = [s for s in res.stats["streams"] if s["stream"].startswith("127.0.0.1:")]
        self.assertEqual(len(peers), 1, res.describe())
        self.assertEqual(peers[0]["received"], 1)

    def test_plain_no_header_takes_the_first_line_as_data(self):
        rows = make_rows(20)
        cons = self.plain_consumer("--plain-no-header")
        self.send_tcp(csv_text(rows, "\n"))
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        out = harness.read_csv(cons.out_path())
        self.assertRowsEqual([["column_%d" % i for i in range(1, 5)]] + rows, out, "out9.txt")

    def test_last_record_without_line_end_is_kept(self):
        cons = self.plain_consumer()
        self.send_tcp(b"k,v\n1,one\n2,\"two\nlines\"")
        harness.wait_for_rows(cons.out_path(), 3, 10)
        res = cons.stop()
        self.assertRowsEqual([["k", "v"], ["1", "one"], ["2", "two\nlines"]],
                             harness.read_csv(cons.out_path()), "out9.txt")
        self.assertExit(res, 0, "consumer")

    def test_line_over_the_record_limit_is_refused_and_counted(self):
        cons = self.plain_consumer()
        s = socket.create_connection(("127.0.0.1", self.plain_port), timeout=10)
        s.sendall(b"a,b\n1,2\n")
        big = b"3," + b"x" * (1 << 16)
        closed = False
        try:
            for _ in range(40):  # 2.5 MiB without a line end: more than the 1 MiB limit
                s.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(10), b"", "the consumer should close the connection")
            except ConnectionResetError:
                pass
        s.close()
        # Broken quoting: a quote inside an unquoted field (a second apart: garbage is logged at
        # most once a second, and counted always).
        time.sleep(1.1)
        self.send_tcp(b"a,b\nx\"y,z\n")
        # The consumer still takes good text afterwards.
        self.send_tcp(b"#stream good\nk\n1\n")
        harness.wait_until(lambda: os.path.exists(cons.out_path("out9.good.txt")), 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        plain = res.stats["plain-tcp"]
        self.assertEqual(plain["garbage"], 2, res.describe())
        self.assertIn("a record longer than the limit", res.stderr)
        self.assertIn("malformed quoting", res.stderr)
        self.assertEqual(self.stream_file(res, "good")["received"], 1)
        # What came before the refused line was kept.
        self.assertEqual(harness.read_csv(cons.out_path())[:2], [["a", "b"], ["1", "2"]])

    def test_idle_flood_past_the_connection_cap_cannot_keep_a_sender_out(self):
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2500:
            self.skipTest("needs 2,500 file descriptors (ulimit -n is %d)" % soft)
        cons = self.plain_consumer()
        idle = [socket.create_connection(("127.0.0.1", self.plain_port), timeout=10)
                for _ in range(1030)]
        try:
            self.send_tcp(b"#stream real\nk\n1\n2\n")
            harness.wait_until(lambda: os.path.exists(cons.out_path()) and
                               len(harness.read_csv(cons.out_path())) >= 3, 10)
        finally:
            for s in idle:
                s.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertEqual(self.stream_file(res, "real")["received"], 2, res.describe())
        # 1,031 connections and a cap of 1,024: at least 7 silent ones were closed for them.
        self.assertGreaterEqual(res.stats["plain-tcp"]["evicted"], 7, res.describe())

    def test_incomplete_records_are_held_within_the_memory_budget(self):
        # --max-memory 4M leaves incomplete frames and records about 2 MiB (two of the largest
        # frames): of twelve connections each holding 700 KiB of an open quoted field, at most
        # two stay, the others are closed, the largest first.
        cons = self.plain_consumer("--max-memory", "4M")
        holders = []
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", self.plain_port), timeout=10)
            try:
                s.sendall(b"a,b\n1,\"" + b"y" * (700 << 10))
            except (BrokenPipeError, ConnectionResetError):
                pass
            holders.append(s)
        harness.wait_until(lambda: cons.proc.stderr().count("over the cap") > 0, 10)
        time.sleep(0.5)
        for s in holders:
            s.close()
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertGreaterEqual(res.stats["plain-tcp"]["evicted"], 10, res.describe())
        self.assertIn("incomplete records of all connections over the cap", res.stderr)

    def test_udp_datagram_with_broken_quoting_is_counted_garbage(self):
        cons = self.plain_consumer()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"1,2\n3,4\n", ("127.0.0.1", self.plain_port))
        u.sendto(b"5,\"6\n", ("127.0.0.1", self.plain_port))  # a quote never closed
        u.close()
        harness.wait_until(lambda: "garbage" in cons.proc.stderr(), 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        plain = res.stats["plain-udp"]
        self.assertEqual((plain["datagrams"], plain["received"], plain["garbage"]), (2, 2, 1),
                         res.describe())


if __name__ == "__main__":
    unittest.main(verbosity=2)
