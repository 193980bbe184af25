"""pgserver.py -- a real PostgreSQL server for the tests that need one: initdb into a temporary
folder, pg_ctl start on a Unix socket in that folder and a free TCP port of 127.0.0.1, trust
authentication, run as the unprivileged `postgres` user when the tests run as root (PostgreSQL
refuses to run as root), stopped at the end even when a test fails. psql is the oracle that
reads tables back. Without PostgreSQL installed, `available()` says why, and the tests skip."""

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import harness

# Exit status that ctest reports as "skipped" (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77


def _bindir():
    """The folder of initdb and pg_ctl (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(cand, "initdb"), os.X_OK):
            return cand
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def available():
    """None when a server can be started here, else the reason it cannot."""
    if _bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql libpq-dev)"
    if shutil.which("psql") is None:
        return "psql is not installed (apt-get install postgresql-client)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    if "libpq" not in subprocess.run([harness.CONSUMER, "--version"], capture_output=True,
                                     text=True).stdout:
        return "the consumer was built without libpq"
    return None


def skip_unless_available():
    """Print why and exit with the skip code when no server can be started (ctest: Skipped)."""
    why = available()
    if why:
        print("SKIPPED: %s" % why)
        raise SystemExit(SKIP_CODE)


class Server:
    """One server in a temporary folder. start() / stop() / restart; uri(db) for libpq."""

    def __init__(self):
        self.bindir = _bindir()
        self.dir = tempfile.mkdtemp(prefix="csvstream-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = harness.free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.running = False
        self.log = os.path.join(self.dir, "server.log")
        atexit.register(self.cleanup)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], timeout=120)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            # Made for tests: nothing waits for the disk, the server listens on 127.0.0.1.
            f.write("\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "listen_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nmax_connections = 60\n"
                    "shared_buffers = 64MB\n" % (self.port, self.dir))

    def _run(self, argv, timeout=60, check=True):
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr, self.server_log()))
        return r

    def server_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return "\nserver log:\n" + f.read()[-4000:]
        except OSError:
            return ""

    def start(self):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "60", "start"], timeout=90)
        self.running = True
        return self

    def stop(self, mode="fast"):
        if self.running:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                       "-t", "60", "stop"], timeout=90, check=False)
            self.running = False

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def keywords(self, db="postgres"):
        """A libpq keyword string over the Unix socket."""
        return "host=%s port=%d user=postgres dbname=%s" % (self.dir, self.port, db)

    def uri(self, db="postgres"):
        """A libpq URI over TCP on 127.0.0.1."""
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def psql(self, sql, db="postgres", check=True):
        """Run sql with psql (unaligned, tuples only); returns its stdout."""
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-h",
                            self.dir, "-p", str(self.port), "-U", "postgres", "-d", db, "-c",
                            sql], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("psql %r failed (%d): %s" % (sql, r.returncode, r.stderr))
        return r.stdout

    def create_db(self, name):
        self.psql('CREATE DATABASE "%s"' % name)
        return name

    def copy_out(self, table, columns, db="postgres", order="_seq"):
        """The table's columns as CSV through psql's COPY ... TO STDOUT, parsed by Python's csv
        module: a list of rows of strings."""
        cols = ", ".join(harness.quote_ident(c) for c in columns)
        out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p",
                              str(self.port), "-U", "postgres", "-d", db, "-c",
                              "COPY (SELECT %s FROM %s ORDER BY %s) TO STDOUT CSV" % (
                                  cols, harness.quote_ident(table), order)],
                             capture_output=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError("psql COPY of %s failed: %s" % (table, out.stderr))
        import csv
        import io
        return list(csv.reader(io.StringIO(out.stdout.decode("utf-8"), newline="")))

    def columns(self, table, db="postgres"):
        rows = self.psql("SELECT attname FROM pg_attribute WHERE attrelid = '%s'::regclass AND "
                         "attnum > 0 AND NOT attisdropped ORDER BY attnum" %
                         harness.quote_ident(table).replace("'", "''"), db)
        return [r for r in rows.split("\n") if r != ""]


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)
