"""test_spectrum.py -- every csv-spectrum file round-trips producer -> consumer over TCP and over
UDP: out9.txt, read with Python's csv module, equals the file's JSON (header and rows)."""

import glob
import json
import os

import harness


def expected_rows(json_path):
    """[header, *rows] from a csv-spectrum JSON file (an array of objects keyed by header);
    [] when it holds no records."""
    with open(json_path, encoding="utf-8") as f:
        objs = json.load(f)
    if not objs:
        return []
    header = list(objs[0].keys())
    return [header] + [[o[k] for k in header] for o in objs]


class SpectrumTest(harness.IntegrationCase):

    def round_trip(self, protocol):
        csvs = sorted(glob.glob(os.path.join(harness.SPECTRUM, "csvs", "*.csv")))
        self.assertTrue(csvs, "no csv-spectrum files under %s (CSV_SPECTRUM_DIR)" % harness.SPECTRUM)
        for src in csvs:
            name = os.path.splitext(os.path.basename(src))[0]
            with self.subTest(file=name, protocol=protocol):
                expected = expected_rows(os.path.join(harness.SPECTRUM, "json", name + ".json"))
                dir = self.path(protocol + "-" + name)
                os.mkdir(dir)
                cons = self.consumer("--" + protocol, dir=dir, protocols=(protocol,))
                prod = self.run_producer(src, cons.port, protocol, ["--interval", "0"])
                self.assertExit(prod, 0, "producer %s over %s" % (name, protocol))
                harness.wait_for_rows(cons.out_path(), len(expected), 10)
                res = cons.stop()
                self.assertExit(res, 0, "consumer for %s over %s" % (name, protocol))
                out = cons.out_path()
                got = harness.read_csv(out) if os.path.exists(out) else []
                if not expected and got and len(got) == 1:
                    got = []  # a header without records is as good as nothing
                self.assertRowsEqual(expected, got, "%s over %s: out9.txt vs %s.json" % (
                    name, protocol, name))
                self.assertEqual(res.stats[protocol]["received"], max(len(expected) - 1, 0),
                                 res.describe())

    def test_every_file_over_tcp(self):
        self.round_trip("tcp")

    def test_every_file_over_udp(self):
        self.round_trip("udp")


if __name__ == "__main__":
    harness.main()
