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

/* A RECORD frame sent and not yet acknowledged: its sequence number and where it ends in
 * tcp_sender.unacked. */
typedef struct tcp_unacked {
  uint64_t seq;
  size_t end;
} tcp_unacked;

/* The bytes waiting for a write, in the order they go out: out (the HELLO, first on every
 * connection), then the RECORD frames of unacked from sent_off on, then the END frame once the
 * stream ended. A record is encoded once, into unacked, and written from there: the window is
 * the send buffer. */
typedef struct tcp_sender {
  int fd;
  cs_buf out;               /* frames that go before the records: the HELLO; owned */
  uint64_t records_written; /* RECORD frames handed to the kernel in full (each counted once) */
  uint64_t bytes_written;
  uint64_t blocked_us;    /* time spent waiting for the socket to drain (backpressure) */
  uint64_t ack_wait_us;   /* time spent waiting for the consumer's acknowledgements */
  uint64_t ack_logged_us; /* monotonic time of the last "waiting for ..." line (0: none) */
  int status;             /* enum tcp_status */
  const volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM; borrowed */
  uint64_t give_up_us; /* after a stop: monotonic time when blocked writes are abandoned */
  char peer[80];       /* "127.0.0.1:9999" */
  /* Acknowledged delivery: every RECORD frame is kept until the consumer says it is durable,
   * and sent again on a new connection after one was lost. */
  struct sockaddr_storage addr; /* the consumer's address that took the connection */
  socklen_t addrlen;
  double retry_s;       /* reconnect this long without progress (0: never; < 0: for ever) */
  uint64_t window;      /* RECORD frames not yet acknowledged, at most */
  wire_decoder dec;     /* the consumer's ACK and REFUSE frames */
  cs_buf hello;         /* the HELLO frame, first on every connection */
  cs_buf end;           /* the END frame once the stream ended, resent after a reconnect */
  int end_queued;       /* END waits to be written after the records ... */
  size_t end_off;       /* ... from this byte of it on */
  cs_buf unacked;       /* RECORD frames queued, not acknowledged, from unacked_off on */
  size_t unacked_off;   /* bytes of unacked already acknowledged (dropped lazily) */
  size_t sent_off;      /* bytes of unacked written on this connection; the rest wait */
  cs_buf unacked_index; /* tcp_unacked entries, from index_head on */
  size_t index_head;    /* entries already acknowledged */
  size_t written_head;  /* entries whose frames were written whole on this connection */
  uint64_t written_seq; /* the highest seq written whole, on any connection */
  uint64_t last_seq;    /* highest RECORD seq queued */
  uint64_t acked_seq;   /* highest seq the consumer acknowledged */
  uint64_t acked;       /* records acknowledged */
  uint64_t skipped;     /* --resume: records not sent, acknowledged before their turn */
  uint64_t resent, reconnects, retry_wait_us;
  uint64_t progress_us; /* monotonic time of the last ack or connection: --retry and the
                         * lines about a wait for acks count from it */
  char refused[400];    /* the consumer's REFUSE reason ("" when none) */
  int resuming;         /* --resume: the next ACK is the resume point, not a count */
  int resumed;          /* --resume: the consumer may acknowledge past what this run sent */
} tcp_sender;

/* Make a sender that keeps what is not acknowledged for retry_s seconds of reconnecting (0:
 * fail at once; negative: for ever), and at most window records of it. */
sender *tcp_sender_new_acked(const volatile sig_atomic_t *stop, int log_records, double retry_s,
                             uint64_t window);

/* Connect to addr. Returns 0, or a negative code with a message in err, e.g. "cannot connect
 * to 127.0.0.1:9999/tcp: connection refused (is the consumer running?)" (status TCP_REFUSED). */
int tcp_sender_open(tcp_sender *t, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    const volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Encode m behind the frames already waiting (a RECORD into the window, a HELLO or END into
 * its place); writes when TCP_COALESCE_BYTES have gathered. Returns 0, CS_ETOOBIG (nothing
 * queued), or a write failure as tcp_sender_flush. */
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
