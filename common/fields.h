/* fields.h -- copying and comparing a run of fields (a header): the one copy every module uses. */
#ifndef CSVSTREAM_FIELDS_H
#define CSVSTREAM_FIELDS_H

#include <stddef.h>

#include "record.h"

/* Copy n fields: the array into *fields, their bytes into one block *data (the copies point
 * into it). Returns 0 or CS_ENOMEM. Both are owned by the caller and freed with free(); both
 * are NULL for n == 0 and after a failure. */
int cs_fields_copy(const cs_field *src, size_t n, cs_field **fields, char **data);

/* 1 if the two runs are the same, field for field and byte for byte, else 0. */
int cs_fields_equal(const cs_field *a, size_t na, const cs_field *b, size_t nb);

#endif
