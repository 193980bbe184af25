"""test_compare.py -- scripts/compare --quick runs every scenario over UDP and TCP, finishes in
time, and leaves a table whose numbers obey the accounting invariants, plus a valid picture."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
COMPARE = os.path.join(SOURCE, "scripts", "compare")

SCENARIO_TITLES = {
    1: "Steady pace",
    2: "5% loss",
    3: "Unpaced burst",
    4: "Consumer started 2 s after",
    5: "Consumer killed and restarted",
}
REQUIRED_ROWS = ["sent", "received", "lost", "duplicates", "reordered", "latency p50 (µs)",
                 "latency p99 (µs)", "did the producer notice", "time taken (s)"]


def parse_tables(md):
    """{scenario number: {"title": str, "rows": {metric: (udp cell, tcp cell)}}}"""
    out, current = {}, None
    for line in md.splitlines():
        m = re.match(r"^## (\d+)\. (.*)$", line)
        if m:
            current = {"title": m.group(2), "rows": {}}
            out[int(m.group(1))] = current
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 3 or cells[0] in ("", "---"):
            continue
        current["rows"][cells[0]] = (cells[1], cells[2])
    return out


def num(cell, what):
    if not re.fullmatch(r"-?\d+(\.\d+)?", cell):
        raise AssertionError("%s: expected a number, got %r" % (what, cell))
    return float(cell) if "." in cell else int(cell)


class CompareTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="csvstream-test-compare-")
        t0 = time.monotonic()
        cls.proc = subprocess.run(
            [sys.executable, COMPARE, "--quick", "--bin", BIN, "--out", cls.out],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
        cls.seconds = time.monotonic() - t0
        md_path = os.path.join(cls.out, "compare.md")
        cls.md = open(md_path, encoding="utf-8").read() if os.path.exists(md_path) else ""
        cls.tables = parse_tables(cls.md)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def describe(self):
        return "exit %s after %.0f s\nstdout:\n%s\nstderr:\n%s" % (
            self.proc.returncode, self.seconds, self.proc.stdout, self.proc.stderr[-4000:])

    def row(self, scenario, metric):
        rows = self.tables.get(scenario, {}).get("rows", {})
        if metric not in rows:
            self.fail("scenario %d has no row %r\n%s" % (scenario, metric, self.describe()))
        return rows[metric]

    def test_exits_zero_within_three_minutes(self):
        self.assertEqual(self.proc.returncode, 0, self.describe())
        self.assertLess(self.seconds, 180.0, self.describe())

    def test_prints_the_table_it_writes(self):
        self.assertTrue(self.md, "no compare.md\n" + self.describe())
        self.assertIn(self.md.strip(), self.proc.stdout, "stdout differs from compare.md")

    def test_every_scenario_has_every_row_for_both_protocols(self):
        self.assertEqual(sorted(self.tables), [1, 2, 3, 4, 5], self.describe())
        for n, title in SCENARIO_TITLES.items():
            self.assertTrue(self.tables[n]["title"].startswith(title), self.tables[n]["title"])
            for metric in REQUIRED_ROWS:
                udp, tcp = self.row(n, metric)
                self.assertTrue(udp and tcp and "—" not in (udp, tcp),
                                "scenario %d %s: %r / %r" % (n, metric, udp, tcp))
            for metric in ("sent", "received", "lost", "duplicates", "reordered"):
                for cell in self.row(n, metric):
                    num(cell, "scenario %d %s" % (n, metric))

    def test_tcp_loses_nothing_in_scenarios_one_to_three(self):
        for n in (1, 2, 3):
            sent = num(self.row(n, "sent")[1], "sent")
            self.assertGreater(sent, 0)
            self.assertEqual(num(self.row(n, "lost")[1], "lost"), 0, "scenario %d" % n)
            self.assertEqual(num(self.row(n, "received")[1], "received"), sent,
                             "scenario %d" % n)
            self.assertEqual(num(self.row(n, "duplicates")[1], "duplicates"), 0)
            self.assertEqual(num(self.row(n, "reordered")[1], "reordered"), 0)

    def test_udp_loss_scenario_equals_injected_ground_truth(self):
        udp, tcp = self.row(2, "injected dropped / duplicated / reordered")
        m = re.fullmatch(r"(\d+) / (\d+) / (\d+)", udp)
        self.assertIsNotNone(m, udp)
        dropped, duplicated, reordered = (int(g) for g in m.groups())
        self.assertGreater(dropped, 0, "the seeded impairment dropped nothing")
        self.assertEqual(num(self.row(2, "lost")[0], "lost"), dropped)
        self.assertEqual(num(self.row(2, "duplicates")[0], "duplicates"), duplicated)
        self.assertEqual(num(self.row(2, "reordered")[0], "reordered"), reordered)
        sent = num(self.row(2, "sent")[0], "sent")
        self.assertEqual(num(self.row(2, "received")[0], "received"), sent - dropped)
        self.assertIn("n/a: TCP retransmits", tcp)
        self.assertIn("exit 2", tcp, "the producer should refuse --impair over TCP as a usage "
                      "error")

    def test_udp_burst_received_plus_lost_equals_sent(self):
        sent = num(self.row(3, "sent")[0], "sent")
        received = num(self.row(3, "received")[0], "received")
        lost = num(self.row(3, "lost")[0], "lost")
        self.assertGreater(sent, 1000)
        self.assertEqual(received + lost, sent)
        num(self.row(3, "kernel drops (receive buffer full)")[0], "kernel drops")

    def test_tcp_producer_notices_missing_and_killed_consumer(self):
        # TCP knows there is nobody: the producer waits for the consumer, then sends it all;
        # after the consumer is killed it reconnects and resends what was not acknowledged.
        late = self.row(4, "did the producer notice")[1]
        self.assertTrue(late.startswith("yes: waited"), late)
        self.assertIn("exit 0", late)
        self.assertEqual(num(self.row(4, "lost")[1], "lost"), 0)
        killed = self.row(5, "did the producer notice")[1]
        self.assertTrue(killed.startswith("yes"), killed)
        self.assertIn("reconnected", killed)
        self.assertEqual(num(self.row(5, "lost")[1], "lost"), 0)
        self.assertTrue(self.row(4, "did the producer notice")[0].startswith("no"))

    def test_udp_late_consumer_gets_only_later_records(self):
        sent = num(self.row(4, "sent")[0], "sent")
        received = num(self.row(4, "received")[0], "received")
        lost = num(self.row(4, "lost")[0], "lost")
        self.assertGreater(received, 0)
        self.assertGreater(lost, 0, "records sent before the consumer started must be lost")
        self.assertEqual(received + lost, sent)

    def test_picture_is_a_valid_png_or_svg(self):
        png = os.path.join(self.out, "compare.png")
        svg = os.path.join(self.out, "compare.svg")
        if os.path.exists(png):
            with open(png, "rb") as f:
                head = f.read(24)
            self.assertEqual(head[:8], b"\x89PNG\r\n\x1a\n")
            self.assertEqual(head[12:16], b"IHDR")
            width = int.from_bytes(head[16:20], "big")
            height = int.from_bytes(head[20:24], "big")
            self.assertGreater(width, 100)
            self.assertGreater(height, 100)
            self.assertIn("compare.png", self.md)
        else:
            self.assertTrue(os.path.exists(svg), "no compare.png or compare.svg in %s\n%s" % (
                self.out, self.describe()))
            root = ET.parse(svg).getroot()
            self.assertTrue(root.tag.endswith("svg"), root.tag)
            self.assertIn("compare.svg", self.md)
        # Each panel draws what was sent and what was received (loss, burst, restart).
        for key in ("loss", "burst", "restart"):
            for proto in ("udp", "tcp"):
                for kind in ("timeline", "sent"):
                    dat = os.path.join(self.out, "%s-%s-%s.dat" % (kind, key, proto))
                    self.assertTrue(os.path.exists(dat), dat)

    def test_picture_data_matches_the_table(self):
        """The curves end where the table's numbers are: sent and received per panel, and
        the loss panel marks as many drops as the consumer counted lost."""
        def last(name):
            with open(os.path.join(self.out, name)) as f:
                rows = [l.split() for l in f if l.strip() and not l.startswith("#")]
            return int(rows[-1][1]) if rows else 0
        for n, key in ((2, "loss"), (3, "burst"), (5, "restart")):
            for col, proto in ((0, "udp"), (1, "tcp")):
                sent = num(self.row(n, "sent")[col], "sent")
                received = num(self.row(n, "received")[col], "received")
                self.assertEqual(last("sent-%s-%s.dat" % (key, proto)), sent,
                                 "%s %s sent" % (key, proto))
                self.assertEqual(last("timeline-%s-%s.dat" % (key, proto)), received,
                                 "%s %s received" % (key, proto))
        with open(os.path.join(self.out, "marks-loss-udp-dropped.dat")) as f:
            drops = sum(1 for l in f if l.strip() and not l.startswith("#"))
        self.assertEqual(drops, num(self.row(2, "lost")[0], "lost"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
