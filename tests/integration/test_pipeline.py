"""test_pipeline.py -- a 3,000-record CSV full of quotes, newlines, commas, UTF-8 and an odd
header streams over TCP (unpaced) and UDP (--rate 2000) into out9.txt and SQLite, field for
field; the sample files in data/ stream over TCP."""

import csv
import glob
import os
import random

import harness

HEADER = [" id ", "name", "name", "", "select", "note, with comma", "caf\u00e9 \U0001F600",
          "\u6570\u91cf", "Order"]
RECORDS = 3000

PIECES = ["plain", "with, comma", 'say "hi"', '""', "line1\nline2", "crlf\r\nnext",
          "  leading", "trailing  ", "  both  ", "", "007", "0.50", "-0", "1e3",
          "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "\U0001F600\U0001F680 emoji", "\u4e2d\u6587\u5b57",
          "\u00fcber", "'single'", "tab\there", "semi;colon", "NULL", "select * from t;",
          "a,\"b\",\nc", "x" * 300]


def make_source(path, seed=20260):
    """Write the test CSV (deterministic) and return (header, records)."""
    rnd = random.Random(seed)
    records = []
    for i in range(1, RECORDS + 1):
        row = [str(i)]
        for _ in range(len(HEADER) - 1):
            k = rnd.random()
            if k < 0.15:
                row.append("")
            elif k < 0.8:
                row.append(rnd.choice(PIECES))
            else:
                row.append(rnd.choice(PIECES) + rnd.choice(PIECES))
        records.append(row)
    # Every row holds 007 and an empty field somewhere, in a fixed column too.
    records[0][4] = "007"
    records[1][3] = ""
    harness.write_csv(path, [HEADER] + records, lineterminator="\r\n")
    return HEADER, records


class PipelineTest(harness.IntegrationCase):

    def check_out9(self, path, header, records, what):
        rows = harness.read_csv(path)
        self.assertTrue(rows, "%s: %s is empty" % (what, path))
        self.assertRowsEqual([header], rows[:1], what + ": out9.txt header")
        self.assertRowsEqual(records, rows[1:], what + ": out9.txt records")

    def check_db(self, db, header, records, what):
        tables = harness.db_tables(db)
        self.assertEqual(len(tables), 1, "%s: expected one stream table in %s, found %r" % (
            what, db, tables))
        cols, rows = harness.db_stream_rows(db, tables[0])
        self.assertEqual(len(cols), len(header), "%s: table %s has data columns %r for header %r"
                         % (what, tables[0], cols, header))
        # Every value is stored as the text that was sent: 007 stays text, '' stays ''.
        expected = [[("text", v) for v in r] for r in records]
        self.assertRowsEqual(expected, rows, what + ": SQLite rows (typeof, value) by _seq")

    def stream(self, protocol, args):
        src = self.path("pipeline.csv")
        header, records = make_source(src)
        cons = self.consumer("--db", "out.db")
        prod = self.run_producer(src, cons.port, protocol, args, timeout=120)
        self.assertExit(prod, 0, "producer over " + protocol)
        self.assertEqual(prod.stats["sent"], RECORDS, prod.describe())
        self.assertEqual(prod.stats["records_read"], RECORDS, prod.describe())
        harness.wait_for_rows(cons.out_path(), RECORDS + 1, 30)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.check_out9(cons.out_path(), header, records, protocol)
        self.check_db(self.path("out.db"), header, records, protocol)
        counts = res.stats[protocol]
        self.assertEqual((counts["received"], counts["lost"], counts["duplicates"]),
                         (RECORDS, 0, 0), res.describe())
        self.assertEqual(res.stats["out"]["records"], RECORDS, res.describe())
        self.assertEqual(res.stats["db"]["committed"], RECORDS, res.describe())
        self.assertEqual(res.stats["db"]["pending"], 0, res.describe())

    def test_tcp_unpaced_into_out9_and_sqlite(self):
        self.stream("tcp", ["--interval", "0"])

    def test_udp_rate_2000_into_out9_and_sqlite(self):
        self.stream("udp", ["--rate", "2000"])

    def test_data_samples_over_tcp(self):
        samples = sorted(glob.glob(os.path.join(harness.SOURCE, "data", "*.csv")))
        if not samples:
            self.skipTest("no data/*.csv samples in %s yet" % harness.SOURCE)
        for sample in samples:
            with self.subTest(sample=os.path.basename(sample)):
                dir = self.path(os.path.basename(sample) + ".d")
                os.mkdir(dir)
                cons = self.consumer(dir=dir)
                prod = self.run_producer(sample, cons.port, "tcp", ["--interval", "0"])
                self.assertExit(prod, 0, "producer " + sample)
                res = cons.stop()
                self.assertExit(res, 0, "consumer")
                # The oracle: Python's csv module on the source (BOM removed) and on out9.txt.
                with open(sample, newline="", encoding="utf-8-sig") as f:
                    expected = list(csv.reader(f))
                outs = sorted(glob.glob(os.path.join(dir, "out9*.txt")))
                self.assertEqual(len(outs), 1, "%s: output files %r" % (sample, outs))
                self.assertRowsEqual(expected, harness.read_csv(outs[0]), sample)

    def test_no_header_streams_get_column_n_headers_read_back_by_csv(self):
        """--no-header: every file gets column_1..column_N (as the SQLite table), so that the
        csv module reads each record back as a record, none taken for the header."""
        cons = self.consumer("--db", "out.db")
        raw = self.path("raw.csv")
        raw2 = self.path("raw2.csv")
        main_src = self.path("main.csv")
        raw_rows = [["r%d" % i, "x, \"%d\"" % i] for i in range(1, 6)]
        raw2_rows = [["s%d" % i, "line\n%d" % i] for i in range(1, 4)]
        harness.write_csv(raw, raw_rows)
        harness.write_csv(raw2, raw2_rows)
        harness.simple_csv(main_src, 3)
        # The first stream is headerless: it heads out9.txt.
        self.assertExit(self.run_producer(raw, cons.port, "tcp",
                                          ["--interval", "0", "--no-header"]), 0, "producer")
        harness.wait_for_rows(cons.out_path(), 6, 10)
        with open(cons.out_path(), newline="", encoding="utf-8") as f:
            got = list(csv.DictReader(f))
        self.assertEqual([[r["column_1"], r["column_2"]] for r in got], raw_rows)
        # A stream with a header then gets a side file, and headerless streams of the same
        # width keep sharing out9.txt, whatever their name or protocol.
        self.assertExit(self.run_producer(main_src, cons.port, "tcp", ["--interval", "0"]), 0,
                        "producer")
        self.assertExit(self.run_producer(raw2, cons.port, "udp",
                                          ["--interval", "0", "--no-header"]), 0, "producer")
        harness.wait_for_rows(cons.out_path(), 9, 10)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.check_out9(cons.out_path(), ["column_1", "column_2"], raw_rows + raw2_rows,
                        "headerless")
        self.assertEqual(harness.read_csv(cons.out_path("out9.main.txt"))[0],
                         ["id", "name", "value"], res.describe())
        # The same names as the database's columns.
        for table in ("raw", "raw2"):
            cols, _ = harness.db_stream_rows(self.path("out.db"), table)
            self.assertEqual(cols, ["column_1", "column_2"], table)

    def test_rate_is_reported_only_over_a_span_of_10_ms(self):
        """A burst read at once (TCP) or 0.1 ms apart (UDP) has no meaningful rate: null in
        --stats-json and "-" in the summary; a paced stream over 10 ms or more has one."""
        cons = self.consumer()
        src = self.path("eight.csv")
        harness.simple_csv(src, 8)
        runs = [("tcp", "burst", ["--interval", "0"]), ("udp", "fast", ["--rate", "10000"]),
                ("tcp", "paced", ["--rate", "100"])]
        for protocol, stream, args in runs:
            self.assertExit(self.run_producer(src, cons.port, protocol,
                                              args + ["--stream", stream]), 0, stream)
        self.assertTrue(harness.wait_until(lambda: harness.count_lines(cons.out_path()) >= 25,
                                           10), cons.proc.stderr())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        entries = {e["stream"]: e for e in res.stats["streams"]}
        for stream in ("burst", "fast"):
            self.assertIn("records_per_s", entries[stream], res.describe())
            self.assertIsNone(entries[stream]["records_per_s"], res.describe())
            self.assertRegex(res.stdout, r"(?m)^(tcp|udp) +%s +[0-9a-f]{16} +8 +0 +0 +0 +[\d,]+ +- "
                             % stream, res.describe())
        self.assertIsNone(res.stats["udp"]["records_per_s"], "the UDP total: one burst")
        rate = entries["paced"]["records_per_s"]
        self.assertTrue(rate is not None and 50 < rate < 200, res.describe())
        self.assertRegex(res.stdout, r"(?m)^tcp +paced +[0-9a-f]{16} +8 +0 +0 +0 +[\d,]+ +[\d,]+\.\d ",
                         res.describe())


if __name__ == "__main__":
    harness.main()
