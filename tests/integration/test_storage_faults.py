"""test_storage_faults.py -- storage that goes away while the consumer writes: a deleted
out9.txt or database is noticed within about a second (a deleted out9.txt at its next write,
before anything more is acknowledged), named, counted and ends in exit 1; SIGHUP reopens the CSV
files (the logrotate convention) and hands what a deleted file held to the new one, and a file
moved away and reopened loses nothing."""

import os
import signal
import time

import harness


class StorageFaultTest(harness.IntegrationCase):

    def source(self, n):
        rows = [["id", "value"]] + [[str(i), "v%d" % i] for i in range(1, n + 1)]
        path = self.path("src.csv")
        harness.write_csv(path, rows, lineterminator="\n")
        return path, rows

    def wait_log(self, cons, text, timeout=5):
        harness.wait_until(lambda: text in cons.proc.stderr(), timeout)
        self.assertIn(text, cons.proc.stderr())

    def test_deleted_out9_is_loud_and_sighup_reopens_it(self):
        src, rows = self.source(400)
        cons = self.consumer("--tcp", protocols=("tcp",))
        prod = self.start_producer(src, cons.port, "tcp", ["--rate", "200"])
        harness.wait_for_rows(cons.out_path(), 100, 10)
        os.remove(cons.out_path())
        self.wait_log(cons, "out9.txt was deleted while the consumer writes it")
        time.sleep(0.3)
        cons.proc.popen.send_signal(signal.SIGHUP)
        self.wait_log(cons, "SIGHUP: reopened")
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "producer")
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 1, "consumer after its out9.txt was deleted")
        after = harness.read_csv(cons.out_path())
        self.assertEqual(["id", "value"], after[0], "the new out9.txt starts with the header")
        lost = res.stats["out"]["lost"]
        self.assertGreater(lost, 0, res.describe())
        # What the deleted file had when it went is gone; every record after it is in the new
        # file, once and in order: those written to the deleted file before the SIGHUP were
        # held (not acknowledged) and handed over.
        self.assertEqual(rows[1 + lost:], after[1:], res.describe())
        self.assertEqual(0, res.stats["out"]["held"], res.describe())
        self.assertIn("records were written to a CSV file that was deleted", res.stderr)
        self.assertIn("in the file when it was deleted (acknowledged before)", res.stdout)
        self.assertIn("written after it was deleted are in the new file", res.stderr)

    def test_deleted_out9_holds_the_acknowledgements(self):
        """Records that go into a deleted out9.txt are not acknowledged: without a SIGHUP the
        producer still has them at the end, says so and exits 1, and the consumer too."""
        src, rows = self.source(400)
        cons = self.consumer("--tcp", protocols=("tcp",))
        prod = self.start_producer(src, cons.port, "tcp", ["--rate", "200", "--retry", "2"])
        harness.wait_for_rows(cons.out_path(), 100, 10)
        os.remove(cons.out_path())
        self.wait_log(cons, "out9.txt was deleted while the consumer writes it")
        harness.wait_until(lambda: "stream src ended" in cons.proc.stderr(), 10)
        time.sleep(0.5)
        res = cons.stop()
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res, 1, "consumer after its out9.txt was deleted")
        self.assertExit(res_p, 1, "producer whose last records were never acknowledged")
        out = res.stats["out"]
        self.assertGreater(out["held"], 0, res.describe())
        self.assertEqual(len(rows) - 1, out["lost"] + out["held"], res.describe())
        self.assertIn("came after a CSV file was deleted and are not on disk", res.stderr)
        acked = res_p.stats["acked"]
        self.assertEqual(out["lost"], acked,
                         "only what was in the file when it was deleted was acknowledged: "
                         + res_p.describe())

    def test_progress_file_that_cannot_be_made_fails_at_start(self):
        """The progress file's spare is made at the start: where it cannot be (here a folder
        is in its way; a read-only folder does the same for a user who is not root) the
        consumer says so and exits 1 before it listens, not after records came."""
        os.mkdir(self.path("out9.txt.progress.tmp"))
        res = self.run_program([harness.CONSUMER, "--host", "127.0.0.1", "--port",
                                str(harness.free_port())], timeout=10)
        self.assertExit(res, 1, "consumer without a progress file")
        self.assertIn("cannot make the progress file's spare", res.stderr, res.describe())
        self.assertNotIn("listening on", res.stderr, res.describe())

    def test_out9_deleted_before_its_first_record_gets_one_header(self):
        src, rows = self.source(30)
        cons = self.consumer("--tcp", protocols=("tcp",))
        os.remove(cons.out_path())
        prod = self.start_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.wait_log(cons, "out9.txt was deleted while the consumer writes it")
        cons.proc.popen.send_signal(signal.SIGHUP)
        self.wait_log(cons, "SIGHUP: reopened")
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "producer, acknowledged after the SIGHUP")
        res = cons.stop()
        self.assertExit(res, 0, "nothing acknowledged was lost")
        self.assertEqual(rows, harness.read_csv(cons.out_path()), "one header, every record once")

    def test_out9_deleted_and_sighup_at_once_counts_what_was_in_it(self):
        src, rows = self.source(40)
        cons = self.consumer("--tcp", protocols=("tcp",))
        res_p = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(res_p, 0, "producer")
        os.remove(cons.out_path())
        cons.proc.popen.send_signal(signal.SIGHUP)  # before the once-a-second look
        self.wait_log(cons, "out9.txt was deleted while the consumer writes it")
        res = cons.stop()
        self.assertExit(res, 1, "the acknowledged records in the deleted file are gone")
        self.assertEqual(40, res.stats["out"]["lost"], res.describe())

    def test_moved_out9_and_sighup_lose_nothing(self):
        src, rows = self.source(400)
        cons = self.consumer("--tcp", protocols=("tcp",))
        prod = self.start_producer(src, cons.port, "tcp", ["--rate", "200"])
        harness.wait_for_rows(cons.out_path(), 100, 10)
        rotated = cons.out_path() + ".1"
        os.rename(cons.out_path(), rotated)
        self.wait_log(cons, "out9.txt was moved or replaced")
        cons.proc.popen.send_signal(signal.SIGHUP)
        self.wait_log(cons, "SIGHUP: reopened")
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "producer")
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer after a logrotate-style move and SIGHUP")
        old, new = harness.read_csv(rotated), harness.read_csv(cons.out_path())
        self.assertEqual(["id", "value"], new[0], "the new file has its header")
        self.assertRowsEqual(rows, old + new[1:], "the two files together, each record once")

    def test_progress_file_follows_every_write_and_cuts_back_at_restart(self):
        first = self.path("first.csv")
        harness.write_csv(first, [["id", "value"], ["0", "v0"]], lineterminator="\n")
        src, rows = self.source(40)
        # A spare left by an earlier run, longer than anything written now: written over and
        # cut to the new length, never read.
        with open(self.path("out9.txt.progress.tmp"), "w") as f:
            f.write("left over\n" * 500)
        cons = self.consumer("--tcp", protocols=("tcp",))
        out = cons.out_path()
        progress = out + ".progress"
        # One record: the first progress file (the spare renamed into place); then records at
        # a pace: a write batch and a progress file each, swapped in place of the last.
        for csv_path, args in ((first, []), (src, ["--rate", "50"])):
            res_p = self.run_producer(csv_path, cons.port, "tcp", args)
            self.assertExit(res_p, 0, "producer")
            harness.wait_until(lambda: self._progress_size(progress) == os.path.getsize(out), 5)
            self.assertEqual(os.path.getsize(out), self._progress_size(progress),
                             "the progress file (nothing else in it) gives out9.txt's whole "
                             "length: all acknowledged")
        cons.proc.kill()  # SIGKILL: no clean stop
        with open(out, "ab") as f:
            f.write(b"41,never-acknowledged")
        again = self.consumer("--tcp", protocols=("tcp",), name="consumer2")
        self.wait_log(again, "removed 21 bytes written after the last checkpoint")
        res = again.stop()
        self.assertExit(res, 0, "the restarted consumer")
        self.assertRowsEqual([rows[0], ["0", "v0"]] + rows[1:], harness.read_csv(out),
                             "out9.txt cut back to what was acknowledged")
        self.assertFalse(os.path.exists(progress + ".tmp"), "the spare is removed at a clean stop")

    @staticmethod
    def _progress_size(path):
        """The length the progress file records for its one CSV file; None when it is not
        there or holds anything but its own lines."""
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        if not lines or lines[0] != "csvstream-progress 1" or \
                any(not line.startswith(("file ", "stream ")) for line in lines[1:]):
            return None
        sizes = [int(line.split()[2]) for line in lines[1:] if line.startswith("file ")]
        return sizes[0] if len(sizes) == 1 else None

    def test_deleted_database_gives_exit_1(self):
        src, rows = self.source(300)
        db = self.path("feed.db")
        cons = self.consumer("--tcp", "--db", db, protocols=("tcp",))
        prod = self.start_producer(src, cons.port, "tcp", ["--rate", "300"])
        harness.wait_for_rows(cons.out_path(), 50, 10)
        time.sleep(0.2)
        os.remove(db)
        self.wait_log(cons, "database %s was deleted while the consumer writes it" % db)
        res_p = self.finish_producer(prod, timeout=30)
        self.assertExit(res_p, 0, "producer")
        res = cons.stop()
        self.assertExit(res, 1, "consumer whose database was deleted")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "out9.txt still has all")


if __name__ == "__main__":
    harness.main()
