"""wireframes.py -- the wire protocol's frames (docs/protocol.md) for the tests that play a peer:
decoding what a producer sends, and making the frames a consumer or a hostile peer sends."""

import struct
import time

HELLO, RECORD, END, ACK, REFUSE = 1, 2, 3, 4, 5


def frame(ftype, payload, version=3):
    """A frame: the 8-byte header, then payload."""
    return b"CS" + bytes([version, ftype]) + struct.pack(">I", len(payload)) + payload


def encode(ftype, producer_id, stream, fields=(), seq=0, sent_us=0, line=0, key=None):
    """A HELLO, RECORD or END frame (stream and fields are bytes or str). With key (16 bytes), a
    version 3 frame, whose HELLO and END carry it; without, version 2, which has none. sent_us
    is any 64-bit number, as a peer may send."""
    name = stream.encode("utf-8") if isinstance(stream, str) else stream
    payload = struct.pack(">QQQQB", producer_id, seq, sent_us, line, len(name)) + name
    if key is not None and ftype in (HELLO, END):
        payload += key
    payload += struct.pack(">I", len(fields))
    for f in fields:
        f = f.encode("utf-8") if isinstance(f, str) else f
        payload += struct.pack(">I", len(f)) + f
    return frame(ftype, payload, 3 if key is not None else 2)


def ack_frame(producer_id, stream, seq):
    """A version 2 ACK frame: every record up to seq is durable."""
    return encode(ACK, producer_id, stream, seq=seq)


def decode_frames(buf):
    """Decode the whole version 3 frames at the start of buf. Returns (messages, rest): each
    message a dict, rest the bytes of an incomplete frame. Anything that is not a frame, or a
    payload its fields do not fill exactly, raises ValueError."""
    msgs = []
    off = 0
    while len(buf) - off >= 8:
        if buf[off:off + 3] != b"CS\x03":
            raise ValueError("bad frame header %r at offset %d" % (buf[off:off + 8], off))
        mtype = buf[off + 3]
        plen = struct.unpack(">I", buf[off + 4:off + 8])[0]
        if len(buf) - off - 8 < plen:
            break
        p = buf[off + 8:off + 8 + plen]
        pid, seq, sent_us, line = struct.unpack(">QQQQ", p[:32])
        slen = p[32]
        stream = p[33:33 + slen].decode("utf-8")
        pos = 33 + slen
        key = None
        if mtype in (HELLO, END):  # they carry the session key
            key = p[pos:pos + 16]
            pos += 16
        nfields = struct.unpack(">I", p[pos:pos + 4])[0]
        pos += 4
        fields = []
        for _ in range(nfields):
            flen = struct.unpack(">I", p[pos:pos + 4])[0]
            pos += 4
            fields.append(p[pos:pos + flen].decode("utf-8"))
            pos += flen
        if pos != plen:
            raise ValueError("payload of %d bytes, fields end at %d" % (plen, pos))
        msgs.append({"type": mtype, "producer_id": pid, "seq": seq, "sent_us": sent_us,
                     "line": line, "stream": stream, "key": key, "fields": fields,
                     "t": time.monotonic(), "wall": time.time()})
        off += 8 + plen
    return msgs, buf[off:]
