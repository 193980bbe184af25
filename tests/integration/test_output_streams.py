"""test_output_streams.py -- where the programs' output goes: the summary on stdout and the log
on stderr, "-" as standard output for --out and --stats-json (no file named "-"), --stats-json
written through a symlink to a FIFO (the link stays a link), and log lines with an ISO 8601 time,
its UTC offset and a level word on warnings."""

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import harness

# "2026-12-01T20:41:07.123+00:00 consumer: warning: message", "... consumer: message" (INFO).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                      r"(consumer|producer): ((warning|error): )?\S")


class FifoReader(threading.Thread):
    """Reads a FIFO to its end in a thread (opening it blocks until a writer comes)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.text = None
        self.start()

    def run(self):
        with open(self.path, encoding="utf-8") as f:
            self.text = f.read()

    def result(self, timeout=10):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("nobody wrote to the FIFO %s" % self.path)
        return self.text


class OutputStreamsTest(harness.IntegrationCase):

    def fifo_link(self, name):
        """A FIFO and a symlink to it; returns (link, fifo)."""
        fifo = self.path(name + ".fifo")
        link = self.path(name + ".json")
        os.mkfifo(fifo)
        os.symlink(fifo, link)
        return link, fifo

    def assertNoDashFiles(self):
        left = [n for n in os.listdir(self.dir) if n == "-" or n.startswith("-.")]
        self.assertEqual(left, [], "files named after '-' in %s" % self.dir)

    def quiet_consumer(self):
        """A consumer with --quiet (no "listening on" line to wait for: its port is probed).
        Returns (Proc, port)."""
        port = harness.free_port()
        proc = harness.Proc([harness.CONSUMER, "--host", "127.0.0.1", "--port", str(port),
                             "--tcp", "--quiet"], self.dir, "consumer")
        self.procs.append(proc)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        self.assertTrue(harness.wait_until(up, 10), proc.stderr())
        return proc, port

    def test_summaries_go_to_stdout_and_the_log_to_stderr(self):
        proc, port = self.quiet_consumer()
        src = self.path("five.csv")
        harness.simple_csv(src, 5)
        prod = self.run_producer(src, port, "tcp", ["--interval", "0", "--quiet"])
        self.assertExit(prod, 0, "producer")
        self.assertIn("summary: sent 5 records", prod.stdout, prod.describe())
        self.assertNotIn("summary:", prod.stderr, prod.describe())
        harness.wait_for_rows(self.path("out9.txt"), 6, 10, simple=True)
        proc.popen.send_signal(signal.SIGTERM)
        res = harness.Result(proc.wait(30), proc.stderr(), None, 0, proc.argv, proc.stdout())
        self.assertExit(res, 0, "consumer")
        self.assertEqual(res.stderr, "", "--quiet: no log lines")
        # --quiet silences the running log, not the summary.
        self.assertIn("consumer summary", res.stdout, res.describe())
        self.assertRegex(res.stdout, r"(?m)^tcp +five +[0-9a-f]{16} +5 +0 ", res.describe())
        self.assertIn("out9.txt: 5 records written", res.stdout, res.describe())
        self.assertNotIn("consumer summary", res.stderr, res.describe())

    def test_log_lines_have_an_iso_time_with_offset_and_a_level_word(self):
        cons = self.consumer()
        src = self.path("ragged.csv")
        harness.write_csv(src, [["a", "b"], ["1", "2"], ["3"]])
        prod = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(prod, 0, "producer")
        res = cons.stop()
        for who, text in (("producer", prod.stderr), ("consumer", res.stderr)):
            lines = [l for l in text.splitlines() if l]
            self.assertTrue(lines, who)
            for line in lines:
                self.assertRegex(line, LOG_LINE, "%s log line" % who)
        warn = [l for l in prod.stderr.splitlines() if "ragged.csv:3" in l]
        self.assertEqual(len(warn), 1, prod.describe())
        self.assertRegex(warn[0], r" producer: warning: \S*ragged\.csv:3: ", prod.describe())
        listening = [l for l in res.stderr.splitlines() if "listening on" in l]
        self.assertRegex(listening[0], r"\+?\d\d:\d\d consumer: listening on ", "INFO: no word")

    def test_stats_json_through_a_symlink_to_a_fifo(self):
        link, fifo = self.fifo_link("consumer-live")
        cons = self.consumer("--stats-json", link)
        src = self.path("three.csv")
        harness.simple_csv(src, 3)
        plink, pfifo = self.fifo_link("producer-live")
        preader = FifoReader(pfifo)
        argv, _ = self.producer_argv(src, cons.port, "tcp", ["--interval", "0", "--stats-json",
                                                              plink], stats=False)
        prod = self.run_program(argv)
        self.assertExit(prod, 0, "producer")
        pstats = json.loads(preader.result())
        self.assertEqual(pstats["sent"], 3, pstats)
        harness.wait_for_rows(cons.out_path(), 4, 10, simple=True)
        reader = FifoReader(fifo)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        stats = json.loads(reader.result())
        self.assertEqual(stats["tcp"]["received"], 3, stats)
        for path, target in ((link, fifo), (plink, pfifo)):
            self.assertTrue(os.path.islink(path), "%s is no longer a symlink" % path)
            self.assertEqual(os.readlink(path), target)
            self.assertFalse(os.path.exists(path + ".tmp"), path + ".tmp")

    def test_stats_json_dash_is_stdout(self):
        cons = self.consumer("--stats-json", "-")
        src = self.path("two.csv")
        harness.simple_csv(src, 2)
        argv, _ = self.producer_argv(src, cons.port, "udp", ["--interval", "0", "--stats-json",
                                                              "-"], stats=False)
        prod = self.run_program(argv)
        self.assertExit(prod, 0, "producer")
        self.assertEqual(json.loads(prod.stdout)["sent"], 2, prod.describe())
        self.assertIn("summary: sent 2 records", prod.stderr, "the summary moves to stderr")
        harness.wait_for_rows(cons.out_path(), 3, 10, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        stats = json.loads(res.stdout)  # nothing but the document
        self.assertEqual(stats["udp"]["received"], 2, res.describe())
        self.assertIn("consumer summary", res.stderr, res.describe())
        self.assertNoDashFiles()

    def test_out_dash_writes_the_csv_to_stdout_and_the_summary_to_stderr(self):
        cons = self.consumer("--out", "-")
        src = self.path("quoted.csv")
        rows = [["k", "text"], ["1", 'say "hi"'], ["2", "two\nlines"], ["3", "a,b"]]
        harness.write_csv(src, rows)
        other = self.path("other.csv")
        harness.write_csv(other, [["x"], ["9"]])
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0, "p1")
        self.assertExit(self.run_producer(src, cons.port, "udp", ["--interval", "0",
                                                                  "--stream", "again"]), 0, "p2")
        # A TCP stream is acknowledged: one the consumer cannot write (another header, and
        # standard output holds one) is refused with the reason, not acknowledged and dropped.
        p3 = self.run_producer(other, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(p3, 1, "p3, refused")
        self.assertIn("refused the stream", p3.stderr, p3.describe())
        self.assertTrue(harness.wait_until(
            lambda: "(standard output) holds one header" in cons.proc.stderr(), 10),
            cons.proc.stderr())

        def csv_rows():
            try:
                return len(list(csv.reader(io.StringIO(cons.proc.stdout(), newline=""))))
            except csv.Error:
                return 0
        self.assertTrue(harness.wait_until(lambda: csv_rows() >= 7, 10), cons.proc.stdout())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        got = list(csv.reader(io.StringIO(res.stdout, newline=""), strict=True))
        self.assertEqual(got[0], ["k", "text"], "one header first")
        self.assertEqual(sorted(got[1:]), sorted(rows[1:] * 2), "both streams, no 2nd header")
        self.assertIn("\r\n", res.stdout, "RFC 4180 line ends")
        self.assertIn("consumer summary", res.stderr, res.describe())
        self.assertIn("standard output: 6 records written", res.stderr, res.describe())
        self.assertRegex(res.stderr, r"1 records? not written", res.describe())
        self.assertEqual(res.stats["out"]["path"], "-", res.describe())
        self.assertFalse(os.path.exists(cons.out_path()), "no out9.txt")
        self.assertNoDashFiles()

    def test_out_dash_is_not_reopened_by_sighup_nor_taken_for_a_moved_file(self):
        cons = self.consumer("--out", "-")
        src = self.path("s.csv")
        rows = [["k", "v"]] + [[str(i), "x"] for i in range(5)]
        harness.write_csv(src, rows)
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0, "p1")
        cons.proc.popen.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(
            lambda: "SIGHUP: nothing to reopen" in cons.proc.stderr(), 10), cons.proc.stderr())
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0",
                                                                  "--stream", "again"]), 0, "p2")
        time.sleep(1.3)  # past the once-a-second look at the files
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        got = list(csv.reader(io.StringIO(res.stdout, newline=""), strict=True))
        self.assertEqual(got, rows + rows[1:], "both streams on standard output, one header")
        self.assertNotIn("moved or replaced", res.stderr, res.describe())
        self.assertNoDashFiles()

    def test_stdout_for_two_outputs_or_a_database_is_a_usage_error(self):
        for args, says in ((["--out", "-", "--stats-json", "-"], "cannot both"),
                           (["--db", "-"], "--db")):
            res = self.run_program([harness.CONSUMER, "--port", str(harness.free_port())] + args)
            self.assertExit(res, 2, " ".join(args))
            self.assertIn(says, res.stderr, res.describe())
        self.assertNoDashFiles()

    def test_a_summary_that_cannot_be_written_is_exit_1(self):
        cons = self.consumer()
        src = self.path("one.csv")
        harness.simple_csv(src, 1)
        argv, _ = self.producer_argv(src, cons.port, "tcp", ["--interval", "0"], stats=False)
        with open("/dev/full", "w") as full:
            p = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, r"producer: error: cannot write the summary to standard "
                         r"output: No space left on device")
        res = cons.stop()
        self.assertExit(res, 0, "consumer")


if __name__ == "__main__":
    harness.main()
