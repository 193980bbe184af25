/* csvpush.h -- a push CSV parser on libcsv for bytes that arrive in pieces (a socket): RFC 4180
 * records handed to a callback as they complete, every record's size bounded. */
#ifndef CSVSTREAM_CSVPUSH_H
#define CSVSTREAM_CSVPUSH_H

#include <stddef.h>

#include "record.h"

/* The most fields one record may have (more is CS_ETOOBIG): each field costs a descriptor
 * whatever its length, so a line of commas must not cost more than its bytes do. */
#define CSVPUSH_MAX_FIELDS (1u << 18)

typedef struct csvpush csvpush; /* opaque */

/* Called for every complete record. fields (n of them) live only during the call; bytes is
 * what the record held (its fields plus one separator or line end each). Return 0 to go on;
 * anything else stops the parsing and is returned by csvpush_feed or csvpush_finish. */
typedef int (*csvpush_cb)(const cs_field *fields, size_t n, size_t bytes, void *arg);

/* A parser whose records may hold up to max_record bytes (give or take one read piece of
 * CSVPUSH_PIECE bytes). Returns 0 with *out set, or CS_ENOMEM. */
int csvpush_new(csvpush **out, size_t max_record);
void csvpush_free(csvpush *p); /* accepts NULL */

/* Feed len bytes, calling cb for each record that completes. Returns 0; cb's non-zero value;
 * CS_ETOOBIG for a record longer than max_record or with more than CSVPUSH_MAX_FIELDS fields;
 * CS_ECSV for bytes that are not CSV (a quote inside an unquoted field, say: csvpush_error
 * says what); CS_ENOMEM. After an error the parser refuses all input until csvpush_reset. */
int csvpush_feed(csvpush *p, const char *data, size_t len, csvpush_cb cb, void *arg);

/* The input ended: the last record, if it had no line end, goes to cb. Returns as
 * csvpush_feed (CS_ECSV for a quoted field never closed). The parser is then reset. */
int csvpush_finish(csvpush *p, csvpush_cb cb, void *arg);

/* Forget any record in progress and any error: ready for a new input (the next datagram). */
void csvpush_reset(csvpush *p);

/* Bytes fed since the last complete record (within a piece): what an incomplete record holds. */
size_t csvpush_pending(const csvpush *p);

/* Why the last CS_ECSV or CS_ETOOBIG, in words ("a quote inside an unquoted field"). */
const char *csvpush_error(const csvpush *p);

/* Bytes libcsv is given at once: the resolution of the record limit. Between records a parser
 * keeps at most about 64 KiB of what a long record made it grow to. */
#define CSVPUSH_PIECE 4096

#endif
