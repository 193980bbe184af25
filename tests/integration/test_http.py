"""test_http.py -- consumer --http while TCP and UDP producers run: /metrics passes a small
Prometheus text-format check (every sample line well formed, HELP and TYPE before each family,
counters never going down between two scrapes); /stats.json has the final --stats-json
document's keys; hostile requests (huge headers, slowloris, POST, '..' paths, a flood of
connections) are bounded and answered or closed; --stats-format json gives one JSON object per
interval whose deltas add up to the totals. Without --http support (a consumer built without
libhttp-parser) it prints the reason and exits with SKIP_CODE, which ctest reports as skipped."""

import json
import re
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

import harness

SKIP_CODE = 77

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(%s(?:,%s)*)?\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$" %
                    (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text):
    """Check the text format and return {(name, labels): value} and {family: type}. Raises
    AssertionError naming the line on anything malformed."""
    families, helps, samples, seen_samples_of = {}, set(), {}, set()
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.match("^%s$" % NAME, parts[2]):
                raise AssertionError("line %d: bad HELP: %r" % (n, line))
            if parts[2] in helps:
                raise AssertionError("line %d: second HELP for %s" % (n, parts[2]))
            helps.add(parts[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in TYPES:
                raise AssertionError("line %d: bad TYPE: %r" % (n, line))
            if parts[2] in families:
                raise AssertionError("line %d: second TYPE for %s" % (n, parts[2]))
            if parts[2] not in helps:
                raise AssertionError("line %d: TYPE of %s before its HELP" % (n, parts[2]))
            if parts[2] in seen_samples_of:
                raise AssertionError("line %d: TYPE of %s after its samples" % (n, parts[2]))
            families[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("line %d: not a well-formed sample: %r" % (n, line))
        name = m.group(1)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and families.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        if family not in families:
            raise AssertionError("line %d: sample of %s before its HELP and TYPE" % (n, family))
        if families[family] == "counter" and not name.endswith("_total"):
            raise AssertionError("line %d: counter %s does not end in _total" % (n, name))
        seen_samples_of.add(family)
        key = (name, m.group(3) or "")
        if key in samples:
            raise AssertionError("line %d: a second sample %r" % (n, key))
        samples[key] = float(m.group(4))
    return samples, families


def get(port, path, method="GET", data=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw(port, payload, timeout=10):
    """Send raw bytes; return what comes back until the server closes ("" if it closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def keys(obj):
    """The key structure of a JSON value: dicts by key, lists by their first element."""
    if isinstance(obj, dict):
        return {k: keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [keys(obj[0])] if obj else []
    return None


class HttpTest(harness.IntegrationCase):

    def start(self, *args):
        self.http_port = harness.free_port()
        cons = self.consumer("--db", "out.db", "--http", str(self.http_port), *args)
        self.assertIn("serving http://127.0.0.1:%d/" % self.http_port, cons.proc.stderr())
        return cons

    def test_metrics_well_formed_and_counters_monotonic(self):
        cons = self.start()
        src = self.path("src.csv")
        harness.simple_csv(src, 400)
        tcp = self.start_producer(src, cons.port, "tcp", ["--rate", "400"])
        udp = self.start_producer(src, cons.port, "udp",
                                  ["--rate", "400", "--impair", "loss=0.05,dup=0.05,seed=3"])
        time.sleep(0.4)
        status, headers, body = get(self.http_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        first, families = parse_prometheus(body.decode("utf-8"))
        self.assertExit(self.finish_producer(tcp), 0, "tcp producer")
        self.assertExit(self.finish_producer(udp), 0, "udp producer")
        time.sleep(0.3)
        status, _, body = get(self.http_port, "/metrics")
        second, families2 = parse_prometheus(body.decode("utf-8"))
        for (name, labels), value in first.items():
            fam = re.sub("_(bucket|sum|count)$", "", name)
            if families.get(name) == "counter" or families.get(fam) == "histogram":
                self.assertIn((name, labels), second, "%s{%s} vanished" % (name, labels))
                self.assertGreaterEqual(second[(name, labels)], value,
                                        "counter %s{%s} went down" % (name, labels))
        self.assertEqual(families2["csvstream_records_received_total"], "counter")
        self.assertEqual(families2["csvstream_latency_seconds"], "histogram")
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        for proto in ("tcp", "udp"):
            label = 'protocol="%s"' % proto
            self.assertEqual(second[("csvstream_records_received_total", label)],
                             res.stats[proto]["received"], proto)
            self.assertEqual(second[("csvstream_records_duplicate_total", label)],
                             res.stats[proto]["duplicates"], proto)
            self.assertEqual(second[("csvstream_latency_seconds_count", label)],
                             res.stats[proto]["received"], proto)
            inf = second[("csvstream_latency_seconds_bucket", label + ',le="+Inf"')]
            self.assertEqual(inf, res.stats[proto]["received"])
        self.assertEqual(second[("csvstream_records_received_total", 'protocol="tcp"')], 400)
        self.assertGreater(res.stats["udp"]["lost"], 0, res.describe())
        self.assertEqual(second[("csvstream_sink_db_committed", "")], 400 + res.stats["udp"]
                         ["received"])
        self.assertEqual(second[("csvstream_connections_total", 'protocol="tcp"')], 1)

    def test_stats_json_has_the_final_documents_keys(self):
        cons = self.start()
        src = self.path("src.csv")
        harness.simple_csv(src, 50)
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["-i", "0"]), 0, "tcp")
        self.assertExit(self.run_producer(src, cons.port, "udp", ["-i", "0"]), 0, "udp")
        time.sleep(0.3)
        status, headers, body = get(self.http_port, "/stats.json")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        live = json.loads(body)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.assertEqual(keys(live), keys(res.stats))
        self.assertEqual(live["tcp"]["received"], res.stats["tcp"]["received"])

    def test_hostile_requests_are_bounded_answered_or_closed(self):
        cons = self.start()
        port = self.http_port
        status, headers, _ = get(port, "/stats.json", method="POST", data=b"x" * 10000)
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("Allow"), "GET, HEAD")
        for path in ("/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/metrics/../../x",
                     "/nothing"):
            self.assertEqual(get(port, path)[0], 404, path)
        status, headers, body = get(port, "/metrics", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        # Huge headers: 431 (or closed), never read without end.
        answer = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
        self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:80])
        # Not HTTP at all.
        self.assertTrue(raw(port, b"\x00\x01hello\r\n\r\n").startswith(b"HTTP/1.1 400"))
        # Slowloris: a request that never ends is closed within the request timeout (5 s).
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        closed = False
        try:
            while time.monotonic() - t0 < 12:
                s.sendall(b"X-a: b\r\n")
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        s.close()
        self.assertTrue(closed, "a slow request was kept open for 12 s")
        self.assertLess(time.monotonic() - t0, 8.0)
        # A flood of idle connections: over the cap (64) the oldest are closed, so a scrape
        # still gets its answer.
        flood = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        self.assertEqual(get(port, "/metrics")[0], 200)
        closed_by_server = 0
        for f in flood:
            f.settimeout(0.5)
            try:
                if f.recv(1) == b"":
                    closed_by_server += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_by_server += 1
        self.assertGreaterEqual(closed_by_server, 100 - 64, "idle connections over the cap")
        for f in flood:
            f.close()
        time.sleep(0.3)
        self.assertEqual(get(port, "/metrics")[0], 200)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")

    def test_http_flag_usage_errors(self):
        for bad in ("abc", "0", "70000", ":80", "127.0.0.1:"):
            res = self.run_program([harness.CONSUMER, "--http", bad])
            self.assertExit(res, 2, "--http " + bad)
            self.assertIn("--http", res.stderr)

    def test_stats_format_json_lines_add_up_to_the_totals(self):
        cons = self.consumer("--stats", "0.2", "--stats-format", "json")
        src = self.path("src.csv")
        harness.simple_csv(src, 200)
        self.assertExit(self.run_producer(src, cons.port, "tcp", ["--rate", "400"]), 0, "tcp")
        time.sleep(0.5)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
        self.assertGreaterEqual(len(lines), 3, res.stdout)
        self.assertIn("consumer summary", res.stderr)  # stdout carries the JSON lines
        for obj in lines:
            extra = set(obj) - set(res.stats)
            self.assertEqual(extra, {"interval"}, obj)
            self.assertEqual(keys({k: v for k, v in obj.items() if k != "interval"}).keys(),
                             keys(res.stats).keys())
            self.assertIn("seconds", obj["interval"])
        total = sum(o["interval"]["tcp"]["received"] for o in lines)
        self.assertEqual(total, lines[-1]["tcp"]["received"])
        self.assertEqual(lines[-1]["tcp"]["received"], 200)
        res2 = self.run_program([harness.CONSUMER, "--stats-format", "yaml"])
        self.assertExit(res2, 2, "--stats-format yaml")


if __name__ == "__main__":
    probe = subprocess.run([harness.CONSUMER, "--http", "1", "--help"],
                           capture_output=True, text=True)
    if "built without libhttp-parser" in probe.stderr:
        print("skipped: this consumer was built without libhttp-parser (apt-get install "
              "libhttp-parser-dev and build again)")
        sys.exit(SKIP_CODE)
    unittest.main(verbosity=2)
