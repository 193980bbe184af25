"""test_udp_packing.py -- over UDP, records due together share a datagram (docs/protocol.md, "Over
UDP"): each datagram opens with the stream's HELLO, then whole RECORDs, at most 1,472 bytes (a
record too large for that goes alone), and a slow pace still sends each record at once in its
own datagram. The consumer reads packed datagrams (recvmmsg) with exact accounting."""

import os
import socket
import struct
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IntegrationCase, read_csv, write_csv  # noqa: E402

HELLO, RECORD, END = 1, 2, 3
PACK_MAX = 1472


def frames(data):
    """(type, seq, fields) of every frame of one datagram; raises on a frame cut short."""
    out = []
    off = 0
    while off < len(data):
        if len(data) - off < 8 or data[off:off + 3] != b"CS\x03":
            raise ValueError("bad frame at offset %d" % off)
        mtype = data[off + 3]
        plen = struct.unpack(">I", data[off + 4:off + 8])[0]
        p = data[off + 8:off + 8 + plen]
        if len(p) != plen:
            raise ValueError("datagram ends inside a frame")
        seq = struct.unpack(">Q", p[8:16])[0]
        pos = 33 + p[32]
        if mtype in (HELLO, END):
            pos += 16  # version 3: the session key
        nfields = struct.unpack(">I", p[pos:pos + 4])[0]
        pos += 4
        fields = []
        for _ in range(nfields):
            flen = struct.unpack(">I", p[pos:pos + 4])[0]
            fields.append(p[pos + 4:pos + 4 + flen].decode("utf-8"))
            pos += 4 + flen
        out.append((mtype, seq, fields))
        off += 8 + plen
    return out


class Sink:
    """A UDP socket that keeps every datagram until three ENDs came or 3 s of silence."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)
        self.port = self.sock.getsockname()[1]
        self.datagrams = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        ends = 0
        try:
            while ends < 3:
                data = self.sock.recv(70000)
                self.datagrams.append(data)
                ends += sum(1 for f in frames(data) if f[0] == END)
        except (socket.timeout, ValueError):
            pass
        finally:
            self.sock.close()

    def join(self):
        self.thread.join(30)
        return [frames(d) for d in self.datagrams], [len(d) for d in self.datagrams]


class UdpPacking(IntegrationCase):
    def rows(self, n, width=20):
        return [["id", "text"]] + [[str(i), "v%d,%s" % (i, "y" * (i % width))] for i in range(n)]

    def test_unpaced_records_share_datagrams_each_opening_with_hello(self):
        src = self.path("s.csv")
        rows = self.rows(2000)
        write_csv(src, rows)
        sink = Sink()
        res = self.run_producer(src, sink.port, "udp", ["--interval", "0"])
        self.assertExit(res, 0)
        dgrams, sizes = sink.join()
        with_records = [d for d in dgrams if any(f[0] == RECORD for f in d)]
        for d, size in zip(dgrams, sizes):
            if any(f[0] == RECORD for f in d):
                self.assertEqual(d[0][0], HELLO, "a datagram opens with its stream's HELLO")
                self.assertEqual([f[0] for f in d[1:]], [RECORD] * (len(d) - 1))
                self.assertLessEqual(size, PACK_MAX)
        recs = [f for d in with_records for f in d if f[0] == RECORD]
        self.assertEqual([f[1] for f in recs], list(range(1, 2001)))
        self.assertEqual([f[2] for f in recs], rows[1:])
        # About 40 bytes a record: a 1,472-byte datagram holds about 30 of them.
        self.assertLess(len(with_records), 2000 / 10, "records were not packed: %d datagrams"
                        % len(with_records))

    def test_a_record_too_big_to_pack_goes_alone(self):
        src = self.path("s.csv")
        rows = [["id", "text"], ["1", "a"], ["2", "x" * 3000], ["3", "c"]]
        write_csv(src, rows)
        sink = Sink()
        self.assertExit(self.run_producer(src, sink.port, "udp", ["--interval", "0"]), 0)
        dgrams, sizes = sink.join()
        seqs = [[f[1] for f in d if f[0] == RECORD] for d in dgrams]
        seqs = [s for s in seqs if s]
        self.assertIn([2], seqs, "the 3,000-byte record shares no datagram: %r" % seqs)
        self.assertEqual(sorted(s for group in seqs for s in group), [1, 2, 3])

    def test_a_slow_pace_sends_one_record_per_datagram_at_once(self):
        src = self.path("s.csv")
        write_csv(src, self.rows(10))
        sink = Sink()
        self.assertExit(self.run_producer(src, sink.port, "udp", ["--rate", "50"]), 0)
        dgrams, _ = sink.join()
        per = [sum(1 for f in d if f[0] == RECORD) for d in dgrams]
        self.assertEqual([n for n in per if n], [1] * 10)

    def test_consumer_stores_packed_records_with_exact_accounting(self):
        src = self.path("s.csv")
        rows = self.rows(30000, width=40)
        write_csv(src, rows)
        c = self.consumer("--udp", "--db", self.path("x.db"), protocols=("udp",))
        p = self.run_producer(src, c.port, "udp", ["--interval", "0"])
        self.assertExit(p, 0)
        res = c.stop()
        self.assertExit(res, 0)
        udp = res.stats["udp"]
        sent = p.stats["sent"]
        self.assertEqual(sent, 30000)
        self.assertEqual(udp["received"] + udp["lost"], sent, res.describe())
        self.assertLess(udp["datagrams"], sent / 5, "records came one per datagram")
        got = read_csv(c.out_path())
        self.assertEqual(got[0], rows[0])
        by_id = {int(r[0]): r for r in got[1:]}
        self.assertEqual(len(by_id), udp["received"], "a record stored twice or not at all")
        for i, r in by_id.items():
            self.assertEqual(r, rows[1 + i])


if __name__ == "__main__":
    unittest.main(verbosity=2)
