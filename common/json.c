/* json.c -- a small JSON writer for the --stats-json files. */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* Length of the well-formed UTF-8 sequence of 2 to 4 bytes at s (NUL-terminated), or 0 (RFC
 * 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq_len(const unsigned char *s) {
  size_t len;
  unsigned long cp;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    len = 2;
    cp = s[0] & 0x1fu;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    len = 3;
    cp = s[0] & 0x0fu;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    len = 4;
    cp = s[0] & 0x07u;
  } else {
    return 0;
  }
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) { /* also stops at the terminating NUL */
      return 0;
    }
    cp = cp << 6 | (s[i] & 0x3fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

/* Append s as a JSON string literal: quotes, backslash and control characters escaped (RFC
 * 8259); well-formed UTF-8 passes unchanged, and every byte that is not part of it (names from
 * peers can hold any bytes) becomes U+FFFD, so the document is always valid UTF-8. */
static void put_string(json_out *j, const char *s) {
  static const char hex[] = "0123456789abcdef";
  put(j, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    char esc[7];
    if (*p >= 0x80) {
      size_t n = utf8_seq_len(p);
      if (n == 0) {
        put(j, "\\ufffd", 6);
      } else {
        put(j, (const char *)p, n);
        p += n - 1;
      }
      continue;
    }
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

void json_raw(json_out *j, const char *key, const char *text, size_t len) {
  put_prefix(j, key);
  put(j, text, len);
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

/* 1 if path is "-", standard output. */
int json_path_is_stdout(const char *path) {
  return path != NULL && strcmp(path, "-") == 0;
}

/* Does json_write_file write path through PATH.tmp and a rename? Only a regular file (or a
 * name that does not exist yet) is replaced that way: a rename over a device, a FIFO or a
 * symlink to one (/dev/stdout) would put a file where the link or the device was. lstat()
 * first: a symlink, even to a regular file, is written through, so the link stays a link. */
static int json_path_renames(const char *path) {
  struct stat st;
  if (json_path_is_stdout(path)) {
    return 0;
  }
  if (lstat(path, &st) != 0) {
    return 1; /* a new file (or an error that the write will name) */
  }
  return S_ISREG(st.st_mode);
}

/* Write the document and a newline to f; name is for the message. Returns 0 or CS_EIO. */
static int json_put(const json_out *j, FILE *f, const char *name, char *err, size_t errlen) {
  if ((j->buf.len > 0 && fwrite(j->buf.data, 1, j->buf.len, f) != j->buf.len) ||
      fputc('\n', f) == EOF || fflush(f) != 0) {
    snprintf(err, errlen, "%s: cannot write: %s", name, strerror(errno));
    return CS_EIO;
  }
  return 0;
}

/* Write straight into path (a device, a FIFO, a symlink) or to standard output ("-"), no
 * temporary: there is nothing to rename over. */
static int json_write_direct(const json_out *j, const char *path, char *err, size_t errlen) {
  FILE *f;
  int rc;
  if (json_path_is_stdout(path)) {
    return json_put(j, stdout, "standard output", err, errlen);
  }
  f = fopen(path, "w");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return CS_EIO;
  }
  rc = json_put(j, f, path, err, errlen);
  if (fclose(f) != 0 && rc == 0) {
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    rc = CS_EIO;
  }
  return rc;
}

/* A regular file: write "PATH.tmp", then rename it over PATH, so readers never see half a
 * document. Anything else is written directly (json_path_renames). */
int json_write_file(json_out *j, const char *path, char *err, size_t errlen) {
  char tmp[4096];
  FILE *f = NULL;
  int rc = CS_EIO;

  if (j->failed || j->depth != 0) {
    snprintf(err, errlen, "%s: cannot write statistics: %s", path,
             j->failed ? cs_strerror(j->failed) : "unbalanced JSON document");
    return j->failed ? j->failed : CS_EINVAL;
  }
  if (!json_path_renames(path)) {
    return json_write_direct(j, path, err, errlen);
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
  if (json_put(j, f, tmp, err, errlen) != 0) {
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

/* Check that what json_write_direct will do at exit can be done. A FIFO is not opened: a
 * reader already waiting on it would take the close for the end of the data, so it is asked
 * with access(W_OK). Anything else is opened for writing, without O_CREAT (it exists) and
 * without blocking, and closed again. */
static int json_check_direct(const char *path, char *err, size_t errlen) {
  struct stat st;
  int fd, e;
  if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
    if (access(path, W_OK) == 0) {
      return 0;
    }
    e = errno;
    snprintf(err, errlen, "cannot open %s for writing: %s", path, strerror(e));
    return -e;
  }
  do {
    fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  e = errno;
  snprintf(err, errlen, "cannot open %s for writing: %s", path, strerror(e));
  return -e;
}

/* Try what json_write_file will do at exit: for a regular file, create PATH.tmp (to be
 * renamed over PATH); for anything else, open it for writing. */
int json_file_check(const char *path, char *err, size_t errlen) {
  char tmp[4096];
  struct stat st;
  int fd, e;

  if (json_path_is_stdout(path)) {
    return 0;
  }
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(EISDIR));
    return -EISDIR;
  }
  if (!json_path_renames(path)) {
    return json_check_direct(path, err, errlen);
  }
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    snprintf(err, errlen, "%s: path too long", path);
    return CS_EINVAL;
  }
  /* O_EXCL: remove only a file made here; a stale PATH.tmp is reused (and replaced) at exit. */
  do {
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) {
    close(fd);
    unlink(tmp);
    return 0;
  }
  if (errno == EEXIST) {
    /* Opening it, not access(W_OK): a stale PATH.tmp that is a directory, or writable only for
     * the real user id, fails here as it would at exit. */
    do {
      fd = open(tmp, O_WRONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) {
      close(fd);
      return 0;
    }
  }
  e = errno;
  snprintf(err, errlen, "cannot create %s: %s", path, strerror(e));
  return -e;
}
