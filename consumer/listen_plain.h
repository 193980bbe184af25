/* listen_plain.h -- plain CSV text in (--plain-port): newline-delimited RFC 4180 records with no
 * framing, over TCP (one stream per connection) and UDP (whole records per datagram, one stream
 * per sender). Records go to ingest's unsequenced entry points, and on to the same sinks. */
#ifndef CSVSTREAM_LISTEN_PLAIN_H
#define CSVSTREAM_LISTEN_PLAIN_H

#include "listen.h"

/* Hygiene, as for the framed listener: an incomplete record (or first line) held this long
 * closes its connection (counted as timed out); the bytes of incomplete records over all
 * connections are capped, the largest holder closed first (counted as evicted); past
 * LISTEN_PLAIN_MAX_CONNS connections the oldest that has sent no record is closed (evicted),
 * or, when all have, the new one (garbage). */
#define LISTEN_PLAIN_PARTIAL_TIMEOUT_US (30 * 1000000ull)
#define LISTEN_PLAIN_MAX_PARTIAL_BYTES (64u << 20)
#define LISTEN_PLAIN_MAX_CONNS 1024
/* The longest record (its bytes), as over the framed protocol. */
#define LISTEN_PLAIN_MAX_RECORD (1u << 20)

typedef struct listen_plain listen_plain;

/* Bind --host:--plain-port for TCP and UDP (each only if --tcp/--udp leave it on). Returns 0
 * with *out set, or a negative code after logging why; *out may be set even then, and must be
 * stopped either way (listen_plain_stop). env is copied. */
int listen_plain_start(listen_plain **out, const listen_env *env);

/* Log "listening on HOST:PORT/tcp (plain CSV)" and ".../udp (plain CSV)". */
void listen_plain_announce(const listen_plain *l);

/* Stop (paused 1) or resume reading every plain TCP connection, new ones included. */
void listen_plain_pause(listen_plain *l, int paused);

/* Close the sockets and every connection (a record held incomplete is logged and dropped).
 * Memory is freed by libuv's close callbacks as the loop runs. Accepts NULL; call once. */
void listen_plain_stop(listen_plain *l);

#endif
