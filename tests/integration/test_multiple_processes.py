"""test_multiple_processes.py -- the course's shared-database lesson, end to end: runs the real
bin/multiple_processes (and, for funnel, the real consumer it starts) in a temporary directory
and checks the rows with Python's own sqlite3 module."""

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
PROGRAM = os.path.join(BIN, "multiple_processes")

def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_listener(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("no consumer listening on 127.0.0.1:%d after %.0f s" % (port, timeout))


STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} ")


class MultipleProcessesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="test_mp.")
        self.db = os.path.join(self.dir, "shared.db")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_mp(self, *args, timeout=60):
        """Run the program in the temporary directory; returns the CompletedProcess."""
        return subprocess.run([PROGRAM, "--db", self.db, *args], cwd=self.dir, timeout=timeout,
                              capture_output=True, text=True)

    def query(self, sql, *params):
        con = sqlite3.connect(self.db)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def assert_log(self, out):
        """Every stdout line is one timestamped event."""
        lines = out.splitlines()
        self.assertTrue(lines, "no log lines")
        for line in lines:
            self.assertRegex(line, STAMP)

    def test_naive_without_task_duration_inserts_every_record(self):
        r = self.run_mp("--mode", "naive", "--processes", "3", "--records", "2",
                        "--task-duration", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_log(r.stdout)
        self.assertIn("inserted 6 of 6 records; none failed", r.stdout)
        self.assertNotIn("locked", r.stdout)
        self.assertEqual(self.query("SELECT count(*) FROM direct_readings"), [(6,)])
        self.assertEqual(
            self.query("SELECT count(DISTINCT process || '/' || record) FROM direct_readings"),
            [(6,)])
        for p in (1, 2, 3):
            for rec in (1, 2):
                self.assertRegex(r.stdout, r"process %d record %d: inserted" % (p, rec))

    def test_naive_with_long_task_fails_with_database_is_locked(self):
        r = self.run_mp("--mode", "naive", "--processes", "3", "--records", "1",
                        "--task-duration", "3")
        # Lost records are the lesson, not a malfunction: the exit status stays 0.
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_log(r.stdout)
        self.assertRegex(r.stdout, r"process \d record 1: FAILED: database is locked")
        rows = self.query("SELECT count(*) FROM direct_readings")[0][0]
        self.assertLess(rows, 3)
        self.assertIn("inserted %d of 3 records; %d failed: database is locked" % (rows, 3 - rows),
                      r.stdout)

    def test_naive_after_safe_switches_back_from_wal_and_still_fails(self):
        # WAL is a property of the file: a safe run leaves it on. naive switches the file back
        # to SQLite's default rollback journal, says so, and the lesson reproduces.
        r = self.run_mp("--mode", "safe", "--processes", "2", "--records", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.query("PRAGMA journal_mode"), [("wal",)])
        r = self.run_mp("--mode", "naive", "--processes", "3", "--records", "1",
                        "--task-duration", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        first = r.stdout.splitlines()[0]
        self.assertIn("switched %s back from WAL to the rollback journal" % self.db, first)
        self.assertNotIn("(rollback journal,", first)
        self.assertRegex(r.stdout, r"process \d record 1: FAILED: database is locked")
        self.assertEqual(self.query("PRAGMA journal_mode"), [("delete",)])
        run = self.query("SELECT max(rowid), run FROM direct_readings")[0][1]
        rows = self.query("SELECT count(*) FROM direct_readings WHERE run = ?", run)[0][0]
        self.assertLess(rows, 3)
        self.assertIn("inserted %d of 3 records; %d failed: database is locked" % (rows, 3 - rows),
                      r.stdout)
        # A file already in the rollback journal is not "switched".
        r = self.run_mp("--mode", "naive", "--processes", "1", "--records", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("switched", r.stdout)
        self.assertIn("(rollback journal, no busy timeout", r.stdout.splitlines()[0])

    def test_naive_says_when_an_open_connection_keeps_the_file_in_wal(self):
        # Leaving WAL needs the file to itself; with a person's connection open it stays in WAL.
        # naive says so, runs anyway, and still meets the lock (one writer at a time).
        r = self.run_mp("--mode", "safe", "--processes", "1", "--records", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        con = sqlite3.connect(self.db)
        try:
            con.execute("SELECT count(*) FROM direct_readings").fetchall()
            r = self.run_mp("--mode", "naive", "--processes", "2", "--records", "1",
                            "--task-duration", "2")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            first = r.stdout.splitlines()[0]
            self.assertIn("%s stays in WAL mode" % self.db, first)
            self.assertNotIn("rollback journal,", first)
            self.assertRegex(r.stdout, r"process \d record 1: FAILED: database is locked")
            self.assertEqual(con.execute("PRAGMA journal_mode").fetchall(), [("wal",)])
        finally:
            con.close()

    def test_safe_with_long_task_waits_and_inserts_every_record(self):
        r = self.run_mp("--mode", "safe", "--processes", "2", "--records", "1",
                        "--task-duration", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_log(r.stdout)
        self.assertIn("waiting for the lock", r.stdout)
        self.assertNotIn("FAILED", r.stdout)
        self.assertIn("inserted 2 of 2 records; none failed", r.stdout)
        self.assertEqual(self.query("SELECT count(*) FROM direct_readings"), [(2,)])
        self.assertEqual(self.query("PRAGMA journal_mode"), [("wal",)])

    def test_funnel_inserts_every_record_without_locks(self):
        r = self.run_mp("--mode", "funnel", "--processes", "3", "--records", "2",
                        "--task-duration", "1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_log(r.stdout)
        self.assertNotIn("locked", r.stdout)
        self.assertNotIn("waiting for the lock", r.stdout)
        self.assertIn("inserted 6 of 6 records; none failed", r.stdout)
        # Each process is its own producer instance: 3 producer ids, records 1 and 2 of each.
        self.assertEqual(self.query("SELECT count(*), count(DISTINCT _producer) FROM readings"),
                         [(6, 3)])
        self.assertEqual(
            self.query("SELECT process, record FROM readings ORDER BY process, record"),
            [(str(p), str(rec)) for p in (1, 2, 3) for rec in (1, 2)])
        self.assertEqual(self.query("SELECT count(*) FROM readings WHERE _seq <> record"),
                         [(0,)])

    def test_funnel_uses_a_consumer_that_is_already_running(self):
        port = free_tcp_port()
        consumer = subprocess.Popen([os.path.join(BIN, "consumer"), "--tcp", "--port", str(port),
                                     "--db", self.db, "--quiet"], cwd=self.dir,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_listener(port)
            r = self.run_mp("--mode", "funnel", "--port", str(port), "--processes", "2",
                            "--records", "3")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("already listening on 127.0.0.1:%d/tcp" % port, r.stdout)
            self.assertNotIn("consumer started", r.stdout)
            self.assertIn("inserted 6 of 6 records; none failed", r.stdout)
            # The program must leave a consumer it did not start running.
            self.assertIsNone(consumer.poll())
            self.assertEqual(self.query("SELECT count(*), count(DISTINCT _producer) FROM readings"),
                             [(6, 2)])
        finally:
            consumer.terminate()
            consumer.wait(timeout=30)
        self.assertEqual(consumer.returncode, 0)

    def test_funnel_consumer_counts_one_connection_per_process(self):
        # The program learns that its consumer listens from the consumer's log, not by
        # connecting to it, so the consumer's summary counts exactly the processes.
        r = self.run_mp("--mode", "funnel", "--processes", "3", "--records", "1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("tcp: 3 connections,", r.stderr)
        self.assertIn("consumer summary", r.stderr)
        log = self.db + ".consumer.log"
        self.assertIn("its log: %s" % log, r.stdout)
        with open(log) as f:
            text = f.read()
        self.assertRegex(text, r"listening on 127\.0\.0\.1:\d+/tcp")
        self.assertEqual(text.count(" connected\n"), 3, text)
        self.assertIn("tcp: 3 connections,", text)

    def test_funnel_does_not_connect_to_a_running_consumer_to_find_it(self):
        port = free_tcp_port()
        log = os.path.join(self.dir, "consumer.log")
        with open(log, "w") as err:
            consumer = subprocess.Popen([os.path.join(BIN, "consumer"), "--tcp", "--port",
                                         str(port), "--db", self.db], cwd=self.dir, stdout=err,
                                        stderr=err)  # the log and the summary
        try:
            deadline = time.monotonic() + 10
            while "listening on 127.0.0.1:%d/tcp" % port not in open(log).read():
                self.assertLess(time.monotonic(), deadline, open(log).read())
                self.assertIsNone(consumer.poll(), open(log).read())
                time.sleep(0.02)
            r = self.run_mp("--mode", "funnel", "--port", str(port), "--processes", "2",
                            "--records", "1")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("already listening on 127.0.0.1:%d/tcp" % port, r.stdout)
        finally:
            consumer.terminate()
            consumer.wait(timeout=30)
        self.assertEqual(consumer.returncode, 0)
        self.assertIn("tcp: 2 connections,", open(log).read())

    def test_funnel_retries_another_port_when_its_consumer_cannot_bind(self):
        # A consumer that fails the first time, as one does when another program took the
        # port picked for it between the check and the bind.
        wrapper = os.path.join(self.dir, "flaky_consumer")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nif [ ! -e %s ]; then touch %s; exit 1; fi\nexec %s \"$@\"\n" % (
                os.path.join(self.dir, "failed_once"), os.path.join(self.dir, "failed_once"),
                os.path.join(BIN, "consumer")))
        os.chmod(wrapper, 0o755)
        r = self.run_mp("--mode", "funnel", "--consumer", wrapper, "--processes", "2",
                        "--records", "1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("trying the consumer on another free port", r.stdout)
        self.assertIn("inserted 2 of 2 records; none failed", r.stdout)
        self.assertEqual(self.query("SELECT count(*) FROM readings"), [(2,)])

    def test_rerun_counts_only_its_own_rows(self):
        for _ in range(2):
            r = self.run_mp("--processes", "2", "--records", "2")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("inserted 4 of 4 records; none failed", r.stdout)
        self.assertEqual(self.query("SELECT count(*), count(DISTINCT run) FROM direct_readings"),
                         [(8, 2)])

    def interrupt_mp(self, marker, *args, sig=signal.SIGINT, group=False):
        """Start the program, send sig to it (the parent only, or with group its whole process
        group, as Ctrl-C at a terminal does) once a stdout line contains marker, and return
        (exit code, stdout, stderr)."""
        proc = subprocess.Popen([PROGRAM, "--db", self.db, *args], cwd=self.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=group)
        try:
            seen = []
            for line in proc.stdout:
                seen.append(line)
                if marker in line:
                    if group:
                        os.killpg(proc.pid, sig)
                    else:
                        proc.send_signal(sig)
                    break
            else:
                self.fail("no line with %r before the end: %s" % (marker, "".join(seen)))
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, "".join(seen) + out, err

    def test_sigint_in_naive_stops_the_processes_and_prints_what_landed(self):
        code, out, err = self.interrupt_mp("process 1 record 1: inserted", "--mode", "naive",
                                           "--processes", "2", "--records", "3",
                                           "--task-duration", "1")
        self.assertEqual(code, 130, out + err)
        self.assert_log(out)
        self.assertIn("SIGINT: stopping the processes", out)
        rows = self.query("SELECT count(*) FROM direct_readings")[0][0]
        self.assertGreaterEqual(rows, 1)
        self.assertLess(rows, 3)
        m = re.search(r"interrupted: inserted (\d+) of 6 records; (.*) \(SIGINT stopped the run\)",
                      out)
        self.assertTrue(m, out)
        self.assertEqual(int(m.group(1)), rows)
        self.assertIn("failed: database is locked", m.group(2))
        self.assertRegex(m.group(2), r"\d+ not done$")
        self.assertNotIn("inserted %d of 6 records; " % rows + "none", out)
        # The stopped transaction was rolled back: a writer gets in at once.
        con = sqlite3.connect(self.db, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        finally:
            con.close()

    def test_sigterm_in_safe_stops_the_processes_and_prints_what_landed(self):
        code, out, err = self.interrupt_mp("record 1: inserted", "--mode", "safe",
                                           "--processes", "3", "--records", "2",
                                           "--task-duration", "1", sig=signal.SIGTERM)
        self.assertEqual(code, 143, out + err)
        self.assertIn("SIGTERM: stopping the processes", out)
        rows = self.query("SELECT count(*) FROM direct_readings")[0][0]
        self.assertGreaterEqual(rows, 1)
        self.assertLess(rows, 6)
        self.assertIn("interrupted: inserted %d of 6 records; %d not done (SIGTERM stopped the "
                      "run)" % (rows, 6 - rows), out)

    def test_sigint_in_funnel_stops_the_processes_and_its_consumer_cleanly(self):
        code, out, err = self.interrupt_mp("sent to the consumer", "--mode", "funnel",
                                           "--processes", "3", "--records", "3",
                                           "--task-duration", "1")
        self.assertEqual(code, 130, out + err)
        self.assert_log(out)
        self.assertIn("SIGINT: stopping the processes", out)
        # The consumer was stopped with SIGTERM (so it committed), and its summary shown.
        with open(self.db + ".consumer.log") as f:
            log = f.read()
        self.assertIn("SIGTERM: stopping", log)
        self.assertIn("consumer summary", err)
        pid = int(re.search(r"consumer started \(pid (\d+)\)", out).group(1))
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        rows = self.query("SELECT count(*) FROM readings")[0][0]
        self.assertGreaterEqual(rows, 1)
        self.assertLess(rows, 9)
        self.assertIn("interrupted: inserted %d of 9 records; %d not done (SIGINT stopped the "
                      "run)" % (rows, 9 - rows), out)

    def test_ctrl_c_to_the_process_group_in_funnel_stops_the_consumer_once(self):
        # A terminal's Ctrl-C reaches every process of the group; the consumer, in a group of
        # its own, gets exactly one SIGTERM from the program and exits 0 after committing.
        code, out, err = self.interrupt_mp("sent to the consumer", "--mode", "funnel",
                                           "--processes", "3", "--records", "3",
                                           "--task-duration", "1", group=True)
        self.assertEqual(code, 130, out + err)
        self.assertIn("SIGINT: stopping the processes", out)
        self.assertIn("consumer stopped; its log:", out)
        self.assertNotIn("the consumer exited with status", err)
        with open(self.db + ".consumer.log") as f:
            log = f.read()
        self.assertIn("SIGTERM: stopping", log)
        self.assertNotIn("SIGINT", log)
        rows = self.query("SELECT count(*) FROM readings")[0][0]
        self.assertIn("interrupted: inserted %d of 9 records;" % rows, out)

    def test_usage_errors_name_the_flag(self):
        cases = [(["--mode", "fast"], "--mode"), (["--processes", "0"], "--processes"),
                 (["--records", "x"], "--records"), (["--task-duration", "-1"], "--task-duration"),
                 (["--port", "70000"], "--port"), (["--bogus"], "--bogus"),
                 (["extra"], "extra")]
        for args, flag in cases:
            r = self.run_mp(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(flag, r.stderr, args)
        r = subprocess.run([PROGRAM, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--task-duration", r.stdout)

    def test_consumer_and_port_are_usage_errors_outside_funnel(self):
        # naive and safe never start or reach a consumer: the flags would silently do nothing.
        for mode in ("naive", "safe"):
            for args, flag in ((["--consumer", "/nonexistent"], "--consumer"),
                               (["--port", "9999"], "--port")):
                for order in (["--mode", mode] + args, args + ["--mode", mode]):
                    r = self.run_mp(*order)
                    self.assertEqual(r.returncode, 2, (order, r.stdout, r.stderr))
                    self.assertIn("%s: only with --mode funnel" % flag, r.stderr, order)
                    self.assertEqual(r.stdout, "", order)
        # Default mode is naive.
        r = self.run_mp("--consumer", "/nonexistent")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(self.db), "a usage error must not touch the database")

    def test_funnel_without_consumer_binary_is_a_clear_runtime_error(self):
        missing = os.path.join(self.dir, "no-such-consumer")
        r = self.run_mp("--mode", "funnel", "--consumer", missing)
        self.assertEqual(r.returncode, 1)
        self.assertIn(missing, r.stderr)
        self.assertIn("--consumer", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
