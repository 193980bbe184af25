"""test_producer_waits.py -- a producer that waits for a consumer that is up but holds its
acknowledgements (another process holds its database's write lock): it says so every few
seconds, its summary and --stats-json tell that wait from backpressure, and the wait counts
toward --retry, as the README says."""

import re
import signal
import sqlite3
import subprocess
import sys
import time

import harness

WAIT_LINE = re.compile(r"warning: ([\d,]+) records? waiting for the consumer's acknowledgement "
                       r"at 127\.0\.0\.1:\d+/tcp, none for (\d+) s")


class ProducerWaits(harness.IntegrationCase):

    def locked_db(self, db, seconds):
        """Hold db's write lock for seconds in another process, once its table exists; returns
        the process (it holds the lock once it printed a line)."""
        code = ("import sqlite3, sys, time\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "time.sleep(float(sys.argv[2]))\n")
        holder = subprocess.Popen([sys.executable, "-c", code, db, str(seconds)],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.stdout.close)
        self.addCleanup(holder.kill)
        self.assertEqual("locked\n", holder.stdout.readline(), "the lock holder")
        return holder

    def consumer_with_table(self, src, db):
        """A TCP consumer writing db, its table made by one whole run of the producer."""
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        first = self.run_producer(src, cons.port, "tcp", ["-q", "-i", "0"])
        self.assertExit(first, 0, "the run that makes the table")
        return cons

    def test_held_acknowledgements_are_said_and_summarised_apart(self):
        src = self.path("temps.csv")
        harness.simple_csv(src, 48)
        db = self.path("x.db")
        cons = self.consumer_with_table(src, db)
        holder = self.locked_db(db, 11.5)
        res = self.run_producer(src, cons.port, "tcp", ["-i", "0"],
                                timeout=60)
        holder.wait(10)
        self.assertExit(res, 0, "the producer once the lock was released")
        lines = [m for m in map(WAIT_LINE.search, res.stderr.splitlines()) if m]
        # 11.5 s held: a line after 5 s and one after 10 s, never one per record or per poll.
        self.assertEqual(2, len(lines), res.describe())
        self.assertEqual(["48", "48"], [m.group(1) for m in lines], res.describe())
        self.assertEqual([5, 10], [int(m.group(2)) for m in lines], res.describe())
        self.assertGreaterEqual(res.stats["ack_wait_ms"], 10000, res.describe())
        self.assertLess(res.stats["blocked_ms"], 1000, "not backpressure: " + res.describe())
        summary = [ln for ln in res.stdout.splitlines() if ln.startswith("summary: connection")]
        self.assertEqual(1, len(summary), res.describe())
        m = re.search(r"waited ([\d,]+) ms for the consumer to read \(backpressure\), ([\d,]+) ms "
                      r"for its acknowledgements;", summary[0])
        self.assertIsNotNone(m, summary[0])
        self.assertEqual(res.stats["ack_wait_ms"], int(m.group(2).replace(",", "")), summary[0])
        self.assertExit(cons.stop(), 0, "consumer")

    def test_a_held_wait_counts_toward_retry(self):
        # --retry counts from the last acknowledgement (or connection): acknowledgements held
        # for 4 s, then the consumer killed, and --retry 2 is used up already. The producer
        # says so with the records it still has and exits 1; it drops none silently.
        src = self.path("temps.csv")
        harness.simple_csv(src, 48)
        db = self.path("x.db")
        cons = self.consumer_with_table(src, db)
        self.locked_db(db, 6)
        started = self.start_producer(src, cons.port, "tcp", ["-i", "0", "--retry", "2"])
        time.sleep(4.0)
        self.assertTrue(started[0].running(), "still waiting: " + started[0].stderr())
        cons.proc.popen.send_signal(signal.SIGKILL)
        cons.proc.wait(10)
        res = self.finish_producer(started, timeout=30)
        self.assertExit(res, 1, "the producer whose consumer went away after holding its acks")
        self.assertIn("gave up reconnecting after 2 s without progress (--retry), 48 records "
                      "not acknowledged", res.stderr, res.describe())
        self.assertEqual(0, res.stats["acked"], res.describe())

if __name__ == "__main__":
    harness.main()
