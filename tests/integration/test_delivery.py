"""test_delivery.py -- acknowledged TCP delivery: a consumer SIGKILLed and restarted during a
stream, a consumer that starts after its producer, a refused stream, a CSV file torn inside an
open quote, a progress file naming a long path, or holding lines it never writes: every record
stored exactly once, in out9.txt and in SQLite, and exit codes that tell the truth."""

import csv
import os
import random
import signal
import sqlite3
import time

import harness


def source(path, n):
    """n records with quotes, commas and newlines in some values; returns the rows."""
    rows = [["id", "value"]]
    for i in range(1, n + 1):
        rows.append([str(i), 'q,"%d"\nline' % i if i % 7 == 0 else "v%d" % i])
    harness.write_csv(path, rows, lineterminator="\n")
    return rows


def db_rows(db, table):
    con = sqlite3.connect(db)
    try:
        return [list(r) for r in con.execute('SELECT id, value FROM "%s" ORDER BY _seq' % table)]
    finally:
        con.close()


class DeliveryTest(harness.IntegrationCase):

    def start_consumer(self, port, db):
        return self.consumer("--tcp", "--db", db, port=port, protocols=("tcp",))

    def assert_resumed(self, res_p, stream, n):
        """A producer started again with --resume exited 0, said where the consumer had the
        stream, skipped what it had, and sent the rest: n records in all."""
        self.assertExit(res_p, 0, "the producer started again with --resume")
        self.assertIn("--resume: the consumer has stream '%s' up to #" % stream, res_p.stderr)
        had = res_p.stats["resumed_after"]
        self.assertGreater(had, 0, res_p.describe())
        self.assertEqual(n, had + res_p.stats["acked"], res_p.describe())

    def test_consumer_killed_five_times_every_record_once(self):
        n = 100000
        src = self.path("feed.csv")
        rows = source(src, n)
        db = self.path("feed.db")
        cons = self.start_consumer(None, db)
        port = cons.port
        prod = self.start_producer(src, port, "tcp", ["--rate", "20000"])
        rnd = random.Random(5)
        for _ in range(5):
            time.sleep(rnd.uniform(0.2, 0.8))
            cons.proc.popen.send_signal(signal.SIGKILL)
            cons.proc.wait(10)
            time.sleep(rnd.uniform(0.05, 0.3))
            cons = self.start_consumer(port, db)
        res_p = self.finish_producer(prod, timeout=120)
        self.assertExit(res_p, 0, "producer across five consumer crashes")
        self.assertEqual(n, res_p.stats["acked"], res_p.describe())
        # A kill that comes while the producer still waits for the consumer before is no new
        # reconnect: at least one, at most one per kill.
        self.assertTrue(1 <= res_p.stats["reconnects"] <= 5, res_p.describe())
        res = cons.stop()
        self.assertExit(res, 0, "the last consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()),
                             "out9.txt: every record once, in order, no torn line")
        self.assertEqual(rows[1:], db_rows(db, "feed"), "the table: every record once, in order")

    def test_producer_killed_and_resumed_every_record_once(self):
        n = 60000
        src = self.path("resume.csv")
        rows = source(src, n)
        db = self.path("resume.db")
        cons = self.start_consumer(None, db)
        first = self.start_producer(src, cons.port, "tcp", ["--rate", "20000", "--resume"])
        harness.wait_for_rows(cons.out_path(), 10000, 20, simple=True)
        first[0].popen.send_signal(signal.SIGKILL)
        first[0].wait(10)
        res_p = self.run_producer(src, cons.port, "tcp", ["--rate", "50000", "--resume"])
        self.assert_resumed(res_p, "resume", n)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "out9.txt, each once")
        self.assertEqual(rows[1:], db_rows(db, "resume"), "the table, each once, in order")
        stream = [e for e in res.stats["streams"] if e["stream"] == "resume"]
        self.assertEqual(1, len(stream), res.describe())
        self.assertEqual(n, stream[0]["acked"], "the consumer's JSON: all acknowledged")
        self.assertEqual(0, stream[0]["lost"], res.describe())

    def test_consumer_that_starts_late_gets_everything(self):
        src = self.path("late.csv")
        rows = source(src, 300)
        port = harness.free_port()
        prod = self.start_producer(src, port, "tcp", ["--rate", "200"])
        time.sleep(3)
        cons = self.start_consumer(port, self.path("late.db"))
        res_p = self.finish_producer(prod, timeout=60)
        self.assertExit(res_p, 0, "producer started before its consumer")
        self.assertIn("consumer unreachable (Connection refused), retrying in", res_p.stderr)
        self.assertGreater(res_p.stats["retry_wait_ms"], 2000, res_p.describe())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "everything arrived")

    def test_producer_waits_until_every_record_is_acknowledged(self):
        """Ctrl-C of a consumer whose commits wait behind a locked database: the producer does
        not exit 0 until a later consumer acknowledged everything."""
        src = self.path("locked.csv")
        rows = source(src, 2000)
        db = self.path("locked.db")
        cons = self.start_consumer(None, db)
        port = cons.port
        prod = self.start_producer(src, port, "tcp", ["--rate", "2000"])
        harness.wait_for_rows(cons.out_path(), 100, 10)
        other = sqlite3.connect(db, timeout=5)
        other.execute("BEGIN IMMEDIATE")  # no commit of the consumer gets through now
        time.sleep(0.5)
        cons.proc.popen.send_signal(signal.SIGINT)
        time.sleep(0.3)
        cons.proc.popen.send_signal(signal.SIGINT)  # stop waiting for the lock
        cons.proc.wait(20)
        other.rollback()
        other.close()
        self.assertIsNone(prod[0].popen.poll(), "the producer must not finish before its acks")
        cons = self.start_consumer(port, db)
        res_p = self.finish_producer(prod, timeout=60)
        self.assertExit(res_p, 0, "producer after a second consumer acknowledged the rest")
        res = cons.stop()
        self.assertExit(res, 0, "second consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "out9.txt, each once")
        stored = db_rows(db, "locked")
        # What the first consumer could not commit it saved to DB.uncommitted.csv and never
        # acknowledged: the producer resent it, and the second consumer committed it.
        self.assertEqual(rows[1:], stored, "the table: every record once, in order")
        self.assertTrue(os.path.exists(db + ".uncommitted.csv"), "the first consumer's rescue")

    def test_refused_stream_says_why_and_exits_1(self):
        """A stream the consumer cannot keep (here: standard output holds one header, and this
        stream has another) is refused with a reason frame, never acknowledged and dropped."""
        cons = self.consumer("--tcp", "--out", "-", protocols=("tcp",))
        first = self.path("first.csv")
        harness.write_csv(first, [["a"], ["1"]])
        other = self.path("other.csv")
        harness.write_csv(other, [["b"], ["2"]])
        self.assertExit(self.run_producer(first, cons.port, "tcp", ["--interval", "0"]), 0, "p1")
        res = self.run_producer(other, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(res, 1, "a refused stream")
        self.assertIn("refused the stream: stream other refused", res.stderr, res.describe())
        self.assertEqual(0, res.stats["acked"], res.describe())
        cons.stop()

    def test_torn_tail_inside_an_open_quote_is_cut_back_and_resent(self):
        src = self.path("torn.csv")
        rows = source(src, 500)
        db = self.path("torn.db")
        cons = self.start_consumer(None, db)
        res_p = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(res_p, 0, "first producer")
        res = cons.stop()
        self.assertExit(res, 0, "first consumer")
        # A crash mid-write: bytes past the checkpoint, ending inside an open quote.
        with open(cons.out_path(), "ab") as f:
            f.write(b'501,"half a record, never acknowledged')
        cons = self.start_consumer(cons.port, db)
        self.assertIn("removed 38 bytes written after the last checkpoint", cons.proc.stderr())
        src2 = self.path("torn2.csv")
        more = [["id", "value"], ["x1", "after the cut"]]
        harness.write_csv(src2, more, lineterminator="\n")
        res_p = self.run_producer(src2, cons.port, "tcp", ["--interval", "0", "--stream",
                                                           "torn"])
        self.assertExit(res_p, 0, "second producer")
        res = cons.stop()
        self.assertExit(res, 0, "second consumer")
        got = harness.read_csv(cons.out_path())
        self.assertRowsEqual(rows + more[1:], got, "the torn tail is gone, the file is valid CSV")

    def test_long_out_path_is_cut_back_and_resumed_after_a_restart(self):
        """--out in a deep folder (a path of about 2,500 bytes, each name under 255): the
        progress file names it in hex (twice as long), the restarted consumer reads it back,
        cuts the file to it and tells the producer where to resume."""
        out = os.path.join(self.deep_folder(), "out9.txt")
        self.assertTrue(2400 < len(out) < 4000, len(out))
        n = 60000
        src = self.path("deep.csv")
        rows = source(src, n)
        args = ("--tcp", "--out", out)
        cons = self.consumer(*args, protocols=("tcp",))
        resume = ["--resume", "--id", "deep-feed"]
        first = self.start_producer(src, cons.port, "tcp", ["--rate", "20000"] + resume)
        harness.wait_for_rows(out, 10000, 20, simple=True)
        first[0].popen.send_signal(signal.SIGKILL)
        first[0].wait(10)
        res = cons.stop()
        self.assertExit(res, 0, "first consumer")
        with open(out + ".progress", encoding="ascii") as f:
            self.assertIn("file %s " % out.encode().hex(), f.read())
        # A crash mid-write: bytes past the checkpoint, which the restart must cut off.
        with open(out, "ab") as f:
            f.write(b"99999,never acknowledged\n")
        cons = self.consumer(*args, port=cons.port, protocols=("tcp",))
        self.assertIn("%s: removed 25 bytes written after the last checkpoint" % out,
                      cons.proc.stderr())
        res_p = self.run_producer(src, cons.port, "tcp", ["--rate", "50000"] + resume)
        self.assert_resumed(res_p, "deep", n)
        res = cons.stop()
        self.assertExit(res, 0, "second consumer")
        self.assertRowsEqual(rows, harness.read_csv(out), "the deep out9.txt, each record once")

    def deep_folder(self):
        """A folder whose path has about 2,400 bytes, each name under 255."""
        deep = self.dir
        for i in range(12):
            deep = os.path.join(deep, "level%02d-%s" % (i, "x" * 192))
        os.makedirs(deep)
        return deep

    def test_progress_file_lines_it_never_writes_are_refused_naming_the_line(self):
        """Each of these lines (after a valid one) stops the consumer at the start, naming the
        progress file and the line, and nothing is cut; under a long path too."""
        name = b"out9.txt".hex()
        long_path = ("/" + "d" * 200) * 21  # 4,221 bytes: longer than any path it records
        bad = ["file", "file zz 12", "file %s" % name, "file %s 12 more" % name,
               "file %s -1" % name, "file %s +1" % name, "file %s 0x1" % name,
               "file %s 18446744073709551616" % name, "file 6 12", "file 006f 12",
               "file %s 12" % long_path.encode().hex(), "stream 01 %s" % name,
               "stream 01 %s 5 ended" % name, "stream 01 %s 5 ended 1 2" % name,
               "stream 01 %s 5 done 1" % name, "stream 01234567890abcdef %s 5" % name,
               "stream -1 %s 5" % name, "stream 01 %s x" % name, "hello",
               "file %s 1%s" % (name, "0" * 9000)]
        deep_out = os.path.join(self.deep_folder(), "out9.txt")
        for out, line in [("out9.txt", line) for line in bad] + [(deep_out, bad[1])]:
            with open(self.path(out), "wb") as f:
                f.write(b"a\n1\n")
            with open(self.path(out + ".progress"), "w", encoding="ascii") as f:
                f.write("csvstream-progress 1\nstream 00000000000000ab %s 2\n%s\n"
                        % (name, line))
            res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port",
                                    str(harness.free_port()), "--tcp", "--out", out],
                                   timeout=10)
            self.assertExit(res, 1, "a progress file with the line %r" % line[:80])
            self.assertIn("--out: %s.progress:3: not a line of a progress file" % out,
                          res.stderr, res.describe())
            self.assertEqual(4, os.path.getsize(self.path(out)), res.describe())

    def test_retry_0_fails_at_once(self):
        src = self.path("a.csv")
        source(src, 3)
        t0 = time.monotonic()
        res = self.run_producer(src, harness.free_port(), "tcp", ["--retry", "0"])
        self.assertExit(res, 1, "--retry 0 with no consumer")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("connection refused (is the consumer running?", res.stderr)


    def test_max_records_acknowledges_what_it_stored_before_it_closes(self):
        """--max-records 10: the ten records the consumer wrote are acknowledged before it
        closes the connection, so the producer keeps (and would resend) only the rest."""
        src = self.path("a.csv")
        source(src, 48)
        cons = self.consumer("--tcp", "--max-records", "10", protocols=("tcp",))
        res_p = self.run_producer(src, cons.port, "tcp", ["--interval", "0", "--retry", "0"])
        cons.proc.wait(30)  # it stops by itself; a signal now could reach it in its last steps
        res = cons.stop()
        self.assertExit(res, 0, "consumer that stopped at --max-records")
        self.assertEqual(10, len(harness.read_csv(cons.out_path())) - 1)
        self.assertExit(res_p, 1, "producer with records not acknowledged")
        self.assertEqual(10, res_p.stats["acked"], res_p.describe())
        self.assertIn("10 acknowledged, 38 not acknowledged", res_p.stderr, res_p.describe())

if __name__ == "__main__":
    harness.main()
