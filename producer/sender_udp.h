/* sender_udp.h -- the UDP sender: a connected socket, a queue of whole datagrams (each with the
 * time it is due, for --impair delay), sent in sendmmsg batches. */
#ifndef PRODUCER_SENDER_UDP_H
#define PRODUCER_SENDER_UDP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "sender.h"
#include "log.h"

#define UDP_BATCH 64                    /* datagrams per sendmmsg */
#define UDP_QUEUE_MAX_BYTES (16u << 20) /* the caller waits before queueing more than this */
/* Records due together share a datagram up to this size: one Ethernet frame's IPv4 UDP payload
 * (1500 - 20 - 8), so packing never makes the IP layer fragment a datagram, whose loss would
 * then take every fragment's records with it. A record that does not fit with the HELLO goes
 * alone, up to the protocol's 65,507 bytes. */
#define UDP_PACK_MAX_BYTES 1472

typedef struct udp_sender {
  int fd;
  cs_buf bytes;    /* datagram bytes, back to back; owned */
  cs_buf entries;  /* struct udp_entry array; owned */
  size_t head;     /* first entry not yet sent */
  size_t head_off; /* its offset in bytes */
  uint64_t datagrams_sent;
  uint64_t bytes_sent;
  uint64_t icmp_refused; /* sends the kernel answered with "port unreachable" */
  log_limiter icmp_limit;
  const volatile sig_atomic_t *stop; /* borrowed */
  char peer[80];
} udp_sender;

/* Create a UDP socket connected to addr (so the kernel reports ICMP errors to us). Returns 0,
 * or a negative code with a message in err. */
int udp_sender_open(udp_sender *u, const struct sockaddr *addr, socklen_t addrlen, const char *peer,
                    const volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Copy one datagram into the queue, due at monotonic time due_us (0: at once). Returns 0 or
 * CS_ENOMEM. */
int udp_sender_queue(udp_sender *u, const void *data, size_t len, uint64_t due_us);

/* Append len bytes to the last queued datagram when it is not sent yet, was queued packable,
 * is due at due_us too and stays within UDP_PACK_MAX_BYTES with them. Returns 1 when appended,
 * 0 when not (queue a new datagram then), or CS_ENOMEM. */
int udp_sender_extend(udp_sender *u, const void *data, size_t len, uint64_t due_us);

/* Mark the last queued datagram as one that later records may join (udp_sender_extend). */
void udp_sender_mark_packable(udp_sender *u);

/* Datagrams and bytes queued and not yet sent. */
size_t udp_sender_queued(const udp_sender *u);
size_t udp_sender_queued_bytes(const udp_sender *u);
/* Due time of the first queued datagram; UINT64_MAX when the queue is empty. */
uint64_t udp_sender_next_due(const udp_sender *u);
/* Queued datagrams already due at now_us (counts at most `limit`). */
size_t udp_sender_due_count(const udp_sender *u, uint64_t now_us, size_t limit);

/* Send every queued datagram due at now_us, UDP_BATCH per system call. ICMP "port
 * unreachable" is counted, logged (rate-limited) and the datagram sent again; ENOBUFS and
 * EAGAIN wait a moment and retry. Returns 0, 1 if *stop interrupted it, or a negative code with
 * err set. */
int udp_sender_flush_due(udp_sender *u, uint64_t now_us, char *err, size_t errlen);

/* Sleep until deadline_us, noting ICMP errors that arrive meanwhile. Returns 0, 1 when *stop
 * was set, or a negative code with err set. */
int udp_sender_wait(udp_sender *u, uint64_t deadline_us, char *err, size_t errlen);

/* Close the socket and free the queue; accepts a sender that never opened (fd -1). */
void udp_sender_close(udp_sender *u);

#endif
