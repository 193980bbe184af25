/* error.h -- the project's error codes and the one table that turns any code into a message. */
#ifndef CSVSTREAM_ERROR_H
#define CSVSTREAM_ERROR_H

/* Functions return 0 on success and a negative code on failure. Codes in (-4095, 0) are
 * negated errno values (the same numbers libuv's UV_E* use on Unix); the project's own codes
 * live below -10000 so the two never collide. */
enum cs_error {
  CS_ENOMEM = -10001,     /* out of memory */
  CS_EBADMAGIC = -10002,  /* wire: the bytes do not start a frame of this protocol */
  CS_EVERSION = -10003,   /* wire: a frame of a protocol version we do not speak */
  CS_ETYPE = -10004,      /* wire: unknown message type */
  CS_ETOOBIG = -10005,    /* wire: a frame or record larger than the limit */
  CS_EMALFORMED = -10006, /* wire: the payload does not parse */
  CS_ETRUNCATED = -10007, /* wire: a datagram ends inside a frame */
  CS_ECSV = -10008,       /* csv: parse error (unterminated quote and the like) */
  CS_EIO = -10009,        /* a read or write failed; details are in the module's message */
  CS_EINVAL = -10010,     /* a bad argument or option value */
  CS_ESQLITE = -10011,    /* sqlite: details are in the module's message */
  CS_EBUSY = -10012,      /* sqlite: the database is locked by another process */
  CS_ENOFILE = -10013,    /* a sink has no place for this stream's records (refused, logged) */
  CS_EPROTO = -10014,     /* a well-formed frame that breaks the protocol (out of order, say) */
  CS_ESTOP = -10015,      /* not an error: the work asked for is done (--max-records) */
  CS_ERANGE = -10016,     /* an index or value outside what the object holds */
  CS_EREFUSED = -10017,   /* a new stream refused (a limit reached); the message says which */
  CS_ESPOOFED = -10018    /* a frame for a stream that another sender began (no session key) */
};

/* A message for any code: the project's own, or strerror(-code) for errno codes. Never NULL. */
const char *cs_strerror(int code);

#endif
