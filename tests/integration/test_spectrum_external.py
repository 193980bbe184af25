"""test_spectrum_external.py -- the external csv-spectrum suite, when it is there, round-trips
producer -> consumer over TCP and over UDP like the project's own cases (test_spectrum.py):
out9.txt, read with Python's csv module, equals each file's JSON. Without the suite it prints
one line and exits with SKIP_CODE, which ctest reports as skipped."""

import glob
import json
import os
import sys

import harness
import test_spectrum

# ctest's SKIP_RETURN_CODE for this test (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77


def spectrum_dir():
    """CSV_SPECTRUM_DIR from the environment, else the folder the build was configured with,
    else ../shared/testdata/csv-spectrum beside the source tree."""
    return (os.environ.get("CSV_SPECTRUM_DIR") or os.environ.get("CSVSTREAM_SPECTRUM_CONFIGURED")
            or harness.SPECTRUM)


SPECTRUM = spectrum_dir()


def expected_rows(json_path):
    """[header, *rows] from a csv-spectrum JSON file (an array of objects keyed by header);
    [] when it holds no records."""
    with open(json_path, encoding="utf-8") as f:
        objs = json.load(f)
    if not objs:
        return []
    header = list(objs[0].keys())
    return [header] + [[o[k] for k in header] for o in objs]


class SpectrumTest(test_spectrum.RoundTripCase):

    def cases(self):
        csvs = sorted(glob.glob(os.path.join(SPECTRUM, "csvs", "*.csv")))
        self.assertTrue(csvs, "no csv-spectrum files under %s (CSV_SPECTRUM_DIR)" % SPECTRUM)
        cases = []
        for src in csvs:
            name = os.path.splitext(os.path.basename(src))[0]
            cases.append((name, src, expected_rows(os.path.join(SPECTRUM, "json", name + ".json"))))
        return cases

    def test_every_file_over_tcp(self):
        self.round_trip("tcp", self.cases())

    def test_every_file_over_udp(self):
        self.round_trip("udp", self.cases())


if __name__ == "__main__":
    if not os.path.isdir(os.path.join(SPECTRUM, "csvs")):
        print("skipped: no csv-spectrum suite at %s (the public CSV conformance suite: set "
              "CSV_SPECTRUM_DIR to a copy of it, at test time or as a CMake cache variable; "
              "the project's own cases in tests/data/conformance ran in test_spectrum)"
              % SPECTRUM)
        sys.exit(SKIP_CODE)
    harness.main()
