"""harness.py -- shared helpers for the end-to-end tests: free ports, a consumer and producers
run as real processes on 127.0.0.1 in a per-test temporary directory, out9.txt read with
Python's csv module, SQLite tables read with sqlite3, and leftover processes killed."""

import csv
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
SPECTRUM = os.environ.get(
    "CSV_SPECTRUM_DIR", os.path.normpath(os.path.join(SOURCE, "..", "shared", "testdata",
                                                      "csv-spectrum")))
PRODUCER = os.path.join(BIN, "producer")
CONSUMER = os.path.join(BIN, "consumer")

LISTEN_TIMEOUT = 10.0
# Columns the SQLite sink adds to every table besides the CSV header's (metadata columns).
META_PREFIX = "_"


def free_port():
    """A port on 127.0.0.1 that is free for both TCP and UDP right now."""
    for _ in range(200):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1 after 200 tries")


class Proc:
    """A child process whose stderr is read line by line in a thread, each line kept with the
    monotonic time it arrived. stdout goes to a file in the working directory."""

    def __init__(self, argv, cwd, name):
        self.argv = argv
        self.name = name
        self.lines = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.stdout_path = os.path.join(cwd, name + ".stdout")
        self._stdout = open(self.stdout_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                      stdout=self._stdout, stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for raw in iter(self.popen.stderr.readline, b""):
            with self.lock:
                self.lines.append((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))
        self.popen.stderr.close()

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def stderr(self):
        with self.lock:
            return "\n".join(text for _, text in self.lines)

    def stdout(self):
        """What the process wrote to stdout so far (the summary, after it exits)."""
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def timed_lines(self):
        with self.lock:
            return list(self.lines)

    def wait(self, timeout):
        """Wait for exit; on timeout kill it and raise AssertionError with its stderr."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not finish within %.0f s: %s\nstderr:\n%s" % (
                self.name, timeout, " ".join(self.argv), self.stderr()))
        self._thread.join(5)
        self._stdout.close()
        return rc

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._thread.join(5)
        self._stdout.close()

    def vmrss_kb(self):
        """Resident memory in kB from /proc/PID/status."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/%d/status" % self.pid)


class Result:
    """What a finished program left: exit code, stderr text (the log), stdout text (the summary)
    and its parsed --stats-json."""

    def __init__(self, rc, stderr, stats, seconds, argv, stdout=""):
        self.rc = rc
        self.stderr = stderr
        self.stdout = stdout
        self.stats = stats
        self.seconds = seconds
        self.argv = argv

    def describe(self):
        return "command: %s\nexit code: %s\nstderr:\n%s\nstdout:\n%s\nstats: %s" % (
            " ".join(self.argv), self.rc, self.stderr, self.stdout,
            json.dumps(self.stats, indent=1) if self.stats is not None else None)


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise AssertionError("%s is not valid JSON (%s):\n%s" % (path, e, text))


class Consumer:
    """A consumer on 127.0.0.1:port started in dir with --stats-json consumer-stats.json."""

    def __init__(self, case, dir, args=(), port=None, protocols=("tcp", "udp"), name="consumer"):
        self.case = case
        self.dir = dir
        self.protocols = protocols
        self.stats_path = os.path.join(dir, name + "-stats.json")
        # Another test running in parallel may take a free port between free_port() and the
        # consumer's bind: then try another port (only when the caller did not pick one).
        for attempt in range(3):
            self.port = port or free_port()
            self.argv = [CONSUMER, "--host", "127.0.0.1", "--port", str(self.port),
                         "--stats-json", self.stats_path] + list(args)
            self.proc = Proc(self.argv, dir, name)
            case.procs.append(self.proc)
            try:
                self.wait_listening()
                return
            except AssertionError:
                if port or attempt == 2 or self.proc.running() or \
                        "in use" not in self.proc.stderr():
                    raise

    def wait_listening(self):
        want = ["listening on 127.0.0.1:%d/%s" % (self.port, p) for p in self.protocols]
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while time.monotonic() < deadline:
            text = self.proc.stderr()
            if all(w in text for w in want):
                return
            if not self.proc.running():
                self.proc.wait(5)
                raise AssertionError("consumer exited (code %s) before listening: %s\nstderr:\n%s"
                                     % (self.proc.popen.returncode, " ".join(self.argv),
                                        self.proc.stderr()))
            time.sleep(0.02)
        raise AssertionError("consumer did not log %s within %.0f s: %s\nstderr:\n%s" % (
            want, LISTEN_TIMEOUT, " ".join(self.argv), self.proc.stderr()))

    def stop(self, timeout=60):
        """SIGTERM, wait for exit, return a Result with the parsed --stats-json."""
        if self.proc.running():
            self.proc.popen.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return Result(rc, self.proc.stderr(), load_json(self.stats_path),
                      time.monotonic() - self.proc.started, self.argv, self.proc.stdout())

    def out_path(self, name="out9.txt"):
        return os.path.join(self.dir, name)


class IntegrationCase(unittest.TestCase):
    """Base class: a temporary directory per test and no process left behind."""

    @classmethod
    def setUpClass(cls):
        for path in (PRODUCER, CONSUMER):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s is missing: build the project first (cmake --build) or "
                                     "set CSVSTREAM_BIN to its bin directory" % path)

    def setUp(self):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="csvstream-it-%s-" % self._testMethodName)
        self._producer_n = 0

    def tearDown(self):
        for p in self.procs:
            p.kill()
        failed = False
        outcome = getattr(self, "_outcome", None)
        if outcome is not None:
            result = getattr(outcome, "result", None)
            errors = getattr(result, "errors", []) + getattr(result, "failures", [])
            failed = any(test is self or getattr(test, "test_case", None) is self
                         for test, _ in errors)
        if failed or os.environ.get("CSVSTREAM_KEEP"):
            sys.stderr.write("\nkept the test directory: %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def consumer(self, *args, **kw):
        return Consumer(self, self.dir if "dir" not in kw else kw.pop("dir"), args, **kw)

    def producer_argv(self, csv_path, port, protocol="tcp", args=(), stats=True):
        self._producer_n += 1
        stats_path = self.path("producer-%d-stats.json" % self._producer_n) if stats else None
        argv = [PRODUCER, "--" + protocol, "--host", "127.0.0.1", "--port", str(port)]
        if stats_path:
            argv += ["--stats-json", stats_path]
        return argv + list(args) + [csv_path], stats_path

    def start_producer(self, csv_path, port, protocol="tcp", args=(), stats=True):
        """Start a producer; returns (Proc, stats path). Finish it with finish_producer."""
        argv, stats_path = self.producer_argv(csv_path, port, protocol, args, stats)
        proc = Proc(argv, self.dir, "producer-%d" % self._producer_n)
        self.procs.append(proc)
        return proc, stats_path

    def finish_producer(self, started, timeout=60):
        proc, stats_path = started
        rc = proc.wait(timeout)
        return Result(rc, proc.stderr(), load_json(stats_path) if stats_path else None,
                      time.monotonic() - proc.started, proc.argv, proc.stdout())

    def run_producer(self, csv_path, port, protocol="tcp", args=(), stats=True, timeout=60):
        return self.finish_producer(self.start_producer(csv_path, port, protocol, args, stats),
                                    timeout)

    def run_program(self, argv, timeout=30):
        """Run any program to completion (usage errors and the like)."""
        proc = Proc(argv, self.dir, "run-%d" % len(self.procs))
        self.procs.append(proc)
        rc = proc.wait(timeout)
        return Result(rc, proc.stderr(), None, time.monotonic() - proc.started, argv,
                      proc.stdout())

    def assertExit(self, result, code, what=""):
        if result.rc != code:
            self.fail("%sexpected exit code %d, got %s\n%s" % (what + ": " if what else "", code,
                                                              result.rc, result.describe()))

    def assertRowsEqual(self, expected, actual, what):
        """Compare two lists of rows field for field; on mismatch show both sides."""
        if expected == actual:
            return
        lines = ["%s: %d rows expected, %d found" % (what, len(expected), len(actual))]
        shown = 0
        for i in range(max(len(expected), len(actual))):
            e = expected[i] if i < len(expected) else "<missing>"
            a = actual[i] if i < len(actual) else "<missing>"
            if e != a:
                lines.append("row %d:\n  expected %r\n  actual   %r" % (i, e, a))
                shown += 1
                if shown >= 5:
                    lines.append("(further differences not shown)")
                    break
        self.fail("\n".join(lines))


def read_csv(path):
    """Every row of a CSV file, parsed by Python's csv module (the independent oracle)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f, strict=True)]


def write_csv(path, rows, lineterminator="\r\n"):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator=lineterminator)
        w.writerows(rows)


def count_lines(path):
    """Newlines in a file (cheap progress probe for files without embedded newlines)."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate until it returns a true value or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_for_rows(path, n, timeout, simple=False):
    """Wait until the CSV file at path holds at least n rows (header included). With simple,
    rows are counted as lines (no embedded newlines in the data). Returns the count seen."""
    def rows():
        if simple:
            return count_lines(path)
        if not os.path.exists(path):
            return 0
        try:
            return len(read_csv(path))
        except (csv.Error, UnicodeDecodeError):
            return 0  # a record half written; look again
    last = [0]

    def enough():
        last[0] = rows()
        return last[0] >= n
    wait_until(enough, timeout)
    return last[0]


def wait_quiet(path, quiet=1.0, timeout=60):
    """Wait until the file at path stops growing for `quiet` seconds. Returns its size."""
    deadline = time.monotonic() + timeout
    size = -1
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = os.path.getsize(path) if os.path.exists(path) else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return size


def db_tables(db_path):
    """Names of the user tables that hold stream rows (tables with a CSV-derived schema)."""
    con = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        return [n for n in names if any(c.startswith(META_PREFIX) for c in db_columns(con, n))]
    finally:
        con.close()


def db_columns(con, table):
    return [r[1] for r in con.execute('PRAGMA table_info("%s")' % table.replace('"', '""'))]


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def db_stream_rows(db_path, table):
    """(data column names, rows of (typeof, value) pairs ordered by _seq) for one table."""
    con = sqlite3.connect(db_path)
    try:
        cols = db_columns(con, table)
        data = [c for c in cols if not c.startswith(META_PREFIX)]
        sel = ", ".join("typeof(%s), %s" % (quote_ident(c), quote_ident(c)) for c in data)
        rows = []
        for r in con.execute("SELECT %s FROM %s ORDER BY _seq" % (sel, quote_ident(table))):
            rows.append([(r[i], r[i + 1]) for i in range(0, len(r), 2)])
        return data, rows
    finally:
        con.close()


def db_query(db_path, sql, params=()):
    con = sqlite3.connect(db_path)
    try:
        return list(con.execute(sql, params))
    finally:
        con.close()


def producer_id_hex(value):
    """A _producer column value (hex text, or a signed/unsigned 64-bit integer) as 16 lowercase
    hex digits, the form the --stats-json files use."""
    if isinstance(value, int):
        return "%016x" % (value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, bytes):
        return value.hex()
    return str(value).lower()


def simple_csv(path, n, header=("id", "name", "value"), tag="r"):
    """A CSV with a header and n records of plain fields: id = 1..n. Returns the records."""
    rows = [[str(i), "%s%d" % (tag, i), str(i * 7 % 1000)] for i in range(1, n + 1)]
    write_csv(path, [list(header)] + rows, lineterminator="\n")
    return rows


def stream_entries(stats, protocol=None):
    entries = (stats or {}).get("streams", [])
    return [s for s in entries if protocol is None or s.get("protocol") == protocol]


def main():
    unittest.main(verbosity=2)
