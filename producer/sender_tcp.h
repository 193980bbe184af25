/* sender_tcp.h -- the TCP sender: blocking connect, then coalesced non-blocking writes with
 * backpressure timing, and a watch on the connection while the pacer sleeps. */
#ifndef PRODUCER_SENDER_TCP_H
#define PRODUCER_SENDER_TCP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "sender.h"
#include "wire.h"

/* How the connection ended up, as --stats-json reports it. */
enum tcp_status { TCP_OK = 0, TCP_REFUSED, TCP_RESET, TCP_CLOSED, TCP_FAILED /* connect */ };

/* Bytes gathered before a write() when records are due faster than they can be written. */
#define TCP_COALESCE_BYTES (256u * 1024u)

typedef struct tcp_sender {
  int fd;
  cs_buf out;               /* encoded frames not yet written; owned */
  cs_buf record_ends;       /* size_t offset in out where each RECORD frame ends; owned */
  uint64_t records_written; /* RECORD frames handed to the kernel in full */
  uint64_t bytes_written;
  uint64_t blocked_us;               /* time spent waiting for the socket to drain (backpressure) */
  int status;                        /* enum tcp_status */
  const volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM; borrowed */
  uint64_t give_up_us; /* after a stop: monotonic time when blocked writes are abandoned */
  char peer[80];       /* "127.0.0.1:9999" */
} tcp_sender;

/* Connect to addr. Returns 0, or a negative code with a message in err, e.g. "cannot connect
 * to 127.0.0.1:9999/tcp: connection refused (is the consumer running?)" (status TCP_REFUSED). */
int tcp_sender_open(tcp_sender *t, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    const volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Encode m behind the frames already waiting; writes when TCP_COALESCE_BYTES have gathered.
 * Returns 0, CS_ETOOBIG (nothing queued), or a write failure as tcp_sender_flush. */
int tcp_sender_add(tcp_sender *t, const wire_msg *m, char *err, size_t errlen);

/* Write every waiting byte, polling for POLLOUT while the socket is full. Returns 0, or a
 * negative code with t->status set (TCP_RESET, TCP_CLOSED) and a message in err. */
int tcp_sender_flush(tcp_sender *t, char *err, size_t errlen);

/* Sleep until monotonic time deadline_us, watching the socket: a consumer that closes or
 * resets the connection is noticed at once. Returns 0 at the deadline, 1 when *stop was set,
 * or a negative code with status and err set. */
int tcp_sender_wait(tcp_sender *t, uint64_t deadline_us, char *err, size_t errlen);

/* Flush, shut down the sending side and wait up to timeout_us for the consumer to close, which
 * tells that it has read everything. Returns 0 when it closed, 1 on timeout, or a negative code
 * with err set. */
int tcp_sender_finish(tcp_sender *t, uint64_t timeout_us, char *err, size_t errlen);

/* Close the socket and free the buffer; accepts a sender that never opened (fd -1). */
void tcp_sender_close(tcp_sender *t);

#endif
