/* checkpoint.h -- the CSV sink's progress file (out9.txt.progress): after every write batch, the
 * length of each CSV file and each acknowledged stream's last sequence number in it, replaced
 * atomically. At start the files are cut back to those lengths: what lies past them was never
 * acknowledged, so its producers still hold it and resend it. */
#ifndef CSVSTREAM_CONSUMER_CHECKPOINT_H
#define CSVSTREAM_CONSUMER_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "outfile.h"
#include "sink.h"

typedef struct checkpoint checkpoint;

/* Read CSV_PATH.progress if there is one: cut every file it lists back to its recorded length
 * (saying how many bytes went), and keep its streams' numbers. A file shorter than recorded is
 * an error naming both files (nothing is cut). fsync: make the progress file durable before it
 * replaces the old one. Returns 0 with *out set, or a negative code with the message in err. */
int checkpoint_open(checkpoint **out, const char *csv_path, int fsync, char *err, size_t errlen);

/* An acknowledged stream the CSV sink now writes: its number from the file (0 if none) is
 * returned, and the stream's durable number at slot is written from now on. */
uint64_t checkpoint_track(checkpoint *c, const sink_stream *st, size_t slot);

/* st leaves the stream table: its number so far is kept (and written) without the pointer. */
void checkpoint_untrack(checkpoint *c, const sink_stream *st);

/* Replace the progress file with the files' lengths (o) and every stream's number (those that
 * ended more than an hour ago left out: the file stays about as small as the open streams),
 * atomically: written into CSV_PATH.progress.tmp, then the two names swapped. Returns
 * 0, or CS_EIO / CS_ENOMEM with the message in err. */
int checkpoint_write(checkpoint *c, const outfile *o, char *err, size_t errlen);

/* The progress file's path. */
const char *checkpoint_path(const checkpoint *c);

/* Free c, and remove CSV_PATH.progress.tmp (the spare copy the writes swap with). Accepts NULL. */
void checkpoint_free(checkpoint *c);

#endif
