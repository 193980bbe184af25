"""test_replay.py -- replay on the file's own clock: 50 records one minute apart at --speed 600
arrive 0.1 s apart (the median of the gaps the consumer stamped, within 20%); --loop=2 plays
the file twice and its clock starts again; standard input replays too, and a value that does
not parse is warned about with its line; the flags that do not go together are usage errors."""

import os
import sqlite3
import statistics
import subprocess

import harness

ROWS = 50


def minute_rows(n, start_minute=0):
    """Made-up sensor readings one minute apart, ISO 8601 with a zone."""
    rows = []
    for i in range(n):
        m = start_minute + i
        rows.append(["2026-03-29T%02d:%02d:00+02:00" % (m // 60, m % 60), "s%d" % i,
                     "%.1f" % (20 + i / 10)])
    return rows


def received_gaps(db, table):
    """Seconds between consecutive records as the consumer stamped their arrival."""
    con = sqlite3.connect(db)
    try:
        times = [r[0] for r in con.execute(
            'SELECT _received_us FROM "%s" ORDER BY _seq' % table)]
    finally:
        con.close()
    return [(b - a) / 1e6 for a, b in zip(times, times[1:])], len(times)


class ReplayTest(harness.IntegrationCase):

    def test_speed_600_minutes_arrive_a_tenth_of_a_second_apart(self):
        src = self.path("sensor.csv")
        harness.write_csv(src, [["time", "sensor", "value"]] + minute_rows(ROWS))
        db = self.path("r.db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port, args=["--timestamps", "time", "--speed", "600"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        gaps, n = received_gaps(db, "sensor")
        self.assertEqual(ROWS, n)
        # The median is robust to a few gaps stretched by a busy machine (and the records that
        # then catch up): the pace is on absolute deadlines, so it does not drift.
        median = statistics.median(gaps)
        self.assertTrue(0.08 <= median <= 0.12,
                        "median gap %.4f s, want 0.1 s +-20%%; gaps: %s" % (
                            median, ", ".join("%.3f" % g for g in gaps)))
        self.assertIn("--timestamps 'time': ISO 8601 date-times", prod.stderr)
        self.assertIn("replayed 49 min 00 s of file time", prod.stdout)
        self.assertAlmostEqual(49 * 60, prod.stats["replay"]["file_time_s"], places=3)
        real = prod.stats["replay"]["real_time_s"]
        self.assertTrue(4.9 * 0.8 <= real <= 4.9 * 1.5, "real time %.3f s" % real)

    def test_loop_twice_restarts_the_clock(self):
        src = self.path("loop.csv")
        harness.write_csv(src, [["t", "v"]] + [[str(1000 + i), str(i)] for i in range(10)])
        db = self.path("l.db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port,
                                 args=["--timestamps", "t", "--speed", "100", "--loop=2"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        gaps, n = received_gaps(db, "loop")
        self.assertEqual(20, n)
        self.assertEqual(20, prod.stats["sent"])
        self.assertEqual(0, prod.stats["replay"]["bad_values"])  # a new pass is not "back"
        self.assertNotIn("goes back", prod.stderr)
        self.assertIn("epoch seconds", prod.stderr)
        self.assertAlmostEqual(18.0, prod.stats["replay"]["file_time_s"], places=3)

    def test_stdin_and_a_bad_value(self):
        text = "id,ms\r\n1,1700000000000\r\n2,soon\r\n3,1700000000050\r\n4,1699999999000\r\n"
        cons = self.consumer()
        argv, stats_path = self.producer_argv("-", cons.port, args=[
            "--timestamps", "ms", "--max-gap", "0.5"])
        run = subprocess.run(argv, input=text.encode(), cwd=self.dir, capture_output=True,
                             timeout=60)
        res = cons.stop()
        err = run.stderr.decode()
        self.assertEqual(0, run.returncode, err)
        self.assertExit(res, 0, "consumer")
        self.assertIn("<stdin>:3: 'soon' in 'ms' is not epoch milliseconds", err)
        self.assertIn("<stdin>:5: '1699999999000' goes back 1.050 s in time", err)
        stats = harness.load_json(stats_path)
        self.assertEqual(4, stats["sent"])
        self.assertEqual(2, stats["replay"]["bad_values"])
        rows = harness.read_csv(cons.out_path())
        self.assertEqual(["1", "2", "3", "4"], [r[0] for r in rows[1:]])

    def test_usage_errors(self):
        src = self.path("u.csv")
        harness.write_csv(src, [["t"], ["1"]])
        cases = [
            (["--speed", "2"], "--speed and --max-gap work with --timestamps"),
            (["--timestamps", "t", "--rate", "5"], "pick one way to pace"),
            (["--loop=0"], "--loop: '0' is out of range"),
            (["--encoding", "no-such-thing"], "--encoding: 'no-such-thing'"),
            (["--delimiter", "ab"], "--delimiter: 'ab' is not one character"),
            (["--comment", ",", "--delimiter", ","], "cannot be both"),
            (["--timestamps", "nope"], "has no column 'nope'"),
        ]
        for args, want in cases:
            argv, _ = self.producer_argv(src, 9, args=args, stats=False)
            r = self.run_program(argv)
            self.assertExit(r, 2, " ".join(args))
            self.assertIn(want, r.stderr)


if __name__ == "__main__":
    harness.main()
