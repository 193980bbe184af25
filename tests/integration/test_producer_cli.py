"""test_producer_cli.py -- the producer alone against Python TCP/UDP sockets on 127.0.0.1: flags,
errors and their messages, frames on the wire decoded independently, pace, impairment ground
truth, signals and a consumer that goes away."""

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from wireframes import END, HELLO, RECORD, ack_frame, decode_frames

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
PRODUCER = os.path.join(BIN, "producer")


def built_with_leak_sanitizer(path):
    """True when the program at path carries AddressSanitizer (and so LeakSanitizer), which
    aborts under ptrace: scripts/test --sanitize says so in CSVSTREAM_SANITIZE, and a build by
    hand with -DCSVSTREAM_ASAN=ON is recognised by the runtime's symbol in the binary."""
    if os.environ.get("CSVSTREAM_SANITIZE"):
        return True
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False



def words(n, one, many):
    """A count as the programs word it for people: "1 time", "1,234 times"."""
    return "{:,} {}".format(n, one if n == 1 else many)


class TcpSink:
    """A TCP listener that accepts one connection and decodes everything until EOF (or until
    close_after records arrived, then it closes the connection on purpose)."""

    def __init__(self, close_after=None, reset=False, ack=True, until_end=False):
        self.reset = reset
        self.until_end = until_end
        self.ack = ack
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.close_after = close_after
        self.msgs = []
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _acknowledge(self, conn, got):
        """As a consumer does (docs/protocol.md, version 2): an ACK for a HELLO (the resume
        point, 0) and one for the highest RECORD read so far."""
        for m in got:
            if m["type"] == 1:
                conn.sendall(ack_frame(m["producer_id"], m["stream"], 0))
        recs = [m for m in got if m["type"] == RECORD]
        if recs:
            conn.sendall(ack_frame(recs[-1]["producer_id"], recs[-1]["stream"], recs[-1]["seq"]))

    def _run(self):
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(30)
            buf = b""
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                got, buf = decode_frames(buf + data)
                self.msgs += got
                if self.ack:
                    self._acknowledge(conn, got)
                if self.close_after is not None and \
                        sum(1 for m in self.msgs if m["type"] == RECORD) >= self.close_after:
                    break
                if self.until_end and any(m["type"] == END for m in got):
                    break
            if self.reset:
                # Linger 0: close sends RST instead of FIN, as a killed consumer's kernel may.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        except Exception as e:  # reported by join()
            self.error = e
        finally:
            self.sock.close()

    def join(self, timeout=30):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("TCP sink still running after %s s" % timeout)
        if self.error is not None:
            raise AssertionError("TCP sink failed: %r" % self.error)
        return self.msgs


class UdpSink:
    """A UDP socket with a large receive buffer that decodes every datagram until three ENDs
    arrived or nothing came for `idle` seconds."""

    def __init__(self, idle=3.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(idle)
        self.port = self.sock.getsockname()[1]
        self.msgs = []
        self.datagrams = 0
        self.types = []  # per datagram, the types of its frames in order
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        ends = 0
        try:
            while ends < 3:
                try:
                    data = self.sock.recv(70000)
                except socket.timeout:
                    break
                self.datagrams += 1
                got, rest = decode_frames(data)
                if rest:
                    raise ValueError("datagram ends inside a frame")
                self.msgs += got
                self.types.append([m["type"] for m in got])
                ends += sum(1 for m in got if m["type"] == END)
        except Exception as e:
            self.error = e
        finally:
            self.sock.close()

    def join(self, timeout=60):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("UDP sink still running after %s s" % timeout)
        if self.error is not None:
            raise AssertionError("UDP sink failed: %r" % self.error)
        return self.msgs


def account(msgs):
    """The consumer's definitions, computed independently: received, duplicates, reordered,
    lost (up to max(highest seq, END's seq))."""
    seen = set()
    dup = reord = high = 0
    for m in msgs:
        if m["type"] != RECORD:
            continue
        if m["seq"] in seen:
            dup += 1
            continue
        if m["seq"] < high:
            reord += 1
        seen.add(m["seq"])
        high = max(high, m["seq"])
    last = max([high] + [m["seq"] for m in msgs if m["type"] == END])
    return {"received": len(seen), "duplicates": dup, "reordered": reord,
            "lost": last - len(seen)}


class ProducerCli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="producer_cli_")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_producer(self, args, timeout=60, wrapper=()):
        """Run the producer (under `wrapper`, e.g. strace, if given) to its end; returns (exit
        code, stdout, stderr, stats or None)."""
        stats = os.path.join(self.dir, "stats-%d.json" % time.monotonic_ns())
        res = subprocess.run(list(wrapper) + [PRODUCER, "--stats-json", stats] + args,
                             capture_output=True, text=True, timeout=timeout)
        data = None
        if os.path.exists(stats):
            with open(stats, encoding="utf-8") as f:
                data = json.load(f)
        return res.returncode, res.stdout, res.stderr, data

    def test_bad_flags_exit_2_and_name_the_flag(self):
        src = self.write("a.csv", "a,b\n1,2\n")
        cases = [
            (["--port", "0", src], "--port"),
            (["--port", "65536", src], "--port"),
            (["--port", "12ab", src], "--port"),
            (["--rate", "0", src], "--rate"),
            (["--rate", "-1", src], "--rate"),
            (["--interval", "2-1", src], "--interval"),
            (["--interval", "x", src], "--interval"),
            (["--rate", "5", "--interval", "1", src], "--interval"),
            (["--count", "0", src], "--count"),
            (["--seed", "-3", src], "--seed"),
            (["--stream", "", src], "--stream"),
            (["--stream", "x" * 256, src], "--stream"),
            (["--tcp", "--udp", src], "--udp"),
            (["--impair", "loss=0.1", src], "--impair"),
            (["--udp", "--impair", "loss=1.5", src], "--impair"),
            (["--udp", "--impair", "jitter=3", src], "--impair"),
            (["--udp", "--impair", "delay=-1", src], "--impair"),
            (["--loop", "-"], "--loop"),
            (["--frobnicate", src], "--frobnicate"),
            (["--port"], "--port"),
            ([], "FILE"),
            ([src, src], "FILE"),
        ]
        for args, flag in cases:
            with self.subTest(args=args):
                res = subprocess.run([PRODUCER] + args, capture_output=True, text=True,
                                     timeout=10)
                self.assertEqual(res.returncode, 2, "%s\nstderr: %s" % (args, res.stderr))
                self.assertIn(flag, res.stderr, "the message must name %s" % flag)
                self.assertIn("--help", res.stderr, "a usage error points to --help")

    def test_stats_json_that_cannot_be_created_fails_before_sending(self):
        src = self.write("a.csv", "a\n1\n")
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(1)
        port = lsn.getsockname()[1]
        try:
            for bad, why in [(os.path.join(self.dir, "no_such_dir", "s.json"),
                              "No such file or directory"),
                             (self.dir, "Is a directory")]:
                with self.subTest(path=bad):
                    t0 = time.monotonic()
                    res = subprocess.run([PRODUCER, "--port", str(port), "--interval", "1",
                                          "--stats-json", bad, src],
                                         capture_output=True, text=True, timeout=10)
                    self.assertEqual(res.returncode, 2, res.stderr)
                    self.assertIn("--stats-json: cannot create %s: %s" % (bad, why), res.stderr)
                    self.assertLess(time.monotonic() - t0, 0.9, "at start-up, not at exit")
                    lsn.settimeout(0.2)
                    with self.assertRaises(socket.timeout, msg="nothing may be sent"):
                        lsn.accept()[0].close()
        finally:
            lsn.close()
        # A good path: the check leaves no PATH.tmp behind, and the file is written at exit.
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 src])
        sink.join()
        self.assertEqual((code, stats["sent"]), (0, 1), err)
        self.assertEqual([n for n in os.listdir(self.dir) if n.endswith(".tmp")], [])

    def test_each_run_has_its_own_session_key_in_hello_and_end(self):
        src = self.write("k.csv", "a\n1\n2\n")
        keys = []
        for _ in range(2):
            sink = TcpSink()
            code, _, err, _ = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 "--id", "same", src])
            sink.join()
            self.assertEqual(code, 0, err)
            hello = [m for m in sink.msgs if m["type"] == 1]
            end = [m for m in sink.msgs if m["type"] == 3]
            self.assertEqual((len(hello), len(end)), (1, 1), sink.msgs)
            self.assertEqual(hello[0]["key"], end[0]["key"], "one key for the whole run")
            self.assertEqual(16, len(hello[0]["key"]))
            self.assertNotEqual(bytes(16), hello[0]["key"])
            self.assertNotIn(hello[0]["key"].hex(), err, "the key is never logged")
            keys.append((hello[0]["producer_id"], hello[0]["key"]))
        self.assertEqual(keys[0][0], keys[1][0], "--id: the same producer id")
        self.assertNotEqual(keys[0][1], keys[1][1], "but a new key each run")

    def test_tcp_impair_refusal_explains_retransmission(self):
        src = self.write("a.csv", "a\n1\n")
        res = subprocess.run([PRODUCER, "--tcp", "--impair", "loss=0.5", src],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("retransmit", res.stderr.lower())

    def test_help_lists_every_flag_and_exit_codes(self):
        res = subprocess.run([PRODUCER, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stderr, "")
        for flag in ["--tcp", "--udp", "--host", "--port", "--interval", "--rate", "--count",
                     "--loop", "--seed", "--stream", "--no-header", "--quiet", "--stats-json",
                     "--impair", "--help", "--version", "130", "143"]:
            self.assertIn(flag, res.stdout)

    def test_version_names_the_libraries_and_machine(self):
        res = subprocess.run([PRODUCER, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        low = res.stdout.lower()
        for word in ["producer", "libuv", "sqlite", "libcsv", os.uname().sysname.lower()]:
            self.assertIn(word, low, res.stdout)
        self.assertIn(str(os.cpu_count()), res.stdout)

    def test_missing_file_is_named(self):
        sink_port = 9  # never contacted: the file is opened first
        path = os.path.join(self.dir, "no_such_file.csv")
        code, _, err, _ = self.run_producer(["--port", str(sink_port), path])
        self.assertEqual(code, 1, err)
        self.assertIn("no_such_file.csv", err)
        self.assertIn("no such file", err.lower())

    def test_refused_tcp_says_consumer_not_running(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens on it now
        src = self.write("a.csv", "a\n1\n")
        # --retry 0: fail at once, as before acknowledged delivery (which waits for a consumer).
        code, _, err, stats = self.run_producer(["--port", str(port), "--interval", "0",
                                                 "--retry", "0", src])
        self.assertEqual(code, 1, err)
        self.assertIn("cannot connect to 127.0.0.1:%d/tcp: connection refused "
                      "(is the consumer running? is it listening on TCP, at this host and "
                      "--port?)" % port, err)
        self.assertEqual(stats["connection"], "refused", stats)
        self.assertEqual(stats["sent"], 0, stats)

    def test_tcp_frames_carry_the_records_field_for_field(self):
        text = ('id,"na,me",note\r\n'
                '1,"a ""quoted"", field",  spaced  \r\n'
                '2,"multi\nline",ünïcödé\r\n'
                '3,,\r\n')
        src = self.write("fields.csv", "\ufeff" + text)
        expected = list(csv.reader(io.StringIO(text, newline="")))
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 src])
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        types = [m["type"] for m in msgs]
        self.assertEqual(types, [HELLO, RECORD, RECORD, RECORD, END], err)
        self.assertEqual(msgs[0]["fields"], expected[0])
        self.assertEqual([m["fields"] for m in msgs[1:4]], expected[1:])
        self.assertEqual([m["seq"] for m in msgs[1:4]], [1, 2, 3])
        self.assertEqual([m["line"] for m in msgs[1:4]], [2, 3, 5])
        self.assertEqual(msgs[4]["seq"], 3)
        self.assertEqual({m["stream"] for m in msgs}, {"fields"})
        self.assertEqual({m["producer_id"] for m in msgs}, {int(stats["producer_id"], 16)})
        self.assertRegex(stats["producer_id"], "^[0-9a-f]{16}$")
        self.assertEqual(stats["sent"], 3)
        self.assertEqual(stats["records_read"], 3)
        self.assertEqual(stats["connection"], "ok")
        self.assertEqual(stats["protocol"], "tcp")
        now_us = time.time() * 1e6
        for m in msgs:
            self.assertLess(abs(m["sent_us"] - now_us), 60e6, "sent_us is wall-clock µs")

    def test_unterminated_quote_names_line_and_sends_what_came_before(self):
        src = self.write("unterminated.csv", 'id,text\n1,one\n2,"two, quoted"\n3,three\n'
                                             '4,"never closed\n5,five\n')
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 src])
        msgs = sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("unterminated.csv:5", err)
        self.assertIn("quote", err.lower())
        recs = [m["fields"] for m in msgs if m["type"] == RECORD]
        self.assertEqual(recs, [["1", "one"], ["2", "two, quoted"], ["3", "three"]])
        self.assertEqual(msgs[-1]["type"], END, "END is sent for what was sent")
        self.assertEqual(msgs[-1]["seq"], 3)
        self.assertEqual(stats["sent"], 3)

    def test_udp_record_too_large_is_skipped_without_a_seq(self):
        src = self.write("big.csv", "id,text\n1,a\n2,%s\n3,c\n4,d\n" % ("x" * 70000))
        sink = UdpSink()
        code, _, err, stats = self.run_producer(["--udp", "--port", str(sink.port),
                                                 "--interval", "0", src])
        msgs = sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("big.csv:3: record is", err)
        self.assertIn("too large for one UDP datagram (max 65,507)", err)
        self.assertIn("not all records were sent", err)
        self.assertEqual(stats["too_big"], 1)
        self.assertEqual(stats["sent"], 3)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertEqual([(m["seq"], m["fields"][0]) for m in recs],
                         [(1, "1"), (2, "3"), (3, "4")])
        self.assertEqual([m["seq"] for m in msgs if m["type"] == END], [3, 3, 3])
        # Every datagram with records opens with the header frame, once, then only records
        # (records due together share a datagram: the three here, sent unpaced, do).
        with_records = [t for t in sink.types if RECORD in t]
        self.assertTrue(with_records)
        for t in with_records:
            self.assertEqual(t[0], HELLO, sink.types)
            self.assertEqual(t[1:], [RECORD] * (len(t) - 1), sink.types)

    def test_too_large_for_udp_just_works_over_tcp(self):
        src = self.write("big.csv", "id,text\n1,a\n2,%s\n" % ("x" * 70000))
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 src])
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        self.assertEqual(stats["too_big"], 0)
        self.assertEqual(len([m for m in msgs if m["type"] == RECORD][1]["fields"][1]), 70000)

    def test_record_over_the_protocol_limit_names_its_line_and_size(self):
        src = self.write("huge.csv", "id,text\n1,a\n2,%s\n3,c\n" % ("x" * 2000000))
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 src])
        msgs = sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("huge.csv:3: record holds 2,000,001 bytes of data, more than the protocol "
                      "allows (max 1,048,576 per record); skipped", err)
        self.assertEqual(stats["too_big"], 1)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertEqual([(m["seq"], m["fields"][0]) for m in recs], [(1, "1"), (2, "3")])

    def test_seeded_impairment_is_exact_and_repeatable(self):
        rows = "".join("%d,value %d\n" % (i, i) for i in range(3000))
        src = self.write("imp.csv", "id,v\n" + rows)
        results = []
        for _ in range(2):
            sink = UdpSink()
            code, _, err, stats = self.run_producer([
                "--udp", "--port", str(sink.port), "--rate", "5000", "--quiet",
                "--impair", "loss=0.1,dup=0.05,reorder=0.05,seed=7", src])
            msgs = sink.join()
            self.assertEqual(code, 0, err)
            imp = stats["impaired"]
            got = account(msgs)
            self.assertEqual(stats["sent"], 3000)
            self.assertEqual(got["lost"], imp["dropped"], (got, stats))
            self.assertEqual(got["duplicates"], imp["duplicated"], (got, stats))
            self.assertEqual(got["reordered"], imp["reordered"], (got, stats))
            self.assertEqual(got["received"], 3000 - imp["dropped"], (got, stats))
            self.assertGreater(imp["dropped"], 200)
            self.assertGreater(imp["duplicated"], 50)
            self.assertGreater(imp["reordered"], 50)
            results.append(imp)
        self.assertEqual(results[0], results[1], "the same seed gives the same impairment")

    def test_rate_paces_records_evenly(self):
        src = self.write("pace.csv", "a\n" + "".join("%d\n" % i for i in range(20)))
        sink = TcpSink()
        t0 = time.monotonic()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--rate", "20",
                                                 "--count", "10", src])
        elapsed = time.monotonic() - t0
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertEqual([m["seq"] for m in recs], list(range(1, 11)))
        self.assertEqual(stats["sent"], 10)
        span = recs[-1]["t"] - recs[0]["t"]
        self.assertGreater(span, 0.40, "9 gaps of 50 ms")
        self.assertLess(span, 0.70)
        self.assertLess(elapsed, 5.0)
        self.assertEqual(err.count("sent #"), 0, "20/s is fast: no per-record lines")

    def test_stdin_pipe_is_live(self):
        # A record written into the pipe leaves at once, over TCP and UDP, unpaced or paced,
        # while the producer waits for the next one (it used to sit in the coalescing buffer or
        # the UDP batch until the pipe closed).
        for proto, interval in [("tcp", "0"), ("tcp", "0.1"), ("udp", "0"), ("udp", "0.1")]:
            with self.subTest(proto=proto, interval=interval):
                sink = TcpSink() if proto == "tcp" else UdpSink()
                proc = subprocess.Popen([PRODUCER, "--" + proto, "--port", str(sink.port),
                                         "--interval", interval, "--stream", "live", "-"],
                                        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
                written = []
                try:
                    proc.stdin.write(b"x,y\n")
                    proc.stdin.flush()
                    for i in range(1, 5):
                        written.append(time.monotonic())
                        proc.stdin.write(b"%d,v%d\n" % (i, i))
                        proc.stdin.flush()
                        time.sleep(0.6)
                    err = proc.communicate(timeout=20)[1].decode()  # closes the pipe
                finally:
                    if proc.poll() is None:
                        proc.kill()
                msgs = sink.join()
                self.assertEqual(proc.returncode, 0, err)
                recs = [m for m in msgs if m["type"] == RECORD]
                self.assertEqual([m["fields"] for m in recs],
                                 [[str(i), "v%d" % i] for i in range(1, 5)], err)
                late = [round(m["t"] - w, 3) for m, w in zip(recs, written)]
                self.assertTrue(all(d < 0.3 for d in late),
                                "seconds from the pipe to the sink: %r\n%s" % (late, err))

    def test_quiet_keeps_warnings_errors_and_the_summary(self):
        src = self.write("quiet.csv", "a,b\n1,2\n3\n5,6\n")
        for proto in ("tcp", "udp"):
            with self.subTest(proto=proto):
                sink = TcpSink() if proto == "tcp" else UdpSink()
                code, out, err, stats = self.run_producer(["--" + proto, "--port", str(sink.port),
                                                           "--interval", "0.1", "--quiet", src])
                sink.join()
                self.assertEqual(code, 0, err)
                self.assertEqual(stats["sent"], 3, stats)
                self.assertIn("summary: sent 3 records", out)
                self.assertIn("summary: connection", out)
                self.assertIn("quiet.csv:3: 1 fields, header has 2", err, "warnings stay")
                self.assertNotIn("sent #", err, "no per-record lines")
                self.assertNotIn("streaming", err, "no start-up chatter")
        res = subprocess.run([PRODUCER, "--help"], capture_output=True, text=True, timeout=10)
        self.assertRegex(res.stdout, r"--quiet +only warnings, errors and the summary")

    def test_empty_or_header_only_file_warns_and_exits_0(self):
        # No data is not an error (the stream is valid: HELLO, then END with 0), so the exit
        # code stays 0; the warning says why nothing was sent.
        cases = [("empty.csv", "", [], "no data records (empty file)"),
                 ("header.csv", "a,b\r\n", [], "only a header, no data records"),
                 ("bom.csv", "\ufeffa,b", [], "only a header, no data records"),
                 ("empty2.csv", "", ["--no-header"], "no data records (empty file)")]
        for name, text, args, warning in cases:
            with self.subTest(name=name, args=args):
                src = self.write(name, text)
                sink = TcpSink()
                code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval",
                                                         "0"] + args + [src])
                msgs = sink.join()
                self.assertEqual(code, 0, err)
                self.assertIn("%s: %s" % (name, warning), err)
                self.assertEqual(stats["sent"], 0, stats)
                self.assertEqual([(m["type"], m["seq"]) for m in msgs], [(HELLO, 0), (END, 0)])
        src = self.write("one.csv", "a,b\n")
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 "--no-header", src])
        sink.join()
        self.assertEqual((code, stats["sent"]), (0, 1), err)
        self.assertNotIn("no data records", err, "with --no-header that line is a record")

    def test_slow_pace_logs_each_record(self):
        src = self.write("slow.csv", "a,b\n1,2\n3,4\n5,6\n")
        sink = TcpSink()
        code, _, err, _ = self.run_producer(["--port", str(sink.port), "--interval", "0.1",
                                             src])
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        self.assertIn("sent #1 (line 2, 2 fields, ", err)
        self.assertIn("over tcp to 127.0.0.1:%d" % sink.port, err)
        self.assertEqual(err.count("sent #"), 3, err)
        times = [m["t"] for m in msgs if m["type"] == RECORD]
        self.assertGreater(times[2] - times[0], 0.18)

    def test_line_per_record_at_0_1_s_average_gap_else_progress(self):
        # The rule --help states: a line per record when records are at least 0.1 s apart on
        # average, otherwise a progress line every 3 s (and the start-up line says which).
        src = self.write("rule.csv", "a\n" + "".join("%d\n" % i for i in range(150)))
        note = "a progress line every 3 s (on a terminal, one line kept up to date) instead of " \
            "a line per record"
        cases = [(["--rate", "40", "--count", "130"], False),
                 (["--interval", "0.05", "--count", "65"], False),
                 (["--interval", "0.01-0.2", "--count", "4"], True),
                 (["--interval", "0.05-0.15", "--count", "3"], True),
                 (["--rate", "10", "--count", "3"], True)]
        for args, per_record in cases:
            with self.subTest(args=args):
                sink = UdpSink()
                code, _, err, stats = self.run_producer(["--udp", "--port", str(sink.port),
                                                         "--seed", "3"] + args + [src])
                sink.join()
                self.assertEqual(code, 0, err)
                n = stats["sent"]
                if per_record:
                    self.assertEqual(err.count("sent #"), n, err)
                    self.assertNotIn(note, err)
                    self.assertNotIn("progress:", err)
                else:
                    self.assertEqual(err.count("sent #"), 0, err)
                    self.assertIn(note, err)
                    self.assertIn("progress: ", err, "runs over 3 s: a progress line")
        res = subprocess.run([PRODUCER, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("a line per record when records are at least 0.1 s apart on average",
                      " ".join(res.stdout.split()))

    def test_loop_starts_over_until_count(self):
        src = self.write("loop.csv", "a\nx\ny\n")
        sink = TcpSink()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 "--loop", "--count", "7", src])
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertEqual([m["fields"][0] for m in recs], list("xyxyxyx"))
        self.assertEqual([m["seq"] for m in recs], list(range(1, 8)))
        self.assertEqual(stats["sent"], 7)

    def test_loop_stops_when_no_record_fits_a_datagram(self):
        src = self.write("allbig.csv", "id,text\n1,%s\n" % ("x" * 70000))
        sink = UdpSink(idle=5)
        code, _, err, stats = self.run_producer(["--udp", "--port", str(sink.port), "--interval",
                                                 "0", "--loop", "--count", "2", src], timeout=20)
        msgs = sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("--loop: no record of the file can be sent", err)
        self.assertEqual(stats["sent"], 0, stats)
        self.assertEqual(stats["too_big"], 1, "one pass, not one pass after another")
        self.assertEqual([m["seq"] for m in msgs if m["type"] == END], [0, 0, 0])

    def test_sigint_sends_end_and_exits_130(self):
        src = self.write("sig.csv", "a\n" + "".join("%d\n" % i for i in range(100)))
        sink = TcpSink()
        proc = subprocess.Popen([PRODUCER, "--port", str(sink.port), "--rate", "10", src],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.75)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        msgs = sink.join()
        self.assertEqual(proc.returncode, 130, err)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertGreaterEqual(len(recs), 5)
        self.assertLess(len(recs), 100)
        self.assertEqual(msgs[-1]["type"], END)
        self.assertEqual(msgs[-1]["seq"], len(recs))
        self.assertIn("summary", out)

    def test_sigterm_sends_end_and_exits_143(self):
        src = self.write("sig.csv", "a\n" + "".join("%d\n" % i for i in range(100)))
        sink = TcpSink()
        proc = subprocess.Popen([PRODUCER, "--port", str(sink.port), "--rate", "10", src],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.75)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        msgs = sink.join()
        self.assertEqual(proc.returncode, 143, err)
        recs = [m for m in msgs if m["type"] == RECORD]
        self.assertGreaterEqual(len(recs), 5)
        self.assertLess(len(recs), 100)
        self.assertEqual(msgs[-1]["type"], END)
        self.assertEqual(msgs[-1]["seq"], len(recs))
        self.assertIn("summary", out)

    def test_sigint_while_connecting_exits_130_at_once(self):
        # A listener whose accept queue is full drops further SYNs, so connect() hangs.
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        port = lsn.getsockname()[1]
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.3)
        src = self.write("a.csv", "a\n1\n")
        stats = os.path.join(self.dir, "connecting.json")
        try:
            proc = subprocess.Popen([PRODUCER, "--port", str(port), "--stats-json", stats,
                                     "--interval", "0", src], stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            self.assertIsNone(proc.poll(), "connect() should still be waiting")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            for c in fillers:
                c.close()
            lsn.close()
        self.assertEqual(proc.returncode, 130, err)
        self.assertLess(elapsed, 2.0, "not after the kernel's SYN retries")
        self.assertIn("cannot connect to 127.0.0.1:%d/tcp: stopped by a signal" % port, err)
        with open(stats, encoding="utf-8") as f:
            data = json.load(f)
        self.assertEqual((data["sent"], data["connection"]), (0, "failed"), data)

    def test_consumer_closing_midstream_is_noticed_at_once(self):
        src = self.write("close.csv", "a\n" + "".join("%d\n" % i for i in range(50)))
        sink = TcpSink(close_after=2)
        t0 = time.monotonic()
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "2",
                                                 "--retry", "0", src])
        elapsed = time.monotonic() - t0
        sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("closed by the consumer", err)
        self.assertIn("after 2 records (the rest were not sent)", err)
        self.assertEqual(stats["connection"], "closed")
        self.assertLess(elapsed, 3.5, "noticed while sleeping, not at the next send")

    def test_reset_after_every_record_was_acknowledged_is_exit_0(self):
        """A consumer that acknowledged every record and read the END, then reset the
        connection instead of closing it (as one does that stops with the END unread): nothing
        is lost, so the producer exits 0, and its summary still says "reset"."""
        src = self.write("acked.csv", "id,v\n" + "".join("%d,x\n" % i for i in range(20)))
        sink = TcpSink(reset=True, until_end=True)
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 "--retry", "0", src])
        sink.join()
        self.assertEqual(code, 0, err)
        self.assertEqual((20, 20), (stats["sent"], stats["acked"]), stats)
        self.assertEqual(stats["connection"], "reset", stats)
        self.assertIn("(every record was acknowledged before it)", err)

    def test_consumer_reset_during_unpaced_burst_is_reported(self):
        src = self.write("burst.csv", "id,v\n" + "".join("%d,%s\n" % (i, "v" * 40)
                                                          for i in range(300000)))
        sink = TcpSink(close_after=1000, reset=True)
        code, _, err, stats = self.run_producer(["--port", str(sink.port), "--interval", "0",
                                                 "--retry", "0", src])
        sink.join()
        self.assertEqual(code, 1, err)
        self.assertIn("connection reset by the consumer after", err)
        self.assertIn("records (the rest were not sent)", err)
        self.assertEqual(stats["connection"], "reset", stats)
        self.assertLess(stats["sent"], 300000, stats)
        # The count in the message is exact, not rounded down to the last full coalesced write.
        said = int(re.search(r"reset by the consumer after (\d+) records", err).group(1))
        self.assertEqual(said, stats["written"], (err, stats))
        self.assertLessEqual(stats["written"], stats["sent"], stats)
        self.assertGreaterEqual(stats["written"], 1000, "the sink read 1000 before the reset")

    def test_impair_delay_delays_every_datagram_and_keeps_counts_exact(self):
        src = self.write("delay.csv", "a\n" + "".join("%d\n" % i for i in range(1000)))
        sink = UdpSink()
        code, _, err, stats = self.run_producer([
            "--udp", "--port", str(sink.port), "--rate", "2000", "--quiet",
            "--impair", "loss=0.1,dup=0.05,reorder=0.1,delay=80,seed=11", src])
        msgs = sink.join()
        self.assertEqual(code, 0, err)
        got = account(msgs)
        imp = stats["impaired"]
        self.assertEqual((got["lost"], got["duplicates"], got["reordered"]),
                         (imp["dropped"], imp["duplicated"], imp["reordered"]), stats)
        recs = [m for m in msgs if m["type"] == RECORD]
        delays = sorted(m["wall"] - m["sent_us"] / 1e6 for m in recs)
        self.assertGreater(delays[0], 0.075, "every datagram leaves 80 ms after its stamp")

    def syscalls(self, args, sink):
        """Run the producer under strace -c; returns ({syscall: calls}, stats)."""
        trace = os.path.join(self.dir, "strace.txt")
        code, _, err, stats = self.run_producer(args, timeout=120,
                                                wrapper=["strace", "-f", "-c", "-o", trace])
        sink.join()
        self.assertEqual(code, 0, err)
        calls = {}
        with open(trace, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
                if m:
                    calls[m.group(2)] = int(m.group(1))
        return calls, stats

    @unittest.skipUnless(shutil.which("strace"), "strace is not installed")
    @unittest.skipIf(built_with_leak_sanitizer(PRODUCER),
                     "the producer is built with AddressSanitizer: LeakSanitizer aborts under "
                     "strace (ptrace), and the sanitizer's own system calls would skew the count")
    def test_unpaced_sends_are_batched_not_one_syscall_per_record(self):
        src = self.write("many.csv", "id,v\n" + "".join("%d,value %d\n" % (i, i)
                                                         for i in range(20000)))
        sink = UdpSink()
        calls, stats = self.syscalls(["--udp", "--port", str(sink.port), "--interval", "0",
                                      "--quiet", src], sink)
        self.assertEqual(stats["sent"], 20000)
        self.assertGreater(calls.get("sendmmsg", 0), 0, calls)
        self.assertLess(calls.get("sendmmsg", 0), 20000 / 32, calls)
        self.assertEqual(calls.get("sendto", 0) + calls.get("sendmsg", 0), 0, calls)
        sink = TcpSink()
        calls, stats = self.syscalls(["--port", str(sink.port), "--interval", "0", "--quiet",
                                      src], sink)
        self.assertEqual(stats["sent"], 20000)
        self.assertGreater(calls.get("write", 0), 0, calls)
        self.assertLess(calls.get("write", 0), 200, "coalesced writes: %r" % calls)

    def test_udp_without_listener_counts_icmp_and_goes_on(self):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        src = self.write("void.csv", "a\n1\n2\n3\n4\n")
        code, out, err, stats = self.run_producer(["--udp", "--port", str(port), "--interval",
                                                   "0.05", src])
        self.assertEqual(code, 0, err)
        self.assertEqual(stats["sent"], 4)
        self.assertGreater(stats["icmp_refused"], 0, stats)
        self.assertIn("ICMP port unreachable from 127.0.0.1:%d/udp" % port, err)
        self.assertEqual(err.count("nothing is listening there"), 1, "logged once")
        # The summary does not call UDP's state "ok" next to the ICMP count, and says that count
        # covers the repeated END datagrams too (4 records, yet more than 4 reports).
        self.assertIn("summary: connection: none (UDP is connectionless; it cannot tell whether "
                      "anyone received); ICMP port unreachable %s (over every datagram "
                      "sent, the 3 repeated end-of-stream datagrams included)"
                      % words(stats["icmp_refused"], "time", "times"), out)
        self.assertNotIn("connection ok", out + err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
