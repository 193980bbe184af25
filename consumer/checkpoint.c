/* checkpoint.c -- the CSV sink's progress file: write after each batch, cut back at start. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "log.h"

#define CHECKPOINT_MAGIC "csvstream-progress 1"
/* A stream that ended is kept this long after its END (its producer may still be waiting for
 * the last acknowledgement across a restart of the consumer), then left out of the file. */
#define CHECKPOINT_KEEP_ENDED_US (3600ull * 1000000ull)
/* The longest file path the progress file records (a longer one is left out), and the longest
 * line it has: "file ", the path in hex, " ", its size (at most 20 digits). A stream line is
 * shorter: its name has at most 255 bytes (WIRE_MAX_STREAM_NAME). */
#define CHECKPOINT_MAX_PATH 4096
#define CHECKPOINT_MAX_LINE (5 + 2 * CHECKPOINT_MAX_PATH + 1 + 20)

/* A stream the file listed, or one this run tracks (st set). */
typedef struct checkpoint_stream {
  uint64_t producer_id;
  char *name; /* bytes, owned */
  size_t len;
  uint64_t seq;          /* as read, for a stream not tracked in this run */
  uint64_t ended_us;     /* wall clock of its END (0: open), as read or first seen ended */
  const sink_stream *st; /* tracked: its durable number at slot is written */
  size_t slot;
} checkpoint_stream;

struct checkpoint {
  char *path; /* CSV_PATH.progress */
  char *tmp;  /* CSV_PATH.progress.tmp */
  int fsync;
  int no_exchange; /* the file system cannot swap two names (RENAME_EXCHANGE): plain renames */
  checkpoint_stream *v;
  size_t n, cap;
  cs_buf text; /* the file's next contents, made in memory (kept between writes) */
};

/* Hex of len bytes into out (2 * len + 1 bytes). */
static void checkpoint_hex(const char *s, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < len; i++) {
    out[2 * i] = digits[(unsigned char)s[i] >> 4];
    out[2 * i + 1] = digits[(unsigned char)s[i] & 15];
  }
  out[2 * len] = '\0';
}

/* The value of a hex digit, or -1. */
static int checkpoint_hex_digit(char d) {
  if (d >= '0' && d <= '9') {
    return d - '0';
  }
  if (d >= 'a' && d <= 'f') {
    return d - 'a' + 10;
  }
  if (d >= 'A' && d <= 'F') {
    return d - 'A' + 10;
  }
  return -1;
}

/* Bytes from hex (at least one byte, two digits each) into a new buffer (*len set, a NUL
 * after the bytes). NULL when it is not that, or out of memory. */
static char *checkpoint_unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex), i;
  char *out;
  if (n == 0 || n % 2 != 0 || (out = malloc(n / 2 + 1)) == NULL) {
    return NULL;
  }
  for (i = 0; i < n / 2; i++) {
    int hi = checkpoint_hex_digit(hex[2 * i]), lo = checkpoint_hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      free(out);
      return NULL;
    }
    out[i] = (char)(hi << 4 | lo);
  }
  out[n / 2] = '\0';
  *len = n / 2;
  return out;
}

/* A number of 64 bits written in base 10 or 16 (digits only: no sign, no space, no 0x).
 * Returns 0, or -1 when it is not that. */
static int checkpoint_number(const char *w, int base, uint64_t *out) {
  const char *d;
  char *end;
  unsigned long long v;
  if (*w == '\0') {
    return -1;
  }
  for (d = w; *d != '\0'; d++) {
    if (base == 10 ? !(*d >= '0' && *d <= '9') : checkpoint_hex_digit(*d) < 0) {
      return -1;
    }
  }
  errno = 0;
  v = strtoull(w, &end, base);
  if (errno != 0 || *end != '\0') {
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

/* The next word of *s (words are separated by spaces), cut in place, *s moved past it; NULL
 * when the line has no more. */
static char *checkpoint_word(char **s) {
  char *w = *s + strspn(*s, " "), *end;
  if (*w == '\0') {
    return NULL;
  }
  end = w + strcspn(w, " ");
  if (*end != '\0') {
    *end++ = '\0';
  }
  *s = end;
  return w;
}

/* Add a stream entry (name copied). Returns it, or NULL when out of memory. */
static checkpoint_stream *checkpoint_add(checkpoint *c, uint64_t id, const char *name, size_t len) {
  checkpoint_stream *e;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    checkpoint_stream *v = realloc(c->v, cap * sizeof(*v));
    if (v == NULL) {
      return NULL;
    }
    c->v = v;
    c->cap = cap;
  }
  e = &c->v[c->n];
  memset(e, 0, sizeof(*e));
  e->name = malloc(len + 1);
  if (e->name == NULL) {
    return NULL;
  }
  memcpy(e->name, name, len);
  e->name[len] = '\0';
  e->len = len;
  e->producer_id = id;
  c->n++;
  return e;
}

/* Cut path back to size bytes, as the progress file says. Returns 0, or CS_EIO with err set:
 * a file shorter than recorded was changed by someone else, and is left alone. */
static int checkpoint_cut(const checkpoint *c, const char *path, uint64_t size, char *err,
                          size_t errlen) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    if (errno == ENOENT) {
      return 0; /* gone since: a new file starts empty */
    }
    snprintf(err, errlen, "%s (listed in %s): %s", path, c->path, strerror(errno));
    return CS_EIO;
  }
  if ((uint64_t)sb.st_size < size) {
    snprintf(err, errlen,
             "%s has %llu bytes but %s says %llu were written: the file was changed after the "
             "consumer stopped, and the consumer will not cut data it cannot account for (move "
             "one of the two files away, then start again)",
             path, (unsigned long long)sb.st_size, c->path, (unsigned long long)size);
    return CS_EIO;
  }
  if ((uint64_t)sb.st_size > size) {
    if (truncate(path, (off_t)size) != 0) {
      snprintf(err, errlen, "%s: cannot cut it back to the %llu bytes %s records: %s", path,
               (unsigned long long)size, c->path, strerror(errno));
      return CS_EIO;
    }
    log_warn("%s: removed %llu bytes written after the last checkpoint (%s): those records "
             "were never acknowledged, so their producers resend them",
             path, (unsigned long long)((uint64_t)sb.st_size - size), c->path);
  }
  return 0;
}

/* Line lineno of the progress file is none that checkpoint_put writes: err says so. Returns
 * CS_EINVAL. */
static int checkpoint_bad_line(const checkpoint *c, unsigned lineno, char *err, size_t errlen) {
  snprintf(err, errlen,
           "%s:%u: not a line of a progress file (move it away to start without it; the CSV "
           "files are then not cut back)",
           c->path, lineno);
  return CS_EINVAL;
}

/* One line of the progress file, as checkpoint_put writes them (cut in place):
 *   file PATH_HEX SIZE
 *   stream PRODUCER_ID_HEX NAME_HEX SEQ [ended WALL_US]
 * Returns 0 or a code with err set (naming the line). */
static int checkpoint_line(checkpoint *c, char *line, unsigned lineno, char *err, size_t errlen) {
  char *rest = line, *kind = checkpoint_word(&rest), *w[5] = {NULL, NULL, NULL, NULL, NULL};
  size_t n = 0, len;
  uint64_t x, y, ended = 0;
  while (n < 5 && (w[n] = checkpoint_word(&rest)) != NULL) {
    n++;
  }
  if (kind == NULL || checkpoint_word(&rest) != NULL) {
    goto bad; /* empty, or more words than any line has */
  }
  if (strcmp(kind, "file") == 0 && n == 2) {
    char *path;
    int rc;
    if (checkpoint_number(w[1], 10, &x) != 0 || (path = checkpoint_unhex(w[0], &len)) == NULL) {
      goto bad;
    }
    if (len > CHECKPOINT_MAX_PATH || strlen(path) != len) {
      free(path); /* longer than the writer writes, or with a NUL byte: no path */
      goto bad;
    }
    rc = checkpoint_cut(c, path, x, err, errlen);
    free(path);
    return rc;
  }
  if (strcmp(kind, "stream") == 0 && (n == 3 || (n == 5 && strcmp(w[3], "ended") == 0))) {
    char *name;
    checkpoint_stream *e;
    if (strlen(w[0]) > 16 || checkpoint_number(w[0], 16, &x) != 0 ||
        checkpoint_number(w[2], 10, &y) != 0 ||
        (n == 5 && checkpoint_number(w[4], 10, &ended) != 0) ||
        (name = checkpoint_unhex(w[1], &len)) == NULL) {
      goto bad;
    }
    e = checkpoint_add(c, x, name, len);
    free(name);
    if (e == NULL) {
      snprintf(err, errlen, "%s:%u: out of memory", c->path, lineno);
      return CS_ENOMEM;
    }
    e->seq = y;
    e->ended_us = ended;
    return 0;
  }
bad:
  return checkpoint_bad_line(c, lineno, err, errlen);
}

/* Read the progress file, cutting the files back; see checkpoint.h. */
int checkpoint_open(checkpoint **out, const char *csv_path, int fsync, char *err, size_t errlen) {
  checkpoint *c = calloc(1, sizeof(*c));
  char *line = NULL;
  size_t line_cap = 0;
  ssize_t line_len;
  unsigned lineno = 0;
  FILE *fp = NULL;
  int rc = CS_ENOMEM;
  size_t n = strlen(csv_path);
  *out = NULL;
  if (c == NULL || (c->path = malloc(n + 10)) == NULL || (c->tmp = malloc(n + 14)) == NULL) {
    snprintf(err, errlen, "%s: out of memory", csv_path);
    goto fail;
  }
  snprintf(c->path, n + 10, "%s.progress", csv_path);
  snprintf(c->tmp, n + 14, "%s.progress.tmp", csv_path);
  c->fsync = fsync;
  fp = fopen(c->path, "r");
  if (fp == NULL && errno != ENOENT) {
    snprintf(err, errlen, "%s: %s", c->path, strerror(errno));
    rc = CS_EIO;
    goto fail;
  }
  /* Lines are read whole, however long (a file path up to CHECKPOINT_MAX_PATH bytes takes
   * twice that in hex); one longer than any the writer makes, or with a NUL byte in it, is
   * not a line of the file. */
  while (fp != NULL && (line_len = getline(&line, &line_cap, fp)) >= 0) {
    int whole;
    lineno++;
    if (line_len > 0 && line[line_len - 1] == '\n') {
      line[--line_len] = '\0';
    }
    whole = (size_t)line_len <= CHECKPOINT_MAX_LINE && strlen(line) == (size_t)line_len;
    if (lineno == 1) {
      if (!whole || strcmp(line, CHECKPOINT_MAGIC) != 0) {
        snprintf(err, errlen, "%s is not a csvstream progress file (move it away)", c->path);
        rc = CS_EINVAL;
        goto fail;
      }
      continue;
    }
    rc = whole ? checkpoint_line(c, line, lineno, err, errlen)
               : checkpoint_bad_line(c, lineno, err, errlen);
    if (rc != 0) {
      goto fail;
    }
  }
  if (fp != NULL && ferror(fp)) {
    int saved = errno;
    snprintf(err, errlen, "%s: cannot read it: %s", c->path, strerror(saved));
    rc = saved == ENOMEM ? CS_ENOMEM : CS_EIO;
    goto fail;
  }
  free(line);
  line = NULL;
  if (fp != NULL) {
    fclose(fp);
    fp = NULL;
  }
  /* The spare is made now: a folder where it cannot be is said at the start, not after the
   * first records arrived (and could not be acknowledged). */
  int fd = open(c->tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    snprintf(err, errlen,
             "%s: cannot make the progress file's spare: %s (it lives beside the CSV file: its "
             "folder must be writable)",
             c->tmp, strerror(errno));
    rc = CS_EIO;
    goto fail;
  }
  close(fd);
  *out = c;
  return 0;
fail:
  free(line);
  if (fp != NULL) {
    fclose(fp);
  }
  checkpoint_free(c);
  return rc;
}

/* Track a stream; see checkpoint.h. */
uint64_t checkpoint_track(checkpoint *c, const sink_stream *st, size_t slot) {
  size_t i, len = strlen(st->name);
  checkpoint_stream *e;
  for (i = 0; i < c->n; i++) {
    e = &c->v[i];
    if (e->producer_id == st->producer_id && e->len == len && memcmp(e->name, st->name, len) == 0) {
      e->st = st;
      e->slot = slot;
      return e->seq;
    }
  }
  e = checkpoint_add(c, st->producer_id, st->name, len);
  if (e != NULL) {
    e->st = st;
    e->slot = slot;
  } else {
    log_warn("%s: out of memory: stream %s's progress is not recorded (it is resent in whole "
             "after a restart)",
             c->path, st->label);
  }
  return 0;
}

/* Stop tracking st; see checkpoint.h. */
void checkpoint_untrack(checkpoint *c, const sink_stream *st) {
  for (size_t i = 0; i < c->n; i++) {
    checkpoint_stream *e = &c->v[i];
    if (e->st == st) {
      e->seq = st->durable[e->slot];
      if (st->ended && e->ended_us == 0) {
        e->ended_us = clock_wall_us();
      }
      e->st = NULL;
    }
  }
}

/* Append the file's lines to b (now: the wall clock). Returns 0 or CS_ENOMEM. */
static int checkpoint_put(checkpoint *c, const outfile *o, cs_buf *b, uint64_t now) {
  char hex[2 * CHECKPOINT_MAX_PATH + 1], num[96];
  uint64_t size;
  const char *path;
  uint64_t records;
  size_t i;
  int failed = cs_buf_append(b, CHECKPOINT_MAGIC "\n", sizeof CHECKPOINT_MAGIC);
  for (i = 0; outfile_file(o, i, &path, &records) == 0 && outfile_file_size(o, i, &size) == 0;
       i++) {
    size_t len = strlen(path);
    if (len > CHECKPOINT_MAX_PATH) {
      continue; /* no file has such a path (PATH_MAX) */
    }
    checkpoint_hex(path, len, hex);
    failed |= cs_buf_append(b, "file ", 5);
    failed |= cs_buf_append(b, hex, 2 * len);
    failed |= cs_buf_append(b, num,
                            (size_t)snprintf(num, sizeof num, " %llu\n", (unsigned long long)size));
  }
  for (i = 0; i < c->n; i++) {
    checkpoint_stream *e = &c->v[i];
    uint64_t seq = e->st != NULL ? e->st->durable[e->slot] : e->seq;
    if (e->st != NULL && e->st->ended && e->ended_us == 0) {
      e->ended_us = now;
    }
    if (e->ended_us != 0 && now - e->ended_us > CHECKPOINT_KEEP_ENDED_US) {
      continue; /* finished long ago: the file stays about as small as the open streams */
    }
    checkpoint_hex(e->name, e->len, hex);
    failed |= cs_buf_append(
        b, num, (size_t)snprintf(num, sizeof num, "stream %016" PRIx64 " ", e->producer_id));
    failed |= cs_buf_append(b, hex, 2 * e->len);
    failed |=
        cs_buf_append(b, num, (size_t)snprintf(num, sizeof num, " %llu", (unsigned long long)seq));
    if (e->ended_us != 0) {
      failed |= cs_buf_append(
          b, num,
          (size_t)snprintf(num, sizeof num, " ended %llu", (unsigned long long)e->ended_us));
    }
    failed |= cs_buf_append_byte(b, '\n');
  }
  return failed ? CS_ENOMEM : 0;
}

/* Put path's new contents in place of its old ones: swap the names of tmp (the new ones) and
 * path, so that tmp keeps the old file for the next write to fill again and no file is made
 * or deleted (on ext4 making a file each time cost more than all else an idle consumer did:
 * the search for a free inode). Where the names cannot be swapped (no progress file yet, or a
 * file system without RENAME_EXCHANGE), a plain rename. Returns 0 or -1 (errno). */
static int checkpoint_replace(checkpoint *c) {
#ifdef RENAME_EXCHANGE
  if (!c->no_exchange) {
    if (renameat2(AT_FDCWD, c->tmp, AT_FDCWD, c->path, RENAME_EXCHANGE) == 0) {
      return 0;
    }
    if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
      c->no_exchange = 1;
    } else if (errno != ENOENT) {
      return -1;
    }
  }
#endif
  return rename(c->tmp, c->path);
}

/* Write len bytes of data at the start of fd. Returns 0 or -1 (errno). */
static int checkpoint_pwrite(int fd, const char *data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t)done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        errno = EIO;
      }
      return -1;
    }
    done += (size_t)n;
  }
  return 0;
}

/* Replace the progress file; see checkpoint.h. The new contents are made in memory, then
 * written into tmp over what it holds (a whole file under path at every moment: tmp is never
 * read) in one call, cut to their length only when the old contents were longer (truncating
 * makes ext4 journal the change at once, which cost an idle consumer more than the rest of a
 * record), then swapped in. */
int checkpoint_write(checkpoint *c, const outfile *o, char *err, size_t errlen) {
  struct stat sb;
  int fd, failed;
  cs_buf_reset(&c->text);
  if (checkpoint_put(c, o, &c->text, clock_wall_us()) != 0) {
    snprintf(err, errlen, "%s: out of memory for the progress file", c->path);
    return CS_ENOMEM;
  }
  fd = open(c->tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot write the progress file: %s", c->tmp, strerror(errno));
    return CS_EIO;
  }
  failed = checkpoint_pwrite(fd, c->text.data, c->text.len) != 0 || fstat(fd, &sb) != 0 ||
           ((uint64_t)sb.st_size > c->text.len && ftruncate(fd, (off_t)c->text.len) != 0) ||
           (c->fsync && fsync(fd) != 0);
  if (failed) {
    int saved = errno;
    close(fd);
    errno = saved;
  } else {
    failed = close(fd) != 0;
  }
  if (failed) {
    snprintf(err, errlen, "%s: cannot write the progress file: %s", c->tmp, strerror(errno));
    unlink(c->tmp);
    return CS_EIO;
  }
  if (checkpoint_replace(c) != 0) {
    snprintf(err, errlen, "%s: cannot replace %s: %s", c->tmp, c->path, strerror(errno));
    return CS_EIO;
  }
  return 0;
}

const char *checkpoint_path(const checkpoint *c) {
  return c->path;
}

void checkpoint_free(checkpoint *c) {
  size_t i;
  if (c == NULL) {
    return;
  }
  for (i = 0; i < c->n; i++) {
    free(c->v[i].name);
  }
  if (c->tmp != NULL) {
    unlink(c->tmp); /* the spare the writes swap with: nothing reads it once the sink closes */
  }
  free(c->v);
  cs_buf_free(&c->text);
  free(c->path);
  free(c->tmp);
  free(c);
}
