/* json.c -- a small JSON writer for the --stats-json files. */
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* An empty document. */
void json_init(json_out *j) {
  memset(j, 0, sizeof *j);
  cs_buf_init(&j->buf);
}

/* Release the document's memory. */
void json_free(json_out *j) {
  if (j == NULL) {
    return;
  }
  cs_buf_free(&j->buf);
}

/* Append raw text, remembering a failure instead of returning it. */
static void put(json_out *j, const char *s, size_t n) {
  if (!j->failed && cs_buf_append(&j->buf, s, n) != 0) {
    j->failed = CS_ENOMEM;
  }
}

static void puts_(json_out *j, const char *s) {
  put(j, s, strlen(s));
}

/* Append s as a JSON string literal: quotes, backslash and control characters escaped (RFC
 * 8259); other bytes, UTF-8 included, pass unchanged. */
static void put_string(json_out *j, const char *s) {
  static const char hex[] = "0123456789abcdef";
  put(j, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    char esc[7];
    switch (*p) {
    case '"':
      put(j, "\\\"", 2);
      break;
    case '\\':
      put(j, "\\\\", 2);
      break;
    case '\n':
      put(j, "\\n", 2);
      break;
    case '\r':
      put(j, "\\r", 2);
      break;
    case '\t':
      put(j, "\\t", 2);
      break;
    default:
      if (*p < 0x20) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[*p >> 4];
        esc[5] = hex[*p & 15];
        put(j, esc, 6);
      } else {
        put(j, (const char *)p, 1);
      }
      break;
    }
  }
  put(j, "\"", 1);
}

/* The comma and member name that come before every value. */
static void put_prefix(json_out *j, const char *key) {
  if (j->count[j->depth] > 0) {
    put(j, ",", 1);
  }
  j->count[j->depth]++;
  if (key != NULL) {
    put_string(j, key);
    put(j, ":", 1);
  }
}

/* Open a container; deeper nesting than JSON_MAX_DEPTH marks the document failed. */
static void begin(json_out *j, const char *key, const char *open) {
  put_prefix(j, key);
  puts_(j, open);
  if (j->depth + 1 >= JSON_MAX_DEPTH) {
    j->failed = CS_EINVAL;
    return;
  }
  j->depth++;
  j->count[j->depth] = 0;
}

static void end(json_out *j, const char *close) {
  if (j->depth > 0) {
    j->depth--;
  } else {
    j->failed = CS_EINVAL;
  }
  puts_(j, close);
}

void json_object_begin(json_out *j, const char *key) {
  begin(j, key, "{");
}
void json_object_end(json_out *j) {
  end(j, "}");
}
void json_array_begin(json_out *j, const char *key) {
  begin(j, key, "[");
}
void json_array_end(json_out *j) {
  end(j, "]");
}

/* Exact decimal integers. */
void json_uint(json_out *j, const char *key, uint64_t v) {
  char num[32];
  put_prefix(j, key);
  snprintf(num, sizeof num, "%" PRIu64, v);
  puts_(j, num);
}

void json_int(json_out *j, const char *key, int64_t v) {
  char num[32];
  put_prefix(j, key);
  snprintf(num, sizeof num, "%" PRId64, v);
  puts_(j, num);
}

/* Doubles with 15 significant digits; NaN and infinities become null (JSON has neither). */
void json_double(json_out *j, const char *key, double v) {
  char num[40];
  put_prefix(j, key);
  if (!isfinite(v)) {
    puts_(j, "null");
    return;
  }
  snprintf(num, sizeof num, "%.15g", v);
  puts_(j, num);
}

void json_bool(json_out *j, const char *key, int v) {
  put_prefix(j, key);
  puts_(j, v ? "true" : "false");
}

void json_string(json_out *j, const char *key, const char *s) {
  put_prefix(j, key);
  if (s == NULL) {
    puts_(j, "null");
  } else {
    put_string(j, s);
  }
}

/* Write to "PATH.tmp", then rename over PATH, so readers never see half a document. */
int json_write_file(json_out *j, const char *path, char *err, size_t errlen) {
  char tmp[4096];
  FILE *f = NULL;
  int rc = CS_EIO;

  if (j->failed || j->depth != 0) {
    snprintf(err, errlen, "%s: cannot write statistics: %s", path,
             j->failed ? cs_strerror(j->failed) : "unbalanced JSON document");
    return j->failed ? j->failed : CS_EINVAL;
  }
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    snprintf(err, errlen, "%s: path too long", path);
    return CS_EINVAL;
  }
  f = fopen(tmp, "w");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    goto fail;
  }
  if ((j->buf.len > 0 && fwrite(j->buf.data, 1, j->buf.len, f) != j->buf.len) ||
      fputc('\n', f) == EOF) {
    snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
    goto fail;
  }
  int closed = fclose(f);
  f = NULL;
  if (closed != 0) {
    snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
    goto fail;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    goto fail;
  }
  return 0;
fail:
  if (f != NULL) {
    fclose(f);
  }
  unlink(tmp);
  return rc;
}
