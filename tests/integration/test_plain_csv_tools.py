"""test_plain_csv_tools.py -- plain CSV with the usual tools: nc and socat into consumer
--plain-port (TCP and UDP), and producer --format csv into nc -l and socat, field for field with
Python's csv. Without netcat-openbsd or socat it prints the reason and exits with SKIP_CODE,
which ctest reports as skipped."""

import os
import shutil
import subprocess
import sys
import time
import unittest

import harness
from test_plain_csv import HEADER, csv_text, make_rows, table_rows

# ctest's SKIP_RETURN_CODE for this test (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77


def nc_is_openbsd():
    res = subprocess.run(["nc", "-h"], capture_output=True, text=True)
    return "OpenBSD" in (res.stdout + res.stderr)


class PlainCsvToolsTest(harness.IntegrationCase):

    def plain_consumer(self):
        self.plain_port = harness.free_port()
        return self.consumer("--db", "out.db", "--plain-port", str(self.plain_port))

    def test_nc_into_plain_port_tcp(self):
        rows = make_rows(500)
        src = self.path("feed.csv")
        with open(src, "wb") as f:
            f.write(csv_text([HEADER] + rows))
        cons = self.plain_consumer()
        with open(src, "rb") as f:
            res = subprocess.run(["nc", "-N", "127.0.0.1", str(self.plain_port)], stdin=f,
                                 capture_output=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 20)
        out = cons.stop()
        self.assertExit(out, 0, "consumer")
        self.assertRowsEqual([HEADER] + rows, harness.read_csv(cons.out_path()), "out9.txt")
        cols, got = table_rows(self.path("out.db"), harness.db_tables(self.path("out.db"))[0])
        self.assertEqual(cols, HEADER)
        self.assertRowsEqual(rows, got, "SQLite")

    def test_socat_into_plain_port_udp(self):
        rows = make_rows(40)
        src = self.path("dgram.csv")
        with open(src, "wb") as f:
            f.write(csv_text(rows, "\n"))  # under 8 KiB: one datagram holds every record
        cons = self.plain_consumer()
        res = subprocess.run(["socat", "-u", "OPEN:%s" % src,
                              "UDP-SENDTO:127.0.0.1:%d" % self.plain_port],
                             capture_output=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 20)
        out = cons.stop()
        self.assertExit(out, 0, "consumer")
        self.assertEqual((out.stats["plain-udp"]["datagrams"], out.stats["plain-udp"]["received"]),
                         (1, len(rows)), out.describe())
        self.assertRowsEqual([["column_%d" % i for i in range(1, 5)]] + rows,
                             harness.read_csv(cons.out_path()), "out9.txt")

    def test_socat_into_plain_port_tcp(self):
        rows = make_rows(200)
        src = self.path("feed.csv")
        with open(src, "wb") as f:
            f.write(b"#stream from_socat\n" + csv_text([HEADER] + rows))
        cons = self.plain_consumer()
        res = subprocess.run(["socat", "-u", "OPEN:%s" % src,
                              "TCP:127.0.0.1:%d" % self.plain_port],
                             capture_output=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        harness.wait_for_rows(cons.out_path(), len(rows) + 1, 20)
        out = cons.stop()
        self.assertExit(out, 0, "consumer")
        self.assertRowsEqual([HEADER] + rows, harness.read_csv(cons.out_path()), "out9.txt")
        self.assertEqual(harness.db_query(self.path("out.db"),
                                          "SELECT count(*) FROM from_socat")[0][0], len(rows))

    def test_producer_format_csv_into_nc_listen(self):
        rows = make_rows(300)
        src = self.path("src.csv")
        harness.write_csv(src, [HEADER] + rows)
        port = harness.free_port()
        got = self.path("got.csv")
        with open(got, "wb") as f:
            nc = subprocess.Popen(["nc", "-l", "127.0.0.1", str(port)], stdout=f,
                                  stderr=subprocess.DEVNULL)
            try:
                prod = None
                for _ in range(50):  # nc needs a moment to listen
                    prod = self.run_producer(src, port, "tcp",
                                             ["--format", "csv", "-i", "0", "--retry", "5"])
                    if prod.rc == 0:
                        break
                    time.sleep(0.1)
                self.assertExit(prod, 0, "producer --format csv")
                nc.wait(20)
            finally:
                if nc.poll() is None:
                    nc.kill()
                nc.wait()
        self.assertRowsEqual([HEADER] + rows, harness.read_csv(got), "what nc -l received")

    def test_producer_format_csv_udp_into_socat(self):
        rows = make_rows(100)
        src = self.path("src.csv")
        harness.write_csv(src, [HEADER] + rows)
        port = harness.free_port()
        got = self.path("got.csv")
        socat = subprocess.Popen(["socat", "-u", "UDP-RECV:%d,bind=127.0.0.1" % port,
                                  "OPEN:%s,creat,append" % got], stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            prod = self.run_producer(src, port, "udp", ["--format", "csv", "--rate", "500"])
            self.assertExit(prod, 0, "producer --format csv --udp")
            harness.wait_until(lambda: os.path.exists(got) and
                               len(harness.read_csv(got)) >= len(rows), 10)
        finally:
            socat.kill()
            socat.wait()
        # No header over UDP: one record a datagram.
        self.assertRowsEqual(rows, harness.read_csv(got), "what socat received")


if __name__ == "__main__":
    missing = [t for t in ("nc", "socat") if shutil.which(t) is None]
    if missing or not nc_is_openbsd():
        print("skipped: %s not installed (apt-get install netcat-openbsd socat)" %
              (" and ".join(missing) or "OpenBSD netcat"))
        sys.exit(SKIP_CODE)
    unittest.main(verbosity=2)
