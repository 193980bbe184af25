"""test_short_options.py -- the short options of the three programs: -h and -V print what --help
and --version print, --help lists each short form beside its long one with the same letter
meaning the same thing in every program, and a run spelled with short options only works end
to end (producer -t -H -p -i -c -q into consumer -t -H -p -o -q)."""

import os
import re
import subprocess

import harness

MP = os.path.join(harness.BIN, "multiple_processes")
PROGRAMS = {"producer": harness.PRODUCER, "consumer": harness.CONSUMER,
            "multiple_processes": MP}
# The letters and what they mean, for every program that has the long option (README).
LETTERS = {"h": "help", "V": "version", "q": "quiet", "p": "port", "H": "host", "t": "tcp",
           "u": "udp", "d": "db", "o": "out", "i": "interval", "r": "rate", "c": "count",
           "l": "loop", "m": "mode"}


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


def help_pairs(text):
    """{letter: long name} from the '  -p, --port PORT' lines of a --help text."""
    return dict(re.findall(r"^\s+-([A-Za-z]), --([a-z][a-z-]*)", text, re.M))


class ShortOptions(harness.IntegrationCase):
    def test_h_and_V_print_what_help_and_version_print(self):
        for name, path in PROGRAMS.items():
            for short, long in (("-h", "--help"), ("-V", "--version")):
                with self.subTest(program=name, option=short):
                    a, b = run([path, short]), run([path, long])
                    self.assertEqual((a.returncode, b.returncode), (0, 0), a.stderr + b.stderr)
                    self.assertEqual(a.stdout, b.stdout)
                    self.assertNotEqual(a.stdout, "")

    def test_one_letter_one_meaning_in_every_program(self):
        for name, path in PROGRAMS.items():
            with self.subTest(program=name):
                pairs = help_pairs(run([path, "--help"]).stdout)
                self.assertIn("h", pairs, "%s --help lists no short options" % name)
                for letter, long in pairs.items():
                    self.assertEqual(LETTERS.get(letter), long,
                                     "%s: -%s is --%s" % (name, letter, long))
                # Every letter of the table that names one of this program's options is there.
                longs = set(re.findall(r"--([a-z][a-z-]*)", run([path, "--help"]).stdout))
                for letter, long in LETTERS.items():
                    if long in longs:
                        self.assertEqual(pairs.get(letter), long, "%s: -%s" % (name, letter))

    def test_a_short_option_error_names_the_letter(self):
        for name, path in PROGRAMS.items():
            with self.subTest(program=name):
                res = run([path, "-Z"])
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn("-Z: unknown option", res.stderr)
                res = run([path, "-p"])
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn("-p: ", res.stderr)
                res = run([path, "-p", "0"])
                self.assertEqual(res.returncode, 2, res.stderr)
                self.assertIn("--port: '0' is out of range", res.stderr)

    def test_a_run_spelled_with_short_options(self):
        port = harness.free_port()
        consumer = harness.Proc([harness.CONSUMER, "-t", "-H", "127.0.0.1", "-p", str(port),
                                 "-o", "short.csv"], self.dir, "consumer")
        self.procs.append(consumer)
        self.assertTrue(harness.wait_until(
            lambda: "listening on 127.0.0.1:%d/tcp" % port in consumer.stderr(),
            harness.LISTEN_TIMEOUT), consumer.stderr())
        src = self.path("a.csv")
        rows = [["id", "v"]] + [[str(i), "v%d" % i] for i in range(10)]
        harness.write_csv(src, rows)
        res = self.run_program([harness.PRODUCER, "-t", "-H", "127.0.0.1", "-p", str(port),
                                "-i", "0", "-c", "6", "-q", src])
        self.assertExit(res, 0, "producer with short options")
        self.assertNotIn("streaming", res.stderr, "-q hides the info lines")
        harness.wait_for_rows(self.path("short.csv"), 7, 10)
        consumer.popen.terminate()
        self.assertEqual(consumer.wait(30), 0, consumer.stderr())
        self.assertRowsEqual(rows[:7], harness.read_csv(self.path("short.csv")), "short.csv")

if __name__ == "__main__":
    harness.main()
