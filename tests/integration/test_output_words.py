"""test_output_words.py -- what the programs say, read at a glance: the consumer's live line only
when something changed and only for the protocols in use, a stream without END marked
incomplete, counts with thousands separators and the singular for 1, no rate for a span under
10 ms, the producer's progress for file input (a line every few seconds, or one line kept up to
date on a terminal) and one spelling of "Usage:"."""

import os
import pty
import re
import select
import socket
import struct
import subprocess
import time
import unittest

import harness

STATS_LINE = re.compile(r"consumer: stats: ")
MULTIPLE_PROCESSES = os.path.join(harness.BIN, "multiple_processes")


def everything(proc):
    """What a program printed on stderr and stdout (the summary may go to either)."""
    text = proc.stderr()
    if os.path.exists(proc.stdout_path):
        with open(proc.stdout_path, encoding="utf-8", errors="replace") as f:
            text += "\n" + f.read()
    return text


def stats_lines(proc, since=0.0):
    """The live --stats lines logged at or after the monotonic time since."""
    return [text for t, text in proc.timed_lines() if t >= since and STATS_LINE.search(text)]


class LiveLineTest(harness.IntegrationCase):
    def test_idle_consumer_prints_no_stats_lines(self):
        cons = self.consumer("--stats", "0.2")
        time.sleep(1.2)
        self.assertEqual(stats_lines(cons.proc), [], cons.proc.stderr())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")

    def test_one_protocol_used_shows_only_that_protocol_then_silence(self):
        cons = self.consumer("--stats", "0.2")
        src = self.path("five.csv")
        harness.simple_csv(src, 5)
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0,
                        "producer")
        self.assertTrue(harness.wait_until(lambda: stats_lines(cons.proc), 5),
                        "no stats line after a stream\n" + cons.proc.stderr())
        lines = stats_lines(cons.proc)
        self.assertRegex(lines[0], r"stats: tcp 5 received, 0 lost, 0 dup, 0 reordered, ",
                         cons.proc.stderr())
        for line in lines:
            self.assertNotIn("udp", line, "UDP was not used: its zeros do not show")
        # Nothing changes any more: the line stops (a tick may still be under way).
        time.sleep(0.5)
        quiet_from = time.monotonic()
        time.sleep(1.0)
        self.assertEqual(stats_lines(cons.proc, quiet_from), [], cons.proc.stderr())
        self.assertExit(cons.stop(), 0, "consumer")


class SummaryWordsTest(harness.IntegrationCase):
    def producer_text(self, src, port, args):
        """Run a TCP producer to its end: (Result, everything it printed)."""
        started = self.start_producer(src, port, "tcp", args)
        res = self.finish_producer(started)
        return res, everything(started[0])

    def test_stream_without_end_is_marked_incomplete_in_the_summary(self):
        cons = self.consumer()
        pid = 0x5151
        with socket.create_connection(("127.0.0.1", cons.port), timeout=10) as s:
            s.sendall(wire_message(1, pid, b"cut", [b"a"]) +
                      wire_message(2, pid, b"cut", [b"1"], seq=1) +
                      wire_message(1, pid, b"whole", [b"a"]) +
                      wire_message(2, pid, b"whole", [b"1"], seq=1) +
                      wire_message(3, pid, b"whole", [], seq=1))
        self.assertTrue(harness.wait_until(lambda: harness.count_lines(cons.out_path()) >= 3, 10),
                        cons.proc.stderr())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        text = everything(cons.proc)
        self.assertIn("tcp cut: incomplete (no END: the producer stopped or was cut off)", text)
        self.assertNotIn("tcp whole: incomplete", text)
        self.assertIn("tcp: 1 connection, 0 garbage", text)
        self.assertRegex(text, r"(?m)^tcp +\(all 2 streams\) ")
        self.assertRegex(text, r"(?m)out9\.txt: 2 records written$")
        self.assertFalse([e for e in res.stats["streams"] if e["stream"] == "cut"][0]["ended"])

    def test_counts_have_thousands_separators_and_the_singular_for_one(self):
        cons = self.consumer("--tcp", protocols=("tcp",))
        big = self.path("big.csv")
        harness.simple_csv(big, 1500)
        one = self.path("one.csv")
        harness.simple_csv(one, 1)
        prod, out = self.producer_text(big, cons.port, ["--interval", "0"])
        self.assertExit(prod, 0, "producer")
        self.assertIn("summary: sent 1,500 records (", out)
        self.assertIn("; read 1,500 records", out)
        self.assertEqual(prod.stats["sent"], 1500, "JSON keeps plain numbers")
        prod, out = self.producer_text(one, cons.port, ["--interval", "0"])
        self.assertExit(prod, 0, "producer")
        self.assertIn("summary: sent 1 record (", out)
        self.assertTrue(harness.wait_until(
            lambda: harness.count_lines(cons.out_path()) >= 1502, 10), cons.proc.stderr())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        text = everything(cons.proc)
        self.assertRegex(text, r"(?m)^tcp +\(all 2 streams\) +1,501 ")
        self.assertIn("tcp: 2 connections,", text)
        self.assertIn("disconnected after 1 record\n", cons.proc.stderr() + "\n")
        self.assertIn("disconnected after 1,500 records", cons.proc.stderr())
        self.assertRegex(text, r"(?m)out9\.txt: 1,501 records written$")
        self.assertEqual(res.stats["tcp"]["received"], 1501, "JSON keeps plain numbers")

    def test_no_rate_for_a_span_under_10_ms(self):
        cons = self.consumer("--tcp", protocols=("tcp",))
        src = self.path("three.csv")
        harness.simple_csv(src, 3)
        prod, out = self.producer_text(src, cons.port, ["--interval", "0"])
        self.assertExit(prod, 0, "producer")
        line = [ln for ln in out.splitlines() if "summary: sent" in ln][0]
        self.assertIn("(too short for a rate)", line)
        self.assertNotIn("records/s", line)
        # Paced over 10 ms and more: a rate.
        prod, out = self.producer_text(src, cons.port, ["--rate", "100"])
        self.assertExit(prod, 0, "producer")
        self.assertRegex(out, r"\(\d[\d,]*\.\d records/s\)")
        self.assertExit(cons.stop(), 0, "consumer")

    def test_usage_is_spelled_the_same_in_all_three_programs(self):
        for prog in (harness.PRODUCER, harness.CONSUMER, MULTIPLE_PROCESSES):
            with self.subTest(prog=os.path.basename(prog)):
                res = subprocess.run([prog, "--help"], capture_output=True, text=True,
                                     timeout=10)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertTrue(res.stdout.startswith("Usage: %s " % os.path.basename(prog)),
                                res.stdout[:80])
                self.assertNotIn("usage:", res.stdout + res.stderr)


def wire_message(ftype, producer_id, stream, fields, seq=0):
    """A wire frame of docs/protocol.md version 1 (HELLO 1, RECORD 2, END 3)."""
    payload = struct.pack(">QQQQB", producer_id, seq, int(time.time() * 1e6), 0, len(stream))
    payload += stream + struct.pack(">I", len(fields))
    for f in fields:
        payload += struct.pack(">I", len(f)) + f
    return b"CS\x01" + bytes([ftype]) + struct.pack(">I", len(payload)) + payload


class ProgressTest(harness.IntegrationCase):
    def big_csv(self, n=3000):
        src = self.path("big.csv")
        harness.simple_csv(src, n)
        return src

    def test_not_a_terminal_a_line_every_few_seconds_with_per_cent_and_time_left(self):
        cons = self.consumer("--udp", protocols=("udp",))
        src = self.big_csv()
        started = self.start_producer(src, cons.port, "udp", ["--rate", "400"])
        res = self.finish_producer(started)
        self.assertExit(res, 0, "producer")
        lines = [(t, text) for t, text in started[0].timed_lines() if "progress: " in text]
        # 7.5 s at 400 records/s: a line at about 3 s and 6 s.
        self.assertTrue(1 <= len(lines) <= 3, res.describe())
        percents = []
        for _, text in lines:
            m = re.search(r"progress: ([\d,]+) records sent, [\d,]+\.\d records/s, "
                          r"(\d+\.\d)% of the file, about .* left", text)
            self.assertIsNotNone(m, text)
            percents.append(float(m.group(2)))
        self.assertEqual(percents, sorted(percents), "the per cent only grows")
        self.assertTrue(0 < percents[0] < 100, percents)
        if len(lines) > 1:
            self.assertGreater(lines[1][0] - lines[0][0], 2.0, "a line every few seconds")
        self.assertExit(cons.stop(), 0, "consumer")

    def test_a_pipe_has_no_per_cent(self):
        cons = self.consumer("--udp", protocols=("udp",))
        src = self.big_csv(1400)
        with open(src, "rb") as f:
            data = f.read()
        # Through a pipe, whose size is not known (standard input redirected from a file is a
        # regular file, and has a per cent).
        res = subprocess.run([harness.PRODUCER, "--udp", "--port", str(cons.port), "--rate",
                              "400", "-"], input=data, capture_output=True, timeout=60)
        res.stderr = res.stderr.decode("utf-8", "replace")
        self.assertEqual(res.returncode, 0, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if "progress: " in ln]
        self.assertTrue(lines, res.stderr)
        for line in lines:
            self.assertNotIn("%", line)
            self.assertNotIn("left", line)
        self.assertExit(cons.stop(), 0, "consumer")

    def test_terminal_one_line_kept_up_to_date_and_quiet_has_none(self):
        cons = self.consumer("--udp", protocols=("udp",))
        src = self.big_csv(1500)
        for quiet in (False, True):
            with self.subTest(quiet=quiet):
                out = self.run_on_pty([harness.PRODUCER, "--udp", "--port", str(cons.port),
                                       "--rate", "1500"] + (["--quiet"] if quiet else []) + [src])
                redraws = re.findall(r"\rprogress: [\d,]+ records sent, [^\r\n]*% of the file",
                                     out)
                if quiet:
                    self.assertEqual(redraws, [], out)
                    continue
                self.assertGreater(len(redraws), 1, repr(out))
                # Redrawn in place: no progress text ends a line of its own.
                self.assertNotRegex(out, r"progress: [^\r\n]*\n", repr(out))
                self.assertIn("summary: sent 1,500 records", out)
        self.assertExit(cons.stop(), 0, "consumer")

    def run_on_pty(self, argv):
        """Run argv with stderr on a new pseudo-terminal; returns what it wrote there."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
            os.close(slave)
            slave = -1
            chunks = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the other side is closed
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break
            self.assertEqual(proc.wait(10), 0, b"".join(chunks).decode("utf-8", "replace"))
            return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)


if __name__ == "__main__":
    harness.main()
