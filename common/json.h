/* json.h -- a small JSON writer for the --stats-json files (objects, arrays, numbers, strings
 * escaped per RFC 8259). */
#ifndef CSVSTREAM_JSON_H
#define CSVSTREAM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JSON_MAX_DEPTH 16

typedef struct json_out {
  cs_buf buf;
  int depth;
  int count[JSON_MAX_DEPTH]; /* members written at each depth, for commas */
  int failed;                /* CS_ENOMEM seen; json_write_file then fails */
} json_out;

void json_init(json_out *j);
void json_free(json_out *j);
/* `key` is the member name inside an object, NULL at the top level and inside arrays. */
void json_object_begin(json_out *j, const char *key);
void json_object_end(json_out *j);
void json_array_begin(json_out *j, const char *key);
void json_array_end(json_out *j);
void json_uint(json_out *j, const char *key, uint64_t v);
void json_int(json_out *j, const char *key, int64_t v);
void json_double(json_out *j, const char *key, double v); /* non-finite values become null */
void json_bool(json_out *j, const char *key, int v);
void json_string(json_out *j, const char *key, const char *s); /* NULL becomes null */
/* A value already written as JSON by this writer (len bytes of text, one whole value), put in
 * as it is: a part kept from an earlier document. */
void json_raw(json_out *j, const char *key, const char *text, size_t len);
/* Write the document plus a newline to path. A regular file (or a new one) is written to
 * PATH.tmp and renamed into place, so a reader never sees half a document; anything else (a
 * character device, a FIFO, a symlink, even one to a regular file) is opened and written
 * directly, so that /dev/stdout or a link stays what it is; "-" is standard output (flushed,
 * not closed). Returns 0, or a negative code with a message naming the file in err. */
int json_write_file(json_out *j, const char *path, char *err, size_t errlen);

/* 1 if path is "-": standard output, for --stats-json and every other output path. */
int json_path_is_stdout(const char *path);

/* Check at start-up that json_write_file can write path at exit: path is not a directory; a
 * regular file's directory takes a new file (PATH.tmp is created with O_EXCL and removed
 * again; a PATH.tmp left by an earlier run must open for writing, and is kept); a FIFO must
 * be writable (access: it is not opened, which would end a waiting reader's data); anything
 * else opens for writing (without blocking) and no PATH.tmp is made next to it; "-" always
 * passes. Returns 0, or a negative code (-errno, CS_EINVAL for a
 * path too long) with a message naming the path in err, e.g.
 * "cannot create /no/dir/s.json: No such file or directory". */
int json_file_check(const char *path, char *err, size_t errlen);

#endif
