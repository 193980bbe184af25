"""test_bad_input.py -- bad input gets a clear error and loses nothing that came before it:
missing file, unterminated quote, ragged rows, bad flag values, port in use, no consumer,
garbage on the consumer's ports (bounded memory, still serving), a record too big for UDP."""

import os
import random
import socket
import struct
import time

import harness


def frame(ftype, payload, version=1):
    """A wire frame as docs/protocol.md version 1 describes it."""
    return b"CS" + bytes([version, ftype]) + struct.pack(">I", len(payload)) + payload


def message(ftype, producer_id, stream, fields, seq=0, sent_us=None):
    """The payload of a HELLO (1), RECORD (2) or END (3) for docs/protocol.md version 1, in a
    frame. stream and fields are bytes."""
    if sent_us is None:
        sent_us = int(time.time() * 1e6)
    payload = struct.pack(">QQQQB", producer_id, seq, sent_us, 0, len(stream)) + stream
    payload += struct.pack(">I", len(fields))
    for f in fields:
        payload += struct.pack(">I", len(f)) + f
    return frame(ftype, payload)


class BadInputTest(harness.IntegrationCase):

    # --- the producer's input file -------------------------------------------------------

    def test_missing_file_is_named(self):
        cons = self.consumer()
        missing = self.path("no_such_file.csv")
        prod = self.run_producer(missing, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(prod, 1, "producer with a missing file")
        self.assertIn("no_such_file.csv", prod.stderr, prod.describe())
        cons.stop()

    def test_unterminated_quote_names_line_and_keeps_records_before(self):
        src = self.path("unterminated.csv")
        with open(src, "w", newline="") as f:
            f.write('id,text\n1,one\n2,"two, quoted"\n3,three\n4,"never closed\n5,five\n6,six\n')
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(prod, 1, "producer with an unterminated quote")
        self.assertIn("unterminated.csv:5", prod.stderr,
                      "the error must name the line where the quote opens\n" + prod.describe())
        harness.wait_for_rows(cons.out_path(), 4, 5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual([["id", "text"], ["1", "one"], ["2", "two, quoted"], ["3", "three"]],
                             harness.read_csv(cons.out_path()), "records before the bad quote")

    def test_ragged_row_warning_names_line(self):
        src = self.path("ragged.csv")
        with open(src, "w", newline="") as f:
            f.write("a,b,c\n1,2,3\n4,5\n6,7,8\n")
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertIn("ragged.csv:3", prod.stderr, "the warning must name the ragged line\n"
                      + prod.describe())
        self.assertExit(prod, 0, "producer with a ragged row (a warning, not a failure)")
        harness.wait_for_rows(cons.out_path(), 4, 5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual([["a", "b", "c"], ["1", "2", "3"], ["4", "5"], ["6", "7", "8"]],
                             harness.read_csv(cons.out_path()), "records as the producer read them")

    def test_udp_record_too_big_names_line_others_arrive(self):
        src = self.path("big.csv")
        rows = [["1", "small"], ["2", "x" * 70000], ["3", "small again"], ["4", "last"]]
        harness.write_csv(src, [["id", "text"]] + rows, lineterminator="\n")
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, "udp", ["--interval", "0"])
        self.assertExit(prod, 1, "producer with a record too big for a datagram")
        self.assertIn("big.csv:3", prod.stderr, "the error must name the record's line\n"
                      + prod.describe())
        self.assertEqual(prod.stats["too_big"], 1, prod.describe())
        self.assertEqual(prod.stats["sent"], 3, prod.describe())
        harness.wait_for_rows(cons.out_path(), 4, 5)
        res = cons.stop()
        self.assertRowsEqual([["id", "text"], rows[0], rows[2], rows[3]],
                             harness.read_csv(cons.out_path()), "the records that fit")
        self.assertEqual(res.stats["udp"]["lost"], 0, "a record never sent has no sequence "
                         "number, so nothing is lost\n" + res.describe())

    # --- flags ------------------------------------------------------------------------------

    def test_bad_flag_values_exit_2_naming_the_flag(self):
        src = self.path("ok.csv")
        harness.simple_csv(src, 2)
        cases = [
            (harness.PRODUCER, ["--port", "70000", src], "--port"),
            (harness.PRODUCER, ["--port", "abc", src], "--port"),
            (harness.PRODUCER, ["--rate", "-5", src], "--rate"),
            (harness.PRODUCER, ["--rate", "0x", src], "--rate"),
            (harness.PRODUCER, ["--interval", "3-1", src], "--interval"),
            (harness.PRODUCER, ["--interval", "soon", src], "--interval"),
            (harness.PRODUCER, ["--count", "-1", src], "--count"),
            (harness.PRODUCER, ["--seed", "1.5", src], "--seed"),
            (harness.PRODUCER, ["--tcp", "--impair", "loss=0.1", src], "--impair"),
            (harness.PRODUCER, ["--udp", "--impair", "loss=2", src], "--impair"),
            (harness.PRODUCER, ["--no-such-flag", src], "--no-such-flag"),
            (harness.CONSUMER, ["--port", "0x10"], "--port"),
            (harness.CONSUMER, ["--port", "65536"], "--port"),
            (harness.CONSUMER, ["--stats", "-2"], "--stats"),
            (harness.CONSUMER, ["--max-records", "many"], "--max-records"),
            (harness.CONSUMER, ["--rcvbuf", "-1"], "--rcvbuf"),
        ]
        for program, args, flag in cases:
            with self.subTest(program=os.path.basename(program), args=args):
                res = self.run_program([program] + args, timeout=10)
                self.assertExit(res, 2, "usage error")
                self.assertIn(flag, res.stderr, "the message must name %s\n%s" % (
                    flag, res.describe()))

    # --- network ----------------------------------------------------------------------------

    def test_port_in_use_consumer_exits_1_naming_port(self):
        port = harness.free_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        try:
            res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port)],
                                   timeout=10)
        finally:
            blocker.close()
        self.assertExit(res, 1, "consumer on a port in use")
        self.assertIn(str(port), res.stderr, res.describe())
        self.assertIn("in use", res.stderr.lower(), res.describe())

    def test_port_in_use_leaves_no_out_file_or_database(self):
        port = harness.free_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        try:
            res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port),
                                    "--db", "fresh.db"], timeout=10)
        finally:
            blocker.close()
        self.assertExit(res, 1, "consumer on a port in use")
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if not f.startswith("run-")), [],
                         "a consumer that never started must leave no out9.txt or database\n"
                         + res.describe())

    def test_stats_json_in_missing_directory_exits_2_at_start(self):
        bad = self.path("no", "such", "dir", "stats.json")
        port = harness.free_port()
        res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port),
                                "--stats-json", bad], timeout=10)
        self.assertExit(res, 2, "consumer with an unwritable --stats-json")
        self.assertIn("--stats-json", res.stderr, res.describe())
        self.assertIn(bad, res.stderr, res.describe())
        self.assertLess(res.seconds, 5, "it must fail at start, not at exit\n" + res.describe())
        self.assertNotIn("listening on", res.stderr, res.describe())
        self.assertFalse(os.path.exists(self.path("out9.txt")), res.describe())

    def test_stats_json_that_is_a_directory_exits_2_at_start(self):
        port = harness.free_port()
        res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port),
                                "--stats-json", self.dir], timeout=10)
        self.assertExit(res, 2, "consumer with a directory as --stats-json")
        self.assertIn("--stats-json", res.stderr, res.describe())

    def test_one_file_for_two_outputs_is_a_usage_error_and_nothing_is_touched(self):
        with open(self.path("kept.csv"), "w") as f:
            f.write("a,b\n1,2\n")
        os.mkdir(self.path("sub"))
        cases = ((["--db", "out9.txt"], "--out and --db"),
                 (["--out", "kept.csv", "--stats-json", "./kept.csv"], "--out and --stats-json"),
                 (["--db", "s.db", "--stats-json", "sub/../s.db"], "--db and --stats-json"),
                 (["--out", "s.db-wal", "--db", "s.db"], "--out and --db's journal"),
                 (["--out", "q.csv", "--db", "q.csv.progress"], "--out's progress file and --db"),
                 (["--out", "q.csv", "--db", "q.csv.progress.tmp"],
                  "--out's progress file and --db"),
                 (["--out", self.path("kept.csv"), "--db", "kept.csv"], "--out and --db"))
        for args, says in cases:
            res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port",
                                    str(harness.free_port())] + args, timeout=10)
            self.assertExit(res, 2, " ".join(args))
            self.assertIn(says + " are the same file", res.stderr, res.describe())
            self.assertNotIn("listening on", res.stderr, res.describe())
        with open(self.path("kept.csv")) as f:
            self.assertEqual("a,b\n1,2\n", f.read(), "the file named twice is left alone")
        made = sorted(n for n in os.listdir(self.dir) if not n.startswith("run-"))
        self.assertEqual(made, ["kept.csv", "sub"], "no file made by a refused start")

    def test_host_with_a_port_says_where_the_port_goes(self):
        port = harness.free_port()
        for prog in (harness.CONSUMER, harness.PRODUCER):
            argv = [prog, "--host", "127.0.0.1:%d" % port, "--port", str(port)]
            if prog == harness.PRODUCER:
                src = self.path("h.csv")
                harness.write_csv(src, [["a"], ["1"]])
                argv += ["--retry", "0", src]
            res = self.run_program(argv, timeout=10)
            self.assertExit(res, 1, os.path.basename(prog))
            self.assertIn("(the port goes in --port: -H 127.0.0.1 -p %d)" % port, res.stderr,
                          res.describe())

    def test_db_in_missing_directory_says_check_directory_and_leaves_no_out_file(self):
        bad = self.path("no", "such", "dir", "x.db")
        port = harness.free_port()
        res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port),
                                "--db", bad], timeout=10)
        self.assertExit(res, 1, "consumer with --db in a missing directory")
        self.assertIn("--db", res.stderr, res.describe())
        self.assertIn(bad, res.stderr, res.describe())
        self.assertIn("check the directory exists and is writable", res.stderr, res.describe())
        self.assertFalse(os.path.exists(self.path("out9.txt")),
                         "a consumer that never started must leave no out9.txt\n"
                         + res.describe())

    def test_existing_out_file_is_kept_when_start_fails(self):
        with open(self.path("out9.txt"), "wb"):
            pass  # an empty out9.txt the person made: not the failed run's to remove
        res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port",
                                str(harness.free_port()), "--db", self.path("no", "x.db")],
                               timeout=10)
        self.assertExit(res, 1, "consumer with --db in a missing directory")
        self.assertTrue(os.path.exists(self.path("out9.txt")), res.describe())

    def test_too_many_headers_cap_side_files_and_the_rest_go_on(self):
        cons = self.consumer()
        cap = 256  # OUTFILE_MAX_SIDE_OPEN
        n = cap + 3  # the main file, every side file allowed, then two streams refused
        data = b""
        for i in range(n):
            name = b"h%d" % i
            data += message(1, 0x5151, name, [name])  # a header of its own: a file of its own
            data += message(2, 0x5151, name, [b"v%d" % i], seq=1)
        refused = b"h%d" % (n - 1)
        data += message(2, 0x5151, refused, [b"again"], seq=2)
        s = socket.create_connection(("127.0.0.1", cons.port), timeout=5)
        try:
            s.sendall(data)
        finally:
            s.close()
        self.assertTrue(harness.wait_until(
            lambda: os.path.exists(cons.out_path("out9.h%d.txt" % cap)), 10),
            "the last side file allowed never appeared\n" + cons.proc.stderr())
        time.sleep(0.3)
        self.assertTrue(cons.proc.running(), "the consumer stopped:\n" + cons.proc.stderr())
        # Everybody else still goes on.
        src = self.path("after.csv")
        rows = harness.simple_csv(src, 20, header=("h0",))  # the main file's header
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0", "--quiet"]),
                        0, "producer after the cap")
        harness.wait_for_rows(cons.out_path(), 22, 10, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertEqual(res.stats["out"]["not_written"], 3, res.describe())
        self.assertEqual(len(res.stats["out"]["files"]), cap + 1, res.describe())
        self.assertEqual(res.stats["out"]["records"], cap + 1 + 20, res.describe())
        self.assertEqual(harness.read_csv(cons.out_path()),
                         [["h0"], ["v0"]] + rows, "out9.txt")
        errors = [l for l in res.stderr.splitlines() if "side files are open already" in l]
        self.assertEqual(len(errors), 2, "one error per refused stream:\n" + res.stderr)
        self.assertIn("3 records not written", res.stdout, res.describe())  # the summary
        self.assertFalse(os.path.exists(cons.out_path("out9.%s.txt" % refused.decode())))

    def test_control_characters_in_stream_names_are_escaped_in_the_log(self):
        cons = self.consumer("--db", "evil.db")
        src = self.path("plain.csv")
        harness.simple_csv(src, 3)
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0,
                        "producer")  # out9.txt gets its header: the evil stream gets a side file
        evil = b"evil\n2026-01-01T00:00:00.000+00:00 consumer: fake line \x1b[31mred\x1b[0m\x7f"
        header = [b"col\x1b[2J", b"b"]
        pid = 0x6666
        data = (message(1, pid, evil, header) + message(2, pid, evil, [b"1", b"2"], seq=1)
                + message(3, pid, evil, [], seq=1))
        s = socket.create_connection(("127.0.0.1", cons.port), timeout=5)
        try:
            s.sendall(data)
        finally:
            s.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # the same over UDP, and a record of a stream without a HELLO (a protocol error)
            u.sendto(message(1, pid, evil, header) + message(2, pid, evil, [b"3", b"4"], seq=1),
                     ("127.0.0.1", cons.port))
            u.sendto(message(2, 0x7777, b"no\x1bhello", [b"x"], seq=1), ("127.0.0.1", cons.port))
        finally:
            u.close()
        self.assertTrue(harness.wait_until(lambda: "before its hello" in cons.proc.stderr(), 10),
                        cons.proc.stderr())
        harness.wait_until(lambda: cons.proc.stderr().count("-> table") >= 2, 5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        for bad in ("\x1b", "\x7f", "\nfake line", "\n2026-01-01"):
            self.assertNotIn(bad, res.stderr, "a raw %r from a peer reached the log:\n%s"
                             % (bad, res.stderr))
        shown = "evil\\x0a2026-01-01T00:00:00.000+00:00 consumer: fake line \\x1b[31mred"
        for what in ("tcp 127.0.0.1", "udp 127.0.0.1", "has another header", "-> table"):
            lines = [l for l in res.stderr.splitlines() if what in l and shown in l]
            self.assertTrue(lines, "no %r line shows the escaped name:\n%s" % (what, res.stderr))
        self.assertIn("no\\x1bhello before its hello", res.stderr, res.stderr)
        # The data itself is stored as sent.
        names = [e["stream"] for e in res.stats["streams"]]
        self.assertIn(evil.decode(), names, res.describe())

    def test_no_consumer_over_tcp_says_refused(self):
        src = self.path("ok.csv")
        harness.simple_csv(src, 3)
        prod = self.run_producer(src, harness.free_port(), "tcp", ["--interval", "0",
                                                                   "--retry", "0"])
        self.assertExit(prod, 1, "producer with no consumer")
        low = prod.stderr.lower()
        self.assertIn("connection refused", low, prod.describe())
        self.assertIn("is the consumer running?", low, prod.describe())
        self.assertEqual(prod.stats["connection"], "refused", prod.describe())

    def test_garbage_on_both_ports_is_counted_memory_bounded_and_service_goes_on(self):
        cons = self.consumer()
        rnd = random.Random(99)
        addr = ("127.0.0.1", cons.port)
        garbage_conns = 0

        def send_tcp(data, hold=False):
            s = socket.create_connection(addr, timeout=5)
            try:
                s.sendall(data)
            except OSError:
                pass  # the consumer closed the connection on the garbage: as it should
            if hold:
                return s
            s.close()
            return None

        # Random bytes (never starting with the magic), 1 MB per connection, 30 connections.
        for _ in range(30):
            data = b"\x00" + rnd.randbytes(1 << 20)
            send_tcp(data)
            garbage_conns += 1
        # A header announcing a payload far over the limit, and one of an unknown version.
        send_tcp(struct.pack(">2sBBI", b"CS", 1, 2, 0xFFFFFFF0) + b"x" * 1000)
        send_tcp(frame(2, b"\x01" * 64, version=9))
        garbage_conns += 2
        # Endless partial frames: each connection announces the largest legal payload and
        # sends all but its last byte, then waits (at most one frame buffered per peer).
        held = []
        for _ in range(10):
            partial = struct.pack(">2sBBI", b"CS", 1, 2, 1 << 20) + rnd.randbytes((1 << 20) - 1)
            held.append(send_tcp(partial, hold=True))
        # UDP: 20 MB in 64 KB random datagrams, then 200 small ones paced so none is dropped.
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(320):
            u.sendto(b"\x00" + rnd.randbytes(65000), addr)
        time.sleep(0.5)
        for i in range(200):
            u.sendto(b"\x01garbage %d" % i, addr)
            time.sleep(0.001)
        u.close()
        time.sleep(1.0)
        self.assertTrue(cons.proc.running(), "consumer died on garbage:\n" + cons.proc.stderr())
        rss_mb = cons.proc.vmrss_kb() / 1024.0
        self.assertLess(rss_mb, 100, "consumer uses %.1f MB after ~50 MB of garbage" % rss_mb)
        for s in held:
            s.close()
        # A real producer still works.
        src = self.path("after.csv")
        rows = harness.simple_csv(src, 50)
        prod = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(prod, 0, "producer after the garbage")
        harness.wait_for_rows(cons.out_path(), 51, 10, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer after the garbage")
        self.assertTrue(cons.proc.running() is False)
        self.assertRowsEqual([["id", "name", "value"]] + rows, harness.read_csv(cons.out_path()),
                             "records after the garbage")
        tcp, udp = res.stats["tcp"], res.stats["udp"]
        self.assertGreaterEqual(tcp["garbage"], garbage_conns, res.describe())
        # Every datagram was garbage: counted as such, or dropped by the kernel before it.
        self.assertEqual(udp["garbage"] + udp["kernel_drops"], 520, res.describe())
        self.assertGreaterEqual(udp["garbage"], 200, res.describe())
        print("\nconsumer VmRSS %.1f MB after the garbage; garbage counted: tcp %d, udp %d" % (
            rss_mb, tcp["garbage"], udp["garbage"]))
        self.assertEqual(tcp["received"], 50, res.describe())


if __name__ == "__main__":
    harness.main()
