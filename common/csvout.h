/* csvout.h -- CSV writer: one record as one RFC 4180 line, quoted only where needed. */
#ifndef CSVSTREAM_CSVOUT_H
#define CSVSTREAM_CSVOUT_H

#include <stddef.h>

#include "buf.h"
#include "record.h"

/* Append `n` fields as one CSV record ending in CRLF. A field is quoted when it holds a comma,
 * a double quote (doubled inside), CR, LF, or leading/trailing space or tab; a record of a
 * single empty field is written as "" so that it is not read back as a blank line.
 * Returns 0 or CS_ENOMEM (out->len and the bytes before it are then unchanged). */
int csvout_record(cs_buf *out, const cs_field *fields, size_t n);

#endif
