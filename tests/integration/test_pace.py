"""test_pace.py -- at the default pace (1-3 s a record) four records arrive one by one, 1-3 s
apart, each on disk in out9.txt within 0.5 s of the producer logging that it sent it. TCP and
UDP run side by side to keep the test short."""

import os
import re
import threading
import time

import harness

RECORDS = 4
POLL = 0.02
# The producer logs one line per record at this pace; the line names the sequence number.
SENT_LINE = re.compile(r"(?i)\bseq(?:uence)?\b\D{0,3}(\d+)|#(\d+)\b|\brecord (\d+)\b")


def sent_times(lines):
    """{seq: monotonic time the producer logged it} from the producer's timed stderr lines."""
    times = {}
    for t, text in lines:
        m = SENT_LINE.search(text)
        if m:
            seq = int(next(g for g in m.groups() if g))
            times.setdefault(seq, t)
    return times


class PaceTest(harness.IntegrationCase):

    def watch(self, protocol, out):
        """Run one consumer and one producer at the default pace; fill out[protocol]."""
        try:
            dir = self.path(protocol)
            os.mkdir(dir)
            src = os.path.join(dir, "pace.csv")
            harness.simple_csv(src, RECORDS, tag="pace")
            cons = harness.Consumer(self, dir, ["--" + protocol], protocols=(protocol,))
            started = self.start_producer(src, cons.port, protocol, ["--seed", "7"])
            arrivals = []  # monotonic time each data row first appeared in out9.txt
            deadline = time.monotonic() + 20
            out9 = cons.out_path()
            while time.monotonic() < deadline and len(arrivals) < RECORDS:
                try:
                    rows = harness.read_csv(out9) if os.path.exists(out9) else []
                except Exception:
                    rows = []  # a record half written: look again
                now = time.monotonic()
                while len(arrivals) < max(0, len(rows) - 1):
                    arrivals.append(now)
                time.sleep(POLL)
            prod = self.finish_producer(started, timeout=30)
            res = cons.stop()
            out[protocol] = dict(arrivals=arrivals, prod=prod, cons=res,
                                 sent=sent_times(started[0].timed_lines()),
                                 rows=harness.read_csv(out9) if os.path.exists(out9) else [])
        except BaseException as e:  # reported by the main thread
            out[protocol] = dict(error=e)

    def test_default_pace_tcp_and_udp(self):
        out = {}
        threads = [threading.Thread(target=self.watch, args=(p, out)) for p in ("tcp", "udp")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for protocol in ("tcp", "udp"):
            with self.subTest(protocol=protocol):
                r = out.get(protocol)
                self.assertIsNotNone(r, protocol + ": the run did not finish")
                if "error" in r:
                    raise r["error"]
                self.check(protocol, r)

    def check(self, protocol, r):
        prod, arrivals = r["prod"], r["arrivals"]
        self.assertExit(prod, 0, "producer over " + protocol)
        self.assertExit(r["cons"], 0, "consumer over " + protocol)
        self.assertEqual(len(arrivals), RECORDS, "%s: %d of %d records appeared in out9.txt\n"
                         "rows: %r\n%s" % (protocol, len(arrivals), RECORDS, r["rows"],
                                           prod.describe()))
        expected = [["id", "name", "value"]] + [
            [str(i), "pace%d" % i, str(i * 7 % 1000)] for i in range(1, RECORDS + 1)]
        self.assertRowsEqual(expected, r["rows"], protocol + ": out9.txt")
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        for g in gaps:
            self.assertTrue(0.9 <= g <= 3.2, "%s: gaps between arrivals %s, each must be within "
                            "[0.9, 3.2] s" % (protocol, ["%.3f" % x for x in gaps]))
        sent = r["sent"]
        self.assertEqual(sorted(sent), list(range(1, RECORDS + 1)),
                         "%s: the producer should log one line per record naming its sequence "
                         "number; found %r in:\n%s" % (protocol, sent, prod.stderr))
        for seq, arrived in enumerate(arrivals, start=1):
            lag = arrived - sent[seq]
            self.assertTrue(-0.1 <= lag <= 0.5, "%s: record %d was on disk %.3f s after the "
                            "producer logged it (must be within 0.5 s)\n%s" % (
                                protocol, seq, lag, prod.stderr))


if __name__ == "__main__":
    harness.main()
