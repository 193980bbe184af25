"""test_stop_signals.py -- signals in the consumer's clean stop: SIGTERMs (or SIGHUPs) sent
without pause from the moment the stop begins until the process is gone, so that some arrive in
its last steps (after the loop closed its signal handles), change nothing: it drains, prints its
summary, writes its --stats-json and exits 0."""

import os
import signal
import sqlite3
import time
import harness

ROUNDS = 5  # the last steps take microseconds: a round that misses them passes anyway
BURST_SECONDS = 20  # a consumer that still runs after this long under the signals fails


def source(path, n):
    rows = [["id", "value"]] + [[str(i), "v%d" % i] for i in range(1, n + 1)]
    harness.write_csv(path, rows, lineterminator="\n")
    return rows


def db_count(db, table):
    con = sqlite3.connect(db)
    try:
        return con.execute('SELECT count(*) FROM "%s"' % table).fetchone()[0]
    finally:
        con.close()


def sigint(cons):
    """Begin the stop with a SIGINT once the consumer has some records, and wait until it has
    taken it: a SIGHUP pending with it would be delivered first (the lower number), again and
    again, and the SIGINT never while they keep coming."""
    harness.wait_for_rows(cons.out_path(), 2000, 20, simple=True)
    cons.proc.popen.send_signal(signal.SIGINT)
    harness.wait_until(lambda: "SIGINT: stopping" in cons.proc.stderr() or
                       not cons.proc.running(), 20, interval=0.001)


class StopSignalsTest(harness.IntegrationCase):

    def signal_until_exit(self, proc, signum):
        """Send signum to proc as fast as possible until it exits (at most BURST_SECONDS).
        Returns (exit code, signals sent). poll() reaps the process, so no signal can reach a
        process that took its pid."""
        sent = 0
        deadline = time.monotonic() + BURST_SECONDS
        while proc.popen.poll() is None:
            if sent % 1024 == 0 and time.monotonic() > deadline:
                self.fail("the consumer still runs after %d s and %d %s" % (
                    BURST_SECONDS, sent, signal.Signals(signum).name))
            try:
                os.kill(proc.pid, signum)
            except ProcessLookupError:
                break
            sent += 1
        return proc.wait(30), sent

    def stop_under_signals(self, round_dir, args, begin_stop, signum=signal.SIGTERM):
        """A consumer (CSV file and SQLite: a drain long enough for the burst to be under way at
        its end) fed by a producer until begin_stop(consumer) returns, then sent signum until it
        exits; asserts a clean stop and returns the consumer's Result."""
        os.mkdir(round_dir)
        src = os.path.join(round_dir, "feed.csv")
        source(src, 30000)
        cons = self.consumer("--tcp", "--db", "feed.db", *args, dir=round_dir, protocols=("tcp",))
        prod = self.start_producer(src, cons.port, "tcp", ["--interval", "0", "--retry", "0"])
        begin_stop(cons)
        rc, sent = self.signal_until_exit(cons.proc, signum)
        self.finish_producer(prod)
        res = harness.Result(rc, cons.proc.stderr(), harness.load_json(cons.stats_path), 0,
                             cons.argv, cons.proc.stdout())
        self.assertExit(res, 0, "%d %s from the stop's start to the exit"
                        % (sent, signal.Signals(signum).name))
        self.assertIn("consumer summary", res.stdout, res.describe())
        self.assertIsNotNone(res.stats, "no --stats-json document\n" + res.describe())
        return res

    def test_sigterms_after_a_sigint_exit_0_with_the_summary(self):
        for i in range(ROUNDS):
            res = self.stop_under_signals(self.path("round%d" % i), [], sigint)
            self.assertIn("SIGINT: stopping", res.stderr, res.describe())

    def test_sighups_after_a_sigint_exit_0_with_the_summary(self):
        for i in range(ROUNDS):
            res = self.stop_under_signals(self.path("round%d" % i), [], sigint, signal.SIGHUP)
            self.assertIn("SIGINT: stopping", res.stderr, res.describe())

    def test_sigterms_in_a_max_records_stop_exit_0_with_the_summary(self):
        def reached(cons):
            line = "--max-records 20,000 reached: stopping"
            harness.wait_until(lambda: line in cons.proc.stderr() or not cons.proc.running(),
                               20, interval=0.001)

        for i in range(ROUNDS):
            d = self.path("round%d" % i)
            res = self.stop_under_signals(d, ["--max-records", "20000"], reached)
            self.assertEqual(20000, res.stats["tcp"]["received"], res.describe())
            self.assertEqual(20000, res.stats["out"]["records"], res.describe())
            self.assertEqual(20001, len(harness.read_csv(os.path.join(d, "out9.txt"))))
            self.assertEqual(20000, db_count(os.path.join(d, "feed.db"), "feed"))


if __name__ == "__main__":
    harness.main()
