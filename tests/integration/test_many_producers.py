"""test_many_producers.py -- issue 4: 20 TCP and 5 UDP producers at once into one consumer with
--db land every record exactly once, kept apart per producer instance, with no lock errors; two
streams with different headers at once keep every output file valid CSV."""

import glob
import os

import harness

TCP_PRODUCERS = 20
UDP_PRODUCERS = 5
TCP_RECORDS = 2000
UDP_RECORDS = 1000


class ManyProducersTest(harness.IntegrationCase):

    def test_25_producers_every_record_once_per_producer(self):
        cons = self.consumer("--db", "many.db", "--rcvbuf", str(8 << 20))
        plan = []  # (protocol, stream, tag, records, args)
        for i in range(TCP_PRODUCERS):
            stream = "shared" if i >= 15 else "tcp%d" % i
            plan.append(("tcp", stream, "t%d-" % i, TCP_RECORDS, ["--interval", "0"]))
        for i in range(UDP_PRODUCERS):
            stream = "shared" if i >= 3 else "udp%d" % i
            plan.append(("udp", stream, "u%d-" % i, UDP_RECORDS, ["--rate", "500"]))
        started = []
        for protocol, stream, tag, n, args in plan:
            src = self.path(tag + "src.csv")
            rows = harness.simple_csv(src, n, tag=tag)
            started.append((protocol, stream, rows, self.start_producer(
                src, cons.port, protocol, ["--stream", stream, "--quiet"] + args)))
        results = [(p, s, rows, self.finish_producer(st, timeout=120))
                   for p, s, rows, st in started]
        total = TCP_PRODUCERS * TCP_RECORDS + UDP_PRODUCERS * UDP_RECORDS
        harness.wait_for_rows(cons.out_path(), total + 1, 60, simple=True)
        res = cons.stop(timeout=120)
        self.assertExit(res, 0, "consumer")
        for protocol, stream, rows, prod in results:
            self.assertExit(prod, 0, "producer of %s over %s" % (stream, protocol))
        db = self.path("many.db")
        tables = harness.db_tables(db)
        by_producer = {}
        for table in tables:
            for pid, count, distinct, lo, hi in harness.db_query(
                    db, "SELECT _producer, count(*), count(DISTINCT _seq), min(_seq), max(_seq) "
                    "FROM %s GROUP BY _producer" % harness.quote_ident(table)):
                key = harness.producer_id_hex(pid)
                self.assertNotIn(key, by_producer, "producer %s has rows in two tables" % key)
                by_producer[key] = (table, count, distinct, lo, hi)
        self.assertEqual(len(by_producer), len(results), "producers in the database: %r\n%s" % (
            sorted(by_producer), res.describe()))
        for protocol, stream, rows, prod in results:
            pid = prod.stats["producer_id"]
            n = len(rows)
            got = by_producer.get(pid)
            self.assertIsNotNone(got, "no rows for producer %s (%s over %s)\n%s" % (
                pid, stream, protocol, res.describe()))
            table, count, distinct, lo, hi = got
            self.assertEqual((count, distinct, lo, hi), (n, n, 1, n),
                             "%s over %s, producer %s in table %s: (rows, distinct seqs, min, "
                             "max)\n%s" % (stream, protocol, pid, table, res.describe()))
            names = [r[0] for r in harness.db_query(
                db, "SELECT name FROM %s WHERE _producer = ? ORDER BY _seq"
                % harness.quote_ident(table), (pid,))]
            self.assertEqual(names, [r[1] for r in rows], "%s over %s: values" % (stream,
                                                                               protocol))
        tables_by_stream = {}
        for protocol, stream, rows, prod in results:
            tables_by_stream.setdefault(stream, set()).add(by_producer[prod.stats["producer_id"]][0])
        for stream, ts in tables_by_stream.items():
            self.assertEqual(len(ts), 1, "stream %s is spread over tables %r" % (stream, ts))
        out = harness.read_csv(cons.out_path())
        self.assertEqual(len(out), total + 1, "rows in out9.txt")
        self.assertEqual(len(set(r[1] for r in out[1:])), total, "out9.txt repeats records")
        logs = res.stderr + res.stdout + "\n".join(p.stderr + p.stdout for _, _, _, p in results)
        self.assertNotIn("locked", logs.lower(), "a lock error among the single writer's logs")
        self.assertEqual(res.stats["tcp"]["connections"], TCP_PRODUCERS, res.describe())
        self.assertEqual(res.stats["tcp"]["received"], TCP_PRODUCERS * TCP_RECORDS, res.describe())
        self.assertEqual(res.stats["udp"]["received"], UDP_PRODUCERS * UDP_RECORDS, res.describe())
        self.assertEqual(res.stats["db"]["committed"], total, res.describe())

    def test_two_headers_at_once_keep_out9_valid_csv(self):
        cons = self.consumer()
        alpha = self.path("alpha.csv")
        beta = self.path("beta.csv")
        alpha_rows = [["a%d" % i, "alpha, %d" % i] for i in range(1, 301)]
        beta_rows = [["b%d" % i, "beta", "line\n%d" % i] for i in range(1, 301)]
        harness.write_csv(alpha, [["a", "b"]] + alpha_rows)
        harness.write_csv(beta, [["x", "y", "z"]] + beta_rows)
        runs = [self.start_producer(alpha, cons.port, "tcp", ["--rate", "300"]),
                self.start_producer(beta, cons.port, "udp", ["--rate", "300"])]
        for r in runs:
            self.assertExit(self.finish_producer(r), 0, "producer")
        harness.wait_quiet(cons.out_path(), quiet=0.5, timeout=10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        files = sorted(glob.glob(self.path("out9*.txt")))
        self.assertEqual(len(files), 2, "expected out9.txt and one file for the other header, "
                         "found %r\n%s" % (files, res.describe()))
        self.assertIn(self.path("out9.txt"), files)
        found = {}
        for path in files:
            rows = harness.read_csv(path)
            self.assertTrue(rows, path + " is empty")
            header = rows[0]
            for i, r in enumerate(rows[1:], start=2):
                self.assertEqual(len(r), len(header), "%s row %d %r does not fit header %r" % (
                    path, i, r, header))
            found[tuple(header)] = (path, rows[1:])
        self.assertEqual(set(found), {("a", "b"), ("x", "y", "z")}, "headers %r" % found.keys())
        self.assertRowsEqual(alpha_rows, found[("a", "b")][1], found[("a", "b")][0])
        self.assertRowsEqual(beta_rows, found[("x", "y", "z")][1], found[("x", "y", "z")][0])
        self.assertIn(os.path.basename(found[("x", "y", "z")][0]) if found[("a", "b")][0]
                      .endswith("out9.txt") else os.path.basename(found[("a", "b")][0]),
                      res.stderr, "the consumer should log the second file's name")

    def test_same_stream_name_two_headers_counted_per_file_and_table_logged(self):
        cons = self.consumer("--db", "same.db")
        first = self.path("first.csv")
        second = self.path("second.csv")
        harness.simple_csv(first, 30, header=("id", "name", "value"), tag="f")
        harness.simple_csv(second, 12, header=("when", "what"), tag="s")
        self.assertExit(self.run_producer(first, cons.port, "tcp",
                                          ["--interval", "0", "--stream", "same"]), 0, "producer")
        harness.wait_for_rows(cons.out_path(), 31, 10, simple=True)
        self.assertExit(self.run_producer(second, cons.port, "tcp",
                                          ["--interval", "0", "--stream", "same"]), 0, "producer")
        side = cons.out_path("out9.same.txt")
        harness.wait_for_rows(side, 13, 10, simple=True)
        harness.wait_until(lambda: "table 'same_2'" in cons.proc.stderr(), 5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        out = res.stats["out"]
        self.assertEqual(out["records"], 42, res.describe())
        self.assertEqual([(os.path.basename(f["path"]), f["records"]) for f in out["files"]],
                         [("out9.txt", 30), ("out9.same.txt", 12)], res.describe())
        self.assertRegex(res.stdout, r"(?m)out9\.txt: 30 records written$", res.describe())
        self.assertRegex(res.stdout, r"(?m)out9\.same\.txt: 12 records written$", res.describe())
        self.assertIn("stream 'same' -> table 'same' in same.db", res.stderr, res.describe())
        self.assertIn("stream 'same' -> table 'same_2' in same.db (header differs from table "
                      "'same')", res.stderr, res.describe())
        self.assertIn("stream 'same' -> table 'same_2' in same.db", res.stderr, res.describe())
        self.assertEqual(len([l for l in res.stderr.splitlines() if "-> table 'same' in" in l]),
                         1, "the table's creation is logged once\n" + res.describe())
        self.assertEqual(len([l for l in res.stderr.splitlines() if "table 'same_2'" in l]),
                         1, "the stream's table is named in one line\n" + res.describe())

    def test_every_stream_in_a_side_file_is_logged_and_named_in_stats_json(self):
        cons = self.consumer()
        main_src = self.path("alpha.csv")
        bikes = self.path("bike_stations.csv")
        edge = self.path("edge_cases.csv")
        harness.simple_csv(main_src, 5, header=("a", "b", "c"), tag="m")
        harness.simple_csv(bikes, 4, header=("x", "y", "z"), tag="b")
        harness.simple_csv(edge, 3, header=("x", "y", "z"), tag="e")
        runs = [(main_src, "tcp", 6, "out9.txt"), (bikes, "tcp", 5, "out9.bike_stations.txt"),
                (edge, "udp", 8, "out9.bike_stations.txt")]
        for src, protocol, lines, out in runs:  # one after the other: the order is known
            self.assertExit(self.run_producer(src, cons.port, protocol, ["--interval", "0"]), 0,
                            "producer of " + src)
            self.assertTrue(harness.wait_until(
                lambda: harness.count_lines(cons.out_path(out)) >= lines, 10),
                cons.proc.stderr())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        side = "out9.bike_stations.txt"  # as the consumer names it: next to --out out9.txt
        rows = harness.read_csv(cons.out_path(side))
        self.assertEqual(rows[0], ["x", "y", "z"])
        self.assertEqual(len(rows), 8, "the two streams share the side file")
        entries = {e["stream"]: e for e in res.stats["streams"]}
        self.assertEqual(entries["alpha"]["file"], "out9.txt", res.describe())
        self.assertEqual(entries["bike_stations"]["file"], side, res.describe())
        self.assertEqual(entries["edge_cases"]["file"], side, res.describe())
        for name, why in (("bike_stations", "has another header than"),
                          ("edge_cases", "same header")):
            e = entries[name]
            want = "stream '%s' (producer %s, %s %s) -> %s (%s" % (
                name, e["producer_id"], e["protocol"], e["peer"], side, why)
            lines = [l for l in res.stderr.splitlines() if want in l]
            self.assertEqual(len(lines), 1, "want one line %r\n%s" % (want, res.describe()))
        self.assertNotIn("stream 'alpha' (producer", res.stderr, "the main file's stream")


if __name__ == "__main__":
    harness.main()
