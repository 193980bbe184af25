/* rowq.h -- a database sink's queue of rows not yet committed: copied records in arrival order,
 * their count and memory, and the .uncommitted.csv dump of what is left at the end. */
#ifndef CSVSTREAM_CONSUMER_ROWQ_H
#define CSVSTREAM_CONSUMER_ROWQ_H

#include <stddef.h>
#include <stdint.h>

#include "sink.h"

typedef struct rowq rowq;

/* One queued row: a copy of a record (its fields and their bytes live in the row's single
 * allocation) and the tag the sink gave it. Read-only for the sink: rowq owns it and frees it
 * in rowq_pop or rowq_free. */
typedef struct rowq_row {
  void *tag;                 /* the sink's own per-row pointer (its table, say); not owned */
  const sink_stream *stream; /* the record's stream, which outlives the queue (sink.h) */
  uint64_t seq, sent_us, received_us;
  size_t nfields;
  const cs_field *fields; /* the record's values, byte for byte */
} rowq_row;

/* A new empty queue in *out. Returns 0 or CS_ENOMEM (*out is then NULL). The caller owns it and
 * frees it with rowq_free. */
int rowq_new(rowq **out);

/* Free the queue and every row still in it. Accepts NULL. */
void rowq_free(rowq *q);

/* Copy record r (its fields and their bytes, not its stream) into a new row at the tail, tagged
 * with tag. Returns 0, or CS_ENOMEM with nothing queued. The record stays the caller's. */
int rowq_push(rowq *q, const sink_record *r, void *tag);

/* The oldest row, or NULL when the queue is empty. Valid until it is popped. */
const rowq_row *rowq_head(const rowq *q);

/* The newest row, or NULL when the queue is empty. Valid until it is popped. */
const rowq_row *rowq_tail(const rowq *q);

/* The row queued after row, or NULL when row is the newest. */
const rowq_row *rowq_next(const rowq_row *row);

/* Remove and free the n oldest rows (for a sink, once they are durable). Returns 0, or
 * CS_ERANGE when fewer than n rows are queued (nothing is removed then). */
int rowq_pop(rowq *q, size_t n);

size_t rowq_count(const rowq *q); /* rows queued */
size_t rowq_bytes(const rowq *q); /* memory those rows hold; 0 when the queue is empty */

/* The table name the dump writes for row (never NULL), from the sink that tagged it. */
typedef const char *(*rowq_table_name_cb)(const rowq_row *row, void *arg);

/* Append every queued row to the CSV file at path, created if missing: RFC 4180
 * (csvout_record), one line per row with the columns table (table_name(row, arg)), _producer,
 * _protocol, _seq, _sent_us, _received_us, _peer, then the row's values (as many as it has),
 * and a header line of those seven names when the file is new or empty. A file whose last line
 * was cut off gets a line break first. The queue is left as it is. Returns 0, or CS_EIO or
 * CS_ENOMEM with a message naming the file in err; *saved (may be NULL) gets the rows written
 * (0 after a failure). */
int rowq_save(const rowq *q, const char *path, rowq_table_name_cb table_name, void *arg,
              size_t *saved, char *err, size_t errlen);

#endif
