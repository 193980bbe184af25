/* record.h -- the field type every module shares: a byte run that may hold commas, quotes,
 * newlines or NUL bytes. */
#ifndef CSVSTREAM_RECORD_H
#define CSVSTREAM_RECORD_H

#include <stddef.h>
#include <stdint.h>

typedef struct cs_field {
  const char *data; /* not NUL-terminated; borrowed (see the producing function for how long) */
  size_t len;
} cs_field;

#endif
