"""test_install.py -- `cmake --install BUILD --prefix TMP` puts the three programs in bin, their
man pages in share/man/man1 (with the project's version in the footer), and the README, the
sample data, the LICENSE and the CHANGELOG in share/doc/csvstream; the installed programs
run."""

import glob
import os
import shutil
import subprocess
import tempfile
import unittest

import harness

BUILD = os.environ.get("CSVSTREAM_BUILD_DIR", os.path.dirname(harness.BIN))
CMAKE = os.environ.get("CSVSTREAM_CMAKE", "cmake")
PROGRAMS = ["producer", "consumer", "multiple_processes"]


class Install(unittest.TestCase):
    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="csvstream-install-")

    def tearDown(self):
        shutil.rmtree(self.prefix, ignore_errors=True)

    def test_install_tree(self):
        res = subprocess.run([CMAKE, "--install", BUILD, "--prefix", self.prefix],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        doc = os.path.join(self.prefix, "share", "doc", "csvstream")
        samples = sorted(os.path.basename(p)
                         for p in glob.glob(os.path.join(harness.SOURCE, "data", "*.csv")))
        self.assertGreater(len(samples), 0)
        want = (["bin/%s" % p for p in PROGRAMS]
                + ["share/man/man1/%s.1" % p for p in PROGRAMS]
                + ["share/doc/csvstream/%s" % f for f in ("README.md", "LICENSE", "CHANGELOG.md")]
                + ["share/doc/csvstream/data/%s" % f for f in samples])
        for rel in want:
            self.assertTrue(os.path.isfile(os.path.join(self.prefix, rel)), "%s missing" % rel)
        for rel in ("README.md", "LICENSE", "CHANGELOG.md"):
            with open(os.path.join(harness.SOURCE, rel), "rb") as a, \
                    open(os.path.join(doc, rel), "rb") as b:
                self.assertEqual(a.read(), b.read(), rel)
        for name in PROGRAMS:
            path = os.path.join(self.prefix, "bin", name)
            self.assertTrue(os.access(path, os.X_OK), path)
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout
            version = out.split("\n")[0].split()[-1]
            self.assertEqual(out.split("\n")[0], "%s (csvstream) %s" % (name, version))
            if "CSVSTREAM_VERSION" in os.environ:
                self.assertEqual(version, os.environ["CSVSTREAM_VERSION"])
            with open(os.path.join(self.prefix, "share", "man", "man1", name + ".1"),
                      encoding="utf-8") as f:
                th = [l for l in f if l.startswith(".TH ")]
            self.assertEqual(len(th), 1)
            self.assertIn('"csvstream %s"' % version, th[0], "the page's footer has the version")


if __name__ == "__main__":
    unittest.main(verbosity=2)
