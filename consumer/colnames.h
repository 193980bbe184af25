/* colnames.h -- the value column names of a database table made from a CSV header: valid text,
 * never empty, unique under the database's rules (how it compares names, its length limit, the
 * names it keeps), a name already taken becoming name_2, name_3 ... Shared by the SQLite and
 * PostgreSQL sinks, whose existing tables are found again by these names. */
#ifndef CSVSTREAM_COLNAMES_H
#define CSVSTREAM_COLNAMES_H

#include <stddef.h>

/* What becomes of the bytes of a name that are not UTF-8 (a NUL always becomes '_'). */
typedef enum colnames_repair {
  COLNAMES_REPAIR_CP1252,    /* each is read as Windows-1252 (utf8_repair): Latin-1 stays legible */
  COLNAMES_REPAIR_UNDERSCORE /* each becomes '_' */
} colnames_repair;

/* A database's rules for names. */
typedef struct colnames_policy {
  /* 0 when the database takes a and b for one name (strcmp, sqlite3_stricmp). */
  int (*compare)(const char *a, const char *b);
  /* The longest name in bytes, suffix included (names are cut on a character boundary);
   * 0: no limit. */
  size_t max_bytes;
  const char *const *reserved; /* names no value column may have (compared with compare) */
  size_t nreserved;
  colnames_repair repair;
  /* The allocator of the names and of the list: realloc and free, or the database library's
   * own (whose failures the SQLite sink's tests inject). Every string returned here is freed
   * with name_free. */
  void *(*name_realloc)(void *p, size_t n);
  void (*name_free)(void *p);
} colnames_policy;

/* A name taken (a column's or a reserved one) in colnames' hash set, and the next number to
 * try for it as a base: a header of many equal names costs one look each, not one per name
 * before it (with thousands of them, seconds of the consumer's only thread). */
typedef struct colnames_slot {
  const char *key; /* names[i] or reserved[i]; NULL: empty */
  unsigned long next_k;
} colnames_slot;

/* One table's value column names, in order. */
typedef struct colnames {
  const colnames_policy *policy; /* borrowed: outlives the list */
  char **names;                  /* n names, each allocated; the list owns them */
  size_t n, cap;
  colnames_slot *slots; /* the taken names by hash (case-folded: equal under compare, equal
                         * hash), nslots a power of two, at most half used */
  size_t nslots, nused;
} colnames;

/* An empty list under policy. A zeroed struct may be freed without this. */
void colnames_init(colnames *c, const colnames_policy *policy);

/* Free the names. Accepts a zeroed struct. */
void colnames_free(colnames *c);

/* The bytes data[0..len) as text for a name: NULs become '_', and when the bytes are not valid
 * UTF-8 the others are repaired as the policy says; not cut. *repaired (may be NULL) is set to
 * 1 when bytes other than NULs were repaired, else 0. Returns a string (the policy's allocator:
 * free it with name_free) or NULL (out of memory). */
char *colnames_text(const colnames_policy *p, const char *data, size_t len, int *repaired);

/* The name header field number pos (from 1), data[0..len), asks for: "column_<pos>" when it is
 * empty, else its text (colnames_text) cut to the limit. Returns a string (free it with
 * name_free) or NULL. */
char *colnames_wanted(const colnames_policy *p, const char *data, size_t len, size_t pos,
                      int *repaired);

/* The k-th name tried for base (k from 1): base itself, then base_2, base_3 ..., base cut so
 * that the whole fits the limit. Under a limit base is made text first (colnames_text), since
 * it may come from elsewhere (a stream's name); without one it is used as it is. Returns a
 * string (free it with name_free) or NULL. */
char *colnames_numbered(const colnames_policy *p, const char *base, unsigned long k);

/* Append the first of base's numbered names (colnames_numbered) that neither a name of c nor a
 * reserved name takes. Returns 0 or CS_ENOMEM. */
int colnames_add(colnames *c, const char *base);

/* What the names of the columns beyond a header start with: "extra" (extra_1, extra_2 ...)
 * beyond nheader > 0 header columns, "column" without a header. */
const char *colnames_extra_prefix(size_t nheader);

/* Grow c to n names with extra columns (colnames_add of extra_N or column_N, N counted from the
 * first column after the nheader header columns). Returns 0 or CS_ENOMEM. */
int colnames_widen(colnames *c, size_t nheader, size_t n);

#endif
