"""test_dialects.py -- files that are not UTF-8 comma-separated CSV: a ';'-separated Latin-1
export with a title line round-trips into out9.txt (UTF-8, commas) and SQLite (read by Python's
sqlite3 with its default settings), compared with Python's csv reading the source with the same
dialect and encoding; --delimiter auto and --encoding auto say what they chose; UTF-16 with a
byte-order mark is read with --encoding auto and refused without it; a file that is not UTF-8
sent as it is lands in SQLite as BLOBs of its exact bytes; a header-only file gives its header
line and an empty table; comments are skipped and counted."""

import csv
import io
import os
import sqlite3

import harness

# Made up for the test: a statistics office's export, in Latin-1, ';'-separated, with decimal
# commas, quoted fields holding ';', doubled quotes and a line break, and a title line.
LATIN1_ROWS = [
    ["Gemeinde", "Bevölkerung", "Fläche km²", "Bemerkung"],
    ["Zürich", "421878", "87,88", "größte Stadt"],
    ["Genève", "203856", "15,93", 'Rhône; "Jet d\'eau"'],
    ["Biel/Bienne", "55159", "21,21", "zweisprachig\r\nbilingue"],
    ["Delémont", "12682", "22,05", ""],
]
TITLE = "Statistik der Gemeinden 2025 – ständige Wohnbevölkerung"


def write_latin1(path):
    buf = io.StringIO()
    buf.write(TITLE.replace("–", "-") + "\r\n")
    csv.writer(buf, delimiter=";", lineterminator="\r\n").writerows(LATIN1_ROWS)
    with open(path, "wb") as f:
        f.write(buf.getvalue().encode("latin-1"))


def read_source(path, encoding, delimiter, skip):
    """The oracle: Python's csv reading the source with the same dialect and encoding."""
    with open(path, newline="", encoding=encoding) as f:
        for _ in range(skip):
            f.readline()
        return [row for row in csv.reader(f, delimiter=delimiter, strict=True)]


def sqlite_rows(db, table, ncols):
    """Rows of table as Python's sqlite3 reads them with its default settings (text as str)."""
    con = sqlite3.connect(db)
    try:
        cur = con.execute('SELECT * FROM "%s" ORDER BY _seq' % table)
        names = [d[0] for d in cur.description][:ncols]
        return names, [list(r[:ncols]) for r in cur.fetchall()]
    finally:
        con.close()


class DialectTest(harness.IntegrationCase):

    def round_trip(self, src, args, expect, table):
        """Stream src with args into out9.txt and --db; both must equal expect (header first)."""
        db = self.path(table + ".db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port, args=["--interval", "0"] + args)
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        self.assertRowsEqual(expect, harness.read_csv(cons.out_path()), "out9.txt")
        names, rows = sqlite_rows(db, table, len(expect[0]))
        self.assertEqual(expect[0], names, "SQLite column names")
        self.assertRowsEqual(expect[1:], rows, "SQLite rows")
        return prod

    def test_latin1_semicolon_title_line(self):
        src = self.path("gemeinden.csv")
        write_latin1(src)
        expect = read_source(src, "latin-1", ";", 1)
        self.assertEqual(LATIN1_ROWS, expect)  # the oracle reads what was written
        prod = self.round_trip(src, ["--delimiter", ";", "--encoding", "latin1",
                                     "--skip-lines", "1"], expect, "gemeinden")
        self.assertIn("1 line skipped at the start", prod.stdout)
        self.assertEqual(1, prod.stats["skipped_lines"])

    def test_auto_detects_semicolon_and_windows_1252(self):
        src = self.path("preise.csv")
        rows = [["Artikel", "Preis", "Notiz"], ["Café", "3,50 €", "„gut“ – sagt man"],
                ["Crème brûlée", "6,20 €", "‘süß’"]]
        buf = io.StringIO()
        csv.writer(buf, delimiter=";", lineterminator="\n").writerows(rows)
        with open(src, "wb") as f:
            f.write(buf.getvalue().encode("windows-1252"))
        expect = read_source(src, "windows-1252", ";", 0)
        prod = self.round_trip(src, ["--delimiter", "auto", "--encoding", "auto"], expect,
                               "preise")
        self.assertIn("delimiter ';'", prod.stderr)
        self.assertIn("encoding windows-1252", prod.stderr)

    def test_utf16_with_bom(self):
        src = self.path("unicode.txt")
        rows = [["name", "city"], ["Łukasz", "Kraków"], ["Zoë", "Zürich"]]
        text = "".join("\t".join(r) + "\r\n" for r in rows)
        with open(src, "wb") as f:
            f.write(text.encode("utf-16"))  # a BOM, then the machine's byte order
        # Read as UTF-8 (the default) it is refused, and the error says what to do.
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, args=["--interval", "0"])
        self.assertExit(prod, 1, "UTF-16 read as UTF-8")
        self.assertIn("--encoding auto", prod.stderr)
        self.assertIn("byte-order mark", prod.stderr)
        cons.stop()
        os.unlink(cons.out_path()) if os.path.exists(cons.out_path()) else None
        prod = self.round_trip(src, ["--encoding", "auto", "--delimiter", "tab"], rows, "unicode")
        self.assertIn("encoding UTF-16", prod.stderr)

    def test_bytes_that_are_not_utf8_stored_as_blobs(self):
        src = self.path("raw.csv")
        with open(src, "wb") as f:
            f.write(b"caf\xe9,plain\r\nna\xefve,ok\r\n\xff\xfe\xfd,x\r\n")
        db = self.path("raw.db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port, args=["--interval", "0"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        self.assertIn("raw.csv:1: not valid UTF-8 at byte 4 of the line", prod.stderr)
        self.assertIn("raw.csv:2: not valid UTF-8 at byte 3 of the line", prod.stderr)
        self.assertEqual(3, prod.stats["invalid_utf8_lines"])
        # out9.txt keeps the bytes as they were sent.
        with open(cons.out_path(), "rb") as f:
            self.assertEqual(b"caf\xe9,plain\r\nna\xefve,ok\r\n\xff\xfe\xfd,x\r\n", f.read())
        # Python's sqlite3 with default settings reads every row: the bad values are bytes.
        con = sqlite3.connect(db)
        try:
            cols = [r[1] for r in con.execute('PRAGMA table_info("raw")')]
            rows = con.execute('SELECT * FROM "raw" ORDER BY _seq').fetchall()
        finally:
            con.close()
        self.assertEqual(["café", "plain"], cols[:2])
        self.assertEqual([(b"na\xefve", "ok"), (b"\xff\xfe\xfd", "x")], [r[:2] for r in rows])
        self.assertIn("not valid UTF-8", res.stderr)
        self.assertIn("'café'", res.stderr)

    def test_bytes_that_are_not_utf8_in_a_burst_name_their_column(self):
        """Rows that arrive together go into SQLite several to a statement; the first value that
        is not UTF-8 among them is named by its own column (the message once read the name at
        the statement's parameter number, past the end of the column list: a crash)."""
        src = self.path("burst.csv")
        with open(src, "wb") as f:
            f.write(b"id,name,city\n")
            for i in range(200):
                f.write(b"%d,n%d,%s\n" % (i, i, b"M\xfcnchen" if i == 150 else b"Paris"))
        db = self.path("burst.db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port, args=["--interval", "0"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        self.assertIn("(first in column 'city')", res.stderr, res.describe())
        con = sqlite3.connect(db)
        try:
            rows = con.execute('SELECT id, name, city FROM "burst" ORDER BY _seq').fetchall()
        finally:
            con.close()
        self.assertEqual(200, len(rows))
        self.assertEqual(("150", "n150", b"M\xfcnchen"), rows[150])
        self.assertEqual(("199", "n199", "Paris"), rows[199])

    def test_header_only_file(self):
        src = self.path("empty_table.csv")
        with open(src, "w", newline="") as f:
            f.write("when;what;how much\r\n")
        db = self.path("h.db")
        cons = self.consumer("--db", db)
        prod = self.run_producer(src, cons.port, args=["--interval", "0", "--delimiter", ";"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        self.assertEqual([["when", "what", "how much"]], harness.read_csv(cons.out_path()))
        con = sqlite3.connect(db)
        try:
            cols = [r[1] for r in con.execute('PRAGMA table_info("empty_table")')]
            n = con.execute('SELECT count(*) FROM "empty_table"').fetchone()[0]
        finally:
            con.close()
        self.assertEqual(["when", "what", "how much"], cols[:3])
        self.assertEqual(0, n)

    def test_comments_and_one_column_empty_values(self):
        src = self.path("notes.csv")
        with open(src, "w", newline="") as f:
            f.write("# exported 2025-01-01\nnote\nfirst\n\n# a remark\nthird\n")
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, args=["--interval", "0", "--comment", "#"])
        res = cons.stop()
        self.assertExit(prod, 0, "producer")
        self.assertExit(res, 0, "consumer")
        self.assertEqual([["note"], ["first"], [""], ["third"]], harness.read_csv(cons.out_path()))
        self.assertEqual(2, prod.stats["comment_lines"])
        self.assertIn("2 comments (--comment)", prod.stdout)

    def test_malformed_quoting_hints_at_the_delimiter(self):
        src = self.path("semi.csv")
        with open(src, "w", newline="") as f:
            f.write('a;b;c\n1;"x";2\n3;say "hi";4\n')
        cons = self.consumer()
        prod = self.run_producer(src, cons.port, args=["--interval", "0"])
        cons.stop()
        self.assertExit(prod, 1, "malformed quoting")
        self.assertIn("semi.csv:2: malformed quoting in field 1 (byte 3 of the line): a quote "
                      "inside a field that does not start with one", prod.stderr)
        self.assertIn("near '1;\"x\";2'", prod.stderr)
        self.assertIn("give --delimiter ';'", prod.stderr)


if __name__ == "__main__":
    harness.main()
