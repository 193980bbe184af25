/* fields.c -- copying and comparing a run of fields (a header). */
#include "fields.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Copy n fields into two allocations; see fields.h. */
int cs_fields_copy(const cs_field *src, size_t n, cs_field **fields, char **data) {
  size_t total = 0, off = 0, i;
  *fields = NULL;
  *data = NULL;
  if (n == 0) {
    return 0;
  }
  for (i = 0; i < n; i++) {
    total += src[i].len;
  }
  *fields = calloc(n, sizeof(cs_field));
  *data = malloc(total + 1);
  if (*fields == NULL || *data == NULL) {
    free(*fields);
    free(*data);
    *fields = NULL;
    *data = NULL;
    return CS_ENOMEM;
  }
  for (i = 0; i < n; i++) {
    if (src[i].len > 0) {
      memcpy(*data + off, src[i].data, src[i].len);
    }
    (*fields)[i].data = *data + off;
    (*fields)[i].len = src[i].len;
    off += src[i].len;
  }
  return 0;
}

/* Compare two runs; see fields.h. */
int cs_fields_equal(const cs_field *a, size_t na, const cs_field *b, size_t nb) {
  size_t i;
  if (na != nb) {
    return 0;
  }
  for (i = 0; i < na; i++) {
    if (a[i].len != b[i].len || (a[i].len > 0 && memcmp(a[i].data, b[i].data, a[i].len) != 0)) {
      return 0;
    }
  }
  return 1;
}
