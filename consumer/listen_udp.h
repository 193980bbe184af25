/* listen_udp.h -- the UDP listener: the socket and its receive buffer, the kernel's drop
 * counter, and every datagram decoded into ingest. */
#ifndef CSVSTREAM_LISTEN_UDP_H
#define CSVSTREAM_LISTEN_UDP_H

#include "listen.h"

#define LISTEN_UDP_DEFAULT_RCVBUF (4 * 1024 * 1024)

typedef struct listen_udp listen_udp;

/* Bind, size the receive buffer (--rcvbuf) and start receiving. Returns 0 with *out set, or a
 * negative code after logging why; *out may be set even then, and must be stopped either way.
 * env is copied. */
int listen_udp_start(listen_udp **out, const listen_env *env);

/* "127.0.0.1:9999/udp". */
const char *listen_udp_name(const listen_udp *l);

/* Read the kernel's drop count for the socket into ingest's UDP totals. Accepts NULL. */
void listen_udp_update_drops(listen_udp *l);

/* Take the last drop count, stop receiving and close the socket (freed by libuv's close
 * callback as the loop runs). Accepts NULL; call once. */
void listen_udp_stop(listen_udp *l);

#endif
