"""test_tcp_window.py -- the TCP sender's window, which is also its send buffer: while acks come
back during a long unpaced stream the window's buffer is compacted again and again, and a
connection reset after many megabytes makes the producer resend exactly the frames the consumer
did not acknowledge, each whole and with its fields intact. The producer runs against a Python
TCP listener that decodes the frames itself."""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from wireframes import END, HELLO, RECORD, ack_frame, decode_frames

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
PRODUCER = os.path.join(BIN, "producer")

class ResettingSink:
    """Two connections. The first is read slowly (the producer's writes block, so it reads the
    acks that come back) and acknowledged as it goes until `ack_upto` records arrived; then it
    reads on without acknowledging until `reset_at` records arrived and resets the connection.
    The second is read to the end and acknowledged. Records are kept per connection."""

    def __init__(self, ack_upto, reset_at):
        self.ack_upto = ack_upto
        self.reset_at = reset_at
        self.conns = [[], []]  # per connection: (type, seq, fields)
        self.last_ack = 0
        self.error = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _serve(self, conn, index):
        buf = b""
        got = self.conns[index]
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return
            frames, buf = decode_frames(buf + data)
            last = None
            for m in frames:
                got.append((m["type"], m["seq"], m["fields"]))
                if m["type"] == RECORD:
                    last = (m["producer_id"], m["stream"], m["seq"])
            records = sum(1 for m in got if m[0] == RECORD)
            if index == 0 and records >= self.reset_at:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if last is not None and (index == 1 or last[2] <= self.ack_upto):
                conn.sendall(ack_frame(*last))
                if index == 0:
                    self.last_ack = last[2]
            if index == 0:
                time.sleep(0.001)  # slower than the producer: its writes wait, acks are read

    def _run(self):
        try:
            for index in (0, 1):
                conn, _ = self.sock.accept()
                conn.settimeout(60)
                try:
                    self._serve(conn, index)
                finally:
                    conn.close()
        except Exception as e:  # reported by join()
            self.error = e
        finally:
            self.sock.close()

    def join(self, timeout=120):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("sink still running after %s s" % timeout)
        if self.error is not None:
            raise AssertionError("sink failed: %r" % self.error)
        return self.conns


class TcpWindowTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="csvstream-window-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_reset_after_megabytes_resends_exactly_what_was_not_acknowledged(self):
        n = 300000  # about 27 MB of frames
        src = os.path.join(self.dir, "long.csv")
        with open(src, "w", encoding="utf-8", newline="") as f:
            f.write("id,value,note\n")
            f.write("".join('%d,value number %d,"a, b ""%d"""\n' % (i, i, i % 97)
                            for i in range(1, n + 1)))
        sink = ResettingSink(ack_upto=200000, reset_at=230000)
        res = subprocess.run([PRODUCER, "--port", str(sink.port), "--interval", "0",
                              "--retry", "20", src],
                             capture_output=True, text=True, timeout=120)
        first, second = sink.join()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r"reconnected to .*; resending [0-9,]+ records")
        for conn in (first, second):
            self.assertEqual(conn[0][0], HELLO, "each connection opens with the HELLO")
            self.assertEqual(conn[0][2], ["id", "value", "note"])
        self.assertEqual(second[-1][0], END, res.stderr)
        self.assertEqual(second[-1][1], n)
        seqs1 = [m[1] for m in first if m[0] == RECORD]
        seqs2 = [m[1] for m in second if m[0] == RECORD]
        self.assertEqual(seqs1, list(range(1, len(seqs1) + 1)), "first connection in order")
        self.assertGreaterEqual(len(seqs1), 230000)
        # The second connection starts after an ack the producer had read (it reads them
        # while its writes wait), at the latest after the last one sent, and goes on to the end.
        self.assertGreater(seqs2[0], 1, "the acknowledged records are not sent again")
        self.assertLessEqual(seqs2[0], sink.last_ack + 1)
        self.assertEqual(seqs2, list(range(seqs2[0], n + 1)), "resent in order, none missing")
        for conn in (first, second):
            for mtype, seq, fields in conn:
                if mtype == RECORD:
                    self.assertEqual(fields, [str(seq), "value number %d" % seq,
                                              'a, b "%d"' % (seq % 97)], "record #%d" % seq)


if __name__ == "__main__":
    unittest.main(verbosity=2)
