/* producer.h -- one producer run: the context that ties the CSV reader, pacer, impairment and
 * sender together, and the counts the summary and --stats-json report. */
#ifndef PRODUCER_PRODUCER_H
#define PRODUCER_PRODUCER_H

#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "csvin.h"
#include "impair.h"
#include "log.h"
#include "producer_options.h"
#include "pacer.h"
#include "replay.h"
#include "sender.h"
#include "wire.h"

/* Totals of one run, as the summary and --stats-json report them. */
typedef struct producer_stats {
  uint64_t seq;           /* the last sequence number issued, END's (impairment drops and
                           * records --resume skipped included) */
  uint64_t sent;          /* records sent (impairment drops included; not those skipped) */
  uint64_t written;       /* TCP: RECORD frames handed to the kernel in full */
  uint64_t bytes;         /* bytes handed to the kernel */
  uint64_t records_read;  /* data records read from the CSV */
  uint64_t too_big;       /* records skipped: they do not fit the transport */
  uint64_t start_us;      /* monotonic: first record due */
  uint64_t end_us;        /* monotonic: END sent */
  uint64_t blocked_us;    /* TCP: waiting for the socket to drain */
  uint64_t ack_wait_us;   /* TCP: waiting for the consumer's acknowledgements */
  uint64_t icmp_refused;  /* UDP: port-unreachable reports */
  const char *connection; /* "ok", "refused", "failed" (connect), "reset", "closed" */
  int acknowledged;       /* TCP: the consumer acknowledges; the next four count */
  uint64_t acked;         /* records the consumer said are durable */
  uint64_t resent;        /* records sent again on a new connection */
  uint64_t reconnects;
  uint64_t retry_wait_us;      /* waiting to reach the consumer */
  uint64_t resumed_after;      /* --resume: the consumer had the stream up to this record */
  uint64_t resume_skipped;     /* --resume: records not sent, the consumer had them already */
  uint64_t skipped_lines;      /* --skip-lines: lines skipped before the header */
  uint64_t comment_lines;      /* --comment: lines skipped as comments */
  uint64_t invalid_utf8_lines; /* lines that are not valid UTF-8 (sent as they are) */
  uint64_t last_sent_us;       /* monotonic: the last record handed to the sender */
} producer_stats;

typedef struct producer {
  const producer_options *opt;       /* borrowed */
  const volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM; borrowed */
  char stream[WIRE_MAX_STREAM_NAME + 1];
  uint64_t producer_id;
  unsigned char session_key[WIRE_KEY_LEN]; /* this run's secret: in every HELLO and END */
  char peer[80]; /* "127.0.0.1:9999": the address connected to (or tried last) */
  csvin *in;
  pacer pacer;
  impair impair; /* the decisions and ground-truth counts (the impair sender borrows it) */
  sender *snd;   /* TCP or UDP, maybe wrapped in the impairment; chosen at init; owned */
  int sender_open;
  int slow;    /* log each record */
  int stopped; /* SIGINT/SIGTERM */
  uint64_t last_progress_us;
  uint64_t last_progress_sent;
  uint64_t ragged_rows; /* rows whose field count differs from the header's */
  log_limiter ragged_limit;
  uint64_t input_warnings; /* the reader's warnings (lines not valid UTF-8) */
  log_limiter input_limit;
  int replaying; /* --timestamps: paced by the file's clock (replay) */
  replay replay;
  uint64_t replay_warnings;
  log_limiter replay_limit;
  uint64_t passes; /* passes over the file finished (--loop) */
  int unpaced;     /* every record is due at once (no --interval gap, --rate or --timestamps) */
  int input_live;  /* the input may block (a pipe, a terminal): look before each read */
  const csvin_rec *header; /* csvin_header, kept for the check of each row */
  /* The clock for the records' send times: unpaced, one reading serves up to
   * PRODUCER_CLOCK_EVERY records, and none from before the sender wrote or waited. */
  uint64_t now_wall_us, now_mono_us;
  unsigned clock_left; /* records that may still use the reading */
  producer_stats st;
} producer;

/* Prepare a run: stream name, producer id, seeds. Returns 0, or a negative code with the
 * message written to err. */
int producer_init(producer *p, const producer_options *o, const volatile sig_atomic_t *stop,
                  char *err, size_t errlen);

/* Open the input, connect, stream every record, send END. Logs as it goes. Returns the exit
 * code: 0 all sent, 1 a runtime failure or not all records sent, 130 stopped by a signal. */
int producer_run(producer *p);

/* Release everything; accepts a producer whose init failed. */
void producer_free(producer *p);

#endif
