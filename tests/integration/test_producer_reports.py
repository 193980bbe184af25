"""test_producer_reports.py -- what the producer (and multiple_processes) tell a person, checked
against what happened: the consumer's address after a reconnect, --resume's records counted as
skipped and not sent, a consumer that closes after every record was sent, a HOST:PORT given to
--host, -l with a number attached, an SQLite mode given a PostgreSQL --db, and the help text,
man pages and README paragraph that describe these runs."""

import os
import re
import signal
import subprocess
import time

import harness

MULTIPLE_PROCESSES = os.path.join(harness.BIN, "multiple_processes")


class ProducerReports(harness.IntegrationCase):

    def tcp_consumer(self, *args, **kw):
        return self.consumer("--tcp", *args, protocols=("tcp",), **kw)

    def test_reconnect_names_the_consumer_address(self):
        src = self.path("feed.csv")
        harness.simple_csv(src, 12000)
        cons = self.tcp_consumer()
        port = cons.port
        prod = self.start_producer(src, port, "tcp", ["--rate", "6000", "--retry", "20"])
        harness.wait_for_rows(cons.out_path(), 1000, 20, simple=True)
        cons.proc.popen.send_signal(signal.SIGKILL)
        cons.proc.wait(10)
        again = self.tcp_consumer(port=port, name="consumer-again")
        res = self.finish_producer(prod, timeout=60)
        self.assertExit(res, 0, "the producer after its consumer came back")
        self.assertIn("reconnected to 127.0.0.1:%d/tcp; resending " % port, res.stderr,
                      res.describe())
        self.assertNotIn("reconnected to /tcp", res.stderr)
        self.assertEqual(1, res.stats["reconnects"], res.describe())
        self.assertExit(again.stop(), 0, "the second consumer")

    def resume_run(self, src, port, extra=()):
        return self.run_producer(src, port, "tcp",
                                 ["-q", "-i", "0", "--resume", "--id", "X"] + list(extra))

    def test_resume_of_a_whole_stream_sends_nothing_and_says_so(self):
        src = self.path("temps.csv")
        harness.simple_csv(src, 48)
        cons = self.tcp_consumer()
        first = self.resume_run(src, cons.port)
        self.assertExit(first, 0, "the first run")
        self.assertEqual((48, 0, 0), (first.stats["sent"], first.stats["resumed_after"],
                                      first.stats["resume_skipped"]), first.describe())
        again = self.resume_run(src, cons.port)
        self.assertExit(again, 0, "the run the consumer had whole")
        st = again.stats
        self.assertEqual({"sent": 0, "written": 0, "resumed_after": 48, "resume_skipped": 48,
                          "records_read": 48, "records_per_s": 0},
                         {k: st[k] for k in ("sent", "written", "resumed_after",
                                             "resume_skipped", "records_read",
                                             "records_per_s")}, again.describe())
        self.assertIn("summary: sent 0 records (", again.stdout, again.describe())
        self.assertIn("summary: resumed: the consumer had the first 48 records already "
                      "(--resume); 48 skipped, not sent again", again.stdout, again.describe())
        self.assertNotIn("were written to the connection", again.stderr, "no false warning")
        self.assertNotIn("warning", again.stderr, again.describe())
        self.assertExit(cons.stop(), 0, "consumer")

    def test_resume_part_way_counts_only_what_it_sent(self):
        src = self.path("temps.csv")
        harness.simple_csv(src, 48)
        cons = self.tcp_consumer()
        first = self.resume_run(src, cons.port, ["--count", "20"])
        self.assertExit(first, 0, "the first run, 20 records")
        again = self.resume_run(src, cons.port)
        self.assertExit(again, 0, "the run that goes on after #20")
        st = again.stats
        self.assertEqual((28, 28, 20, 20), (st["sent"], st["written"], st["resumed_after"],
                                            st["resume_skipped"]), again.describe())
        if st["duration_s"] > 0:
            self.assertAlmostEqual(st["records_per_s"], 28 / st["duration_s"],
                                   delta=st["records_per_s"] * 0.01 + 1e-6,
                                   msg="the rate is of the records sent: %s" % again.describe())
        self.assertIn("summary: sent 28 records (", again.stdout, again.describe())
        self.assertIn("20 skipped, not sent again", again.stdout, again.describe())
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        ids = [row[0] for row in harness.read_csv(cons.out_path())[1:]]
        self.assertEqual([str(i) for i in range(1, 49)], ids, "each record once, in order")

    def test_consumer_closing_after_every_record_was_sent_is_not_told_as_unsent(self):
        src = self.path("temps.csv")
        harness.simple_csv(src, 48)
        cons = self.tcp_consumer("--max-records", "48")
        res = self.run_producer(src, cons.port, "tcp", ["-q", "-i", "0", "--retry", "0"])
        self.assertExit(cons.stop(), 0, "the consumer that stopped at --max-records")
        self.assertNotIn("the rest were not sent", res.stderr, res.describe())
        if res.rc == 0:
            self.assertEqual(48, res.stats["acked"], res.describe())
            return
        self.assertExit(res, 1, "the producer whose records were not all acknowledged")
        m = re.search(r"127\.0\.0\.1:%d/tcp: connection (closed|reset) by the consumer after all "
                      r"48 records were sent; (\d+) acknowledged, (\d+) not acknowledged"
                      % cons.port, res.stderr)
        self.assertIsNotNone(m, res.describe())
        self.assertEqual(48, int(m.group(2)) + int(m.group(3)), res.describe())
        self.assertEqual((48, 48), (res.stats["sent"], res.stats["written"]), res.describe())

    def test_host_with_a_port_says_where_the_port_goes(self):
        src = self.path("a.csv")
        harness.simple_csv(src, 1)
        for host, bare, port in [("127.0.0.1:29950", "127.0.0.1", "29950"),
                                 ("localhost:99", "localhost", "99")]:
            with self.subTest(host=host):
                res = self.run_program([harness.PRODUCER, "-H", host, "--retry", "0", src])
                self.assertExit(res, 1, host)
                self.assertIn("cannot resolve '%s'" % host, res.stderr, res.describe())
                self.assertIn("(the port goes in --port: -H %s -p %s)" % (bare, port),
                              res.stderr, res.describe())
        # Not a port after the colon: no such hint.
        res = self.run_program([harness.PRODUCER, "-H", "127.0.0.1:99x", "--retry", "0", src])
        self.assertExit(res, 1, "127.0.0.1:99x")
        self.assertNotIn("the port goes in", res.stderr, res.describe())

    def test_loop_count_attached_to_l_says_to_write_loop_equals(self):
        src = self.path("a.csv")
        harness.simple_csv(src, 2)
        for word, n in [("-l3", "3"), ("-l12", "12"), ("-ql3", "3")]:
            with self.subTest(word=word):
                res = self.run_program([harness.PRODUCER, word, src])
                self.assertExit(res, 2, word)
                self.assertIn("%s: -l takes no value; to read the file %s times write --loop=%s"
                              % (word, n, n), res.stderr, res.describe())
                self.assertIn("--help", res.stderr)
        # Another digit is still an unknown option, and -l still bundles.
        res = self.run_program([harness.PRODUCER, "-q3", src])
        self.assertExit(res, 2, "-q3")
        self.assertIn("-3: unknown option", res.stderr, res.describe())
        cons = self.tcp_consumer()
        res = self.run_producer(src, cons.port, "tcp", ["-lq", "-i", "0", "-c", "5"])
        self.assertExit(res, 0, "-lq")
        self.assertEqual(5, res.stats["sent"], res.describe())
        self.assertExit(cons.stop(), 0, "consumer")

    def test_sqlite_modes_refuse_a_postgres_db(self):
        for mode in ["naive", "safe", "funnel"]:
            for db in ["postgresql://user@localhost/csv", "postgres://localhost/csv",
                       "host=localhost dbname=csv"]:
                with self.subTest(mode=mode, db=db):
                    res = self.run_program([MULTIPLE_PROCESSES, "--mode", mode, "--db", db,
                                            "--records", "1", "--processes", "1"])
                    self.assertExit(res, 2, "a usage error")
                    self.assertIn("--mode %s: --db is an SQLite file here" % mode, res.stderr,
                                  res.describe())
                    self.assertIn("use --mode postgres", res.stderr, res.describe())
        made = [n for n in os.listdir(self.dir) if not n.startswith("run-")]
        self.assertEqual([], made, "nothing opened or created")


    def plain_streams(self, extra):
        """Run producer --format csv (extra added) into a real consumer --plain-port; returns
        the consumer's plain-tcp streams as (name, received) and its out9.txt rows."""
        src = self.path("temps.csv")
        rows = harness.simple_csv(src, 30)
        plain_port = harness.free_port()
        cons = self.tcp_consumer("--plain-port", str(plain_port))
        prod = self.run_producer(src, plain_port, "tcp", ["-q", "--format", "csv", "-i", "0"] +
                                 list(extra))
        self.assertExit(prod, 0, "producer --format csv")
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 20, simple=True)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        got = harness.read_csv(cons.out_path())
        self.assertRowsEqual([["id", "name", "value"]] + [list(r) for r in rows], got,
                             "out9.txt: the #stream line is not a record")
        return [(st["stream"], st["received"]) for st in res.stats["streams"]
                if st.get("protocol") == "plain-tcp"], res

    def test_format_csv_stream_sends_the_name_line(self):
        streams, res = self.plain_streams(["--stream", "sensors"])
        self.assertEqual([("sensors", 30)], streams, res.describe())

    def test_format_csv_without_stream_is_named_by_the_listener(self):
        streams, res = self.plain_streams([])
        self.assertEqual(1, len(streams), res.describe())
        self.assertRegex(streams[0][0], r"^127\.0\.0\.1:\d+$", res.describe())

    def test_format_csv_stream_name_with_a_line_break_is_a_usage_error(self):
        src = self.path("temps.csv")
        harness.simple_csv(src, 3)
        res = self.run_program([harness.PRODUCER, "--format", "csv", "--retry", "0", "--stream",
                                "a\nb", src])
        self.assertExit(res, 2, "a name that would end the #stream line")
        self.assertIn("--stream: with --format csv the name goes in a '#stream NAME' line",
                      res.stderr)


class ProducerTexts(harness.IntegrationCase):
    """The help text, the man page and the README paragraph say what the program does."""

    def help_text(self):
        res = subprocess.run([harness.PRODUCER, "--help"], capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(0, res.returncode, res.stderr)
        return res.stdout

    def test_usage_lines_name_every_option(self):
        text = self.help_text()
        usage = text[:text.index("\n\n")]
        # The option column: "  -p, --port PORT" or "      --seed N" (not a description).
        options = re.findall(r"^  (?:(-[A-Za-z]), |    )(--[a-z][a-z-]*)", text, re.M)
        self.assertGreater(len(options), 20, text)
        for short, long in options:
            if long in ("--help", "--version"):
                continue
            self.assertTrue(re.search(r"%s\b" % re.escape(long), usage) or
                            (short and re.search(r"%s\b" % re.escape(short), usage)),
                            "the usage lines do not show %s:\n%s" % (long, usage))

    def readme_producer_parts(self):
        """The README's producer usage lines (under "## Command line") and its option table."""
        with open(os.path.join(harness.SOURCE, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        section = readme[readme.index("## Command line"):]
        block = section[section.index("```"):section.index("```", section.index("```") + 3)]
        usage = block[block.index("producer ["):block.index("\nconsumer [")]
        table = section[section.index("\nProducer:\n"):section.index("\nConsumer:\n")]
        return usage, table

    def test_readme_usage_and_table_name_every_option(self):
        usage, table = self.readme_producer_parts()
        text = self.help_text()
        options = re.findall(r"^  (?:(-[A-Za-z]), |    )(--[a-z][a-z-]*)", text, re.M)
        self.assertGreater(len(options), 20, text)
        for short, long in options:
            if long in ("--help", "--version"):
                continue  # said once for both programs, below the tables
            self.assertTrue(re.search(r"%s\b" % re.escape(long), usage) or
                            (short and re.search(r"%s\b" % re.escape(short), usage)),
                            "README's producer usage lines do not show %s:\n%s" % (long, usage))
            self.assertRegex(table, r"(?m)^\| `[^|]*%s\b" % re.escape(long),
                             "README's producer table has no row for %s" % long)
        self.assertIn("[-l | --loop=N]", usage)
        self.assertIn("`-l` takes no value (`-l3` is refused: write `--loop=3`)", table)

    def test_help_says_records_share_a_datagram_and_exit_0_means_acknowledged(self):
        text = " ".join(self.help_text().split())
        self.assertNotIn("one datagram per record", text)
        self.assertIn("-u, --udp send over UDP: the header frame in every datagram, then the "
                      "records due together", text)
        self.assertIn("Exit status: 0 every record was sent and, over TCP, acknowledged by the "
                      "consumer", text)

    def test_man_page_gives_the_progress_interval_the_program_uses(self):
        with open(os.path.join(harness.SOURCE, "docs", "man", "producer.1"),
                  encoding="utf-8") as f:
            page = " ".join(f.read().split())
        self.assertNotIn("a progress line every second", page)
        self.assertIn("else a line every 3 seconds", page)
        self.assertIn("a line every 3 s.", " ".join(self.help_text().split()))

    def test_readme_failure_paragraph_tells_of_the_retries(self):
        with open(os.path.join(harness.SOURCE, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        start = readme.index("Try the failure cases too")
        para = " ".join(readme[start:readme.index("\n\n", start)].split())
        self.assertIn("`--retry 0` gives that answer at once", para)
        self.assertIn("30 by default", para)
        # What the paragraph says: without a consumer the default waits and retries ...
        src = self.path("a.csv")
        harness.simple_csv(src, 1)
        port = harness.free_port()
        prod = self.start_producer(src, port, "tcp", stats=False)
        self.assertTrue(harness.wait_until(
            lambda: "consumer unreachable (Connection refused), retrying in" in prod[0].stderr(),
            10), prod[0].stderr())
        time.sleep(1.0)
        self.assertTrue(prod[0].running(), "still retrying: " + prod[0].stderr())
        prod[0].popen.send_signal(signal.SIGINT)
        self.assertEqual(130, prod[0].wait(10))
        # ... and --retry 0 answers at once.
        res = self.run_producer(src, port, "tcp", ["--retry", "0"], stats=False)
        self.assertExit(res, 1, "--retry 0")
        self.assertIn("connection refused (is the consumer running?", res.stderr)
        self.assertLess(res.seconds, 2.0, res.describe())


if __name__ == "__main__":
    harness.main()
