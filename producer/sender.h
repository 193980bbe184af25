/* sender.h -- the producer's sender interface: one table of operations that the TCP sender, the
 * UDP sender and the impairment wrapper each implement, so the run never asks which one it has. */
#ifndef PRODUCER_SENDER_H
#define PRODUCER_SENDER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net.h"
#include "wire.h"

typedef struct sender sender;

/* What a sender has done, as the summary, the progress line and --stats-json report it. */
typedef struct sender_stats {
  uint64_t bytes;         /* bytes handed to the kernel */
  uint64_t written;       /* stream: RECORD frames handed to the kernel in full; else 0 */
  uint64_t blocked_us;    /* stream: time spent waiting for the socket to drain; else 0 */
  uint64_t ack_wait_us;   /* acknowledged stream: time spent waiting for acknowledgements (a
                           * full --window, END, --resume's answer); else 0 */
  uint64_t icmp_refused;  /* datagrams: port-unreachable reports; else 0 */
  int acknowledged;       /* the consumer acknowledges (a stream): the next three count */
  uint64_t acked;         /* records the consumer said are durable */
  uint64_t resent;        /* records sent again after a reconnect */
  uint64_t reconnects;    /* connections made again after one was lost */
  uint64_t retry_wait_us; /* time spent waiting to reconnect */
  uint64_t skipped;       /* --resume: records handed over and not sent, since the consumer
                           * acknowledged them (past its resume point) first; in acked too */
  const char *connection; /* "ok", "refused", "failed" (connect), "reset", "closed" */
} sender_stats;

/* The operations. Each returns 0 or a negative code from error.h with a message in err unless
 * it says otherwise; 1 means "stopped": *stop was set while the sender waited. */
typedef struct sender_ops {
  const char *name; /* "tcp" or "udp": the logs, the summary and --stats-json's "protocol" */
  int socktype;     /* SOCK_STREAM or SOCK_DGRAM: what --host is resolved for */
  /* 1: open learns whether a listener is there (a connect), so when it fails sender_open tries
   * the host's next address. 0: the first address only (a datagram cannot know). */
  int every_address;
  /* Connect to addr (peer is its "127.0.0.1:9999" form, copied). */
  int (*open)(sender *s, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
              char *err, size_t errlen);
  /* Take the stream's HELLO: a stream sends it first, datagrams carry it in front of each
   * record. Returns 0, CS_ETOOBIG for a header past the protocol's limit, or another code. */
  int (*hello)(sender *s, const wire_msg *hello, char *err, size_t errlen);
  /* Whether a RECORD of `size` encoded bytes fits one unit of this transport: 1, or 0 with the
   * reason for a person in why ("record is 70,000 bytes, too large for ... (use --tcp)"). NULL
   * for a stream, which carries any record the protocol allows. */
  int (*fits)(const sender *s, const wire_msg *m, size_t size, char *why, size_t whylen);
  /* Bytes m takes on the wire as this sender sends it (datagrams: the HELLO included). */
  size_t (*wire_size)(const sender *s, const wire_msg *m);
  /* One RECORD from the run: hand it over (log it at slow pace), then write what is gathered
   * unless the next record, due at next_due_us (monotonic), is due already. May wait for room
   * (returns 1 when stopped meanwhile). */
  int (*send)(sender *s, const wire_msg *m, uint64_t next_due_us, char *err, size_t errlen);
  /* For wrappers: encode m into the queue or buffer, due at monotonic due_us (0: at once; a
   * stream keeps its order and ignores it). Logs nothing, writes only what must go out. */
  int (*add)(sender *s, const wire_msg *m, uint64_t due_us, char *err, size_t errlen);
  /* For wrappers: after add, write what is gathered unless the next record is due already;
   * bound the queue. What send does after its add. */
  int (*push)(sender *s, uint64_t next_due_us, char *err, size_t errlen);
  /* Hand the kernel what is due at now_us: datagrams whose time has come, a stream's gathered
   * bytes. */
  int (*flush_due)(sender *s, uint64_t now_us, char *err, size_t errlen);
  /* The records are all handed over: write a stream's gathered bytes now, so they count to the
   * records' sending time. Datagrams keep their due times; finish sends them. */
  int (*flush)(sender *s, char *err, size_t errlen);
  /* Monotonic time the next queued unit is due; UINT64_MAX when nothing waits for a time. */
  uint64_t (*next_due)(const sender *s);
  /* Sleep until monotonic deadline_us while watching the socket. Returns 0 at the deadline, 1
   * when stopped, or a negative code. */
  int (*wait)(sender *s, uint64_t deadline_us, char *err, size_t errlen);
  /* Whether the connection can still carry END (a stream that was reset or closed cannot). */
  int (*connected)(const sender *s);
  /* End the stream with END, from monotonic start_us on (0: now; a wrapper's delay otherwise):
   * a stream sends it once, half-closes and waits for the consumer's close (a timeout is
   * logged, not an error); datagrams send it three times and drain the queue. */
  int (*finish)(sender *s, const wire_msg *end, uint64_t start_us, char *err, size_t errlen);
  /* After hello: wait for the consumer to say how far it has the stream (its answer to the
   * HELLO), into *seq. NULL for a sender whose consumer does not answer (datagrams). Returns 0,
   * 1 when stopped, or a negative code with err set. */
  int (*resume_point)(sender *s, uint64_t *seq, char *err, size_t errlen);
  /* The counts so far. */
  void (*stats)(const sender *s, sender_stats *out);
  /* Close the socket and free the sender (and a wrapped one); accepts one never opened. */
  void (*close)(sender *s);
} sender_ops;

/* What every sender starts with; the implementations put it first in their own struct. */
struct sender {
  const sender_ops *ops;
  const volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM; borrowed */
  int log_records;                   /* slow pace: a log line per record */
  char peer[80];                     /* "127.0.0.1:9999", set by open */
  /* A connected sender: how long sender_open keeps trying to reach the consumer (seconds; 0:
   * once; negative: for ever), and how long it waited in all. */
  double retry_s;
  uint64_t retry_wait_us;
  /* Set by an operation that wrote to the kernel or waited (for room, acks, a reconnect, a due
   * time): time has passed, so a clock reading from before it is stale. The run clears it when
   * it reads the clock again; a wrapper passes its inner sender's on. */
  int clock_stale;
};

/* Reconnecting: the first wait and the longest, jittered. */
#define SENDER_BACKOFF_FIRST_MS 100
#define SENDER_BACKOFF_MAX_MS 3000

/* Wait backoff_ms (jittered) before another try to reach the consumer, logging "consumer
 * unreachable (why), retrying in X s; N records waiting" at most once a second (*logged: the
 * last time). Returns the next backoff (doubled, capped). Adds the wait to s->retry_wait_us. */
uint64_t sender_backoff(sender *s, uint64_t backoff_ms, const char *why, uint64_t waiting,
                        uint64_t *logged);

/* Datagrams: END is sent this many times (it can be lost like any datagram). */
#define SENDER_END_REPEATS 3

/* Open s on host's addresses (addrs, as net_resolve_all gave them; host names them in
 * messages): a sender whose ops say every_address tries them in order until one takes it,
 * logging each failure and the next address; the others open on the first. No address is tried
 * after *stop was set. On return s->peer names the address used (or tried last). Returns 0, or
 * the last open's negative code with its message in err (", tried all N addresses of HOST"
 * added when there were several). */
int sender_open(sender *s, const net_addrs *addrs, const char *host, char *err, size_t errlen);

/* Fill the common part of a new sender. */
void sender_base_init(sender *s, const sender_ops *ops, const volatile sig_atomic_t *stop,
                      int log_records);

/* The send operation of a plain sender: add (due at once), log the record at slow pace, push.
 * The TCP and UDP senders put it in their tables. */
int sender_send_plain(sender *s, const wire_msg *m, uint64_t next_due_us, char *err, size_t errlen);

/* Log a record at slow pace ("sent #3 (line 4, 2 fields, 40 bytes) over udp to ...note"). */
void sender_log_record(const sender *s, const wire_msg *m, size_t bytes, const char *note);

/* Sleep until monotonic deadline_us while s keeps working: what comes due is sent, the socket
 * is watched. Returns 0, 1 when stopped, or a negative code with err set. */
int sender_wait_until(sender *s, uint64_t deadline_us, char *err, size_t errlen);

/* The TCP sender and the UDP sender (sender_tcp.c, sender_udp.c). Return NULL when out of
 * memory. The caller owns the sender and frees it with its close operation. */
sender *tcp_sender_new(const volatile sig_atomic_t *stop, int log_records);
sender *udp_sender_new(const volatile sig_atomic_t *stop, int log_records);

/* The plain CSV sender (sender_csv.c, --format csv): udp picks one record a datagram, else a
 * TCP connection (reached within retry_s seconds, as the TCP sender) whose text starts with a
 * "#stream NAME" line when name is not NULL (--stream; borrowed, no line break). NULL when out
 * of memory. */
sender *csv_sender_new(const volatile sig_atomic_t *stop, int log_records, int udp, double retry_s,
                       const char *name);

#endif
