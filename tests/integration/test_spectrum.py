"""test_spectrum.py -- every conformance case of the project (tests/data/conformance) round-trips
producer -> consumer over TCP and over UDP: out9.txt, read with Python's csv module, equals the
case's JSON (header and records). The external csv-spectrum suite goes through the same round
trip in test_spectrum_external.py."""

import glob
import json
import os

import harness

CONFORMANCE = os.path.join(harness.SOURCE, "tests", "data", "conformance")
# Pairs in CONFORMANCE when this was written: fewer means files went missing.
CONFORMANCE_MIN_CASES = 24


def conformance_cases():
    """[(name, csv path, [header, *records])] for every NAME.csv + NAME.json pair in
    tests/data/conformance (the JSON is an array of arrays of strings, the header first)."""
    cases = []
    for src in sorted(glob.glob(os.path.join(CONFORMANCE, "*.csv"))):
        name = os.path.splitext(os.path.basename(src))[0]
        with open(os.path.join(CONFORMANCE, name + ".json"), encoding="utf-8") as f:
            cases.append((name, src, json.load(f)))
    return cases


class RoundTripCase(harness.IntegrationCase):
    """Each case through the real programs: one consumer per case and protocol, the producer
    unpaced, out9.txt compared with the expected rows."""

    def round_trip(self, protocol, cases):
        for name, src, expected in cases:
            with self.subTest(file=name, protocol=protocol):
                dir = self.path(protocol + "-" + name)
                os.mkdir(dir)
                cons = self.consumer("--" + protocol, dir=dir, protocols=(protocol,))
                prod = self.run_producer(src, cons.port, protocol, ["--interval", "0"])
                self.assertExit(prod, 0, "producer %s over %s" % (name, protocol))
                if len(expected) > 1:
                    harness.wait_for_rows(cons.out_path(), len(expected), 10)
                res = cons.stop()
                self.assertExit(res, 0, "consumer for %s over %s" % (name, protocol))
                out = cons.out_path()
                got = harness.read_csv(out) if os.path.exists(out) else []
                if not expected and got and len(got) == 1:
                    got = []  # a header without records is as good as nothing
                if len(expected) == 1 and not got:
                    # No records: the header travels with records, so the consumer has nothing
                    # to write and leaves out9.txt out; what it would write is the header.
                    got = expected
                self.assertRowsEqual(expected, got, "%s over %s: out9.txt vs %s.json" % (
                    name, protocol, name))
                self.assertEqual(res.stats[protocol]["received"], max(len(expected) - 1, 0),
                                 res.describe())


class ConformanceTest(RoundTripCase):

    def cases(self):
        cases = conformance_cases()
        self.assertGreaterEqual(len(cases), CONFORMANCE_MIN_CASES,
                                "conformance cases under %s" % CONFORMANCE)
        return cases

    def test_every_case_over_tcp(self):
        self.round_trip("tcp", self.cases())

    def test_every_case_over_udp(self):
        self.round_trip("udp", self.cases())


if __name__ == "__main__":
    harness.main()
