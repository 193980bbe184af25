/* listen.h -- what the TCP and UDP listeners share: what they are given (the loop, ingest and
 * the consumer's callbacks) and the one routine that resolves, binds and names a listener. */
#ifndef CSVSTREAM_LISTEN_H
#define CSVSTREAM_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "ingest.h"
#include "options.h"

#define LISTEN_READ_BUFFER (64u * 1024u) /* per read call, TCP and UDP alike */

/* What a listener is given. The callbacks are the consumer's (loop.c): a listener never stops
 * the program itself. */
typedef struct listen_env {
  uv_loop_t *loop;
  ingest *in;
  const consumer_options *opt;
  void (*stop)(void *arg, int exit_code); /* begin the clean stop (ingest said CS_ESTOP) */
  void (*input)(void *arg);               /* after a read that reached ingest: back-pressure */
  void *arg;
} listen_env;

/* Resolve --host and --port for socktype (SOCK_STREAM: "tcp", SOCK_DGRAM: "udp") into *ss and
 * name the listener "HOST:PORT/tcp" in name. Returns 0, or a negative code after logging the
 * error. */
int listen_resolve(const listen_env *env, int socktype, struct sockaddr_storage *ss, char *name,
                   size_t namelen);

/* Name the listener again from the address it is bound to (the port the kernel chose, if
 * --port was 0). */
void listen_rename(const struct sockaddr *bound, int socktype, char *name, size_t namelen);

/* Log a failure to listen on name (address in use, not available, permission) with the fix. */
void listen_log_error(const char *name, int rc);

#endif
