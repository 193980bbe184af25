"""bench_compare.py -- scripts/bench --compare: the project beside socat, sqlite3 .import and
iperf3 on one machine, runs interleaved round by round, every project result checked against
the source with Python's csv and sqlite3 modules. See scripts/bench's docstring for the cases."""

import csv
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20261201
UDP_FRAME_BYTES = 100  # the RECORD frame of the UDP file, as iperf3 -l 100's payload
UDP_STREAM = "udp100"
RUN_TIMEOUT_S = 900


class Skip(Exception):
    pass


class Fail(Exception):
    pass


# ---- the files ----

NAMES = ["Main St", "Elm, North", "Quay \"7\"", "Bridge", "Old Mill, \"the\" one", "Harbour"]
NOTES = ["ok", "", "line one\nline two", "says \"hi\"", "a,b,c", "ok", "steady", "0"]


def big_file(path, rows):
    """rows rows of six columns, about 58 bytes each: leading zeros, quoted commas, doubled
    quotes, embedded newlines. A fixed seed: the same file every time."""
    rnd = random.Random(SEED)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "station", "at", "name", "note", "value"])
        for i in range(rows):
            at = "2026-11-%02d %02d:%02d:%02d" % (1 + i // 86400 % 30, i // 3600 % 24, i // 60 % 60,
                                                  i % 60)
            w.writerow([i, "%06d" % rnd.randrange(1000000), at, rnd.choice(NAMES), rnd.choice(NOTES),
                        "%.2f" % rnd.uniform(-50, 50)])


def udp_row(i):
    """Row i of the UDP file: its RECORD frame is UDP_FRAME_BYTES long (8-byte frame header,
    33 bytes of ids and times, the stream name, 4 + 4 per field, then the values)."""
    vals = [str(i), "s%02d" % (i % 17), "%.1f" % ((i * 7919) % 1000 / 10)]
    fixed = 8 + 33 + len(UDP_STREAM) + 4 + 4 * 4
    pad = UDP_FRAME_BYTES - fixed - sum(len(v) for v in vals)
    return vals + ["x" * max(pad, 0)]


def udp_file(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "sensor", "value", "pad"])
        for i in range(rows):
            w.writerow(udp_row(i))


# ---- oracles ----

def compare_rows(got, want, what):
    """Walk two row iterators side by side; raise Fail at the first difference."""
    n = 0
    sentinel = object()
    while True:
        a = next(got, sentinel)
        b = next(want, sentinel)
        if a is sentinel and b is sentinel:
            return n
        if a is sentinel or b is sentinel or list(a) != list(b):
            raise Fail("%s differs from the source at data row %d: %r != %r" % (
                what, n + 1, None if a is sentinel else list(a)[:5],
                None if b is sentinel else list(b)[:5]))
        n += 1


def source_reader(path):
    f = open(path, newline="", encoding="utf-8")
    return f, csv.reader(f)


def check_out9(out, src):
    """out9.txt: the source's header, then every row in order (one TCP stream keeps it)."""
    fs, rs = source_reader(src)
    fo, ro = source_reader(out)
    try:
        if next(ro, None) != next(rs, None):
            raise Fail("%s: header differs from the source's" % out)
        return compare_rows(ro, rs, out)
    finally:
        fs.close()
        fo.close()


def db_table(con):
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        if not name.startswith("_csvstream"):
            return name
    raise Fail("no data table in the database")


def check_db(db, src, order="_seq"):
    """Every source row, value for value as text, in the data columns (the first ones)."""
    fs, rs = source_reader(src)
    con = sqlite3.connect(db)
    try:
        header = next(rs)
        table = db_table(con)
        cols = ", ".join('"%s"' % c[1].replace('"', '""')
                         for c in con.execute('PRAGMA table_info("%s")' % table).fetchall()[:len(header)])
        cur = con.execute('SELECT %s FROM "%s" ORDER BY %s' % (cols, table, order))
        return compare_rows(iter(cur), rs, db)
    finally:
        con.close()
        fs.close()


def check_udp_out9(out, received):
    """Over UDP out9.txt holds a subset, in arrival order: each row must be its source row,
    each id once, and as many as the consumer says it received."""
    seen = set()
    with open(out, newline="") as f:
        r = csv.reader(f)
        next(r, None)
        for row in r:
            i = int(row[0])
            if row != udp_row(i) or i in seen:
                raise Fail("%s: row %r is not source row %d, or is there twice" % (out, row[:3], i))
            seen.add(i)
    if len(seen) != received:
        raise Fail("%s has %d rows, the consumer says it received %d" % (out, len(seen), received))
    return len(seen)


# ---- processes ----

def port_listening(port):
    """True when something listens on 127.0.0.1:port/tcp (read from /proc, not by connecting,
    which would use up a one-connection server's accept)."""
    want = ":%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f:
                cols = line.split()
                if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def cpu_s(pid):
    """CPU time of a running process so far, in seconds, to the nanosecond (the scheduler's
    own count in /proc/PID/schedstat; utime + stime only count 10 ms clock ticks)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e9


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^%s:\s+(\d+)" % key, f.read(), re.M)
    return int(m.group(1)) if m else 0


class Consumer:
    """A consumer on a free port with its own out9.txt (and database), stopped by SIGTERM."""

    def __init__(self, bench, bin_dir, work, name, extra):
        self.out = os.path.join(work, name + ".out9.txt")
        self.db = os.path.join(work, name + ".db") if "--db" in extra else None
        self.json = os.path.join(work, name + ".consumer.json")
        self.log = os.path.join(work, name + ".consumer.log")
        for p in (self.out, self.out + ".progress", self.json):
            if os.path.exists(p):
                os.unlink(p)
        if self.db:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db + suffix):
                    os.unlink(self.db + suffix)
        args = [a if a != "--db" else "--db=" + self.db for a in extra]
        for _ in range(5):
            self.port = bench.free_port()
            with open(self.log, "w") as lf:
                self.p = subprocess.Popen(
                    [os.path.join(bin_dir, "consumer"), "--port", str(self.port), "--out", self.out,
                     "--stats-json", self.json] + args,
                    stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with open(self.log, errors="replace") as lf:
                    text = lf.read()
                if "listening on" in text:
                    return
                if self.p.poll() is not None:
                    break
                time.sleep(0.02)
            bench.kill_quietly(self.p)
            if "address already in use" not in text:
                raise Fail("consumer did not start: " + text.strip()[-400:])
        raise Fail("no free port for the consumer")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise Fail("consumer did not stop within 120 s of SIGTERM")
        try:
            with open(self.json) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            with open(self.log, errors="replace") as lf:
                raise Fail("consumer wrote no --stats-json (exit %s, %s): %s" % (
                    self.p.returncode, e, lf.read().strip()[-400:]))


def run_producer(bin_dir, work, name, port, args, src, timeout=RUN_TIMEOUT_S):
    """Run a producer to its end; returns (wall seconds, its --stats-json)."""
    pjson = os.path.join(work, name + ".producer.json")
    plog = os.path.join(work, name + ".producer.log")
    cmd = [os.path.join(bin_dir, "producer"), "--port", str(port), "--quiet", "--stats-json", pjson
           ] + args + [src]
    t0 = time.monotonic()
    with open(plog, "w") as lf:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                            timeout=timeout).returncode
    wall = time.monotonic() - t0
    if rc != 0:
        with open(plog, errors="replace") as lf:
            raise Fail("producer %s exited %d: %s" % (" ".join(args), rc, lf.read().strip()[-400:]))
    with open(pjson) as f:
        return wall, json.load(f)


# ---- the cases of a round ----

def project_tcp(ctx, db):
    name = "tcp-db" if db else "tcp-out9"
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], name, (["--db"] if db else []))
    try:
        wall, ps = run_producer(ctx["bin"], ctx["work"], name, c.port, ["--tcp", "--interval", "0"],
                                ctx["big"])
        rss = vm(c.p.pid, "VmHWM")
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(c.p)
    n = ctx["rows"]
    if ps["sent"] != n or ps["acked"] != n or cs["tcp"]["received"] != n or cs["tcp"]["lost"] != 0:
        raise Fail("%s: sent %s, acked %s, received %s, lost %s of %d" % (
            name, ps["sent"], ps["acked"], cs["tcp"]["received"], cs["tcp"]["lost"], n))
    check_out9(c.out, ctx["big"])
    if db:
        check_db(c.db, ctx["big"])
    return dict(seconds=wall, rss_kb=rss)


def anchor_socat(ctx):
    if shutil.which("socat") is None:
        raise Skip("socat not installed (scripts/deps: CSVSTREAM_BENCH_PACKAGES)")
    out = os.path.join(ctx["work"], "socat.out")
    bench = ctx["bench"]
    port = bench.free_port()
    server = subprocess.Popen(["socat", "-u", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port,
                               "OPEN:%s,creat,trunc" % out], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_listening(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise Fail("socat did not listen on %d" % port)
            time.sleep(0.01)
        t0 = time.monotonic()
        rc = subprocess.run(["socat", "-u", "OPEN:%s,rdonly" % ctx["big"], "TCP:127.0.0.1:%d" % port],
                            stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S).returncode
        server.wait(timeout=RUN_TIMEOUT_S)
        wall = time.monotonic() - t0
    finally:
        bench.kill_quietly(server)
    if rc != 0 or server.returncode != 0 or os.path.getsize(out) != os.path.getsize(ctx["big"]):
        raise Fail("socat copy failed (exit %s/%s)" % (rc, server.returncode))
    return dict(seconds=wall)


def anchor_import(ctx):
    if shutil.which("sqlite3") is None:
        raise Skip("the sqlite3 shell is not installed")
    db = os.path.join(ctx["work"], "import.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    script = "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n.import --csv %s t\n" % ctx["big"]
    t0 = time.monotonic()
    r = subprocess.run(["sqlite3", "-bail", db], input=script, text=True, capture_output=True,
                       timeout=RUN_TIMEOUT_S)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise Fail("sqlite3 .import failed: " + (r.stderr or r.stdout).strip()[-300:])
    check_db(db, ctx["big"], order="rowid")
    return dict(seconds=wall)


def project_udp(ctx):
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "udp", ["--udp"])
    try:
        _, ps = run_producer(ctx["bin"], ctx["work"], "udp", c.port, ["--udp", "--interval", "0"],
                             ctx["udp"])
        time.sleep(0.3)
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(c.p)
    u = cs["udp"]
    if u["received"] + u["lost"] != ps["sent"]:
        raise Fail("udp: received %d + lost %d != sent %d" % (u["received"], u["lost"], ps["sent"]))
    check_udp_out9(c.out, u["received"])
    return dict(per_s=u["records_per_s"] or 0.0, received=u["received"], lost=u["lost"],
                sent=ps["sent"], datagrams=u.get("datagrams"))


def anchor_iperf3(ctx):
    if shutil.which("iperf3") is None:
        raise Skip("iperf3 not installed (scripts/deps: CSVSTREAM_BENCH_PACKAGES)")
    bench = ctx["bench"]
    port = bench.free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_listening(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise Fail("iperf3 -s did not listen on %d" % port)
            time.sleep(0.01)
        r = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-u", "-b", "0", "-l", "100",
                            "-t", str(ctx["iperf_s"]), "--json"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        server.wait(timeout=30)
    finally:
        bench.kill_quietly(server)
    if r.returncode != 0:
        raise Fail("iperf3 failed: " + r.stdout.strip()[-300:] + r.stderr.strip()[-300:])
    s = json.loads(r.stdout)["end"]["sum"]
    got = s["packets"] - s["lost_packets"]
    return dict(per_s=got / s["seconds"], received=got, lost=s["lost_packets"], sent=s["packets"])


# ---- single runs ----

def rate_udp(ctx, rate):
    n = min(ctx["rows"], rate * 2)
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "rate", ["--udp"])
    try:
        _, ps = run_producer(ctx["bin"], ctx["work"], "rate", c.port,
                             ["--udp", "--rate", str(rate), "--count", str(n)], ctx["udp"])
        time.sleep(0.3)
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(c.p)
    u = cs["udp"]
    if u["received"] + u["lost"] != ps["sent"]:
        raise Fail("rate: received + lost != sent")
    check_udp_out9(c.out, u["received"])
    return dict(rate=rate, sent=ps["sent"], received=u["received"], lost=u["lost"],
                producer_per_s=ps["records_per_s"], consumer_per_s=u["records_per_s"])


def memory_db(ctx, n):
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "memory", ["--tcp", "--db"])
    peak = 0
    try:
        pjson = os.path.join(ctx["work"], "memory.producer.json")
        cmd = [os.path.join(ctx["bin"], "producer"), "--port", str(c.port), "--quiet", "--stats-json",
               pjson, "--tcp", "--interval", "0", "--loop", "--count", str(n), ctx["big"]]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        while p.poll() is None:
            peak = max(peak, vm(c.p.pid, "VmRSS"))
            time.sleep(0.2)
        wall = time.monotonic() - t0
        peak = max(peak, vm(c.p.pid, "VmHWM"))
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(c.p)
    if p.returncode != 0:
        raise Fail("memory: producer exited %d" % p.returncode)
    con = sqlite3.connect(c.db)
    rows = con.execute('SELECT count(*) FROM "%s"' % db_table(con)).fetchone()[0]
    con.close()
    if rows != n or cs["tcp"]["received"] != n:
        raise Fail("memory: %d rows in the database, %d received, of %d" % (rows, cs["tcp"]["received"], n))
    return dict(records=n, seconds=wall, rss_peak_kb=peak, p99_latency_ms=cs["tcp"]["latency_us"]["p99"] / 1000)


def lock_wait(ctx):
    """While the file (twice over) streams unpaced into --db, another process asks for the
    write lock (BEGIN IMMEDIATE, 5 s busy timeout) every 0.2 s: how long it waits at most."""
    n = 2 * ctx["rows"]
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "lock", ["--tcp", "--db"])
    p = None
    waits = []
    try:
        cmd = [os.path.join(ctx["bin"], "producer"), "--port", str(c.port), "--quiet", "--tcp",
               "--interval", "0", "--loop", "--count", str(n), ctx["big"]]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(c.db) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        con = sqlite3.connect(c.db, isolation_level=None, timeout=5.0)
        try:
            while p.poll() is None:
                t0 = time.monotonic()
                con.execute("BEGIN IMMEDIATE")
                waits.append(time.monotonic() - t0)
                con.execute("ROLLBACK")
                time.sleep(0.2)
        finally:
            con.close()
        p.wait(timeout=RUN_TIMEOUT_S)
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(p)
        ctx["bench"].kill_quietly(c.p)
    if p.returncode != 0 or cs["tcp"]["received"] != n or cs["db"]["committed"] != n:
        raise Fail("lock: producer exit %s, %s received, %s committed of %d" % (
            p.returncode, cs["tcp"]["received"], cs["db"]["committed"], n))
    if not waits:
        raise Fail("lock: the stream ended before the first try")
    return dict(records=n, tries=len(waits), max_wait_s=max(waits),
                median_wait_s=statistics.median(waits))


def low_rate(ctx, seconds):
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "lowrate", ["--tcp"])
    try:
        _, ps = run_producer(ctx["bin"], ctx["work"], "lowrate", c.port,
                             ["--tcp", "--rate", "100", "--count", str(100 * seconds)], ctx["udp"])
        cs = c.stop()
    finally:
        ctx["bench"].kill_quietly(c.p)
    t = cs["tcp"]
    if t["received"] != 100 * seconds:
        raise Fail("low rate: received %d of %d" % (t["received"], 100 * seconds))
    return dict(records=t["received"], p50_ms=t["latency_us"]["p50"] / 1000,
                p99_ms=t["latency_us"]["p99"] / 1000, max_ms=t["latency_us"]["max"] / 1000)


def idle_cpu(ctx, seconds):
    """Consumer (with --db) and producer at the default pace for `seconds`: CPU per wall time,
    over the whole window and over each third of it (how much it moves within one run). The
    disks are synced first, so that the write-back of the cases before it is not counted."""
    os.sync()
    time.sleep(2)
    c = Consumer(ctx["bench"], ctx["bin"], ctx["work"], "idle", ["--db"])
    p = None
    try:
        cmd = [os.path.join(ctx["bin"], "producer"), "--port", str(c.port), "--quiet", "--loop",
               ctx["udp"]]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        marks = [(cpu_s(c.p.pid), cpu_s(p.pid), time.monotonic())]
        for _ in range(3):
            time.sleep(seconds / 3)
            marks.append((cpu_s(c.p.pid), cpu_s(p.pid), time.monotonic()))
        p.terminate()
        p.wait(timeout=30)
        c.stop()
    finally:
        ctx["bench"].kill_quietly(p)
        ctx["bench"].kill_quietly(c.p)

    def pct(a, b, k):
        return 100 * (b[k] - a[k]) / (b[2] - a[2])

    first, last = marks[0], marks[-1]
    return dict(seconds=last[2] - first[2], consumer_pct=pct(first, last, 0),
                producer_pct=pct(first, last, 1),
                consumer_pct_windows=[pct(a, b, 0) for a, b in zip(marks, marks[1:])])


def pg_row(ctx):
    """The PostgreSQL row, from scripts/bench-pg when it is there (see scripts/bench)."""
    tool = os.path.join(ROOT, "scripts", "bench-pg")
    if not os.access(tool, os.X_OK):
        raise Skip("scripts/bench-pg not found")
    r = subprocess.run([tool, "--bench-row", "--csv", ctx["big"], "--rounds", str(ctx["rounds"]),
                        "--bin", ctx["bin"]], capture_output=True, text=True, timeout=3600)
    if r.returncode == 77:
        raise Skip(r.stdout.strip()[-200:] or "scripts/bench-pg skipped")
    if r.returncode != 0:
        raise Fail("scripts/bench-pg failed: " + (r.stderr or r.stdout).strip()[-300:])
    return json.loads(r.stdout)


# ---- the run ----

def spread(values):
    return dict(median=statistics.median(values), min=min(values), max=max(values), n=len(values))


def install_anchors(no_install):
    missing = [t for t in ("socat", "iperf3") if shutil.which(t) is None]
    if not missing or no_install:
        return
    can = os.geteuid() == 0 or (shutil.which("sudo") and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True).returncode == 0)
    if not can:
        print("bench: %s missing and cannot install them (not root): their anchors are skipped"
              % " ".join(missing), file=sys.stderr)
        return
    subprocess.run(["bash", "-c", '. "%s/scripts/deps" && csvstream_install_bench_deps' % ROOT],
                   stdin=subprocess.DEVNULL)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1) if m else cpu
        with open("/proc/meminfo") as f:
            mem_kb = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        mem_kb = 0
    return dict(cpus=os.cpu_count(), cpu=cpu, mem_gib=round(mem_kb / 1048576, 1),
                kernel=platform.release(), loadavg=os.getloadavg())


def fmt_s(sp):
    return "%.3f s (%.3f-%.3f)" % (sp["median"], sp["min"], sp["max"])


def fmt_rate(sp):
    return "%.0f k/s (%.0f-%.0f)" % (sp["median"] / 1000, sp["min"] / 1000, sp["max"] / 1000)


def run(args, bench):
    install_anchors(args.no_install)
    work = bench.tempfile.mkdtemp(prefix="csvstream-compare-")
    big = os.path.join(work, "big.csv")
    udp = os.path.join(work, UDP_STREAM + ".csv")
    print("work dir: %s; generating %d rows" % (work, args.rows), flush=True)
    big_file(big, args.rows)
    udp_file(udp, args.rows)
    ctx = dict(bench=bench, bin=args.bin, work=work, big=big, udp=udp, rows=args.rows,
               rounds=args.rounds, iperf_s=2 if args.rows < 1000000 else 3)
    start_machine = machine()
    cases = [("tcp-out9", lambda: project_tcp(ctx, False)), ("socat", lambda: anchor_socat(ctx)),
             ("tcp-db", lambda: project_tcp(ctx, True)), ("sqlite3-import", lambda: anchor_import(ctx)),
             ("udp", lambda: project_udp(ctx)), ("iperf3", lambda: anchor_iperf3(ctx))]
    got = {name: [] for name, _ in cases}
    skipped, failed = {}, []
    for r in range(args.rounds):
        for name, fn in cases:
            if name in skipped:
                continue
            try:
                res = fn()
                got[name].append(res)
                print("round %d %-15s %s" % (r + 1, name, json.dumps(res)), flush=True)
            except Skip as e:
                skipped[name] = str(e)
                print("%-15s SKIPPED: %s" % (name, e), flush=True)
            except (Fail, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
                failed.append("%s: %s" % (name, e))
                print("round %d %-15s FAIL: %s" % (r + 1, name, e), flush=True)
    single = {}
    singles = [("udp-rate-500000", lambda: rate_udp(ctx, 500000)),
               ("low-rate-100", lambda: low_rate(ctx, 5 if args.rows < 1000000 else 10)),
               ("idle-cpu-default-pace", lambda: idle_cpu(ctx, 10 if args.rows < 1000000 else 30)),
               ("postgresql", lambda: pg_row(ctx))]
    mem_rows = args.memory_rows if args.memory_rows is not None else 10 * args.rows
    if mem_rows > 0:
        singles.insert(1, ("memory-db", lambda: memory_db(ctx, mem_rows)))
    singles.insert(1, ("lock-wait", lambda: lock_wait(ctx)))
    for name, fn in singles:
        try:
            single[name] = fn()
            print("single  %-15s %s" % (name, json.dumps(single[name])), flush=True)
        except Skip as e:
            skipped[name] = str(e)
            print("%-15s SKIPPED: %s" % (name, e), flush=True)
        except (Fail, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
            failed.append("%s: %s" % (name, e))
            print("single  %-15s FAIL: %s" % (name, e), flush=True)

    def secs(name):
        return spread([x["seconds"] for x in got[name]]) if got[name] else None

    def rates(name):
        return spread([x["per_s"] for x in got[name]]) if got[name] else None

    rows = []

    def timed_row(path, proj, anchor, anchor_name, goal):
        p, a = secs(proj), secs(anchor)
        row = dict(path=path, project=p, anchor_name=anchor_name, anchor=a, goal=goal)
        if p:
            row["project_rows_per_s"] = args.rows / p["median"]
        if p and a:
            row["ratio"] = p["median"] / a["median"]
            row["met"] = row["ratio"] <= goal
        rows.append(row)

    timed_row("TCP -> out9.txt", "tcp-out9", "socat", "socat file -> TCP -> file", 2.5)
    timed_row("TCP -> out9.txt + SQLite", "tcp-db", "sqlite3-import",
              "sqlite3 .import --csv (WAL, synchronous NORMAL)", 1.0)
    p, a = rates("udp"), rates("iperf3")
    urow = dict(path="UDP, 100-byte records, unpaced", project=p, anchor_name="iperf3 -u -b 0 -l 100",
                anchor=a, goal=2.0, unit="per_s")
    if got["udp"]:
        urow["loss"] = spread([x["lost"] / x["sent"] for x in got["udp"]])
    if p and a:
        urow["ratio"] = p["median"] / a["median"]
        urow["met"] = urow["ratio"] >= 2.0
    rows.append(urow)
    if "postgresql" in single:
        pg = single["postgresql"]
        prow = dict(path=pg.get("path", "TCP -> PostgreSQL"), project=spread(pg["project_s"]),
                    anchor_name=pg.get("anchor", "?"), anchor=spread(pg["anchor_s"]), goal=1.5)
        prow["project_rows_per_s"] = args.rows / prow["project"]["median"]
        prow["ratio"] = prow["project"]["median"] / prow["anchor"]["median"]
        prow["met"] = prow["ratio"] <= 1.5
        failed.extend("postgresql: " + f for f in pg.get("checks_failed", []))
        rows.append(prow)

    print()
    print("machine: %(cpus)s CPUs (%(cpu)s), %(mem_gib)s GiB, Linux %(kernel)s" % start_machine)
    print("load average at start %.2f, at end %.2f (above 0 means other work shared the CPUs)" % (
        start_machine["loadavg"][0], os.getloadavg()[0]))
    print("file: %d rows, %.1f MB; %d rounds interleaved; medians (min-max)" % (
        args.rows, os.path.getsize(big) / 1e6, args.rounds))
    print()
    print("| path | project | anchor | ratio | goal |")
    print("|---|---|---|---|---|")
    for row in rows:
        unit = row.get("unit")
        f = fmt_rate if unit else fmt_s
        proj = f(row["project"]) if row["project"] else "FAILED"
        if row.get("project_rows_per_s"):
            proj += ", %.0f k rows/s" % (row["project_rows_per_s"] / 1000)
        if row.get("loss"):
            proj += ", loss %.1f%%" % (100 * row["loss"]["median"])
        anc = ("%s %s" % (row["anchor_name"], f(row["anchor"]))) if row["anchor"] else \
            "%s: skipped" % row["anchor_name"]
        ratio = "%.2fx" % row["ratio"] if "ratio" in row else "-"
        if row["goal"] is None:
            goal = "-"
        else:
            goal = ("%s %.1fx" % (">=" if unit else "<=", row["goal"]))
            if "met" in row:
                goal += " met" if row["met"] else " NOT met"
        print("| %s | %s | %s | %s | %s |" % (row["path"], proj, anc, ratio, goal))
    r5 = single.get("udp-rate-500000")
    if r5:
        print("| UDP --rate 500000 | consumer %.0f k/s (producer %.0f k/s), %d of %d received | - | "
              "%.2fx of the rate | >= 1.0x %s |" % (
                  r5["consumer_per_s"] / 1000, r5["producer_per_s"] / 1000, r5["received"], r5["sent"],
                  r5["consumer_per_s"] / 500000, "met" if r5["consumer_per_s"] >= 0.98 * 500000 and
                  r5["lost"] == 0 else "NOT met"))
    m = single.get("memory-db")
    if m:
        print("| %d records into --db | consumer RSS peak %.1f MiB, p99 latency %.0f ms, %.1f s | - | "
              "- | < 64 MiB %s |" % (m["records"], m["rss_peak_kb"] / 1024, m["p99_latency_ms"], m["seconds"],
                                   "met" if m["rss_peak_kb"] < 65536 else "NOT met"))
    lk = single.get("lock-wait")
    if lk:
        print("| another process's BEGIN IMMEDIATE while %d records stream unpaced into --db | "
              "waited %.3f s at most (median %.3f s, %d tries) | - | - | < 1 s %s |" % (
                  lk["records"], lk["max_wait_s"], lk["median_wait_s"], lk["tries"],
                  "met" if lk["max_wait_s"] < 1 else "NOT met"))
    lr = single.get("low-rate-100")
    if lr:
        print("| --rate 100 over TCP, %d records | latency send -> receive (and out9.txt written in "
              "that loop turn) p50 %.2f ms, p99 %.2f ms | - | - | p99 < 1 ms %s |" % (
                  lr["records"], lr["p50_ms"], lr["p99_ms"], "met" if lr["p99_ms"] < 1 else "NOT met"))
    ic = single.get("idle-cpu-default-pace")
    if ic:
        w = ic.get("consumer_pct_windows") or [ic["consumer_pct"]]
        print("| default pace (1-3 s), TCP, --db, %.0f s | CPU consumer %.3f%% (%.3f-%.3f%% in "
              "its thirds), producer %.3f%% | - | - | < 0.1%% %s |" % (
                  ic["seconds"], ic["consumer_pct"], min(w), max(w), ic["producer_pct"],
                  "met" if max(ic["consumer_pct"], ic["producer_pct"]) < 0.1 else "NOT met"))
    for name, why in skipped.items():
        print("skipped %s: %s" % (name, why))
    for f in failed:
        print("FAILED " + f)
    doc = dict(machine=start_machine, loadavg_end=os.getloadavg(), rows=args.rows,
               file_bytes=os.path.getsize(big), rounds=args.rounds, table=rows, single=single,
               runs=got, skipped=skipped, failed=failed)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print("JSON: %s" % args.json)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0
