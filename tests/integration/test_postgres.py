"""test_postgres.py -- the consumer's PostgreSQL sink against a real server (pgserver.py): the
conformance, edge-case and csv-spectrum files over TCP and UDP read back with psql's COPY and
compared with Python's csv module; two consumers fed by ten producers each into one database
while a third client counts; the server stopped for 5 s mid-stream; a consumer SIGKILLed and
started again; multiple_processes --mode postgres. Skipped, visibly, without PostgreSQL."""

import glob
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import harness
import pgserver
import wireframes

SERVER = None


def setUpModule():
    global SERVER
    SERVER = pgserver.Server().start()


def tearDownModule():
    if SERVER is not None:
        SERVER.cleanup()


def source(path, n, tag="v"):
    """n records, some with quotes, commas, tabs, backslashes and newlines; returns the rows."""
    rows = [["id", "value"]]
    for i in range(1, n + 1):
        rows.append([str(i), 'q,"%d"\nline\t\\x' % i if i % 7 == 0 else "%s%d" % (tag, i)])
    harness.write_csv(path, rows, lineterminator="\n")
    return rows


def conformance_cases():
    """(name, csv path, expected rows with the header first) of every file whose expected rows
    are known: the project's conformance cases, data/edge_cases.csv (read by Python's csv), and
    the csv-spectrum suite when it is there."""
    cases = []
    folder = os.path.join(harness.SOURCE, "tests", "data", "conformance")
    for src in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        name = os.path.splitext(os.path.basename(src))[0]
        with open(os.path.join(folder, name + ".json"), encoding="utf-8") as f:
            cases.append((name, src, json.load(f)))
    edge = os.path.join(harness.SOURCE, "data", "edge_cases.csv")
    cases.append(("edge_cases", edge, harness.read_csv(edge)))
    spectrum = os.environ.get("CSV_SPECTRUM_DIR") or os.environ.get(
        "CSVSTREAM_SPECTRUM_CONFIGURED") or harness.SPECTRUM
    for src in sorted(glob.glob(os.path.join(spectrum, "csvs", "*.csv"))):
        name = os.path.splitext(os.path.basename(src))[0]
        js = os.path.join(spectrum, "json", name + ".json")
        if not os.path.exists(js):
            continue
        with open(js, encoding="utf-8") as f:
            objs = json.load(f)
        if not objs:
            continue
        header = list(objs[0].keys())
        cases.append(("spectrum_" + name.replace("-", "_"), src,
                      [header] + [[o[k] for k in header] for o in objs]))
    return cases


def send_times_datagram(port, producer_id, stream, seq, sent_us, value):
    """One UDP datagram of a version 2 stream (no session key) with header "a": its HELLO and
    RECORD seq, whose send time is sent_us (any 64-bit number, as a peer may send)."""
    datagram = (wireframes.encode(wireframes.HELLO, producer_id, stream, [b"a"], sent_us=sent_us) +
                wireframes.encode(wireframes.RECORD, producer_id, stream, [value], seq=seq,
                                  sent_us=sent_us))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(datagram, ("127.0.0.1", port))


def text_ok(value):
    """Can a PostgreSQL text value hold this (no NUL; the JSON holds decoded text)?"""
    return "\x00" not in value and not any(0xDC80 <= ord(ch) <= 0xDCFF for ch in value)


class PostgresCase(harness.IntegrationCase):

    def new_db(self):
        name = "t_%s_%d" % (self._testMethodName[5:40].lower(), random.randrange(1 << 30))
        return SERVER.create_db(name)

    def data_columns(self, table, db):
        meta = ("_producer", "_protocol", "_seq", "_sent_us", "_received_us", "_peer")
        return [c for c in SERVER.columns(table, db) if c not in meta]

    def count(self, db, sql):
        return int(SERVER.psql(sql, db).strip())


class SpectrumTest(PostgresCase):

    def test_every_file_over_tcp_and_udp_read_back_with_psql(self):
        db = self.new_db()
        cases = conformance_cases()
        self.assertGreaterEqual(len(cases), 25)
        # Values PostgreSQL's text cannot hold (a NUL byte, bytes that are not UTF-8) are
        # refused by the sink: test_text_postgres_cannot_hold covers them.
        cases = [c for c in cases if all(text_ok(v) for row in c[2] for v in row)]
        cons = self.consumer("--db", SERVER.keywords(db))
        for name, src, expected in cases:
            # A copy named for the case: the stream, and so the table, is named after the file.
            copy = self.path(name + ".csv")
            with open(src, "rb") as f, open(copy, "wb") as g:
                g.write(f.read())
            for proto in ("tcp", "udp"):
                res = self.run_producer(copy, cons.port, proto, ["--interval", "0"])
                self.assertExit(res, 0, "producer %s over %s" % (name, proto))
        time.sleep(0.5)  # the last UDP datagrams
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertNotIn("password", res.stderr)
        for name, src, expected in cases:
            for proto in ("tcp", "udp"):
                with self.subTest(file=name, protocol=proto):
                    records = expected[1:]
                    if not records:
                        continue
                    cols = self.data_columns(name, db)
                    got = self.rows_of(name, cols, db, proto)
                    # Short rows come back with NULLs (empty in CSV) for the missing columns:
                    # compare the fields each record has.
                    trimmed = [g[:len(e)] for g, e in zip(got, records)] + got[len(records):]
                    self.assertRowsEqual(records, trimmed, "%s over %s: table vs source" % (
                        name, proto))
                    self.assertTrue(all(v == "" for g, e in zip(got, records)
                                        for v in g[len(e):]), got)

    def test_escapes_and_utf8_at_every_offset(self):
        # The sink checks UTF-8 and escapes COPY text eight bytes at a time: put each byte that
        # needs care at every offset of values 0 to 24 bytes long, so that it falls in a whole
        # word, in the bytes after the last word, and at their borders. Twice: into a new table
        # (binary COPY) and into an existing one whose value column is a varchar (COPY text,
        # which the server turns into the column's type).
        db = self.new_db()
        SERVER.psql('CREATE TABLE offsets_text (id text, value varchar(100), other text, '
                    '"_producer" text, "_protocol" text, "_seq" bigint, "_sent_us" bigint, '
                    '"_received_us" bigint, "_peer" text)', db)
        specials = ["\t", "\n", "\r", "\\", "\\N", "é", "€", "\U0001d11e", '"', ","]
        rows = [["id", "value", "other"]]
        for length in range(25):
            for pos in range(length + 1):
                for ch in specials:
                    v = "a" * pos + ch + "b" * (length - pos)
                    rows.append([str(len(rows)), v, v[::-1] + "x" * length])
        src = self.path("offsets.csv")
        import csv
        with open(src, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
        text_src = self.path("offsets_text.csv")
        with open(src, "rb") as f, open(text_src, "wb") as g:
            g.write(f.read())
        cons = self.consumer("--db", SERVER.keywords(db))
        for path in (src, text_src):
            res = self.run_producer(path, cons.port, "tcp", ["--interval", "0"])
            self.assertExit(res, 0, "producer")
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertIn("existing table 'offsets_text' in %s (appending; COPY text" %
                      SERVER.keywords(db), res.stderr)
        for table in ("offsets", "offsets_text"):
            got = self.rows_of(table, ["id", "value", "other"], db, "tcp")
            self.assertRowsEqual(rows[1:], got, "%s vs source" % table)

    def rows_of(self, table, cols, db, proto):
        sel = ", ".join(harness.quote_ident(c) for c in cols)
        out = subprocess.run(["psql", "-X", "-q", "-h", SERVER.dir, "-p", str(SERVER.port), "-U",
                              "postgres", "-d", db, "-c",
                              "COPY (SELECT %s FROM %s WHERE _protocol = '%s' ORDER BY _seq) TO "
                              "STDOUT CSV" % (sel, harness.quote_ident(table), proto)],
                             capture_output=True, timeout=60)
        self.assertEqual(0, out.returncode, out.stderr)
        import csv
        import io
        return list(csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline="")))

    def test_names_made_safe_and_password_not_logged(self):
        db = self.new_db()
        long_name = "x" * 70
        header = ["", "a", "a", "_seq", "xmin", long_name, long_name + "y", "A"]
        rows = [header] + [[str(i)] * len(header) for i in range(1, 4)]
        src = self.path("names.csv")
        harness.write_csv(src, rows)
        target = SERVER.keywords(db) + " password=s3cret-word"
        cons = self.consumer("--tcp", "--db", target, protocols=("tcp",))
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertNotIn("s3cret", res.stderr + res.stdout + json.dumps(res.stats))
        self.assertIn("dbname=%s" % db, res.stderr)
        cols = self.data_columns("names", db)
        self.assertEqual(["column_1", "a", "a_2", "_seq_2", "xmin_2", "x" * 63, "x" * 61 + "_2",
                          "A"], cols)
        self.assertEqual([r for r in rows[1:]], SERVER.copy_out("names", cols, db))
        uri_target = SERVER.uri(db).replace("postgres@", "postgres:s3cret-word@")
        cons = self.consumer("--tcp", "--db", uri_target, protocols=("tcp",))
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--interval", "0"]), 0)
        res = cons.stop()
        self.assertExit(res, 0, "consumer over the URI")
        self.assertNotIn("s3cret", res.stderr + res.stdout + json.dumps(res.stats))
        self.assertIn("postgresql://postgres@127.0.0.1:%d/%s" % (SERVER.port, db), res.stderr)
        # Same name, same header: the second run appends to the table of the first.
        self.assertIn("existing table 'names'", res.stderr)
        self.assertEqual(6, self.count(db, "SELECT count(*) FROM names"))
        query_target = SERVER.uri(db) + "?password=s3cret-word&application_name=names-test"
        cons = self.consumer("--tcp", "--db", query_target, protocols=("tcp",))
        res = cons.stop()
        self.assertExit(res, 0, "consumer with the password in the URI's query")
        self.assertNotIn("s3cret", res.stderr + res.stdout + json.dumps(res.stats))
        self.assertIn("%s?application_name=names-test" % SERVER.uri(db), res.stderr)

    def test_text_postgres_cannot_hold(self):
        """A NUL byte in a value: over UDP the record is counted and logged, not stored (it is
        in out9.txt); over TCP the stream is refused (nothing is acknowledged that is not
        stored), and the producer says so and exits 1."""
        db = self.new_db()
        src = self.path("nul.csv")
        with open(src, "wb") as f:
            f.write(b"id,value\n1,a\n2,b\x00c\n3,d\n")
        cons = self.consumer("--db", SERVER.keywords(db))
        res_u = self.run_producer(src, cons.port, "udp", ["--interval", "0"])
        self.assertExit(res_u, 0, "UDP producer")
        res_t = self.run_producer(src, cons.port, "tcp", ["--interval", "0"])
        self.assertExit(res_t, 1, "TCP producer whose stream is refused")
        self.assertIn("refused the stream", res_t.stderr)
        time.sleep(0.3)
        res = cons.stop()
        self.assertIn("not UTF-8 text (or holds a NUL byte)", res.stderr)
        self.assertEqual(1, res.stats["postgres"]["dropped"], res.describe())
        self.assertEqual("1|3", SERVER.psql("SELECT string_agg(id, '|' ORDER BY id) FROM nul "
                                            "WHERE _protocol = 'udp'", db).strip())

    def test_a_row_the_server_refuses_names_the_table_and_the_record(self):
        """A table of the database adopted by name and columns, whose id column is an integer:
        the server refuses the record whose id is not a number; the consumer says which table,
        which record and the server's message, saves what it could not commit, exits 1."""
        db = self.new_db()
        SERVER.psql('CREATE TABLE typed (id integer, value text, "_producer" text, "_protocol" '
                    'text, "_seq" bigint, "_sent_us" bigint, "_received_us" bigint, "_peer" '
                    'text)', db)
        src = self.path("typed.csv")
        harness.write_csv(src, [["id", "value"], ["1", "a"], ["x", "b"], ["3", "c"]])
        cons = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        self.assertExit(self.run_producer(src, cons.port, "udp", ["--interval", "0"]), 0)
        rc = cons.proc.wait(20)  # it stops by itself
        res = cons.stop()
        self.assertEqual(1, rc, res.describe())
        self.assertIn("existing table 'typed' in %s (appending; COPY text, since some columns "
                      "have other types)" % SERVER.keywords(db), res.stderr)
        self.assertRegex(res.stderr, r"table 'typed': udp record typed #2 refused: invalid input "
                                     r"syntax for type integer: \"x\" \(SQLSTATE 22P02\)")
        # Record 1 may have been committed in a batch of its own before record 2 came.
        saved = re.search(r"(\d) rows? not committed: saved to out9.txt.pg-uncommitted.csv",
                          res.stderr)
        self.assertIsNotNone(saved, res.stderr)
        self.assertEqual(3 - int(saved.group(1)),
                         self.count(db, "SELECT count(*) FROM typed"))
        self.assertEqual(0, self.count(db, "SELECT count(*) FROM typed WHERE _seq >= 2"))

    def test_a_row_refused_in_binary_copy_names_the_record(self):
        """A table adopted with the sink's own column types (so rows go as binary COPY) and a
        check the third record fails: the message names the table, that record and the
        server's message."""
        db = self.new_db()
        SERVER.psql('CREATE TABLE checked (id text, value text CHECK (value <> \'bad\'), '
                    '"_producer" text, "_protocol" text, "_seq" bigint, "_sent_us" bigint, '
                    '"_received_us" bigint, "_peer" text)', db)
        src = self.path("checked.csv")
        harness.write_csv(src, [["id", "value"], ["1", "a"], ["2", "b\tc"], ["3", "bad"],
                                ["4", "d"]])
        cons = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        self.assertExit(self.run_producer(src, cons.port, "udp", ["--interval", "0"]), 0)
        rc = cons.proc.wait(20)  # it stops by itself
        res = cons.stop()
        self.assertEqual(1, rc, res.describe())
        self.assertIn("existing table 'checked' in %s (appending)" % SERVER.keywords(db),
                      res.stderr)
        self.assertRegex(res.stderr, r"table 'checked': udp record checked #3 refused: new row "
                                     r"for relation \"checked\" violates check constraint")
        self.assertEqual(0, self.count(db, "SELECT count(*) FROM checked WHERE _seq >= 3"))

    def test_a_unique_violation_in_an_adopted_table_stops_naming_the_table(self):
        """An adopted table with a unique column the stream violates: trying again cannot help,
        so the consumer stops (exit 1) with the table and the server's message, instead of
        retrying for ever; no record is named, since the server reports such an error at a
        later row than the one that caused it."""
        db = self.new_db()
        SERVER.psql('CREATE TABLE uniq (a text UNIQUE, b text, "_producer" text, "_protocol" '
                    'text, "_seq" bigint, "_sent_us" bigint, "_received_us" bigint, "_peer" '
                    'text)', db)
        src = self.path("uniq.csv")
        harness.write_csv(src, [["a", "b"], ["1", "x"], ["2", "y"], ["1", "z"]])
        cons = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        self.assertExit(self.run_producer(src, cons.port, "udp", ["--interval", "0"]), 0)
        rc = cons.proc.wait(20)  # it stops by itself
        res = cons.stop()
        self.assertEqual(1, rc, res.describe())
        self.assertRegex(res.stderr, r"duplicate key value violates unique constraint .*"
                                     r"\(Key \(a\)=\(1\) already exists\.\) "
                                     r"\(SQLSTATE 23505\) in table uniq; stopping")
        self.assertNotIn("trying again", res.stderr)
        self.assertEqual(0, self.count(db, "SELECT count(*) FROM uniq"))

    def test_a_column_retyped_while_streaming_goes_on_in_copy_text(self):
        """Another client changes a column's type while rows stream in (binary COPY, which
        fixes the types): the next batch is refused, the sink says so and goes on in COPY text,
        which the server converts; every record ends in the table once."""
        db = self.new_db()
        src = self.path("alt.csv")
        n = 60
        harness.write_csv(src, [["a", "b"]] + [[str(i), "v%d" % i] for i in range(1, n + 1)])
        cons = self.consumer("--db", SERVER.keywords(db))
        started = self.start_producer(src, cons.port, "tcp", ["--rate", "30"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if "alt" in SERVER.psql("SELECT tablename FROM pg_tables WHERE tablename = 'alt'",
                                    db) and self.count(db, "SELECT count(*) FROM alt") >= 5:
                break
            time.sleep(0.05)
        SERVER.psql("ALTER TABLE alt ALTER COLUMN a TYPE integer USING a::integer", db)
        self.assertExit(self.finish_producer(started, timeout=60), 0, "producer")
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertIn("binary COPY refused", res.stderr)
        self.assertIn("sending COPY text from now on", res.stderr)
        self.assertEqual(n, self.count(db, "SELECT count(*) FROM alt"))
        self.assertEqual(n, self.count(db, "SELECT count(DISTINCT _seq) FROM alt"))
        self.assertEqual(sum(range(1, n + 1)), self.count(db, "SELECT sum(a) FROM alt"))

    def test_send_times_past_two_to_the_63_are_garbage(self):
        """A peer's send time past 2^63 us fits no bigint (and no clock gives it): the frame is
        malformed, counted as garbage, and the rest is stored exactly, in both COPY formats (a
        new table: binary; an adopted one with an integer column: text); exit 0."""
        db = self.new_db()
        SERVER.psql('CREATE TABLE sent_txt (a integer, "_producer" text, "_protocol" text, '
                    '"_seq" bigint, "_sent_us" bigint, "_received_us" bigint, "_peer" text)', db)
        cons = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        times = [0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]
        for stream, pid in ((b"sent_bin", 0x5E17), (b"sent_txt", 0x5E18)):
            for seq, us in enumerate(times, 1):
                send_times_datagram(cons.port, pid, stream, seq, us, str(seq).encode())
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertGreaterEqual(res.stats["udp"]["garbage"], 4, res.describe())
        for table in ("sent_bin", "sent_txt"):
            got = SERVER.psql("SELECT _seq, _sent_us FROM %s ORDER BY _seq" % table, db)
            rows = [line.split("|") for line in got.split()]
            self.assertEqual([["1", "0"], ["2", "1"], ["3", str(2 ** 63 - 1)]], rows, table)

    def test_permission_denied_stops_with_the_servers_message(self):
        db = self.new_db()
        SERVER.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reader') "
                    "THEN CREATE ROLE reader LOGIN; END IF; END$$")
        src = self.path("denied.csv")
        harness.write_csv(src, [["id"], ["1"]])
        target = "host=%s port=%d user=reader dbname=%s" % (SERVER.dir, SERVER.port, db)
        cons = self.consumer("--udp", "--db", target, protocols=("udp",))
        self.assertExit(self.run_producer(src, cons.port, "udp", ["--interval", "0"]), 0)
        rc = cons.proc.wait(20)
        res = cons.stop()
        self.assertEqual(1, rc, res.describe())
        self.assertIn("permission denied for schema public (SQLSTATE 42501); stopping", res.stderr)

    def test_no_such_database_is_an_error_at_the_start(self):
        res = self.run_program([harness.CONSUMER, "--port", str(harness.free_port()), "--db",
                                SERVER.keywords("no_such_db")])
        self.assertExit(res, 1, "consumer with a database that does not exist")
        self.assertIn('database "no_such_db" does not exist', res.stderr)


class LatencyTest(PostgresCase):

    def test_a_trickle_is_committed_within_about_100_ms(self):
        """At 10 records a second each record is visible to another client soon after it
        arrived: the time from its _received_us (the consumer's clock) to the first query that
        sees it, polling every few milliseconds."""
        db = self.new_db()
        src = self.path("trickle.csv")
        source(src, 20)
        cons = self.consumer("--tcp", "--db", SERVER.keywords(db), protocols=("tcp",))
        seen = {}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                r = subprocess.run(["psql", "-X", "-A", "-t", "-h", SERVER.dir, "-p",
                                    str(SERVER.port), "-U", "postgres", "-d", db, "-c",
                                    "SELECT _seq, _received_us FROM trickle"],
                                   capture_output=True, text=True)
                now = time.time()
                for line in r.stdout.split("\n") if r.returncode == 0 else []:
                    if line and int(line.split("|")[0]) not in seen:
                        seen[int(line.split("|")[0])] = now - int(line.split("|")[1]) / 1e6
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        res_p = self.run_producer(src, cons.port, "tcp", ["--rate", "10"])
        time.sleep(0.3)
        stop.set()
        t.join(10)
        self.assertExit(res_p, 0, "producer")
        self.assertExit(cons.stop(), 0, "consumer")
        self.assertEqual(list(range(1, 21)), sorted(seen))
        waits = sorted(seen.values())
        # The commit pace is 50 ms; a poll (a psql process) takes some milliseconds more.
        self.assertLess(waits[len(waits) // 2], 0.1, waits)
        self.assertLess(waits[-1], 0.25, waits)


class ManyWritersTest(PostgresCase):

    def test_two_consumers_ten_producers_each_while_a_reader_counts(self):
        db = self.new_db()
        n = 3000
        src = self.path("feed.csv")
        rows = source(src, n)
        cons = []
        for i in (1, 2):
            # Each consumer in its own folder: two cannot share one out9.txt.
            os.mkdir(self.path("host%d" % i))
            cons.append(self.consumer("--db", SERVER.uri(db), dir=self.path("host%d" % i)))
        stop = threading.Event()
        reads = {"n": 0, "errors": [], "counts": []}

        def reader():
            while not stop.is_set():
                r = subprocess.run(["psql", "-X", "-A", "-t", "-h", SERVER.dir, "-p",
                                    str(SERVER.port), "-U", "postgres", "-d", db, "-c",
                                    "SELECT count(*) FROM feed"], capture_output=True, text=True)
                if r.returncode == 0:
                    reads["counts"].append(int(r.stdout.strip()))
                elif "does not exist" not in r.stderr:
                    reads["errors"].append(r.stderr)
                reads["n"] += 1
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        started = []
        for c in cons:
            for k in range(10):
                proto = "tcp" if k % 2 == 0 else "udp"
                started.append((proto, self.start_producer(src, c.port, proto,
                                                           ["--rate", "3000"])))
        results = [(proto, self.finish_producer(s, timeout=120)) for proto, s in started]
        time.sleep(0.3)
        stops = [c.stop() for c in cons]
        stop.set()
        t.join(30)
        for r in stops:
            self.assertExit(r, 0, "consumer")
        for proto, r in results:
            self.assertExit(r, 0, "producer over %s" % proto)
        self.assertEqual([], reads["errors"])
        self.assertGreater(reads["n"], 3, "the reader ran while the rows came")
        self.assertEqual(sorted(reads["counts"]), reads["counts"], "counts only grow")
        per = {}
        for line in SERVER.psql("SELECT _producer, _protocol, count(*), count(DISTINCT _seq), "
                                "min(_seq), max(_seq) FROM feed GROUP BY 1, 2", db).split("\n"):
            if line:
                f = line.split("|")
                per[f[0]] = (f[1], int(f[2]), int(f[3]))
        self.assertEqual(20, len(per), per)
        for proto, r in results:
            got = per[r.stats["producer_id"]]
            self.assertEqual(got[1], got[2], "no record twice: %r" % (got,))
            if proto == "tcp":
                self.assertEqual(n, got[1], "every TCP record once")
        received_udp = sum(s["udp"]["received"] for s in (r.stats for r in stops))
        stored_udp = sum(v[1] for v in per.values() if v[0] == "udp")
        self.assertEqual(received_udp, stored_udp, "every UDP record received is stored once")
        # The values, checked for one producer of each protocol against the source.
        for proto, r in results[:2]:
            got = SERVER.psql("SELECT count(*) FROM feed f WHERE _producer = '%s' AND value = "
                              "(CASE WHEN id::int %% 7 = 0 THEN 'q,\"' || id || '\"' || chr(10) "
                              "|| 'line' || chr(9) || '\\x' ELSE 'v' || id END)" %
                              r.stats["producer_id"], db)
            self.assertEqual(per[r.stats["producer_id"]][1], int(got.strip()), proto)


class FaultsTest(PostgresCase):

    def test_same_records_through_two_consumers_stored_once(self):
        """A producer (one identity, --id) whose records reach the database through two
        consumers: the second, started before the first committed anything, does not know
        they are stored (nothing to skip at its start), and the locked progress row tells it:
        every row once."""
        db = self.new_db()
        n = 5000
        src = self.path("moved.csv")
        rows = source(src, n)
        for d in ("a", "b"):
            os.mkdir(self.path(d))
        second = self.consumer("--tcp", "--db", SERVER.keywords(db), dir=self.path("b"),
                               protocols=("tcp",), name="consumer-b")
        first = self.consumer("--tcp", "--db", SERVER.keywords(db), dir=self.path("a"),
                              protocols=("tcp",), name="consumer-a")
        for cons in (first, second):
            res_p = self.run_producer(src, cons.port, "tcp", ["--interval", "0", "--id",
                                                              "sensor-7"])
            self.assertExit(res_p, 0, "producer")
            self.assertEqual(n, res_p.stats["acked"], res_p.describe())
        res_b = second.stop()
        res_a = first.stop()
        self.assertExit(res_a, 0, "first consumer")
        self.assertExit(res_b, 0, "second consumer")
        self.assertGreaterEqual(res_b.stats["postgres"]["conflicts"], 1, res_b.describe())
        self.assertRowsEqual(rows[1:], SERVER.copy_out("moved", ["id", "value"], db),
                             "the table: every record once")
        self.assertRowsEqual(rows, harness.read_csv(second.out_path()), "b's out9.txt")

    def test_server_stopped_five_seconds_nothing_lost_nothing_doubled(self):
        db = self.new_db()
        n = 24000
        src = self.path("outage.csv")
        rows = source(src, n)
        cons = self.consumer("--tcp", "--db", SERVER.keywords(db), protocols=("tcp",))
        prods = [self.start_producer(src, cons.port, "tcp", ["--rate", "3000"]) for _ in range(3)]
        time.sleep(1.5)
        SERVER.stop("fast")
        try:
            time.sleep(5)
        finally:
            SERVER.start()
        results = [self.finish_producer(p, timeout=120) for p in prods]
        res = cons.stop()
        self.assertExit(res, 0, "consumer across the outage")
        for r in results:
            self.assertExit(r, 0, "TCP producer across the outage")
            self.assertEqual(n, r.stats["acked"], r.describe())
        self.assertExit(res, 0, "consumer across the outage")
        self.assertIn("unreachable", res.stderr)
        self.assertIn("connected again after", res.stderr)
        self.assertGreaterEqual(res.stats["postgres"]["reconnects"], 1, res.describe())
        for r in results:
            line = SERVER.psql("SELECT count(*), count(DISTINCT _seq) FROM outage WHERE "
                               "_producer = '%s'" % r.stats["producer_id"], db).strip()
            self.assertEqual("%d|%d" % (n, n), line, "every record of the producer, once")
        one = results[0].stats["producer_id"]
        got = self.rows_of(db, one)
        self.assertRowsEqual(rows[1:], got, "the table, in order, once")

    def rows_of(self, db, producer):
        out = subprocess.run(["psql", "-X", "-q", "-h", SERVER.dir, "-p", str(SERVER.port), "-U",
                              "postgres", "-d", db, "-c",
                              "COPY (SELECT id, value FROM outage WHERE _producer = '%s' ORDER BY "
                              "_seq) TO STDOUT CSV" % producer], capture_output=True, timeout=60)
        import csv
        import io
        return list(csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline="")))

    def test_consumer_killed_and_restarted_every_record_once(self):
        db = self.new_db()
        n = 60000
        src = self.path("feed.csv")
        rows = source(src, n)
        # --fsync: each batch also asks the server to wait for its disk (SET LOCAL).
        cons = self.consumer("--tcp", "--fsync", "--db", SERVER.keywords(db), protocols=("tcp",))
        port = cons.port
        prod = self.start_producer(src, port, "tcp", ["--rate", "20000"])
        rnd = random.Random(12)
        for _ in range(3):
            time.sleep(rnd.uniform(0.3, 0.8))
            cons.proc.popen.send_signal(signal.SIGKILL)
            cons.proc.wait(10)
            time.sleep(rnd.uniform(0.05, 0.3))
            cons = self.consumer("--tcp", "--fsync", "--db", SERVER.keywords(db), port=port,
                                 protocols=("tcp",))
        res_p = self.finish_producer(prod, timeout=120)
        self.assertExit(res_p, 0, "producer across three consumer crashes")
        self.assertEqual(n, res_p.stats["acked"], res_p.describe())
        res = cons.stop()
        self.assertExit(res, 0, "the last consumer")
        self.assertRowsEqual(rows, harness.read_csv(cons.out_path()), "out9.txt: each once")
        self.assertRowsEqual(rows[1:], SERVER.copy_out("feed", ["id", "value"], db),
                             "the table: every record once, in order")

    def test_stopped_while_the_server_is_down_saves_the_rows(self):
        db = self.new_db()
        src = self.path("late.csv")
        rows = source(src, 400)
        cons = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        SERVER.stop("fast")
        try:
            res_p = self.run_producer(src, cons.port, "udp", ["--interval", "0"])
            self.assertExit(res_p, 0, "UDP producer")
            harness.wait_for_rows(cons.out_path(), 401, 10)
            cons.proc.popen.send_signal(signal.SIGINT)
            time.sleep(0.5)
            res = cons.stop(timeout=30)
        finally:
            SERVER.start()
        self.assertExit(res, 1, "rows not committed: exit 1")
        saved = cons.out_path("out9.txt.pg-uncommitted.csv")
        self.assertIn("saved to %s" % "out9.txt.pg-uncommitted.csv", res.stderr)
        got = harness.read_csv(saved)
        self.assertEqual(["table", "_producer", "_protocol", "_seq", "_sent_us", "_received_us",
                          "_peer"], got[0])
        self.assertEqual(rows[1:], [r[7:] for r in got[1:]])
        # The next consumer in that folder says the file is there, and what to do before
        # importing it.
        again = self.consumer("--udp", "--db", SERVER.keywords(db), protocols=("udp",))
        res2 = again.stop()
        self.assertExit(res2, 0, "the next consumer")
        self.assertIn("out9.txt.pg-uncommitted.csv holds rows an earlier run could not commit",
                      res2.stderr)
        self.assertIn("before importing any", res2.stderr)


class ParallelBatchesTest(PostgresCase):
    """A batch that starts while another is in flight goes in on a second connection, and
    commits after it (its streams' progress locked and checked then)."""

    def table_rows(self, db, table, producer):
        out = subprocess.run(["psql", "-X", "-q", "-h", SERVER.dir, "-p", str(SERVER.port), "-U",
                              "postgres", "-d", db, "-c",
                              "COPY (SELECT id, value FROM %s WHERE _producer = '%s' ORDER BY "
                              "_seq) TO STDOUT CSV" % (table, producer)],
                             capture_output=True, timeout=120)
        self.assertEqual(0, out.returncode, out.stderr)
        import csv
        import io
        return list(csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline="")))

    def assert_each_once(self, db, table, rows, results):
        for r in results:
            pid = r.stats["producer_id"]
            line = SERVER.psql("SELECT count(*), count(DISTINCT _seq) FROM %s WHERE _producer = "
                               "'%s'" % (table, pid), db).strip()
            n = len(rows) - 1
            self.assertEqual("%d|%d" % (n, n), line, "every record of %s, once" % pid)
        self.assertRowsEqual(rows[1:], self.table_rows(db, table, results[0].stats["producer_id"]),
                             "one producer's rows, in order, once")

    def start_streams(self, name, n, producers, args):
        """A fresh database, a file of n records, a TCP consumer into it and the producers
        (started, with args): (db, rows, consumer, started producers)."""
        db = self.new_db()
        src = self.path(name + ".csv")
        rows = source(src, n)
        cons = self.consumer("--tcp", "--db", SERVER.keywords(db), protocols=("tcp",))
        return db, rows, cons, [self.start_producer(src, cons.port, "tcp", args)
                                for _ in range(producers)]

    def finish_streams(self, cons, prods, n):
        """Every producer exits 0 with its n records acknowledged, then the consumer: (the
        consumer's result, the producers')."""
        results = [self.finish_producer(p, timeout=120) for p in prods]
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        for r in results:
            self.assertExit(r, 0, "producer")
            self.assertEqual(n, r.stats["acked"], r.describe())
        return res, results

    def test_a_fast_stream_goes_in_on_two_connections_every_row_once(self):
        n = 150000
        db, rows, cons, prods = self.start_streams("fast", n, 2, ["--interval", "0"])
        res, results = self.finish_streams(cons, prods, n)
        pg = res.stats["postgres"]
        self.assertEqual(2 * n, pg["committed"], res.describe())
        self.assertGreaterEqual(pg["batches_parallel"], 1,
                                "no batch went beside another: %r" % pg)
        self.assertLess(pg["batches_parallel"], pg["batches"], pg)
        self.assert_each_once(db, "fast", rows, results)

    def test_second_connection_refused_one_is_enough(self):
        """A role allowed one connection: the second is refused, the consumer says so (once),
        and writes everything on the first."""
        db = self.new_db()
        SERVER.psql("DROP ROLE IF EXISTS one_conn; CREATE ROLE one_conn LOGIN CONNECTION LIMIT 1")
        SERVER.psql('ALTER DATABASE "%s" OWNER TO one_conn' % db)
        SERVER.psql("GRANT ALL ON SCHEMA public TO one_conn", db)
        target = "host=%s port=%d user=one_conn dbname=%s" % (SERVER.dir, SERVER.port, db)
        n = 150000
        src = self.path("one.csv")
        rows = source(src, n)
        cons = self.consumer("--tcp", "--db", target, protocols=("tcp",))
        res_p = self.run_producer(src, cons.port, "tcp", ["--interval", "0"], timeout=120)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertExit(res_p, 0, "producer")
        self.assertEqual(n, res_p.stats["acked"], res_p.describe())
        self.assertEqual(1, res.stderr.count("a second connection failed"), res.stderr[-2000:])
        self.assertIn("too many connections", res.stderr)
        self.assertEqual(0, res.stats["postgres"]["batches_parallel"], res.describe())
        self.assertRowsEqual(rows[1:], SERVER.copy_out("one", ["id", "value"], db),
                             "the table: every record once, in order")

    def test_connections_terminated_mid_stream_every_row_once(self):
        """The server ends one of the consumer's connections, at random, again and again while
        batches are in flight on both: a batch after a lost one is rolled back, not committed,
        and every row is in the table once."""
        n = 200000
        db, rows, cons, prods = self.start_streams("cut", n, 3, ["--rate", "80000"])
        rnd = random.Random(7)
        cut = 0
        deadline = time.monotonic() + 60
        while any(p[0].running() for p in prods) and time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.05, 0.25))
            pids = SERVER.psql("SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND "
                               "application_name = 'csvstream-consumer'" % db).split()
            if pids:
                got = SERVER.psql("SELECT pg_terminate_backend(%s)" % rnd.choice(pids), check=False)
                cut += "t" in got
        self.assertGreaterEqual(cut, 3, "connections terminated")
        res, results = self.finish_streams(cons, prods, n)
        self.assertGreaterEqual(res.stats["postgres"]["reconnects"] +
                                res.stats["postgres"]["retries"], 1, res.describe())
        self.assert_each_once(db, "cut", rows, results)


class MultipleProcessesTest(PostgresCase):

    def test_six_of_six_in_about_three_seconds(self):
        db = self.new_db()
        mp = os.path.join(harness.BIN, "multiple_processes")
        t0 = time.monotonic()
        res = self.run_program([mp, "--mode", "postgres", "--db", SERVER.uri(db),
                                "--task-duration", "3"], timeout=60)
        took = time.monotonic() - t0
        self.assertExit(res, 0, "multiple_processes --mode postgres")
        self.assertIn("inserted 6 of 6 records; none failed", res.stdout)
        self.assertLess(took, 5.5, "the transactions ran at once: %.1f s\n%s" % (took, res.stdout))
        self.assertGreater(took, 2.9, res.stdout)
        self.assertEqual(6, self.count(db, "SELECT count(*) FROM direct_readings"))

    def test_a_file_name_is_a_usage_error(self):
        mp = os.path.join(harness.BIN, "multiple_processes")
        res = self.run_program([mp, "--mode", "postgres", "--db", "shared.db"])
        self.assertExit(res, 2, "postgres mode with an SQLite file")
        self.assertIn("--db must name a PostgreSQL database", res.stderr)


if __name__ == "__main__":
    pgserver.skip_unless_available()
    harness.main()
