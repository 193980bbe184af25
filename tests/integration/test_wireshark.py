"""test_wireshark.py -- the Wireshark dissector docs/wireshark/csvstream.lua under tshark, on
captures of the loopback made by dumpcap while the real producer streams to the real consumer
over TCP and over UDP: every HELLO, RECORD, END and ACK is found with its stream, producer id
(the producer's --stats-json), sequence number, source line and send time, and every field's
bytes equal the source CSV as Python's csv module reads it, with no expert info and no Lua
error. Frames built here from docs/protocol.md, sent by this test, check what the programs never
send: many records in one datagram, frames cut across several TCP segments, versions 1 and 2, a
REFUSE, and each kind of malformed frame, which must carry its expert info. Without tshark or
dumpcap, or without the right to capture, it prints why and exits with SKIP_CODE (ctest:
skipped)."""

import csv
import datetime
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import harness

# ctest's SKIP_RETURN_CODE for this test (CSVSTREAM_TEST_SKIP_CODE in tests/CMakeLists.txt).
SKIP_CODE = 77
LUA = os.path.join(harness.SOURCE, "docs", "wireshark", "csvstream.lua")
TYPES = {1: "HELLO", 2: "RECORD", 3: "END", 4: "ACK", 5: "REFUSE"}
# What each type's fields are called in the dissector.
FIELD_KIND = {1: "column", 2: "value", 3: "field", 4: "field", 5: "reason", 0: "field"}

# Made-up data with what CSV quoting is for: commas, quotes, newlines (LF and CRLF), empty
# values, UTF-8; over TCP also one value far larger than a loopback segment (64 KiB), so that
# its frame is reassembled from several.
ROWS = [
    ["id", "place", "remark"],
    ["1", "Lyon, Part-Dieu", 'said "bonjour"'],
    ["2", "", "first line\nsecond line"],
    ["3", "Zürich", ""],
    ["4", "\"quoted\", and, commas", "crlf\r\ninside"],
    ["5", "", ""],
    ["6", "naïve café", "tab\there"],
]
BIG_VALUE = "x" * 100000


def write_source(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)


def read_source(path):
    """The header, the records and each record's first line, as Python's csv module reads the
    file (the oracle for fields and source lines)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        header = next(reader)
        records, lines = [], []
        start = reader.line_num + 1
        for row in reader:
            records.append(row)
            lines.append(start)
            start = reader.line_num + 1
    return header, records, lines


class Capture:
    """dumpcap on the loopback with a capture filter on one port, into DIR/NAME.pcapng."""

    def __init__(self, case, port, name):
        self.path = case.path(name + ".pcapng")
        self.err_path = case.path(name + ".dumpcap.err")
        self.err = open(self.err_path, "wb")
        self.popen = subprocess.Popen(
            ["dumpcap", "-q", "-i", "lo", "-f", "port %d" % port, "-a", "duration:60", "-w",
             self.path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        case.addCleanup(self.kill)
        # dumpcap names its file once the interface is open and the filter set: from then on
        # the kernel keeps every packet for it.
        ok = harness.wait_until(lambda: self.popen.poll() is not None or
                                "File: " in self.stderr(), 15)
        if self.popen.poll() is not None or not ok:
            raise AssertionError("dumpcap did not start capturing on lo:\n%s" % self.stderr())

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        # dumpcap reads the kernel's buffer in blocks retired every 250 ms: give the last
        # packets time to reach it, then stop it (SIGINT: it writes out what it has).
        time.sleep(0.8)
        self.popen.send_signal(signal.SIGINT)
        try:
            rc = self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("dumpcap did not stop on SIGINT:\n%s" % self.stderr())
        self.err.close()
        if rc != 0:
            raise AssertionError("dumpcap exited with %d:\n%s" % (rc, self.stderr()))
        return self.path

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if not self.err.closed:
            self.err.close()


def pairs_hook(pairs):
    """Keep a JSON object as its list of (key, value) pairs: tshark repeats keys (one
    "csvstream" per frame, one "csvstream.value.item" per field) and their order matters."""
    return pairs


def items(node, key=None):
    """Every value of `key` in node, depth first in document order (all pairs if key is None)."""
    if isinstance(node, list) and all(isinstance(p, tuple) for p in node):
        for k, v in node:
            if key is None or k == key:
                yield (k, v) if key is None else v
            yield from items(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from items(v, key)


def first(node, key, default=None):
    for v in items(node, key):
        return v
    return default


def raw_bytes(raw):
    """The bytes of a field from its "_raw" entry (hex, offset, length, bitmask, type)."""
    return bytes.fromhex(raw[0]) if raw else b""


class Frame:
    """One csvstream frame as tshark dissected it."""

    def __init__(self, packet, layer):
        self.packet = packet
        self.layer = layer
        # A malformed frame may lack any field after the bad one.
        self.type = int(first(layer, "csvstream.type", "0"))
        self.version = int(first(layer, "csvstream.version", "0"))
        pid = first(layer, "csvstream.producer_id")
        self.producer_id = "%016x" % int(pid, 16) if pid is not None else None
        self.seq = int(first(layer, "csvstream.seq", "-1"))
        self.line = int(first(layer, "csvstream.line", "-1"))
        self.stream = raw_bytes(first(layer, "csvstream.stream_raw"))
        self.stream_text = first(layer, "csvstream.stream")
        key = first(layer, "csvstream.session_key_raw")
        self.key = raw_bytes(key) if key is not None else None
        self.nfields = int(first(layer, "csvstream.nfields", "-1"))
        self.direction = first(layer, "csvstream.direction")
        sent = first(layer, "csvstream.sent_us")
        self.sent = parse_time(sent) if sent else None
        kind = FIELD_KIND.get(self.type, "field")
        self.kind = kind
        self.fields = []
        self.lengths = []
        for item in items(layer, "csvstream.%s.item" % kind):
            # An empty field has no _raw entry (no bytes), only its text "".
            self.fields.append(raw_bytes(first(item, "csvstream.%s_raw" % kind)))
            self.lengths.append(int(first(item, "csvstream.%s.len" % kind)))
        self.experts = [e for e in items(layer, "_ws.expert.message")]

    def describe(self):
        return "packet %d: %s v%d seq %d stream %r fields %r" % (
            self.packet.number, TYPES.get(self.type), self.version, self.seq, self.stream,
            self.fields[:4])


class Packet:
    def __init__(self, layers):
        self.layers = layers
        self.number = int(first(layers, "frame.number"))
        self.time = float(first(layers, "frame.time_epoch"))
        self.transport = "tcp" if first(layers, "tcp.srcport") else "udp"
        self.srcport = int(first(layers, self.transport + ".srcport"))
        self.dstport = int(first(layers, self.transport + ".dstport"))
        self.frames = [Frame(self, layer) for k, layer in layers if k == "csvstream"]
        self.reassembled = any(k == "tcp.segments" for k, _ in layers)
        # Wireshark marks a frame whose expert info is of the malformed group, and a Lua error
        # in the dissector, with these items.
        self.malformed = [k for k, _ in items(layers) if k.startswith("_ws.malformed")]
        self.lua_errors = [v for k, v in items(layers) if k == "_ws.expert.message" and
                           "Lua Error" in v]


def parse_time(text):
    """tshark's UTC absolute time ("Dec  1, 2026 23:13:13.520211000 UTC") as epoch seconds."""
    head, frac = text.replace(" UTC", "").rsplit(".", 1)
    t = datetime.datetime.strptime(" ".join(head.split()), "%b %d, %Y %H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() + int(frac) / 10 ** len(frac)


def tshark_env(case):
    """tshark's environment: a home of the test's own, so that the user's preferences and
    plugins (a csvstream.lua installed there would clash with -X) play no part."""
    home = case.path("home")
    os.makedirs(home, exist_ok=True)
    return dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"))


def dissect(case, pcap, *options):
    """Run tshark with the dissector over pcap; returns its packets after checking that tshark
    said nothing but its warning about running as root."""
    argv = ["tshark", "-X", "lua_script:" + LUA, "-r", pcap, "-T", "json", "-x"] + list(options)
    res = subprocess.run(argv, capture_output=True, timeout=60, env=tshark_env(case))
    err = [line for line in res.stderr.decode("utf-8", "replace").splitlines()
           if line.strip() and "Running as user" not in line]
    case.assertEqual((res.returncode, err), (0, []), " ".join(argv))
    docs = json.loads(res.stdout.decode("utf-8"), object_pairs_hook=pairs_hook)
    return [Packet(first(doc, "layers")) for doc in docs]


def info_column(case, pcap, *options):
    """The Info column of each packet tshark dissects as csvstream: {number: text}."""
    argv = ["tshark", "-X", "lua_script:" + LUA, "-r", pcap, "-T", "fields", "-e",
            "frame.number", "-e", "_ws.col.Info", "-Y", "csvstream"] + list(options)
    res = subprocess.run(argv, capture_output=True, timeout=60, env=tshark_env(case))
    case.assertEqual(res.returncode, 0, res.stderr)
    out = {}
    for line in res.stdout.decode("utf-8", "replace").splitlines():
        number, _, text = line.partition("\t")
        out[int(number)] = text
    return out


# Heuristics before the port tables: a free port may be one that Wireshark gives to another
# protocol, and the test must not depend on which port it got.
HEURISTIC_FIRST = ["-o", "tcp.try_heuristic_first:TRUE", "-o", "udp.try_heuristic_first:TRUE"]


def frame(version, type_, producer_id, seq, sent_us, line, stream, key, fields, payload_len=None,
          trailing=b""):
    """One frame as docs/protocol.md lays it out (an encoder of the test's own)."""
    body = struct.pack(">QQQQB", producer_id, seq, sent_us, line, len(stream)) + stream
    if key is not None:
        body += key
    body += struct.pack(">I", len(fields))
    for value in fields:
        body += struct.pack(">I", len(value)) + value
    body += trailing
    n = len(body) if payload_len is None else payload_len
    return b"CS" + bytes([version, type_]) + struct.pack(">I", n) + body


class Wireshark(harness.IntegrationCase):
    def run_session(self, protocol, rows):
        """Stream rows from a CSV file over `protocol` while dumpcap captures the port. Returns
        (packets of the dissection, producer stats, source path, consumer port, capture)."""
        src = self.path("places.csv")
        write_source(src, rows)
        port = harness.free_port()
        cap = Capture(self, port, protocol)
        consumer = self.consumer(port=port)
        res = self.run_producer(src, consumer.port, protocol, args=["--interval", "0"])
        self.assertExit(res, 0, "producer")
        stopped = consumer.stop()
        self.assertExit(stopped, 0, "consumer")
        pcap = cap.stop()
        packets = dissect(self, pcap, *HEURISTIC_FIRST)
        return packets, res.stats, src, port, pcap

    def check_session(self, protocol, packets, stats, src, port):
        header, records, lines = read_source(src)
        want_stream = os.path.splitext(os.path.basename(src))[0].encode()
        frames = [f for p in packets for f in p.frames]
        for p in packets:
            self.assertEqual((p.malformed, p.lua_errors), ([], []), "packet %d" % p.number)
        for f in frames:
            self.assertEqual(f.experts, [], f.describe())
            self.assertEqual(f.version, 3, f.describe())
            self.assertEqual(f.stream, want_stream, f.describe())
            self.assertEqual(f.stream_text, want_stream.decode(), f.describe())
            self.assertEqual(f.producer_id, stats["producer_id"], f.describe())
            self.assertEqual(f.nfields, len(f.fields), f.describe())
            self.assertEqual(f.lengths, [len(v) for v in f.fields], f.describe())
            # Sent before it was captured, on the same clock: a wrong decoding of sent_us (units,
            # byte order) lands years away.
            self.assertLessEqual(f.sent, f.packet.time + 0.001, f.describe())
            self.assertGreater(f.sent, f.packet.time - 10, f.describe())
            if f.type in (4, 5):
                self.assertEqual((f.direction, f.packet.srcport), ("consumer → producer", port),
                                 f.describe())
            else:
                self.assertEqual((f.direction, f.packet.dstport), ("producer → consumer", port),
                                 f.describe())
            if f.type in (1, 3):
                self.assertEqual(len(f.key or b""), 16, "v3 HELLO/END carry the session key: " +
                                 f.describe())
            else:
                self.assertIsNone(f.key, f.describe())
        hellos = [f for f in frames if f.type == 1]
        recs = [f for f in frames if f.type == 2]
        ends = [f for f in frames if f.type == 3]
        self.assertTrue(hellos, "no HELLO dissected")
        for h in hellos:
            self.assertEqual((h.seq, h.line), (0, 0), h.describe())
            self.assertEqual(h.fields, [c.encode() for c in header], h.describe())
        self.assertEqual(len({h.key for h in hellos + ends}), 1,
                         "HELLO and END of one run carry one session key")
        self.assertEqual([r.seq for r in recs], list(range(1, len(records) + 1)))
        self.assertEqual([r.line for r in recs], lines)
        self.assertRowsEqual([[v.encode() for v in row] for row in records],
                             [r.fields for r in recs], "dissected record values")
        self.assertTrue(ends, "no END dissected")
        for e in ends:
            self.assertEqual((e.seq, e.nfields), (len(records), 0), e.describe())
        self.assertEqual(stats["sent"], len(records), stats)
        return frames

    def test_tcp_session_frames_fields_and_acks(self):
        packets, stats, src, port, pcap = self.run_session("tcp", ROWS[:3] + [
            ["3", BIG_VALUE, "big"]] + ROWS[3:])
        frames = self.check_session("tcp", packets, stats, src, port)
        self.assertEqual(len([f for f in frames if f.type == 1]), 1, "one HELLO over TCP")
        self.assertEqual(len([f for f in frames if f.type == 3]), 1, "one END over TCP")
        acks = [f for f in frames if f.type == 4]
        self.assertTrue(acks, "no ACK dissected")
        seqs = [a.seq for a in acks]
        self.assertEqual(seqs, sorted(seqs), "ACKs are cumulative")
        self.assertEqual(seqs[-1], len(ROWS), "the last ACK covers every record")
        for a in acks:
            self.assertEqual(a.nfields, 0, a.describe())
        # Both TCP paths of the dissector were taken: a frame reassembled from several segments
        # (the big record) and a segment holding several frames (the unpaced producer batches).
        big = [f for f in frames if f.type == 2 and BIG_VALUE.encode() in f.fields]
        self.assertEqual(len(big), 1)
        self.assertTrue(big[0].packet.reassembled, "the big record was not reassembled")
        self.assertTrue(any(len(p.frames) > 1 for p in packets), "no segment with two frames")
        info = info_column(self, pcap, *HEURISTIC_FIRST)
        self.assertTrue(info[frames[0].packet.number].startswith("HELLO stream=places 3 columns"),
                        info)
        rec1 = [f for f in frames if f.type == 2][0].packet.number
        self.assertIn("RECORD stream=places #1 (3 fields)", info[rec1])

    def test_udp_session_frames_and_fields(self):
        packets, stats, src, port, _ = self.run_session("udp", ROWS)
        frames = self.check_session("udp", packets, stats, src, port)
        # Every datagram of records holds the stream's HELLO once, then the records (several
        # when they were due together: docs/protocol.md, Over UDP).
        for p in packets:
            kinds = [f.type for f in p.frames]
            if 2 in kinds:
                self.assertEqual(kinds, [1] + [2] * (len(kinds) - 1), "packet %d" % p.number)
        self.assertEqual(len([f for f in frames if f.type == 3]), 3, "END is sent three times")

    def test_found_by_port_preference_and_decode_as(self):
        src = self.path("few.csv")
        write_source(src, ROWS[:3])
        port = harness.free_port()
        cap = Capture(self, port, "few")
        consumer = self.consumer(port=port)
        self.assertExit(self.run_producer(src, consumer.port, "udp", args=["--interval", "0"]), 0)
        consumer.stop()
        pcap = cap.stop()
        off = ["-o", "csvstream.heuristic:FALSE"]

        def kinds(packets):
            return sorted(f.type for p in packets for f in p.frames)
        self.assertEqual(kinds(dissect(self, pcap, *off)), [],
                         "heuristic off, other port: nothing is csvstream")
        by_pref = kinds(dissect(self, pcap, *(off + ["-o", "csvstream.udp_port:%d" % port])))
        decode_as = kinds(dissect(self, pcap, *(off + ["-d", "udp.port==%d,csvstream" % port])))
        heuristic = kinds(dissect(self, pcap, *HEURISTIC_FIRST))
        # The 2 records (in one datagram or two, each behind a HELLO), END three times.
        self.assertEqual(by_pref, decode_as)
        self.assertEqual(by_pref, heuristic)
        self.assertEqual(by_pref.count(2), 2, by_pref)
        self.assertEqual(by_pref.count(3), 3, by_pref)
        self.assertGreaterEqual(by_pref.count(1), 1, by_pref)

    def test_crafted_udp_many_records_old_versions_and_malformed(self):
        """Datagrams the producer never sends: the dissector must read them as the spec says."""
        port = harness.free_port()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sink.close)
        sink.bind(("127.0.0.1", port))
        cap = Capture(self, port, "crafted")
        pid, key, now = 0x0123456789ABCDEF, bytes(range(16)), int(time.time() * 1e6)
        s = b"crafted stream"
        hello3 = frame(3, 1, pid, 0, now, 0, s, key, [b"a", b"b"])

        def rec(seq, vals, version=3):
            return frame(version, 2, pid, seq, now, seq + 1, s, None, vals)
        good = [
            # HELLO then many RECORDs in one datagram.
            hello3 + rec(1, [b"1", b"x,y"]) + rec(2, [b"2", b""]) + rec(3, [b"3", b"a\nb"]) +
            rec(4, [b"4", b"\"q\""]),
            # Versions 1 and 2: no session key.
            frame(1, 1, pid, 0, now, 0, b"v1", None, [b"only"]) + rec(1, [b"one"], version=1),
            frame(2, 1, pid, 0, now, 0, b"v2", None, [b"c"]),
            frame(2, 5, pid, 0, now, 0, b"v2", None, [b"stream table full"]),
            frame(3, 3, pid, 4, now, 0, s, key, []),
        ]
        bad = [
            (b"XY" + hello3[2:], "bad magic"),
            (hello3[:2] + b"\x09" + hello3[3:], "unknown version 9"),
            (hello3[:3] + b"\x07" + hello3[4:], "unknown type 7"),
            (frame(1, 4, pid, 1, now, 0, s, None, []), "unknown type 4 for version 1"),
            (hello3 + b"CS\x03\x02" + struct.pack(">I", 2 << 20) + b"\0" * 40, "over the limit"),
            (frame(3, 2, pid, 1, now, 2, s, None, [b"abc"])[:-1], "ends 1 byte before"),
            (frame(3, 2, pid, 1, now, 2, s, None, [b"abc"], trailing=b"zz"),
             "2 bytes after the last field"),
            (frame(3, 2, pid, 1, now, 2, s, None, []), "RECORD without a field"),
            (frame(3, 2, pid, 1, now, 2, s, None, [b"abcdef"], payload_len=37 + len(s) + 4 + 2),
             "runs past the end"),
            (frame(3, 2, pid, 1, now, 2, b"", None, [b"a"]), "stream name length 0"),
            (b"CS\x03", "datagram ends inside a frame header"),
        ]
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(out.close)
        for d in good + [d for d, _ in bad]:
            out.sendto(d, ("127.0.0.1", port))
        pcap = cap.stop()
        packets = [p for p in dissect(self, pcap, *HEURISTIC_FIRST) if p.dstport == port]
        self.assertEqual(len(packets), len(good) + len(bad), "datagrams captured")
        for i, p in enumerate(packets):
            self.assertEqual(p.lua_errors, [], "packet %d" % p.number)
            self.assertEqual(bool(p.malformed), i >= len(good), "packet %d" % p.number)
        first_dgram = packets[0].frames
        self.assertEqual([f.type for f in first_dgram], [1, 2, 2, 2, 2])
        self.assertEqual([f.fields for f in first_dgram],
                         [[b"a", b"b"], [b"1", b"x,y"], [b"2", b""], [b"3", b"a\nb"],
                          [b"4", b"\"q\""]])
        self.assertEqual([f.seq for f in first_dgram], [0, 1, 2, 3, 4])
        self.assertEqual([f.line for f in first_dgram], [0, 2, 3, 4, 5])
        self.assertEqual(first_dgram[0].key, key)
        self.assertEqual({f.producer_id for f in first_dgram}, {"%016x" % pid})
        self.assertAlmostEqual(first_dgram[0].sent, now / 1e6, places=5)
        v1 = packets[1].frames
        self.assertEqual([(f.version, f.type, f.key, f.fields) for f in v1],
                         [(1, 1, None, [b"only"]), (1, 2, None, [b"one"])])
        self.assertEqual([(f.version, f.key) for f in packets[2].frames], [(2, None)])
        refuse = packets[3].frames[0]
        self.assertEqual((refuse.type, refuse.kind, refuse.fields, refuse.direction),
                         (5, "reason", [b"stream table full"], "consumer → producer"))
        self.assertEqual([(f.type, f.seq, f.key) for f in packets[4].frames], [(3, 4, key)])
        for p in packets[:len(good)]:
            for f in p.frames:
                self.assertEqual(f.experts, [], f.describe())
        for p, (_, why) in zip(packets[len(good):], bad):
            experts = [m for f in p.frames for m in f.experts]
            experts += list(items(p.layers, "_ws.expert.message"))
            self.assertTrue(any(why in m for m in experts),
                            "packet %d: expected expert info with %r, got %r" % (
                                p.number, why, experts))
        # The frame in front of the bad one is still dissected (as the consumer still uses it).
        over = packets[len(good) + 4].frames
        self.assertEqual(over[0].type, 1)
        self.assertEqual(over[0].experts, [])

    def test_crafted_tcp_frames_cut_across_segments(self):
        """Frames split anywhere over several segments, and several frames in one segment."""
        port = harness.free_port()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        cap = Capture(self, port, "segments")
        pid, key, now = 42, b"k" * 16, int(time.time() * 1e6)
        s = b"cut"
        frames = [frame(3, 1, pid, 0, now, 0, s, key, [b"h1", b"h2"])]
        for i in range(1, 6):
            frames.append(frame(3, 2, pid, i, now, i + 1, s, None, [b"%d" % i, b"v,\"%d\"\n" % i]))
        frames.append(frame(3, 3, pid, 5, now, 0, s, key, []))
        data = b"".join(frames)
        # Cut inside the first header, inside the first payload, in the middle of the third
        # frame (so one segment ends frame 2 and starts frame 3), after the fourth, and then
        # the last three whole in one segment.
        ends = [sum(len(fr) for fr in frames[:i + 1]) for i in range(len(frames))]
        cuts = [3, 20, ends[1] + 30, ends[3], len(data)]
        client = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(client.close)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server, _ = listener.accept()
        self.addCleanup(server.close)
        at = 0
        for cut in cuts:
            client.sendall(data[at:cut])
            # Each piece in its own segment: wait until the other end has read all of it.
            need = cut - at
            while need > 0:
                chunk = server.recv(need)
                self.assertTrue(chunk, "the listener's end closed early")
                need -= len(chunk)
            at = cut
        client.close()
        pcap = cap.stop()
        packets = dissect(self, pcap, *HEURISTIC_FIRST)
        payload_packets = [p for p in packets if p.dstport == port and
                           int(first(p.layers, "tcp.len", "0")) > 0]
        self.assertEqual(len(payload_packets), len(cuts), "one segment per piece")
        got = [f for p in packets for f in p.frames]
        self.assertEqual([(f.type, f.seq) for f in got],
                         [(1, 0)] + [(2, i) for i in range(1, 6)] + [(3, 5)])
        for f in got:
            self.assertEqual(f.experts, [], f.describe())
        for p in packets:
            self.assertEqual((p.malformed, p.lua_errors), ([], []), "packet %d" % p.number)
        self.assertEqual([f.fields for f in got if f.type == 2],
                         [[b"%d" % i, b"v,\"%d\"\n" % i] for i in range(1, 6)])
        self.assertTrue(any(f.packet.reassembled for f in got), "nothing was reassembled")
        self.assertTrue(any(len(p.frames) > 1 for p in packets), "no segment with two frames")
        # With TCP's reassembly turned off, the frames of the segment that begins at a frame
        # boundary are still read; the pieces of the others are noted, not called malformed.
        packets = dissect(self, pcap, "-o", "tcp.desegment_tcp_streams:FALSE", *HEURISTIC_FIRST)
        for p in packets:
            self.assertEqual((p.malformed, p.lua_errors), ([], []), "packet %d" % p.number)
        got = [f for p in packets for f in p.frames]
        self.assertEqual([(f.type, f.seq) for f in got if f.type], [(2, 4), (2, 5), (3, 5)])
        notes = [f for f in got if not f.type]
        self.assertEqual(len(notes), 4, [f.experts for f in notes])
        for f in notes:
            self.assertEqual(len(f.experts), 1)
            self.assertIn("TCP reassembly is off", f.experts[0])


def skip_reason():
    for tool in ("tshark", "dumpcap"):
        if not shutil.which(tool):
            return "%s is not installed (apt-get install tshark; scripts/deps installs it " \
                   "where it may)" % tool
    # Listing the link types opens the interface: it fails quickly without the right to
    # capture (root, or dumpcap's capabilities and the wireshark group).
    res = subprocess.run(["dumpcap", "-i", "lo", "-L"], capture_output=True, timeout=30)
    if res.returncode != 0:
        return "dumpcap cannot capture on lo here: %s" % res.stderr.decode(
            "utf-8", "replace").strip()
    return None


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        print("skipped: %s" % reason)
        sys.exit(SKIP_CODE)
    harness.main()
