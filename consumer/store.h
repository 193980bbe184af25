/* store.h -- the SQLite storage behind sink_sqlite.c: one table per stream, values stored
 * exactly as sent, rows committed in short BEGIN IMMEDIATE batches, never blocking the loop on
 * a lock held by another process (the pacing and back-off are the sink's). */
#ifndef CSVSTREAM_STORE_H
#define CSVSTREAM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sink.h"

typedef struct store store;

/* Open (create) the database at path in WAL mode. slot is the store's index into each stream's
 * sink_stream.slot (sink.h), where it keeps the stream's table. Returns 0, or a negative code
 * with a message naming the file in err. */
int store_open(store **out, const char *path, size_t slot, char *err, size_t errlen);

/* Queue one record (copied, in a rowq). The row is written by a later store_flush. Returns 0, or
 * CS_ENOMEM when the queue holds its bound (store_pending_bytes() >= STORE_MAX_PENDING_BYTES):
 * the caller applies backpressure and must not drop the record silently; CS_ETOOBIG when the
 * record or its header has more fields than a table can have columns (SQLite's limit, 2000 by
 * default, less the metadata columns; store_error() says so). Nothing is queued then. */
#define STORE_MAX_PENDING_BYTES (256u << 20)
int store_add(store *s, const sink_record *r);

/* A stream that ended with no record: its table is created (empty) by the next store_flush,
 * as its first row would have. Returns 0 or CS_ENOMEM (error set). */
int store_add_empty(store *s, sink_stream *st);

/* 1 when store_flush has tables to create for streams without rows (store_add_empty). */
int store_tables_waiting(const store *s);

/* Write queued rows in one BEGIN IMMEDIATE transaction, at most STORE_BATCH_ROWS of them (call
 * again while store_pending() > 0). Never waits on a lock for more than a few milliseconds.
 * Returns 0 when the batch committed, CS_EBUSY when another process holds the lock (rows stay
 * queued; the caller retries later with backoff), or CS_ESQLITE with store_error() set. */
#define STORE_BATCH_ROWS 5000
int store_flush(store *s);

size_t store_pending(const store *s);       /* rows queued, not yet committed */
size_t store_pending_bytes(const store *s); /* memory those rows hold */
/* 1 when the newest queued row's stream has ended (its END came: no more rows will follow
 * it soon), else 0 (also when nothing is queued). */
int store_pending_ended(const store *s);
uint64_t store_committed(const store *s); /* rows committed since open */
const char *store_error(const store *s);

/* Append every row still queued (not committed) to the CSV file at path (rowq_save, rowq.h: the
 * queue and this dump are shared with other database sinks), created if missing:
 * RFC 4180 (csvout_record), one line per row with the columns table, _producer, _protocol,
 * _seq, _sent_us, _received_us, _peer, then the row's values (as many as it has), and a header
 * line of those seven names when the file is new or empty. table is the row's table, or the
 * stream's name when no batch of it was ever committed (its table was not named yet). For the
 * rows a stopping consumer could not commit: the queue is left as it is. Returns 0, or CS_EIO
 * or CS_ENOMEM with a message naming the file in err; *saved (may be NULL) gets the rows
 * written. */
int store_save_pending(const store *s, const char *path, size_t *saved, char *err, size_t errlen);

/* --fsync: a commit returns only once it would survive a power loss (synchronous=FULL; WAL
 * mode's default NORMAL survives a crash of the process). Returns 0 or CS_ESQLITE. */
int store_set_synchronous_full(store *s);

/* What the database's progress table says of acknowledged stream st (read at the first call):
 * the highest sequence number committed in an earlier run (0: none). Each commit writes the
 * progress of the acknowledged streams in its batch in the same transaction as their rows, and
 * raises each committed row's stream durable number (sink_stream.durable at the store's slot). */
uint64_t store_progress(store *s, const sink_stream *st);

/* Table name used for a stream (NULL until a store_flush has written its first row), for logs
 * and tests. */
const char *store_table_name(const store *s, const sink_stream *st);

/* Close the database. Does not flush: call store_flush until store_pending() is 0 first.
 * Accepts NULL. Returns 0 or CS_ESQLITE. */
int store_close(store *s);

/* st leaves the stream table (no row of it is queued: st->held is 0): drop its slot (the
 * table it used stays, for a stream with the same header). */
void store_forget(store *s, sink_stream *st);

#endif
