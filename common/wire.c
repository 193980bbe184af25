/* wire.c -- the wire protocol codec, version 3 reading 1 and 2 too (docs/protocol.md): encoder,
 * stream decoder for TCP and datagram decoder for UDP. The only code that knows the byte layout. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Fixed part of every payload: producer_id, seq, sent_us, line (8 each), stream_len (1) and
 * nfields (4); the stream name sits between the last two. */
#define WIRE_FIXED_PAYLOAD (8 * 4 + 1 + 4)
/* Reassembly memory a decoder keeps between frames; more is released after the frame. */
#define WIRE_KEEP_PENDING (64 * 1024)

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v) {
  put_u32(p, (uint32_t)(v >> 32));
  put_u32(p + 4, (uint32_t)v);
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t get_u64(const unsigned char *p) {
  return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* 1 if frames of this type and version carry the session key (after the stream name). */
static int wire_has_key(int type, int version) {
  return version >= 3 && (type == WIRE_HELLO || type == WIRE_END);
}

/* Payload size of m, or SIZE_MAX when a field is longer than WIRE_MAX_PAYLOAD or the total
 * passes twice that. With each length at most WIRE_MAX_PAYLOAD, 2^32 of them cannot overflow
 * the sum, so the total is looked at once, at the end. */
static size_t payload_size(const wire_msg *m, int version) {
  size_t n = WIRE_FIXED_PAYLOAD + m->stream.len + (size_t)4 * m->nfields;
  const cs_field *fields = m->fields; /* NULL when there are none */
  uint32_t nfields = m->nfields;
  if (wire_has_key(m->type, version)) {
    n += WIRE_KEY_LEN;
  }
  for (uint32_t i = 0; i < nfields; i++) {
    if (fields[i].len > WIRE_MAX_PAYLOAD) {
      return SIZE_MAX;
    }
    n += fields[i].len;
  }
  return n > (size_t)WIRE_MAX_PAYLOAD * 2 ? SIZE_MAX : n;
}

size_t wire_encoded_size(const wire_msg *m) {
  size_t p = payload_size(m, WIRE_VERSION);
  return p == SIZE_MAX ? SIZE_MAX : WIRE_HEADER_LEN + p;
}

/* Copy n bytes without a library call for the short runs most fields are: two loads and two
 * stores that may overlap in the middle, never touching a byte outside either run. */
static inline void copy_field(unsigned char *dst, const char *src, size_t n) {
  if (n > 32) {
    memcpy(dst, src, n);
  } else if (n >= 16) {
    unsigned char a[16], b[16];
    memcpy(a, src, 16);
    memcpy(b, src + n - 16, 16);
    memcpy(dst, a, 16);
    memcpy(dst + n - 16, b, 16);
  } else if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, src, 8);
    memcpy(&b, src + n - 8, 8);
    memcpy(dst, &a, 8);
    memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, src, 4);
    memcpy(&b, src + n - 4, 4);
    memcpy(dst, &a, 4);
    memcpy(dst + n - 4, &b, 4);
  } else if (n > 0) {
    dst[0] = (unsigned char)src[0];
    dst[n / 2] = (unsigned char)src[n / 2];
    dst[n - 1] = (unsigned char)src[n - 1];
  }
}

/* Bytes reserved ahead of a frame beyond its fixed part, so that a record of short fields is
 * written without growing the buffer part way. */
#define WIRE_ENCODE_SLACK 512

/* Append the frame: header, fixed payload, stream name, then each field as length + bytes. */
int wire_encode(const wire_msg *m, cs_buf *out) {
  return wire_encode_as(m, WIRE_VERSION, out);
}

/* wire_encode in an older layout; see wire.h. One pass: the fixed part, then each field with
 * its length, growing the buffer only when a field does not fit what is reserved; the payload
 * length is written last. The frame counts as appended only at the end, so an error leaves
 * out->len as it was. */
int wire_encode_as(const wire_msg *m, int version, cs_buf *out) {
  size_t head, frame_max;
  unsigned char *p, *end;
  if (version < WIRE_VERSION_MIN || version > WIRE_VERSION) {
    return CS_EVERSION;
  }
  if (m->stream.len == 0 || m->stream.len > WIRE_MAX_STREAM_NAME) {
    return CS_ETOOBIG;
  }
  if (!wire_type_known(m->type, version)) {
    return CS_ETYPE;
  }
  if ((m->type == WIRE_RECORD || m->type == WIRE_REFUSE) && m->nfields == 0) {
    return CS_EMALFORMED;
  }
  head = WIRE_HEADER_LEN + WIRE_FIXED_PAYLOAD + m->stream.len +
         (wire_has_key(m->type, version) ? WIRE_KEY_LEN : 0);
  frame_max = WIRE_HEADER_LEN + WIRE_MAX_PAYLOAD;
  if (out->cap - out->len < head + WIRE_ENCODE_SLACK &&
      cs_buf_reserve(out, head + WIRE_ENCODE_SLACK) != 0) {
    return CS_ENOMEM;
  }
  unsigned char *frame = (unsigned char *)out->data + out->len;
  p = frame;
  p[0] = WIRE_MAGIC0;
  p[1] = WIRE_MAGIC1;
  p[2] = (unsigned char)version;
  p[3] = (unsigned char)m->type;
  p += WIRE_HEADER_LEN; /* the payload length is written when it is known */
  put_u64(p, m->producer_id);
  put_u64(p + 8, m->seq);
  put_u64(p + 16, m->sent_us);
  put_u64(p + 24, m->line);
  p[32] = (unsigned char)m->stream.len;
  p += 33;
  copy_field(p, m->stream.data, m->stream.len);
  p += m->stream.len;
  if (wire_has_key(m->type, version)) {
    if (m->key != NULL) {
      memcpy(p, m->key, WIRE_KEY_LEN);
    } else {
      memset(p, 0, WIRE_KEY_LEN);
    }
    p += WIRE_KEY_LEN;
  }
  put_u32(p, m->nfields);
  p += 4;
  /* end: as far as this frame may write, the buffer's capacity or the protocol's limit. The
   * fields are walked through locals: the byte stores may alias anything *m points to. */
  end = frame + (out->cap - out->len < frame_max ? out->cap - out->len : frame_max);
  const cs_field *fields = m->fields; /* NULL when there are none */
  uint32_t nfields = m->nfields;
  for (uint32_t i = 0; i < nfields; i++) {
    size_t len = fields[i].len;
    size_t room = (size_t)(end - p);
    if (room < 4 || len > room - 4) {
      size_t used = (size_t)(p - frame);
      if (len > frame_max || used + 4 + len > frame_max) {
        return CS_ETOOBIG;
      }
      /* Room for this field and a little more; doubling keeps the growth amortised. */
      if (cs_buf_reserve(out, used + 4 + len + WIRE_ENCODE_SLACK) != 0) {
        return CS_ENOMEM;
      }
      frame = (unsigned char *)out->data + out->len;
      p = frame + used;
      end = frame + (out->cap - out->len < frame_max ? out->cap - out->len : frame_max);
    }
    put_u32(p, (uint32_t)len);
    p += 4;
    copy_field(p, fields[i].data, len);
    p += len;
  }
  put_u32(frame + 4, (uint32_t)(p - frame - WIRE_HEADER_LEN));
  out->len += (size_t)(p - frame);
  return 0;
}

/* 1 if type is a message of protocol version `version`. */
int wire_type_known(int type, int version) {
  if (type == WIRE_HELLO || type == WIRE_RECORD || type == WIRE_END) {
    return version >= 1;
  }
  return (type == WIRE_ACK || type == WIRE_REFUSE) && version >= 2;
}

const char *wire_type_name(int type) {
  switch (type) {
  case WIRE_HELLO:
    return "hello";
  case WIRE_RECORD:
    return "record";
  case WIRE_END:
    return "end";
  case WIRE_ACK:
    return "ack";
  case WIRE_REFUSE:
    return "refuse";
  default:
    return "unknown";
  }
}

void wire_decoder_init(wire_decoder *d, uint32_t max_payload) {
  memset(d, 0, sizeof *d);
  cs_buf_init(&d->pending);
  d->max_payload =
      max_payload == 0 || max_payload > WIRE_MAX_PAYLOAD ? WIRE_MAX_PAYLOAD : max_payload;
}

void wire_decoder_free(wire_decoder *d) {
  if (d == NULL) {
    return;
  }
  cs_buf_free(&d->pending);
  free(d->fields);
  d->fields = NULL;
  d->fields_cap = 0;
}

size_t wire_decoder_pending(const wire_decoder *d) {
  return d->pending.len;
}

/* Check as much of a frame header as the n available bytes (n may be under 8) hold: magic,
 * version, type, then the payload length against the limit. Returns 0 or the CS_E* code. */
static int check_header(const wire_decoder *d, const unsigned char *h, size_t n) {
  if ((n > 0 && h[0] != WIRE_MAGIC0) || (n > 1 && h[1] != WIRE_MAGIC1)) {
    return CS_EBADMAGIC;
  }
  if (n > 2 && (h[2] < WIRE_VERSION_MIN || h[2] > WIRE_VERSION)) {
    return CS_EVERSION;
  }
  if (n > 3 && !wire_type_known(h[3], h[2])) {
    return CS_ETYPE;
  }
  if (n >= WIRE_HEADER_LEN && get_u32(h + 4) > d->max_payload) {
    return CS_ETOOBIG;
  }
  return 0;
}

/* Parse one whole frame (header already checked) in place and call cb. The message points
 * into `frame` and into d's scratch field array. */
static int decode_frame(wire_decoder *d, const unsigned char *frame, size_t frame_len,
                        wire_msg_cb cb, void *arg) {
  const unsigned char *p = frame + WIRE_HEADER_LEN;
  size_t left = frame_len - WIRE_HEADER_LEN;
  wire_msg m;

  if (left < WIRE_FIXED_PAYLOAD) {
    return CS_EMALFORMED;
  }
  memset(&m, 0, sizeof m);
  m.type = frame[3];
  m.version = frame[2];
  m.frame_len = (uint32_t)frame_len;
  m.producer_id = get_u64(p);
  m.seq = get_u64(p + 8);
  m.sent_us = get_u64(p + 16);
  if (m.sent_us > (uint64_t)INT64_MAX) {
    return CS_EMALFORMED; /* no clock says so: a signed 64-bit column could not hold it */
  }
  m.line = get_u64(p + 24);
  m.stream.len = p[32];
  p += 33;
  left -= 33;
  if (m.stream.len == 0 || left < m.stream.len + 4) {
    return CS_EMALFORMED;
  }
  m.stream.data = (const char *)p;
  p += m.stream.len;
  left -= m.stream.len;
  if (wire_has_key(m.type, m.version)) {
    if (left < WIRE_KEY_LEN + 4) {
      return CS_EMALFORMED;
    }
    m.key = p;
    p += WIRE_KEY_LEN;
    left -= WIRE_KEY_LEN;
  }
  m.nfields = get_u32(p);
  p += 4;
  left -= 4;
  /* Each field needs at least its 4-byte length: refuse counts the payload cannot hold before
   * sizing the scratch array from them. */
  if (m.nfields > left / 4) {
    return CS_EMALFORMED;
  }
  if (m.nfields > d->fields_cap) {
    /* Double, but at least to what is needed; nfields is at most max_payload / 4 here. */
    uint32_t cap = d->fields_cap < 8 ? 16 : d->fields_cap * 2;
    if (cap < m.nfields) {
      cap = m.nfields;
    }
    cs_field *f = realloc(d->fields, (size_t)cap * sizeof *f);
    if (f == NULL) {
      return CS_ENOMEM;
    }
    d->fields = f;
    d->fields_cap = cap;
  }
  for (uint32_t i = 0; i < m.nfields; i++) {
    if (left < 4) {
      return CS_EMALFORMED;
    }
    uint32_t flen = get_u32(p);
    p += 4;
    left -= 4;
    if (flen > left) {
      return CS_EMALFORMED;
    }
    d->fields[i].data = (const char *)p;
    d->fields[i].len = flen;
    p += flen;
    left -= flen;
  }
  if (left != 0) {
    return CS_EMALFORMED; /* trailing bytes */
  }
  if ((m.type == WIRE_RECORD || m.type == WIRE_REFUSE) && m.nfields == 0) {
    return CS_EMALFORMED; /* a CSV record has at least one (possibly empty) field; a refusal its
                           * reason */
  }
  m.fields = m.nfields > 0 ? d->fields : NULL;
  return cb(&m, arg);
}

/* Remember why the decoder stopped; later feeds return the same value. */
static int fail(wire_decoder *d, int rc) {
  d->failed = rc;
  cs_buf_reset(&d->pending);
  return rc;
}

/* Complete the frame held in d->pending from buf. On return *used says how many bytes of buf
 * were taken. Returns 0 (frame decoded, or more bytes still needed) or a code. */
static int feed_pending(wire_decoder *d, const unsigned char *buf, size_t len, size_t *used,
                        wire_msg_cb cb, void *arg) {
  size_t take = 0;
  int rc = 0;
  *used = 0;
  if (d->pending.len < WIRE_HEADER_LEN) {
    take = WIRE_HEADER_LEN - d->pending.len;
    if (take > len) {
      take = len;
    }
    rc = cs_buf_append(&d->pending, buf, take);
    if (rc != 0) {
      return rc;
    }
    *used = take;
    rc = check_header(d, (const unsigned char *)d->pending.data, d->pending.len);
    if (rc != 0 || d->pending.len < WIRE_HEADER_LEN) {
      return rc;
    }
  }
  size_t frame_len = WIRE_HEADER_LEN + (size_t)get_u32((const unsigned char *)d->pending.data + 4);
  size_t need = frame_len - d->pending.len;
  take = len - *used;
  if (take > need) {
    take = need;
  }
  rc = cs_buf_append(&d->pending, buf + *used, take);
  if (rc != 0) {
    return rc;
  }
  *used += take;
  if (d->pending.len < frame_len) {
    return 0;
  }
  rc = decode_frame(d, (const unsigned char *)d->pending.data, frame_len, cb, arg);
  /* A connection that once carried a large frame does not keep its memory while idle. */
  if (d->pending.cap > WIRE_KEEP_PENDING) {
    cs_buf_free(&d->pending);
  } else {
    cs_buf_reset(&d->pending);
  }
  return rc;
}

/* Frames wholly inside buf are decoded where they lie; only a frame that is cut off at the end
 * of buf is copied into d->pending, to be completed by the next feed. */
int wire_decoder_feed(wire_decoder *d, const char *buf, size_t len, wire_msg_cb cb, void *arg) {
  const unsigned char *p = (const unsigned char *)buf;
  int rc = 0;
  if (d->failed) {
    return d->failed;
  }
  if (d->pending.len > 0 && len > 0) {
    size_t used = 0;
    rc = feed_pending(d, p, len, &used, cb, arg);
    if (rc != 0) {
      return fail(d, rc);
    }
    p += used;
    len -= used;
  }
  while (len > 0) {
    rc = check_header(d, p, len < WIRE_HEADER_LEN ? len : WIRE_HEADER_LEN);
    if (rc != 0) {
      return fail(d, rc);
    }
    size_t frame_len = len < WIRE_HEADER_LEN ? SIZE_MAX : WIRE_HEADER_LEN + (size_t)get_u32(p + 4);
    if (frame_len > len) {
      rc = cs_buf_append(&d->pending, p, len);
      return rc != 0 ? fail(d, rc) : 0;
    }
    rc = decode_frame(d, p, frame_len, cb, arg);
    if (rc != 0) {
      return fail(d, rc);
    }
    p += frame_len;
    len -= frame_len;
  }
  return 0;
}

/* A datagram is a run of whole frames; decoding stops at the first one that is bad or cut. */
int wire_decode_datagram(wire_decoder *d, const char *buf, size_t len, wire_msg_cb cb, void *arg) {
  const unsigned char *p = (const unsigned char *)buf;
  if (len == 0) {
    return CS_ETRUNCATED;
  }
  while (len > 0) {
    int rc = check_header(d, p, len < WIRE_HEADER_LEN ? len : WIRE_HEADER_LEN);
    if (rc != 0) {
      return rc;
    }
    if (len < WIRE_HEADER_LEN) {
      return CS_ETRUNCATED;
    }
    size_t frame_len = WIRE_HEADER_LEN + (size_t)get_u32(p + 4);
    if (frame_len > len) {
      return CS_ETRUNCATED;
    }
    rc = decode_frame(d, p, frame_len, cb, arg);
    if (rc != 0) {
      return rc;
    }
    p += frame_len;
    len -= frame_len;
  }
  return 0;
}
