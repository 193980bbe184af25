/* sink_pg_names.h -- internal: the names the PostgreSQL sink (sink_pg.c) gives a stream's
 * table and value columns, reached by the unit tests (tests/unit/test_colnames.c). Only in a
 * build with libpq (CSVSTREAM_HAVE_LIBPQ). */
#ifndef CSVSTREAM_SINK_PG_NAMES_H
#define CSVSTREAM_SINK_PG_NAMES_H

#include <stddef.h>

#include "fields.h"

/* The value column names of a new table for header[0..n): the header's names, then the names
 * of adopted[0..nadopted) (extra columns of a table found in the database), then extra_N
 * (column_N without a header) up to width columns. *names gets *count malloc'd strings in a
 * malloc'd array, owned by the caller. Returns 0 or CS_ENOMEM. */
int sink_pg_column_names(const cs_field *header, size_t n, const char *const *adopted,
                         size_t nadopted, size_t width, char ***names, size_t *count);

/* The k-th name (k from 1) the sink tries for the table of a stream named stream (stream,
 * stream_2 ...). Returns a malloc'd string, or NULL when out of memory. */
char *sink_pg_table_candidate(const char *stream, unsigned long k);

#endif
