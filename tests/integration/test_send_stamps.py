"""test_send_stamps.py -- the send time in every RECORD frame tells the truth when the producer
reads the clock once for a run of records (unpaced): a record handed over after the sender
waited for acks, or after the run waited for live input, carries a time from after the wait.
The producer runs against a Python TCP listener that decodes the frames itself and holds its
acks back on purpose."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from wireframes import HELLO, RECORD, ack_frame, decode_frames

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CSVSTREAM_SOURCE", os.path.normpath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("CSVSTREAM_BIN", os.path.join(SOURCE, "build", "bin"))
PRODUCER = os.path.join(BIN, "producer")

class HoldingSink:
    """Accepts one connection and reads it to the end, noting each RECORD's seq, sent_us and
    arrival (wall clock, µs). It answers the HELLO at once and acknowledges what it read, except
    that it holds every ack back until `hold_until` records arrived, then sleeps `pause` seconds
    before acknowledging them: a producer with --window hold_until must wait for that ack."""

    def __init__(self, hold_until=None, pause=0.0):
        self.hold_until = hold_until
        self.pause = pause
        self.records = []  # (seq, sent_us, arrival_us)
        self.released_us = None  # when the held ack was sent
        self.error = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(30)
            buf = b""
            holding = self.hold_until is not None
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                now_us = time.time() * 1e6
                frames, buf = decode_frames(buf + data)
                last = None
                for m in frames:
                    if m["type"] == HELLO:
                        # the resume point: from the start
                        conn.sendall(ack_frame(m["producer_id"], m["stream"], 0))
                    elif m["type"] == RECORD:
                        self.records.append((m["seq"], m["sent_us"], now_us))
                        last = (m["producer_id"], m["stream"], m["seq"])
                if last is None:
                    continue
                if holding and last[2] >= self.hold_until:
                    time.sleep(self.pause)
                    self.released_us = time.time() * 1e6
                    holding = False
                if not holding:
                    conn.sendall(ack_frame(*last))
            conn.close()
        except Exception as e:  # reported by join()
            self.error = e
        finally:
            self.sock.close()

    def join(self, timeout=60):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("sink still running after %s s" % timeout)
        if self.error is not None:
            raise AssertionError("sink failed: %r" % self.error)
        return self.records


class SendStampsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="csvstream-stamps-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, rows):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("id,value\n" + "".join("%d,value number %d\n" % (i, i) for i in range(rows)))
        return path

    def check_order(self, records, what):
        """Stamps never go back and are never later than the record's arrival (1 ms slack for
        the two programs' readings of one clock)."""
        seqs = [r[0] for r in records]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), what)
        for (seq, sent, arrived), (_, before, _) in zip(records[1:], records):
            self.assertGreaterEqual(sent, before, "%s: #%d is stamped before #%d" %
                                    (what, seq, seq - 1))
        for seq, sent, arrived in records:
            self.assertLessEqual(sent, arrived + 1000, "%s: #%d is stamped after it arrived" %
                                 (what, seq))

    def test_records_after_a_wait_for_acks_are_stamped_after_it(self):
        # --window 1000: record 1,001 waits in the sender for the ack the sink holds back for
        # 0.4 s. It is stamped when it is handed over, before that wait (as a record that waits
        # for room in the socket is); every record after it is read and stamped after the wait,
        # so a clock reading from before it, shared by the next records, would be too early.
        window = 1000
        src = self.write("held.csv", 5000)
        sink = HoldingSink(hold_until=window, pause=0.4)
        res = subprocess.run([PRODUCER, "--port", str(sink.port), "--interval", "0", "--quiet",
                              "--window", str(window), src],
                             capture_output=True, text=True, timeout=60)
        records = sink.join()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(len(records), 5000, res.stderr)
        self.assertIsNotNone(sink.released_us)
        self.check_order(records, "held acks")
        for seq, sent, _ in records:
            if seq <= window:
                self.assertLess(sent, sink.released_us, "#%d was sent before the wait" % seq)
            elif seq > window + 1:
                self.assertGreaterEqual(sent, sink.released_us,
                                        "#%d was handed over after the wait for acks, but is "
                                        "stamped %.1f ms before it ended" %
                                        (seq, (sink.released_us - sent) / 1000))

    def test_records_after_a_wait_for_input_are_stamped_after_it(self):
        # Standard input is a pipe: 10 records, a pause, 10 more. The second ten are read after
        # the producer waited for input, so their stamps come after the pause began.
        sink = HoldingSink()
        prod = subprocess.Popen([PRODUCER, "--port", str(sink.port), "--interval", "0",
                                 "--quiet", "--stream", "piped", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        prod.stdin.write(b"id,value\n" + b"".join(b"%d,first\n" % i for i in range(10)))
        prod.stdin.flush()
        deadline = time.monotonic() + 30
        while len(sink.records) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        second_us = time.time() * 1e6
        prod.stdin.write(b"".join(b"%d,second\n" % i for i in range(10)))
        _, err = prod.communicate(timeout=60)
        records = sink.join()
        self.assertEqual(prod.returncode, 0, err)
        self.assertEqual(len(records), 20, err)
        self.check_order(records, "piped input")
        for seq, sent, _ in records[:10]:
            self.assertLess(sent, second_us, "#%d" % seq)
        for seq, sent, _ in records[10:]:
            self.assertGreaterEqual(sent, second_us,
                                    "#%d was read after the pause but is stamped %.1f ms before "
                                    "its line was written" % (seq, (second_us - sent) / 1000))


if __name__ == "__main__":
    unittest.main(verbosity=2)
