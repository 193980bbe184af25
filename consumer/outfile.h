/* outfile.h -- the CSV files behind sink_csv.c: every delivered record appended as RFC 4180
 * CSV, one header per file, streams with another header in their own file next to it, written once
 * per loop iteration rather than once per record. */
#ifndef CSVSTREAM_CONSUMER_OUTFILE_H
#define CSVSTREAM_CONSUMER_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "sink.h"

typedef struct outfile outfile;

/* Open (create) path for appending; "-" is standard output (never read back, never closed;
 * streams whose header differs from the first one's are refused there, CS_ENOFILE below). If it
 * already holds data, its first CSV record is taken as its header: streams with that header are
 * appended to it without writing the header again. If its last byte is not a line break (an earlier
 * run cut off mid-write), one is queued to be written first and a warning names the file (side
 * files left by earlier runs likewise). slot is the object's index into each stream's
 * sink_stream.slot (sink.h), where it keeps the stream's file. Returns 0, or a negative code with a
 * message naming the file in err. */
int outfile_open(outfile **out, const char *path, size_t slot, char *err, size_t errlen);

/* Side files open at most: each holds a descriptor until the consumer exits, and any peer can
 * send new headers, so without a cap they would run out of descriptors and stop everything. */
#define OUTFILE_MAX_SIDE_OPEN 256

/* Queue one record (copied, as CSV) for the file of its stream. The first record of a stream
 * picks that file: the main file if its header matches the stream's (or the main file is still
 * empty), otherwise BASE.STREAM.EXT next to it (BASE.STREAM-2.EXT, ... if that one holds
 * another header). A stream without a header (producer --no-header) is routed, and its file
 * headed, by the synthetic header column_1 .. column_N, N the fields of its first record: the
 * names its SQLite table has. Each stream that goes to a side file, the one that opened it or a
 * later one with the same header, is logged once with the file's name. Sets the stream's slot.
 * Nothing reaches the disk before outfile_flush, which then raises the stream's durable number
 * (sink_stream.durable at the object's slot) to the record's. Returns 0, CS_ENOMEM, or CS_ENOFILE:
 * the stream needed a side file and none can be had (OUTFILE_MAX_SIDE_OPEN are open, or opening it
 * or reading its header failed); that is logged once per stream, and this and every later record of
 * the stream is counted in outfile_not_written() instead of written. */
int outfile_add(outfile *o, const sink_record *r);

/* A stream that ended with no record: find or make its file now (a new file gets the header
 * line, written by the next flush), as its first record would. A stream without a header, or
 * with a file already, is left as it is; one refused a file is logged and marked as
 * outfile_add does. Returns 0 (*queued 1 when a header line now waits for the flush) or
 * CS_ENOMEM. */
int outfile_begin(outfile *o, sink_stream *st, int *queued);

/* Write and flush everything queued, in arrival order per file. Returns 0, or CS_EIO with the
 * file and the reason in outfile_error() (a full disk, say); what could not be written stays
 * queued so that a later call can try again. */
int outfile_flush(outfile *o);

/* on: every write batch is fdatasync'ed before its records count as written (and durable). */
void outfile_set_fsync(outfile *o, int on);

/* What became of a file the consumer writes (outfile_check). */
enum outfile_fate { OUTFILE_FILE_OK = 0, OUTFILE_FILE_DELETED = 1, OUTFILE_FILE_MOVED = 2 };

/* Look at every open file: deleted (the records acknowledged into it are gone: counted in
 * outfile_lost, and logged as an error; what it gets from now on is held, not durable, until
 * outfile_reopen), or moved or replaced (logged as a warning: records go on to the moved
 * file). Each write batch also looks whether its file was deleted before it counts as durable.
 * Logs each change once and returns how many changed. */
int outfile_check(outfile *o);

/* Reopen every file at its path (SIGHUP, as logrotate asks): queued records are written to the
 * old file first, a new empty file gets its header line, and a file that was deleted hands the
 * records it held to the new one (where they become durable). Standard output is left as it
 * is. Returns 0, or CS_EIO with outfile_error() set (the files that could not be reopened stay
 * as they were). */
int outfile_reopen(outfile *o);

/* File i's size: at open, plus every byte written since (what a checkpoint records). Returns 0,
 * or CS_ERANGE. */
int outfile_file_size(const outfile *o, size_t i, uint64_t *size);

/* Records acknowledged into file i (SIZE_MAX: into all files) that was then found deleted:
 * those written to it between its open and that moment. Not on disk. */
uint64_t outfile_lost(const outfile *o, size_t i);

/* Records written to file i (SIZE_MAX: to all files) since it was found deleted, not yet
 * handed to a reopened file: not durable, not acknowledged. */
uint64_t outfile_held(const outfile *o, size_t i);

size_t outfile_pending_bytes(const outfile *o); /* bytes queued, not yet written */
uint64_t outfile_records(const outfile *o);     /* records written to disk, all files */
uint64_t outfile_not_written(const outfile *o); /* records refused (CS_ENOFILE from outfile_add) */
size_t outfile_files(const outfile *o);         /* files in use: the main one, then side files */
/* File i (0: the main file, then side files in the order they were opened): its path and the
 * records written to it. Returns 0, or CS_ERANGE when i >= outfile_files(). */
int outfile_file(const outfile *o, size_t i, const char **path, uint64_t *records);
/* The file stream st's records go to (the main file or a side file), or NULL when none of its
 * records reached outfile_add yet or it was refused a side file (CS_ENOFILE). The string lives as
 * long as o. */
const char *outfile_stream_path(const outfile *o, const sink_stream *st);
const char *outfile_path(const outfile *o); /* the main file, as given */
const char *outfile_error(const outfile *o);

/* Close every file without writing what is queued, and remove the main file if this object
 * created it (it did not exist before outfile_open) and it is still empty: for a consumer that
 * fails to start, which should leave nothing behind. Accepts NULL. */
void outfile_discard(outfile *o);

/* Flush and close every file. Accepts NULL. Returns 0, or CS_EIO with outfile_error() set
 * (read it before the next outfile_ call; the object is freed either way, so the message is
 * copied into err). */
int outfile_close(outfile *o, char *err, size_t errlen);

/* st leaves the stream table (nothing of it is queued: st->held is 0): drop its slot. */
void outfile_forget(outfile *o, sink_stream *st);

#endif
