/* listen_tcp.h -- the TCP listener: accept, read, close; one decoder per connection; reads
 * paused and resumed for back-pressure. Every decoded message goes to ingest. */
#ifndef CSVSTREAM_LISTEN_TCP_H
#define CSVSTREAM_LISTEN_TCP_H

#include "listen.h"

/* Connection hygiene: a connection that sent no HELLO this long after connecting, or held an
 * incomplete frame this long, is closed (counted as timed out); the bytes held in incomplete
 * frames over all connections are capped, the largest holder closed first (counted as
 * evicted). */
#define LISTEN_TCP_HELLO_TIMEOUT_US (10 * 1000000ull)
#define LISTEN_TCP_PARTIAL_TIMEOUT_US (30 * 1000000ull)
#define LISTEN_TCP_MAX_PARTIAL_BYTES (64u << 20)

typedef struct listen_tcp listen_tcp;

/* Bind and listen (the consumer says "listening on" once the sinks are open too). Returns 0
 * with *out set, or a negative code after logging why; *out may be set even then, and must be
 * stopped either way (listen_tcp_stop). env is copied. */
int listen_tcp_start(listen_tcp **out, const listen_env *env);

/* "127.0.0.1:9999/tcp". */
const char *listen_tcp_name(const listen_tcp *l);

/* Stop (paused 1) or resume reading every connection, new ones included. */
void listen_tcp_pause(listen_tcp *l, int paused);

/* Acknowledge on every connection whose stream became more durable (after the sinks flushed):
 * one ACK frame, the sequence number durable in every sink. */
void listen_tcp_ack(listen_tcp *l);

/* Close the listener and every connection, logging each one still open (with the bytes of an
 * incomplete frame it held). The memory is freed by libuv's close callbacks, as the loop runs.
 * Accepts NULL; call once. */
void listen_tcp_stop(listen_tcp *l);

#endif
