"""test_man_pages.py -- the man pages in docs/man: each renders without a warning (groff -man
-ww -z, or mandoc -T lint), and every option a program's --help lists appears in its page,
long form and, where there is one, its short form beside it ('-p, --port'). Without groff or
mandoc it prints the reason and exits with SKIP_CODE, which ctest reports as skipped."""

import os
import re
import shutil
import subprocess
import sys
import unittest

import harness

# ctest's SKIP_RETURN_CODE for this test (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77
PROGRAMS = ["producer", "consumer", "multiple_processes"]


def page(name):
    return os.path.join(harness.SOURCE, "docs", "man", name + ".1")


def render(path):
    """The page as plain text (no bold or underline), lines as wide as they come."""
    if shutil.which("groff"):
        argv = ["groff", "-man", "-Tascii", "-P-cbou", "-rLL=200n", path]
    else:
        argv = ["mandoc", "-Tascii", "-Owidth=200", path]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(argv), res.stderr))
    return re.sub(r".\x08", "", res.stdout)


class ManPages(unittest.TestCase):
    def test_each_page_renders_without_warnings(self):
        for name in PROGRAMS:
            with self.subTest(page=name):
                if shutil.which("groff"):
                    argv = ["groff", "-man", "-ww", "-z", page(name)]
                else:
                    argv = ["mandoc", "-T", "lint", "-W", "warning", page(name)]
                res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                self.assertEqual((res.returncode, res.stderr, res.stdout), (0, "", ""),
                                 " ".join(argv))

    def test_every_option_of_help_is_in_the_page(self):
        for name in PROGRAMS:
            with self.subTest(program=name):
                help_text = subprocess.run([os.path.join(harness.BIN, name), "--help"],
                                           capture_output=True, text=True, timeout=10).stdout
                text = render(page(name))
                longs = set(re.findall(r"--([a-z][a-z-]*)", help_text))
                self.assertGreater(len(longs), 5, help_text)
                for long in sorted(longs):
                    self.assertRegex(text, r"--%s\b" % re.escape(long),
                                     "%s(1) does not mention --%s" % (name, long))
                for short, long in re.findall(r"^\s+(-[A-Za-z]), (--[a-z][a-z-]*)", help_text,
                                              re.M):
                    self.assertIn("%s, %s" % (short, long), text,
                                  "%s(1) does not give %s beside %s" % (name, short, long))

    def test_every_exit_code_of_help_is_in_the_page(self):
        for name in PROGRAMS:
            with self.subTest(program=name):
                text = render(page(name))
                section = text[text.index("EXIT STATUS"):text.index("FILES")]
                for code in ["0", "1", "2"] + (["130", "143"] if name != "consumer" else []):
                    self.assertRegex(section, r"(?m)^\s+%s\b" % code, section)


if __name__ == "__main__":
    if not shutil.which("groff") and not shutil.which("mandoc"):
        print("skipped: neither groff nor mandoc is installed (apt-get install groff-base)")
        sys.exit(SKIP_CODE)
    unittest.main(verbosity=2)
