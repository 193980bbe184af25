"""test_db_lock.py -- issue 4: another process holding the database's write lock for 4 s
mid-stream loses nothing (out9.txt stays current, rows land once after release, one warning),
and the consumer never keeps the lock from others for a second."""

import os
import re
import signal
import sqlite3
import time

import harness

LOCK_LINE = re.compile(r"(?i)(?<!un)locked|\bbusy\b")  # "unlocked: caught up" is not a warning


def rows_text(n):
    """A count of rows as the consumer words it: "1 row", "1,600 rows"."""
    return "{:,} {}".format(n, "row" if n == 1 else "rows")


def rows_in(db):
    if not os.path.exists(db):
        return 0  # never let sqlite3.connect create it first
    tables = harness.db_tables(db)
    if not tables:
        return 0
    return sum(harness.db_query(db, "SELECT count(*) FROM %s" % harness.quote_ident(t))[0][0]
               for t in tables)


class DbLockTest(harness.IntegrationCase):

    def check_db(self, db, rows, res):
        tables = harness.db_tables(db)
        self.assertEqual(len(tables), 1, "tables %r" % tables)
        got = harness.db_query(db, "SELECT _seq, name FROM %s ORDER BY _seq, rowid"
                               % harness.quote_ident(tables[0]))
        self.assertEqual(len(got), len(rows), "rows in the database\n" + res.describe())
        self.assertEqual([g[0] for g in got], list(range(1, len(rows) + 1)),
                         "each record exactly once\n" + res.describe())
        self.assertEqual([g[1] for g in got], [r[1] for r in rows], "values")

    def test_outside_lock_for_4s_loses_nothing(self):
        n = 1600  # 8 s at 200 records/s
        src = self.path("lock.csv")
        rows = harness.simple_csv(src, n)
        db = self.path("lock.db")
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        started = self.start_producer(src, cons.port, "tcp", ["--rate", "200", "--quiet"])
        # Wait until the consumer has created its table and committed rows.
        self.assertTrue(harness.wait_until(lambda: rows_in(db) > 50, 10),
                        "no rows committed after 10 s\n" + cons.proc.stderr())
        con = sqlite3.connect(db, isolation_level=None, timeout=2.0)
        try:
            t0 = time.monotonic()
            con.execute("BEGIN IMMEDIATE")
            got_lock = time.monotonic() - t0
            time.sleep(0.3)
            lines_at_start = harness.count_lines(cons.out_path())
            committed_at_start = rows_in(db)  # a reader still sees the last commit (WAL)
            time.sleep(3.4)
            lines_at_end = harness.count_lines(cons.out_path())
            committed_at_end = rows_in(db)
            time.sleep(0.3)
        finally:
            con.execute("ROLLBACK")
            con.close()
        self.assertLess(got_lock, 1.0, "BEGIN IMMEDIATE waited %.2f s for the consumer" % got_lock)
        self.assertGreaterEqual(lines_at_end - lines_at_start, 400,
                                "out9.txt must keep growing while the database is locked: %d -> "
                                "%d lines in 3.4 s" % (lines_at_start, lines_at_end))
        self.assertEqual(committed_at_end, committed_at_start,
                         "rows were committed while another process held the write lock?")
        prod = self.finish_producer(started, timeout=30)
        self.assertExit(prod, 0, "producer")
        harness.wait_for_rows(cons.out_path(), n + 1, 10, simple=True)
        harness.wait_until(lambda: rows_in(db) >= n, 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.check_db(db, rows, res)
        self.assertEqual((res.stats["db"]["committed"], res.stats["db"]["pending"]), (n, 0),
                         res.describe())
        self.assertGreater(res.stats["db"]["busy_retries"], 0, res.describe())
        warnings = [l for l in res.stderr.splitlines() if LOCK_LINE.search(l)]
        self.assertEqual(len(warnings), 1, "the consumer should log one warning about the lock, "
                         "not one per retry:\n%s" % "\n".join(warnings))

    def test_outside_writer_gets_the_lock_within_a_second(self):
        n = 10000  # 5 s at 2000 records/s
        src = self.path("busy.csv")
        rows = harness.simple_csv(src, n)
        db = self.path("busy.db")
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        started = self.start_producer(src, cons.port, "tcp", ["--rate", "2000", "--quiet"])
        self.assertTrue(harness.wait_until(lambda: rows_in(db) > 0, 10),
                        "no rows committed after 10 s\n" + cons.proc.stderr())
        waits = []
        con = sqlite3.connect(db, isolation_level=None, timeout=1.0)
        try:
            for _ in range(10):
                t0 = time.monotonic()
                try:
                    con.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    self.fail("outside BEGIN IMMEDIATE failed after %.2f s: %s" % (
                        time.monotonic() - t0, e))
                waits.append(time.monotonic() - t0)
                con.execute("ROLLBACK")
                time.sleep(0.2)
        finally:
            con.close()
        self.assertLess(max(waits), 1.0, "waits for the lock: %r" % waits)
        prod = self.finish_producer(started, timeout=30)
        self.assertExit(prod, 0, "producer")
        harness.wait_for_rows(cons.out_path(), n + 1, 10, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.check_db(db, rows, res)

    def test_second_ctrl_c_stops_the_wait_for_a_locked_database(self):
        n = 100000  # far more than the test lets it send at 500 records/s
        src = self.path("stop.csv")
        harness.simple_csv(src, n)
        db = self.path("stop.db")
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        self.start_producer(src, cons.port, "tcp", ["--rate", "500", "--quiet"])
        self.assertTrue(harness.wait_until(lambda: rows_in(db) > 50, 10),
                        "no rows committed after 10 s\n" + cons.proc.stderr())
        con = sqlite3.connect(db, isolation_level=None, timeout=2.0)
        try:
            con.execute("BEGIN IMMEDIATE")
            time.sleep(0.5)  # rows queue up in the consumer meanwhile
            cons.proc.popen.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            said = harness.wait_until(
                lambda: "Ctrl-C again to stop waiting" in cons.proc.stderr(), 5)
            said_after = time.monotonic() - t0
            self.assertTrue(said, "after SIGINT with the database locked, the consumer must say "
                            "at once that it waits for the lock\n" + cons.proc.stderr())
            self.assertLess(said_after, 2.0, "it said so only after %.1f s" % said_after)
            self.assertTrue(cons.proc.running(), "the consumer should still wait for the lock")
            cons.proc.popen.send_signal(signal.SIGINT)
            t1 = time.monotonic()
            rc = cons.proc.wait(8)
            stopped_after = time.monotonic() - t1
        finally:
            con.execute("ROLLBACK")
            con.close()
        res = harness.Result(rc, cons.proc.stderr(), harness.load_json(cons.stats_path),
                             time.monotonic() - cons.proc.started, cons.argv, cons.proc.stdout())
        self.assertLess(stopped_after, 3.0, "the second SIGINT took %.1f s\n%s"
                        % (stopped_after, res.describe()))
        self.assertExit(res, 1, "consumer stopped while rows were not committed")
        self.assertIn("consumer summary", res.stdout, res.describe())
        self.assertRegex(res.stderr, r"database \S+: [\d,]+ rows? not committed", res.describe())
        self.assertIsNotNone(res.stats, res.describe())
        pending = res.stats["db"]["pending"]
        self.assertGreater(pending, 0, res.describe())
        self.assertIn("%s not committed" % rows_text(pending), res.stderr, res.describe())
        # Every record received is in out9.txt, the rows not committed included.
        out_rows = len(harness.read_csv(cons.out_path())) - 1
        self.assertEqual(out_rows, res.stats["db"]["committed"] + pending, res.describe())

    def test_lock_released_during_the_stop_wait_says_what_it_committed(self):
        n = 100000  # far more than the test lets it send at 500 records/s
        src = self.path("release.csv")
        harness.simple_csv(src, n)
        db = self.path("release.db")
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        self.start_producer(src, cons.port, "tcp", ["--rate", "500", "--quiet"])
        self.assertTrue(harness.wait_until(lambda: rows_in(db) > 50, 10),
                        "no rows committed after 10 s\n" + cons.proc.stderr())
        waiting = re.compile(r"waiting up to 10 s to commit ([\d,]+) rows?")
        con = sqlite3.connect(db, isolation_level=None, timeout=2.0)
        try:
            con.execute("BEGIN IMMEDIATE")
            time.sleep(0.5)
            cons.proc.popen.send_signal(signal.SIGINT)
            self.assertTrue(harness.wait_until(lambda: waiting.search(cons.proc.stderr()), 5),
                            cons.proc.stderr())
            time.sleep(1.0)
        finally:
            con.execute("ROLLBACK")
            con.close()
        rc = cons.proc.wait(10)
        res = harness.Result(rc, cons.proc.stderr(), harness.load_json(cons.stats_path),
                             time.monotonic() - cons.proc.started, cons.argv)
        self.assertExit(res, 0, "consumer")
        pending = int(waiting.search(res.stderr).group(1).replace(",", ""))
        self.assertIn("database unlocked: committed %s after waiting" % rows_text(pending),
                      res.stderr,
                      res.describe())
        self.assertEqual(res.stderr.count("database unlocked"), 1, res.describe())
        self.assertEqual(res.stats["db"]["pending"], 0, res.describe())
        out_rows = len(harness.read_csv(cons.out_path())) - 1
        self.assertEqual(rows_in(db), out_rows, res.describe())

    def test_rows_not_committed_are_saved_next_to_the_database(self):
        n = 100000  # far more than the test lets it send at 500 records/s
        src = self.path("save.csv")
        rows = harness.simple_csv(src, n)
        db = self.path("save.db")
        saved_path = db + ".uncommitted.csv"
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        self.start_producer(src, cons.port, "tcp", ["--rate", "500", "--quiet"])
        self.assertTrue(harness.wait_until(lambda: rows_in(db) > 50, 10),
                        "no rows committed after 10 s\n" + cons.proc.stderr())
        con = sqlite3.connect(db, isolation_level=None, timeout=2.0)
        try:
            con.execute("BEGIN IMMEDIATE")  # held past the consumer's whole wait
            time.sleep(0.5)
            cons.proc.popen.send_signal(signal.SIGINT)
            self.assertTrue(harness.wait_until(
                lambda: "Ctrl-C again to stop waiting" in cons.proc.stderr(), 5),
                cons.proc.stderr())
            cons.proc.popen.send_signal(signal.SIGINT)
            rc = cons.proc.wait(8)
        finally:
            con.execute("ROLLBACK")
            con.close()
        res = harness.Result(rc, cons.proc.stderr(), harness.load_json(cons.stats_path),
                             time.monotonic() - cons.proc.started, cons.argv)
        self.assertExit(res, 1, "consumer stopped while rows were not committed")
        pending = res.stats["db"]["pending"]
        self.assertGreater(pending, 0, res.describe())
        self.assertIn("%s not committed: saved to %s" % (rows_text(pending), saved_path),
                      res.stderr,
                      res.describe())
        # The rows missing from the database: in out9.txt, not in the table.
        table = harness.db_tables(db)[0]
        in_db = set(r[0] for r in harness.db_query(db, "SELECT _seq FROM %s"
                                                   % harness.quote_ident(table)))
        out = harness.read_csv(cons.out_path())[1:]
        missing = [r for r in out if int(r[0]) not in in_db]
        self.assertEqual(len(missing), pending, res.describe())
        saved = harness.read_csv(saved_path)
        self.assertEqual(saved[0], ["table", "_producer", "_protocol", "_seq", "_sent_us",
                                    "_received_us", "_peer"])
        self.assertRowsEqual(missing, [r[7:] for r in saved[1:]], saved_path + " values")
        entry = harness.stream_entries(res.stats, "tcp")[0]
        for r in saved[1:]:
            self.assertEqual(r[:3], [table, entry["producer_id"], "tcp"], r)
            self.assertEqual(r[6], entry["peer"], r)
            self.assertEqual(rows[int(r[3]) - 1], r[7:], "_seq %s names its record" % r[3])
            self.assertLessEqual(int(r[4]), int(r[5]), "sent before received: %r" % r)
        # A later run that saves again appends: one header, the earlier rows kept.
        before = len(saved)
        cons2 = self.consumer("--tcp", "--db", db, protocols=("tcp",), name="consumer2")
        self.start_producer(src, cons2.port, "tcp", ["--rate", "500", "--quiet"])
        self.assertTrue(harness.wait_until(
            lambda: harness.count_lines(cons2.out_path()) > len(out) + 100, 10),
            cons2.proc.stderr())
        con = sqlite3.connect(db, isolation_level=None, timeout=2.0)
        try:
            con.execute("BEGIN IMMEDIATE")
            time.sleep(0.5)
            cons2.proc.popen.send_signal(signal.SIGINT)
            self.assertTrue(harness.wait_until(
                lambda: "Ctrl-C again to stop waiting" in cons2.proc.stderr(), 5),
                cons2.proc.stderr())
            cons2.proc.popen.send_signal(signal.SIGINT)
            self.assertEqual(cons2.proc.wait(8), 1, cons2.proc.stderr())
        finally:
            con.execute("ROLLBACK")
            con.close()
        again = harness.read_csv(saved_path)
        self.assertEqual(again[:before], saved, "the first run's rows are kept")
        self.assertGreater(len(again), before, cons2.proc.stderr())
        self.assertNotIn(saved[0], again[1:], "one header line")


if __name__ == "__main__":
    harness.main()
