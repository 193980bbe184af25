"""test_accounting.py -- issue 3: the consumer's loss, duplicate and reorder counts equal the
producer's seeded impairment exactly; trailing loss is counted through END; an unpaced burst
loses nothing over TCP (backpressure instead) and over UDP received + lost = sent."""

import os
import time

import harness


def stream_of(stats, producer_id):
    """The consumer's "streams" entry for one producer instance."""
    found = [s for s in harness.stream_entries(stats) if s.get("producer_id") == producer_id]
    return found[0] if len(found) == 1 else None


class AccountingTest(harness.IntegrationCase):

    def test_seeded_impairment_counts_equal_ground_truth(self):
        n = 20000
        src = self.path("impair.csv")
        harness.simple_csv(src, n)
        cons = self.consumer("--udp", "--rcvbuf", str(8 << 20), protocols=("udp",))
        prod = self.run_producer(src, cons.port, "udp", [
            "--rate", "20000", "--impair", "loss=0.1,dup=0.02,reorder=0.05,seed=42"], timeout=60)
        self.assertExit(prod, 0, "impaired producer")
        p = prod.stats
        imp = p["impaired"]
        expected_received = p["sent"] - imp["dropped"]
        harness.wait_for_rows(cons.out_path(), expected_received + 1, 20, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        udp = res.stats["udp"]
        both = "producer:\n%s\nconsumer:\n%s" % (prod.describe(), res.describe())
        self.assertEqual(p["sent"], n, both)
        self.assertEqual(udp["kernel_drops"], 0, "the kernel dropped datagrams, so the counts "
                         "cannot be exact; " + both)
        self.assertEqual(
            {"received": udp["received"], "lost": udp["lost"], "duplicates": udp["duplicates"],
             "reordered": udp["reordered"]},
            {"received": expected_received, "lost": imp["dropped"],
             "duplicates": imp["duplicated"], "reordered": imp["reordered"]}, both)
        # The impairment really happened (so the equality above means something).
        self.assertTrue(1800 <= imp["dropped"] <= 2200 and imp["duplicated"] > 200
                        and imp["reordered"] > 400, both)
        st = stream_of(res.stats, p["producer_id"])
        self.assertIsNotNone(st, "no stream entry for producer %s\n%s" % (p["producer_id"], both))
        self.assertTrue(st["ended"] and st["last_seq"] == n and st["too_late"] == 0, both)
        # out9.txt holds each record that arrived exactly once.
        rows = harness.read_csv(cons.out_path())
        ids = [r[0] for r in rows[1:]]
        self.assertEqual(len(ids), len(set(ids)), "a record is written twice in out9.txt")
        self.assertEqual(len(ids), expected_received, both)

    def test_trailing_loss_is_counted(self):
        # Eight short streams with 50% loss: with these seeds some stream loses its last
        # record(s), which only END's last sequence number can reveal.
        cons = self.consumer("--udp", protocols=("udp",))
        runs = []
        for seed in range(1, 9):
            src = self.path("trail%d.csv" % seed)
            harness.simple_csv(src, 6, tag="s%d-" % seed)
            prod = self.run_producer(src, cons.port, "udp", [
                "--interval", "0", "--stream", "trail%d" % seed,
                "--impair", "loss=0.5,seed=%d" % seed])
            self.assertExit(prod, 0, "producer seed %d" % seed)
            runs.append((seed, prod))
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        names = set(r[1] for r in harness.read_csv(cons.out_path())[1:])
        trailing = 0
        for seed, prod in runs:
            st = stream_of(res.stats, prod.stats["producer_id"])
            both = "producer:\n%s\nconsumer:\n%s" % (prod.describe(), res.describe())
            dropped = prod.stats["impaired"]["dropped"]
            self.assertIsNotNone(st, "no stream entry (if nothing but END arrived, the stream "
                                 "must still be known with all 6 lost)\n" + both)
            self.assertEqual((st["lost"], st["received"], st["last_seq"]),
                             (dropped, 6 - dropped, 6), both)
            if "s%d-6" % seed not in names:
                trailing += 1
        self.assertGreater(trailing, 0, "no seed dropped a stream's last record; pick others")
        self.assertEqual(res.stats["udp"]["lost"],
                         sum(p.stats["impaired"]["dropped"] for _, p in runs), res.describe())

    def burst(self, protocol, n=200000):
        src = self.path("burst.csv")
        harness.simple_csv(src, n)
        extra = () if protocol == "tcp" else ("--rcvbuf", str(256 << 10))
        cons = self.consumer("--db", "burst.db", *extra)
        prod = self.run_producer(src, cons.port, protocol, ["--interval", "0"], timeout=120)
        self.assertExit(prod, 0, "burst producer over " + protocol)
        if protocol == "tcp":
            harness.wait_for_rows(cons.out_path(), n + 1, 60, simple=True)
        else:
            harness.wait_quiet(cons.out_path(), quiet=1.0, timeout=60)
        res = cons.stop(timeout=120)
        self.assertExit(res, 0, "consumer")
        c = res.stats[protocol]
        both = "producer:\n%s\nconsumer:\n%s" % (prod.describe(), res.describe())
        self.assertEqual(prod.stats["sent"], n, both)
        db = self.path("burst.db")
        tables = harness.db_tables(db)
        self.assertEqual(len(tables), 1, "stream tables in %s: %r" % (db, tables))
        rows = harness.db_query(db, "SELECT count(*), count(DISTINCT _seq) FROM %s"
                                % harness.quote_ident(tables[0]))[0]
        if protocol == "tcp":
            self.assertEqual((c["received"], c["lost"], c["duplicates"]), (n, 0, 0), both)
            self.assertIn("blocked_ms", prod.stats, both)
            self.assertIsInstance(prod.stats["blocked_ms"], (int, float), both)
            self.assertEqual(prod.stats["connection"], "ok", both)
        else:
            self.assertEqual(c["received"] + c["lost"], n, both)
            self.assertIn("kernel_drops", c, both)
            if c["lost"] > 0:
                self.assertGreater(c["kernel_drops"], 0, "loss on loopback must show up as the "
                                   "kernel's receive-buffer drops\n" + both)
        self.assertEqual(rows, (c["received"], c["received"]), "rows in the database (count, "
                         "distinct _seq) vs received\n" + both)
        self.assertEqual(res.stats["db"]["committed"], c["received"], both)
        print("\n%s burst: sent %d received %d lost %d kernel_drops %s blocked_ms %s in %.1f s" % (
            protocol, n, c["received"], c["lost"], c.get("kernel_drops"),
            prod.stats.get("blocked_ms"), prod.seconds))

    def test_tcp_burst_into_sqlite_loses_nothing(self):
        self.burst("tcp")

    def test_udp_burst_into_sqlite_received_plus_lost_equals_sent(self):
        self.burst("udp")

    def test_tcp_producer_without_consumer_reports_refused(self):
        src = self.path("lonely.csv")
        harness.simple_csv(src, 3)
        prod = self.run_producer(src, harness.free_port(), "tcp", ["--interval", "0"])
        self.assertExit(prod, 1, "producer without consumer")
        self.assertEqual(prod.stats["connection"], "refused", prod.describe())
        self.assertEqual(prod.stats["protocol"], "tcp", prod.describe())


if __name__ == "__main__":
    harness.main()
