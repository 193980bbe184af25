/* sink_pg.c -- the PostgreSQL sink: rows queued (rowq.c) and written over libpq without
 * blocking the loop (a uv_poll_t on the connection's socket), in batches of COPY inside one
 * transaction with the acknowledged streams' progress; reconnects with jittered back-off while
 * the server is away, and saves what it could not commit at the stop. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "error.h"
#include "log.h"
#include "options.h"
#include "sink.h"

#ifndef CSVSTREAM_HAVE_LIBPQ

/* Built without libpq: --db with a PostgreSQL target is an error that says what to install. */
static int sink_pg_open(void **self, const consumer_options *opt, const sink_env *env) {
  (void)env;
  *self = NULL;
  if (opt->db_path == NULL || !consumer_options_db_is_postgres(opt->db_path)) {
    return SINK_OFF;
  }
  log_error("--db: this consumer was built without PostgreSQL (libpq); install libpq-dev and "
            "build again, or give --db an SQLite file name");
  return CS_EINVAL;
}

static int sink_pg_add(void *self, const sink_record *r) {
  (void)self;
  (void)r;
  return CS_EINVAL;
}

static int sink_pg_close(void *self, int discard) {
  (void)self;
  (void)discard;
  return 0;
}

const sink_ops sink_pg_ops = {
    .name = "postgres",
    .open = sink_pg_open,
    .add = sink_pg_add,
    .close = sink_pg_close,
};

#else

#include <libpq-fe.h>
#include <uv.h>

#include "buf.h"
#include "colnames.h"
#include "fields.h"
#include "rowq.h"
#include "sink_pg_names.h"
#include "words.h"

#define PG_BATCH_ROWS 65536        /* rows per transaction at most (sized by scripts/bench-pg) */
#define PG_BATCH_BYTES (16u << 20) /* and about this much COPY data */
#define PG_COMMIT_PACE_US 50000    /* a commit at most every 50 ms while rows trickle in */
#define PG_MAX_PENDING_BYTES (256u << 20)
#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS 2000
#define PG_CONNECT_TIMEOUT_US 10000000 /* a connection attempt that takes longer is dropped */
#define PG_DRAIN_TIMEOUT_US 10000000   /* at the stop, wait this long for the server */
#define PG_LOG_INTERVAL_US 1000000     /* repeated trouble is logged once a second */
#define PG_SAFE_MODE_US 2000000        /* after a conflict, batches go through the staging table */
#define PG_LOCK_TIMEOUT "5s"           /* a batch's lock waits end (see pg_batch_begin_sql) */
#define PG_LANE_BACKOFF_MAX_MS 60000   /* a refused second connection: tried again this late */
#define PG_LANE_LOG_INTERVAL_US 60000000
#define PG_COPY_CHUNK 65536
#define PG_PRE_STEP 4096 /* rows made into COPY lines ahead per flush, at most */
#define PG_NAME_MAX 63   /* PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1) */
#define PG_NAME_TRIES 50
#define PG_MAX_COLUMNS 1600 /* PostgreSQL's column limit per table */
#define PG_PROGRESS_TABLE "_csvstream_progress"

/* Names no value column may have: the metadata columns every table carries after the CSV's own
 * (the first PG_NMETA, pg_meta_names), then the system columns PostgreSQL keeps for itself in
 * every table. */
static const char *const pg_reserved_names[] = {"_producer",    "_protocol", "_seq",     "_sent_us",
                                                "_received_us", "_peer",     "tableoid", "xmin",
                                                "cmin",         "xmax",      "cmax",     "ctid"};
static const char *const *const pg_meta_names = pg_reserved_names;
static const char *const pg_meta_types[] = {
    "text COLLATE \"C\"", "text", "bigint", "bigint", "bigint", "text"};
#define PG_NMETA 6

/* PostgreSQL's rules for names: compared byte for byte, at most 63 bytes, never a reserved
 * name; bytes that are not UTF-8 (and NULs) become '_'. */
static const colnames_policy pg_colnames = {.compare = strcmp,
                                            .max_bytes = PG_NAME_MAX,
                                            .reserved = pg_reserved_names,
                                            .nreserved = sizeof pg_reserved_names /
                                                         sizeof pg_reserved_names[0],
                                            .repair = COLNAMES_REPAIR_UNDERSCORE,
                                            .name_realloc = realloc,
                                            .name_free = free};

/* A lane's connection. A batch goes whole (PG_BATCH: BEGIN, progress locked, COPY, progress,
 * COMMIT in one query) when it is the only one in flight; one that starts while another is in
 * flight goes in steps (PG_COPYING, PG_COPIED, PG_CHECK, then PG_BATCH for the progress and the
 * COMMIT), so that its rows go in beside the other's and its commit follows it. */
enum pg_state {
  PG_DOWN,       /* no connection: the next attempt is at retry_us */
  PG_CONNECTING, /* PQconnectPoll in progress */
  PG_IDLE,       /* connected, nothing in flight (a failed batch waits for retry_us) */
  PG_NAMING,     /* the catalog query for new tables is in flight */
  PG_BATCH,      /* a batch transaction, or the end of a stepped one, is in flight */
  PG_COPYING,    /* a stepped batch: BEGIN and its COPY are in flight */
  PG_COPIED,     /* a stepped batch: its rows are in, uncommitted; it waits for the batch before */
  PG_CHECK,      /* a stepped batch: its streams' progress is being locked and read */
  PG_ROLLBACK,   /* the ROLLBACK after a failed batch is in flight */
  PG_FAILED      /* a permanent error: nothing more is written */
};

#define PG_LANES 2            /* connections: batches in flight at once at most */
#define PG_STEP_MIN_ROWS 8192 /* a second batch goes in beside the first from this many rows */

/* One table, shared by every stream of the same name and header. */
typedef struct pg_table {
  struct pg_table *next;
  char *stream_name; /* NUL-terminated copy of the stream name */
  size_t nheader;
  cs_field *header; /* the raw header, for matching later streams */
  char *header_data;
  colnames cols;     /* value column names: header names made safe, then extra_N / column_N */
  size_t max_fields; /* widest row queued before the table had its name */
  char *name;        /* the table's name, NULL until the catalog was read */
  int created;       /* exists in the database with ncols_db of its value columns */
  int binary;        /* its COPY data is binary: every column has the type the sink gives it */
  size_t ncols_db;
  int in_batch; /* while a batch is being built: its segment index + 1 there */
  /* Rows queued after the batch in flight, made into COPY lines as they come (so that the next
   * batch is ready when this one commits, and no loop turn formats a whole batch). */
  cs_buf pre;
  size_t pre_rows;
  size_t pre_ncols; /* the columns those lines have */
  int pre_binary;   /* and their format */
  int in_pre;
  char stream_label[LOG_ESCAPE_BUF];
  char name_label[LOG_ESCAPE_BUF];
} pg_table;

/* One stream's rows in a batch, or among the lines made ahead: what the commit makes durable,
 * and the acknowledged streams' progress. */
typedef struct pg_tally {
  sink_stream *st;      /* the stream table's; a queued row of it keeps it there */
  uint64_t first, last; /* its lowest and highest sequence numbers there */
  size_t rows;
} pg_tally;

typedef struct pg_tallies {
  pg_tally *v;
  size_t n, cap;
  size_t hint; /* the entry of the last row counted: rows of one stream come in runs */
} pg_tallies;

/* A stream's progress as the progress table held it. */
typedef struct pg_progress {
  char producer[17];
  char *stream;
  size_t len;
  uint64_t seq;
} pg_progress;

/* One acknowledged stream of a batch: its first and last sequence numbers there. */
typedef struct pg_mark {
  const sink_stream *st;
  uint64_t first, last;
} pg_mark;

/* One table's part of a batch: its COPY data. */
typedef struct pg_seg {
  pg_table *t;
  cs_buf copy;
  size_t rows;
  size_t ncols_tx; /* the value columns the table has once the batch commits */
} pg_seg;

struct sink_pg;

/* One connection and the batch it has in flight. Lane 0 is the sink's own: its state is the
 * sink's (down, reconnecting, failed); the others are opened while rows wait, and are closed
 * quietly when they break. */
typedef struct pg_lane {
  struct sink_pg *p;
  int index;
  PGconn *conn;
  uv_poll_t *poll; /* on PQsocket; its own allocation, freed in its close callback */
  int poll_fd, poll_events;
  enum pg_state state;
  uint64_t connect_started_us;
  uint64_t retry_us;   /* lanes but the first: the next connection attempt */
  uint64_t backoff_ms; /* and its back-off */
  /* The batch in flight (batch_n rows: batch_first to batch_last in the queue). */
  uint64_t order; /* its place among the batches: commits go in this order */
  size_t batch_n;
  const rowq_row *batch_first, *batch_last;
  int stepped;  /* it started while another was in flight (the PG_COPYING steps) */
  int doomed;   /* a batch before it failed: it is rolled back, not committed */
  pg_seg *segs; /* segs[0..nsegs): the tables of the batch, in the order of their COPY */
  size_t nsegs, segs_cap, seg_next;
  size_t copy_off;
  int copying;            /* COPY data is being sent for segs[seg_next - 1] */
  int copy_ended;         /* PQputCopyEnd went out */
  int want_write;         /* libpq has output it could not send yet */
  int batch_safe;         /* this batch goes through a staging table that leaves out stored rows */
  int batch_conflict;     /* the table has rows of this batch already (another consumer's) */
  int progress_tx;        /* this batch creates the progress table */
  pg_tallies batch_tally; /* the streams of the batch */
  pg_mark *marks;         /* the batch's acknowledged streams */
  size_t nmarks, marks_cap;
  char err_state[6];
  char err_msg[1024];
  size_t err_seg_line; /* COPY line the server named (0: none) */
  pg_table *err_table;
} pg_lane;

typedef struct sink_pg {
  sink_env env;
  const char *target;   /* --db as given (points into argv): never logged */
  char shown[1024];     /* the target with its password removed: what logs say */
  char save_path[4096]; /* where the stop saves rows it could not commit */
  uv_loop_t *loop;
  pg_lane lanes[PG_LANES];
  uint64_t next_order;
  rowq *rows; /* queued, not committed; each row's tag is its pg_table */
  pg_table *tables;
  pg_progress *progress;
  size_t nprogress;
  int progress_table; /* the progress table is known to exist */
  uint64_t committed, dropped, reconnects, conflicts, retries;
  uint64_t batches, batches_parallel; /* committed; of them, sent beside another (stepped) */
  /* The rows queued after the batches in flight, made into COPY lines (pg_table.pre), a batch's
   * worth at most: while valid, they are the first pre_rows rows behind the newest batch, and
   * pre_next
   * is the first row after them without its line (NULL: there is none), which the flushes make
   * a few thousand at a time; else the next batch formats its rows itself. */
  int pre_valid;
  size_t pre_rows, pre_bytes;
  const rowq_row *pre_next;
  const rowq_row *pre_last; /* the last row with a line made ahead */
  pg_table **pre_tables;    /* the tables with such lines, in the order they came */
  size_t npre, pre_cap;
  pg_tallies pre_tally; /* the streams of the lines made ahead */
  uint64_t safe_until_us;
  /* Timing. */
  uint64_t last_commit_us;
  uint64_t retry_us; /* DOWN: the next connection attempt; IDLE: a failed batch's retry */
  uint64_t backoff_ms;
  uint64_t connect_started_us;
  uint64_t down_since_us; /* 0 while connected */
  uint64_t rng;
  log_limiter down_log, drop_log, up_log, lane_log;
  int failed;
  int commit_unknown; /* a commit was in flight when the sink stopped */
  int step_hold;      /* no batch beside another until the next commit */
  int fsync;          /* --fsync */
  int drain_started, drain_warned;
  uint64_t drain_deadline_us;
  /* One stream's constant metadata in one COPY format (pg_meta_make). */
  const sink_stream *meta_st;
  int meta_binary;
  cs_buf meta_head, meta_tail;
} sink_pg;

static void pg_drive(sink_pg *p);
static void pg_pre_drop(sink_pg *p);

/* xorshift for the back-off's jitter. */
static uint64_t pg_random(sink_pg *p) {
  uint64_t x = p->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  p->rng = x;
  return x;
}

/* Copy the target into out without its password: a URI's "user:secret@" loses ":secret" and
 * its "password=" parameter, a keyword string its password=... pair. */
static void pg_target_shown(const char *target, char *out, size_t len) {
  cs_buf b;
  const char *p = target;
  cs_buf_init(&b);
  if (strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0) {
    const char *auth = strstr(target, "://") + 3;
    const char *end = auth + strcspn(auth, "/?");
    const char *at = NULL, *colon = NULL;
    for (const char *q = auth; q < end; q++) {
      if (*q == '@') {
        at = q;
      }
    }
    if (at != NULL) {
      colon = memchr(auth, ':', (size_t)(at - auth));
    }
    if (colon != NULL) {
      cs_buf_append(&b, target, (size_t)(colon - target));
      cs_buf_append(&b, at, (size_t)(end - at));
    } else {
      cs_buf_append(&b, target, (size_t)(end - target));
    }
    p = end;
    /* The query: every parameter but password. */
    while (*p != '\0') {
      size_t n = strcspn(p + 1, "&") + 1; /* p at '?', '&' or '/' */
      if (*p == '/' && strchr(p, '?') != NULL) {
        n = (size_t)(strchr(p, '?') - p);
      } else if (*p == '/') {
        n = strlen(p);
      }
      if (!((*p == '?' || *p == '&') && strncmp(p + 1, "password=", 9) == 0)) {
        cs_buf_append(&b, p, n);
      } else if (*p == '?' && p[n] == '&') {
        cs_buf_append(&b, "?", 1);
        n++;
      }
      p += n;
    }
  } else {
    /* keyword=value pairs, values maybe in single quotes with backslash escapes. */
    while (*p != '\0') {
      const char *start = p, *key = p;
      while (*p == ' ' || *p == '\t' || *p == '\n') {
        p++;
      }
      key = p;
      while (*p != '\0' && *p != '=' && *p != ' ') {
        p++;
      }
      size_t keylen = (size_t)(p - key);
      while (*p == ' ') {
        p++;
      }
      if (*p == '=') {
        p++;
        while (*p == ' ') {
          p++;
        }
        if (*p == '\'') {
          p++;
          while (*p != '\0' && *p != '\'') {
            p += p[0] == '\\' && p[1] != '\0' ? 2 : 1;
          }
          if (*p == '\'') {
            p++;
          }
        } else {
          while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n') {
            p++;
          }
        }
      }
      if (!(keylen == 8 && strncmp(key, "password", 8) == 0)) {
        cs_buf_append(&b, start, (size_t)(p - start));
      }
      if (p == start) {
        p++; /* cannot happen; never loop forever */
      }
    }
  }
  snprintf(out, len, "%.*s", b.data != NULL ? (int)b.len : 0, b.data != NULL ? b.data : "");
  cs_buf_free(&b);
}

/* Word-at-a-time tests on 8 bytes (the usual bit tricks): a high bit set in the result marks a
 * byte that is 0x80 or above, or 0 (pg_word_odd); below 14 (tab, line feed and carriage return
 * among them) or a backslash (pg_word_escapes). Either may mark a byte above a marked one too. */
#define PG_ONES 0x0101010101010101ull
#define PG_HIGHS 0x8080808080808080ull

static uint64_t pg_word(const void *s) {
  uint64_t w;
  memcpy(&w, s, sizeof w);
  return w;
}

static uint64_t pg_word_odd(uint64_t w) {
  return (w | ((w - PG_ONES) & ~w)) & PG_HIGHS;
}

static uint64_t pg_word_escapes(uint64_t w) {
  uint64_t bs = w ^ (PG_ONES * '\\');
  return (((w - PG_ONES * 14) & ~w) | ((bs - PG_ONES) & ~bs)) & PG_HIGHS;
}

/* 1 if the n bytes at s are valid UTF-8 without a NUL (what a PostgreSQL text value can be). */
static int pg_text_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k;
    uint32_t cp;
    /* ASCII without NUL, eight bytes at a time, then byte by byte. */
    while (i + 8 <= n && pg_word_odd(pg_word(s + i)) == 0) {
      i += 8;
    }
    while (i < n && (unsigned char)(s[i] - 1) < 0x7f) {
      i++;
    }
    if (i == n) {
      break;
    }
    c = s[i];
    if (c == 0) {
      return 0;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + k >= n) {
      return 0;
    }
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) {
        return 0;
      }
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && cp < 0x10000) ||
        cp > 0x10ffff) {
      return 0;
    }
    i += k + 1;
  }
  return 1;
}

static int pg_is_meta(const char *name) {
  for (size_t i = 0; i < PG_NMETA; i++) {
    if (strcmp(name, pg_meta_names[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

static void pg_table_free(pg_table *t) {
  if (t == NULL) {
    return;
  }
  colnames_free(&t->cols);
  free(t->name);
  free(t->stream_name);
  free(t->header);
  free(t->header_data);
  cs_buf_free(&t->pre);
  free(t);
}

/* The table for st: cached in its slot, an earlier one of the same name and header, or a new
 * one (named once the catalog is read). Returns it, or NULL when out of memory. */
static pg_table *pg_table_for(sink_pg *p, sink_stream *st) {
  pg_table *t = st->slot[p->env.slot];
  if (t != NULL) {
    return t;
  }
  for (t = p->tables; t != NULL; t = t->next) {
    if (strcmp(t->stream_name, st->name) == 0 &&
        cs_fields_equal(t->header, t->nheader, st->columns, st->ncolumns)) {
      st->slot[p->env.slot] = t;
      return t;
    }
  }
  t = calloc(1, sizeof *t);
  if (t == NULL || (t->stream_name = strdup(st->name)) == NULL ||
      cs_fields_copy(st->columns, st->ncolumns, &t->header, &t->header_data) != 0) {
    pg_table_free(t);
    return NULL;
  }
  colnames_init(&t->cols, &pg_colnames);
  cs_buf_init(&t->pre);
  t->binary = 1; /* until an adopted table's columns say otherwise */
  t->nheader = st->ncolumns;
  log_escape(t->stream_label, sizeof t->stream_label, st->name, strlen(st->name));
  for (size_t i = 0; i < t->nheader; i++) {
    char *base =
        colnames_wanted(&pg_colnames, st->columns[i].data, st->columns[i].len, i + 1, NULL);
    int rc = base != NULL ? colnames_add(&t->cols, base) : CS_ENOMEM;
    free(base);
    if (rc != 0) {
      pg_table_free(t);
      return NULL;
    }
  }
  t->next = p->tables;
  p->tables = t;
  st->slot[p->env.slot] = t;
  return t;
}

int sink_pg_column_names(const cs_field *header, size_t n, const char *const *adopted,
                         size_t nadopted, size_t width, char ***names, size_t *count) {
  sink_pg *p = calloc(1, sizeof *p);
  sink_stream st;
  pg_table *t = NULL;
  int rc = CS_ENOMEM;
  memset(&st, 0, sizeof st);
  st.name = "";
  st.columns = header;
  st.ncolumns = n;
  if (p == NULL || (t = pg_table_for(p, &st)) == NULL) {
    goto done;
  }
  for (size_t i = 0; i < nadopted; i++) {
    if (colnames_add(&t->cols, adopted[i]) != 0) {
      goto done;
    }
  }
  if (colnames_widen(&t->cols, t->nheader, width) != 0) {
    goto done;
  }
  /* The names are handed over: the list forgets them. */
  *names = t->cols.names;
  *count = t->cols.n;
  t->cols.names = NULL; /* the names are the caller's now; the rest is freed with the table */
  t->cols.n = t->cols.cap = 0;
  rc = 0;
done:
  pg_table_free(t);
  free(p);
  return rc;
}

char *sink_pg_table_candidate(const char *stream, unsigned long k) {
  return colnames_numbered(&pg_colnames, stream, k);
}

/* Append an identifier in double quotes. */
static void pg_ident(cs_buf *b, const char *name) {
  cs_buf_append_byte(b, '"');
  for (const char *q = name; *q; q++) {
    if (*q == '"') {
      cs_buf_append_byte(b, '"');
    }
    cs_buf_append_byte(b, *q);
  }
  cs_buf_append_byte(b, '"');
}

/* Append a string literal (standard_conforming_strings: only quotes are doubled; the E form
 * is avoided, and the names never hold a backslash that could matter). */
static void pg_literal(cs_buf *b, const char *s) {
  cs_buf_append(b, "'", 1);
  for (const char *q = s; *q; q++) {
    if (*q == '\'') {
      cs_buf_append_byte(b, '\'');
    }
    cs_buf_append_byte(b, *q);
  }
  cs_buf_append(b, "'", 1);
}

/* Write n bytes as COPY text at o, which has room for 2 * n bytes: backslash, tab, line feed and
 * CR escaped (eight bytes that need none are copied as one word). Returns the end of what was
 * written. */
static char *pg_copy_text(char *o, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w = pg_word(s + i);
      if (pg_word_escapes(w) == 0) {
        memcpy(o, &w, sizeof w);
        o += 8;
        i += 8;
        continue;
      }
    }
    for (size_t end = i + 8 < n ? i + 8 : n; i < end; i++) {
      char c = s[i];
      if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
        *o++ = '\\';
        c = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
      }
      *o++ = c;
    }
  }
  return o;
}

/* Write v in decimal at o (room for 20 bytes). Returns the end of what was written. */
static char *pg_u64(char *o, uint64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";
  char tmp[20];
  size_t n = sizeof tmp;
  while (v >= 100) {
    n -= 2;
    memcpy(tmp + n, pairs + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    n -= 2;
    memcpy(tmp + n, pairs + 2 * v, 2);
  } else {
    tmp[--n] = (char)('0' + v);
  }
  memcpy(o, tmp + n, sizeof tmp - n);
  return o + (sizeof tmp - n);
}

/* Write v as 4 bytes, most significant first, at o. Returns the end. */
static char *pg_be32(char *o, uint32_t v) {
  o[0] = (char)(v >> 24);
  o[1] = (char)(v >> 16);
  o[2] = (char)(v >> 8);
  o[3] = (char)v;
  return o + 4;
}

/* A binary COPY field: its length, then its n bytes. Returns the end. */
static char *pg_bin_field(char *o, const char *s, size_t n) {
  o = pg_be32(o, (uint32_t)n);
  memcpy(o, s, n);
  return o + n;
}

/* A bigint as a binary COPY field. Returns the end. */
static char *pg_bin_u64(char *o, uint64_t v) {
  o = pg_be32(o, 8);
  o = pg_be32(o, (uint32_t)(v >> 32));
  return pg_be32(o, (uint32_t)v);
}

/* The metadata that is the same on each of st's rows, in t's format, made once per stream and
 * format (the last asked about; sink_pg_forget drops it): before the numbers
 * "producer\tprotocol\t" as COPY text, or those two binary fields; after them "\tpeer\n", or
 * that binary field. Returns 0 or CS_ENOMEM. */
static int pg_meta_make(sink_pg *p, const sink_stream *st, int binary) {
  size_t np = strlen(st->producer_hex), nr = strlen(st->protocol), ne = strlen(st->peer);
  char *o;
  if (p->meta_st == st && p->meta_binary == binary) {
    return 0;
  }
  p->meta_st = NULL;
  cs_buf_reset(&p->meta_head);
  cs_buf_reset(&p->meta_tail);
  if (cs_buf_reserve(&p->meta_head, 2 * (np + nr) + 16) != 0 ||
      cs_buf_reserve(&p->meta_tail, 2 * ne + 16) != 0) {
    return CS_ENOMEM;
  }
  o = p->meta_head.data;
  if (binary) {
    o = pg_bin_field(o, st->producer_hex, np);
    o = pg_bin_field(o, st->protocol, nr);
  } else {
    o = pg_copy_text(o, st->producer_hex, np);
    *o++ = '\t';
    o = pg_copy_text(o, st->protocol, nr);
    *o++ = '\t';
  }
  p->meta_head.len = (size_t)(o - p->meta_head.data);
  o = p->meta_tail.data;
  if (binary) {
    o = pg_bin_field(o, st->peer, ne);
  } else {
    *o++ = '\t';
    o = pg_copy_text(o, st->peer, ne);
    *o++ = '\n';
  }
  p->meta_tail.len = (size_t)(o - p->meta_tail.data);
  p->meta_st = st;
  p->meta_binary = binary;
  return 0;
}

/* One row (a record of stream st) as a COPY line of t's columns (short rows get NULL), in t's
 * format, appended to b: text (a line of tab-separated escaped values), or binary (a tuple of
 * length-prefixed fields; the 19-byte file header first when b is empty). Returns 0 or
 * CS_ENOMEM (b as it was). */
static int pg_copy_line(sink_pg *p, const pg_table *t, cs_buf *b, const sink_stream *st,
                        uint64_t seq, uint64_t sent_us, uint64_t received_us, size_t nfields,
                        const cs_field *fields) {
  static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
  size_t room = 4 * t->cols.n + 3 * 21 + sizeof header + 2;
  char *o;
  if (pg_meta_make(p, st, t->binary) != 0) {
    return CS_ENOMEM;
  }
  for (size_t i = 0; i < nfields && i < t->cols.n; i++) {
    room += 2 * fields[i].len;
  }
  room += p->meta_head.len + p->meta_tail.len;
  if (cs_buf_reserve(b, room) != 0) {
    return CS_ENOMEM;
  }
  o = b->data + b->len;
  if (t->binary) {
    if (b->len == 0) {
      memcpy(o, header, sizeof header);
      o += sizeof header;
    }
    uint32_t n = (uint32_t)(t->cols.n + PG_NMETA);
    *o++ = (char)(n >> 8);
    *o++ = (char)n;
    for (size_t i = 0; i < t->cols.n; i++) {
      o = i < nfields ? pg_bin_field(o, fields[i].data, fields[i].len) : pg_be32(o, UINT32_MAX);
    }
    memcpy(o, p->meta_head.data, p->meta_head.len);
    o += p->meta_head.len;
    o = pg_bin_u64(o, seq);
    o = pg_bin_u64(o, sent_us);
    o = pg_bin_u64(o, received_us);
  } else {
    for (size_t i = 0; i < t->cols.n; i++) {
      if (i < nfields) {
        o = pg_copy_text(o, fields[i].data, fields[i].len);
      } else {
        *o++ = '\\';
        *o++ = 'N';
      }
      *o++ = '\t';
    }
    memcpy(o, p->meta_head.data, p->meta_head.len);
    o += p->meta_head.len;
    o = pg_u64(o, seq);
    *o++ = '\t';
    o = pg_u64(o, sent_us);
    *o++ = '\t';
    o = pg_u64(o, received_us);
  }
  memcpy(o, p->meta_tail.data, p->meta_tail.len);
  o += p->meta_tail.len;
  b->len = (size_t)(o - b->data);
  return 0;
}

/* The column list of t: its value columns, then the metadata. */
static void pg_col_list(cs_buf *b, const pg_table *t) {
  cs_buf_append_byte(b, '(');
  for (size_t i = 0; i < t->cols.n; i++) {
    pg_ident(b, t->cols.names[i]);
    cs_buf_append(b, ", ", 2);
  }
  for (size_t i = 0; i < PG_NMETA; i++) {
    cs_buf_append(b, i ? ", " : "", i ? 2 : 0);
    pg_ident(b, pg_meta_names[i]);
  }
  cs_buf_append_byte(b, ')');
}

/* " FROM STDIN" and t's format, ending the COPY statement. */
static void pg_copy_from(cs_buf *sql, const pg_table *t) {
  static const char text[] = " FROM STDIN;\n", binary[] = " FROM STDIN (FORMAT binary);\n";
  if (t->binary) {
    cs_buf_append(sql, binary, sizeof binary - 1);
  } else {
    cs_buf_append(sql, text, sizeof text - 1);
  }
}

/* ---- the connections and their watchers ---- */

static void pg_poll_free_cb(uv_handle_t *h) {
  free(h);
}

/* Stop watching the lane's socket (before libpq closes it). */
static void pg_unwatch(pg_lane *l) {
  if (l->poll != NULL) {
    uv_close((uv_handle_t *)l->poll, pg_poll_free_cb);
    l->poll = NULL;
  }
}

static uint64_t pg_advance(sink_pg *p, uint64_t now, int force);

/* A connection's socket is ready: go on with the queries in flight, and when one is over start
 * the next batch at once (a batch of lines made ahead waits for no other event). */
static void pg_poll_cb(uv_poll_t *h, int status, int events) {
  pg_lane *l = h->data;
  sink_pg *p = l->p;
  (void)events;
  if (status < 0) {
    log_debug("database %s: watching the socket: %s", p->shown, uv_strerror(status));
  }
  (void)pg_advance(p, clock_mono_us(), p->drain_started);
}

/* Watch the lane's socket for events (UV_READABLE, and UV_WRITABLE when libpq has output
 * waiting). fresh: the socket may be a new one (while connecting). Without a loop, flush polls. */
static void pg_watch(pg_lane *l, int events, int fresh) {
  sink_pg *p = l->p;
  int fd, rc;
  if (p->loop == NULL || l->conn == NULL) {
    return;
  }
  fd = PQsocket(l->conn);
  if (fresh || (l->poll != NULL && l->poll_fd != fd)) {
    pg_unwatch(l);
  }
  if (fd < 0) {
    return;
  }
  if (l->poll == NULL) {
    l->poll = calloc(1, sizeof *l->poll);
    if (l->poll == NULL) {
      return; /* flush polls instead */
    }
    rc = uv_poll_init(p->loop, l->poll, fd);
    if (rc != 0) {
      log_warn("database %s: cannot watch the connection (%s); polling it instead", p->shown,
               uv_strerror(rc));
      free(l->poll);
      l->poll = NULL;
      return;
    }
    l->poll->data = l;
    uv_unref((uv_handle_t *)l->poll); /* the loop ends when the listeners are gone */
    l->poll_fd = fd;
    l->poll_events = 0;
  }
  if (events != l->poll_events) {
    rc = uv_poll_start(l->poll, events, pg_poll_cb);
    if (rc != 0) {
      log_warn("database %s: cannot watch the connection: %s", p->shown, uv_strerror(rc));
    }
    l->poll_events = events;
  }
}

/* Drop libpq's notices (IF NOT EXISTS says "skipping"); warnings go to the debug log. */
static void pg_notice_cb(void *arg, const char *message) {
  (void)arg;
  log_debug("postgres: %s", message);
}

/* Is a connection failure likely to pass (the server down, starting, full)? */
static int pg_connect_transient(const char *msg) {
  static const char *const passing[] = {"Connection refused",
                                        "No such file or directory",
                                        "timeout expired",
                                        "the database system is",
                                        "Network is unreachable",
                                        "No route to host",
                                        "server closed the connection",
                                        "too many clients",
                                        "Connection reset",
                                        "could not receive data",
                                        "could not send data",
                                        "terminating connection",
                                        "Temporary failure in name resolution"};
  for (size_t i = 0; i < sizeof passing / sizeof passing[0]; i++) {
    if (strstr(msg, passing[i]) != NULL) {
      return 1;
    }
  }
  return 0;
}

/* The first line of libpq's message, without the trailing newline. */
static const char *pg_message(const char *msg, char *buf, size_t len) {
  size_t n = strcspn(msg, "\n");
  while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == '\r')) {
    n--;
  }
  snprintf(buf, len, "%.*s", (int)n, msg);
  return buf;
}

/* libpq's connection keywords: the target, then what the sink needs on top of it. */
static void pg_conn_params(const sink_pg *p, const char **keys, const char **values) {
  size_t i = 0;
  keys[i] = "dbname";
  values[i++] = p->target;
  keys[i] = "fallback_application_name";
  values[i++] = "csvstream-consumer";
  keys[i] = "client_encoding";
  values[i++] = "UTF8";
  if (strstr(p->target, "connect_timeout") == NULL) {
    keys[i] = "connect_timeout";
    values[i++] = "5";
  }
  keys[i] = NULL;
  values[i] = NULL;
}

static void pg_batch_abandon(sink_pg *p, pg_lane *l);

/* The lane's connection is lost (or an attempt failed): forget it and its batch, keep the rows.
 * The sink's own (lane 0) is tried again with jittered back-off, said once a second; another
 * lane is tried again in a second, when rows wait for it. */
static void pg_lost(pg_lane *l, const char *why) {
  sink_pg *p = l->p;
  char msg[512], rows[WORDS_BUF];
  uint64_t now = clock_mono_us(), delay;
  int was_connecting = l->state == PG_CONNECTING || l->state == PG_DOWN;
  pg_message(why, msg, sizeof msg);
  pg_unwatch(l);
  PQfinish(l->conn);
  l->conn = NULL;
  l->want_write = 0;
  pg_batch_abandon(p, l); /* its rows are queued again, in front of the rows after them */
  l->state = PG_DOWN;
  if (l->index > 0) {
    /* Tried again only while rows wait (pg_step_more), a second, then up to a minute later:
     * a server at its max_connections logs each refusal. */
    l->backoff_ms = l->backoff_ms
                        ? (l->backoff_ms * 2 > PG_LANE_BACKOFF_MAX_MS ? PG_LANE_BACKOFF_MAX_MS
                                                                      : l->backoff_ms * 2)
                        : 1000;
    l->retry_us = now + l->backoff_ms * 1000;
    if (was_connecting && log_limiter_allow(&p->lane_log, now, PG_LANE_LOG_INTERVAL_US)) {
      log_warn("database %s: a second connection failed (%s): writing on one, trying again in "
               "%" PRIu64 " s",
               p->shown, msg, l->backoff_ms / 1000);
    } else {
      log_debug("database %s: connection %d lost (%s)", p->shown, l->index + 1, msg);
    }
    return;
  }
  if (p->down_since_us == 0) {
    p->down_since_us = now;
    p->backoff_ms = PG_BACKOFF_FIRST_MS;
  } else if (p->backoff_ms < PG_BACKOFF_MAX_MS) {
    p->backoff_ms = p->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : p->backoff_ms * 2;
  }
  delay = p->backoff_ms * 3 / 4 + pg_random(p) % (p->backoff_ms / 2 + 1);
  p->retry_us = now + delay * 1000;
  if (log_limiter_allow(&p->down_log, now, PG_LOG_INTERVAL_US)) {
    log_warn("database %s unreachable (%s): holding %s in memory, retrying in %" PRIu64 " ms",
             p->shown, msg, words_count_of(rows, sizeof rows, rowq_count(p->rows), "row", "rows"),
             delay);
  }
}

/* A permanent error: nothing more is written; the consumer stops with exit code 1. */
static void pg_fail(sink_pg *p) {
  p->failed = 1;
  for (int i = 0; i < PG_LANES; i++) {
    pg_lane *l = &p->lanes[i];
    if (l->state == PG_BATCH) {
      p->commit_unknown = 1; /* broken off: its rows may be in the database or not */
    }
    l->state = PG_FAILED;
    pg_unwatch(l);
    PQfinish(l->conn);
    l->conn = NULL;
  }
}

/* Connected: non-blocking from now on. */
static void pg_connected(pg_lane *l) {
  sink_pg *p = l->p;
  PQsetNoticeProcessor(l->conn, pg_notice_cb, NULL);
  if (PQsetnonblocking(l->conn, 1) != 0) {
    pg_lost(l, PQerrorMessage(l->conn));
    return;
  }
  if (l->index == 0 && p->down_since_us != 0) {
    char rows[WORDS_BUF];
    p->reconnects++;
    if (log_limiter_allow(&p->up_log, clock_mono_us(), PG_LOG_INTERVAL_US)) {
      log_info("database %s: connected again after %.1f s (%s waiting)", p->shown,
               (double)(clock_mono_us() - p->down_since_us) / 1e6,
               words_count_of(rows, sizeof rows, rowq_count(p->rows), "row", "rows"));
    }
  }
  if (l->index == 0) {
    p->down_since_us = 0;
  }
  l->backoff_ms = 0;
  l->state = PG_IDLE;
  pg_watch(l, UV_READABLE, 1);
}

/* Begin a non-blocking connection attempt on the lane. */
static void pg_connect_start(pg_lane *l) {
  const char *keys[6], *values[6];
  pg_conn_params(l->p, keys, values);
  l->conn = PQconnectStartParams(keys, values, 1);
  if (l->conn == NULL) {
    pg_lost(l, "out of memory");
    return;
  }
  if (PQstatus(l->conn) == CONNECTION_BAD) {
    pg_lost(l, PQerrorMessage(l->conn));
    return;
  }
  l->state = PG_CONNECTING;
  l->connect_started_us = clock_mono_us();
  pg_watch(l, UV_WRITABLE, 1);
}

/* One step of the lane's connection attempt. */
static void pg_connect_step(pg_lane *l) {
  PostgresPollingStatusType st = PQconnectPoll(l->conn);
  if (st == PGRES_POLLING_OK) {
    pg_connected(l);
    return;
  }
  if (st == PGRES_POLLING_FAILED) {
    char msg[512];
    if (l->index == 0 && !pg_connect_transient(PQerrorMessage(l->conn))) {
      log_error("database %s: %s; stopping (check the --db target, the user and its rights)",
                l->p->shown, pg_message(PQerrorMessage(l->conn), msg, sizeof msg));
      pg_fail(l->p);
      return;
    }
    pg_lost(l, PQerrorMessage(l->conn));
    return;
  }
  if (clock_mono_us() - l->connect_started_us > PG_CONNECT_TIMEOUT_US) {
    pg_lost(l, "connection attempt timed out");
    return;
  }
  /* libpq may have moved to another socket (the next address): watch the one it has now. */
  pg_watch(l, st == PGRES_POLLING_WRITING ? UV_WRITABLE : UV_READABLE, 1);
}

/* ---- progress ---- */

/* Read the progress table (blocking; at open). Returns 0, or -1 when it could not be read. */
static int pg_progress_load(sink_pg *p) {
  PGresult *r = PQexec(p->lanes[0].conn,
                       "SELECT producer, encode(stream, 'hex'), seq FROM " PG_PROGRESS_TABLE);
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  if (ok) {
    int n = PQntuples(r);
    p->progress = calloc((size_t)n + 1, sizeof *p->progress);
    for (int i = 0; p->progress != NULL && i < n; i++) {
      pg_progress *e = &p->progress[p->nprogress];
      const char *hex = PQgetvalue(r, i, 1);
      size_t len = strlen(hex) / 2;
      e->stream = malloc(len + 1);
      if (e->stream == NULL) {
        break;
      }
      for (size_t k = 0; k < len; k++) {
        unsigned v = 0;
        sscanf(hex + 2 * k, "%2x", &v);
        e->stream[k] = (char)v;
      }
      e->len = len;
      snprintf(e->producer, sizeof e->producer, "%s", PQgetvalue(r, i, 0));
      e->seq = strtoull(PQgetvalue(r, i, 2), NULL, 10);
      p->nprogress++;
    }
    p->progress_table = 1;
  }
  PQclear(r);
  return ok ? 0 : -1;
}

/* ---- the batch ---- */

/* Forget the lines made ahead (a batch failed, a row changed its table's columns): the next
 * batch formats its rows itself. */
static void pg_pre_drop(sink_pg *p) {
  for (size_t i = 0; i < p->npre; i++) {
    cs_buf_reset(&p->pre_tables[i]->pre);
    p->pre_tables[i]->pre_rows = 0;
    p->pre_tables[i]->in_pre = 0;
  }
  p->npre = 0;
  p->pre_rows = 0;
  p->pre_bytes = 0;
  p->pre_valid = 0;
  p->pre_next = NULL;
  p->pre_last = NULL;
  p->pre_tally.n = 0;
}

/* Count row in ts. Returns 0 or CS_ENOMEM. */
static int pg_tally_add(pg_tallies *ts, const rowq_row *row) {
  size_t i = ts->hint;
  if (i >= ts->n || ts->v[i].st != row->stream) {
    for (i = 0; i < ts->n && ts->v[i].st != row->stream; i++) {
    }
    if (i == ts->n) {
      if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 16;
        pg_tally *grown = realloc(ts->v, cap * sizeof *grown);
        if (grown == NULL) {
          return CS_ENOMEM;
        }
        ts->v = grown;
        ts->cap = cap;
      }
      ts->v[i].st = (sink_stream *)row->stream; /* rowq borrows the stream table's */
      ts->v[i].first = ts->v[i].last = row->seq;
      ts->v[i].rows = 0;
      ts->n++;
    }
    ts->hint = i;
  }
  pg_tally *e = &ts->v[i];
  e->rows++;
  if (e->last < row->seq) {
    e->last = row->seq;
  }
  if (e->first > row->seq) {
    e->first = row->seq;
  }
  return 0;
}

/* Make the COPY line of a queued row, the next behind the lines made ahead, while those are a
 * whole batch at most and the row's table kept its columns. Returns 0 (made), 1 (the lines made
 * ahead are a batch already: nothing done) or -1 (they were dropped). */
static int pg_pre_line(sink_pg *p, const rowq_row *row) {
  pg_table *t = row->tag;
  size_t before = t->pre.len;
  if (p->pre_rows >= PG_BATCH_ROWS || p->pre_bytes >= PG_BATCH_BYTES) {
    return 1;
  }
  if (t->pre_rows > 0 && (t->pre_ncols != t->cols.n || t->pre_binary != t->binary)) {
    pg_pre_drop(p);
    return -1;
  }
  if (!t->in_pre) {
    if (p->npre == p->pre_cap) {
      size_t cap = p->pre_cap ? p->pre_cap * 2 : 8;
      pg_table **grown = realloc(p->pre_tables, cap * sizeof *grown);
      if (grown == NULL) {
        pg_pre_drop(p);
        return -1;
      }
      p->pre_tables = grown;
      p->pre_cap = cap;
    }
    p->pre_tables[p->npre++] = t;
    t->in_pre = 1;
    t->pre_ncols = t->cols.n;
    t->pre_binary = t->binary;
  }
  if (pg_copy_line(p, t, &t->pre, row->stream, row->seq, row->sent_us, row->received_us,
                   row->nfields, row->fields) != 0 ||
      pg_tally_add(&p->pre_tally, row) != 0) {
    pg_pre_drop(p);
    return -1;
  }
  t->pre_rows++;
  p->pre_rows++;
  p->pre_bytes += t->pre.len - before;
  p->pre_last = row;
  return 0;
}

/* A row just queued (the queue's tail): its COPY line now, unless rows before it wait for
 * theirs. */
static void pg_pre_add(sink_pg *p, const rowq_row *row) {
  if (p->pre_valid && p->pre_next == NULL && pg_pre_line(p, row) == 1) {
    p->pre_next = row;
  }
}

/* Make the lines of up to n rows that wait for theirs (pre_next on). */
static void pg_pre_catch_up(sink_pg *p, size_t n) {
  for (; n > 0 && p->pre_valid && p->pre_next != NULL; n--) {
    if (pg_pre_line(p, p->pre_next) != 0) {
      return;
    }
    p->pre_next = rowq_next(p->pre_next);
  }
}

/* Forget the lane's batch (committed, or not): its per-table buffers are emptied, kept for the
 * next one. */
static void pg_batch_clear(pg_lane *l) {
  for (size_t i = 0; i < l->nsegs; i++) {
    l->segs[i].t->in_batch = 0;
    cs_buf_reset(&l->segs[i].copy);
    l->segs[i].rows = 0;
  }
  l->nsegs = 0;
  l->seg_next = 0;
  l->copying = l->copy_ended = 0;
  l->copy_off = 0;
  l->batch_tally.n = 0;
  l->batch_n = 0;
  l->batch_first = l->batch_last = NULL;
  l->order = 0;
  l->stepped = l->doomed = 0;
}

/* The lane's batch did not commit: its rows stay queued where they are, and so every batch in
 * flight after it (whose commit would raise its streams' progress past them) is rolled back,
 * and the lines made ahead behind it are dropped. */
static void pg_batch_abandon(sink_pg *p, pg_lane *l) {
  if (l->order != 0) {
    for (int i = 0; i < PG_LANES; i++) {
      if (p->lanes[i].order > l->order) {
        p->lanes[i].doomed = 1;
      }
    }
    pg_pre_drop(p);
  }
  pg_batch_clear(l);
}

/* Send a query on the lane; on failure its connection is treated as lost. Returns 0 or -1. */
static int pg_send(pg_lane *l, const char *sql, enum pg_state next) {
  if (PQsendQuery(l->conn, sql) != 1) {
    pg_lost(l, PQerrorMessage(l->conn));
    return -1;
  }
  l->state = next;
  l->err_state[0] = '\0';
  l->err_msg[0] = '\0';
  l->err_table = NULL;
  l->err_seg_line = 0;
  int f = PQflush(l->conn);
  if (f < 0) {
    pg_lost(l, PQerrorMessage(l->conn));
    return -1;
  }
  l->want_write = f == 1;
  pg_watch(l, UV_READABLE | (l->want_write ? UV_WRITABLE : 0), 0);
  return 0;
}

/* Ask the catalog about the candidate names of every table of the next batch that has none.
 * Returns 1 when the query went out, 0 when every table is named, -1 on a lost connection. */
static int pg_naming_start(sink_pg *p, pg_lane *l) {
  cs_buf sql;
  int any = 0;
  size_t k = 0;
  const pg_table *t0 = p->tables;
  while (t0 != NULL && t0->name != NULL) {
    t0 = t0->next;
  }
  if (t0 == NULL) {
    return 0; /* every table is named: no need to look at the rows */
  }
  cs_buf_init(&sql);
  {
    static const char head[] =
        "SELECT c.relname::text, c.relkind::text, a.attname::text, a.attnum, "
        "pg_catalog.format_type(a.atttypid, NULL) FROM "
        "pg_catalog.pg_class c "
        "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
        "a.attisdropped WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE "
        "nspname = current_schema()) AND c.relname IN (''";
    cs_buf_append(&sql, head, sizeof head - 1);
  }
  for (const rowq_row *row = rowq_head(p->rows); row != NULL && k < PG_BATCH_ROWS;
       row = rowq_next(row), k++) {
    pg_table *t = row->tag;
    if (t->name != NULL || t->in_batch) {
      continue;
    }
    t->in_batch = 1; /* asked about once */
    any = 1;
    for (unsigned long n = 1; n <= PG_NAME_TRIES; n++) {
      char *cand = colnames_numbered(&pg_colnames, t->stream_name, n);
      if (cand == NULL) {
        continue;
      }
      cs_buf_append(&sql, ", ", 2);
      pg_literal(&sql, cand);
      free(cand);
    }
  }
  for (pg_table *t = p->tables; t != NULL; t = t->next) {
    t->in_batch = 0;
  }
  {
    static const char tail[] =
        ") UNION ALL SELECT t.typname::text, 'T', NULL, NULL, NULL FROM pg_catalog.pg_type t "
        "WHERE "
        "t.typnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = "
        "current_schema()) AND t.typrelid = 0 ORDER BY 1, 4";
    cs_buf_append(&sql, tail, sizeof tail - 1);
  }
  if (cs_buf_append_byte(&sql, '\0') != 0) {
    cs_buf_free(&sql);
    return -1;
  }
  int rc = any ? (pg_send(l, sql.data, PG_NAMING) == 0 ? 1 : -1) : 0;
  cs_buf_free(&sql);
  return rc;
}

/* Has the column name the type the sink gives it (ty: PostgreSQL's format_type)? */
static int pg_col_type_ours(const char *name, const char *ty) {
  const char *ours = "text";
  size_t n = strlen(ty);
  for (size_t i = 0; i < PG_NMETA; i++) {
    if (strcmp(name, pg_meta_names[i]) == 0) {
      ours = pg_meta_types[i];
    }
  }
  return strncmp(ours, ty, n) == 0 && (ours[n] == '\0' || ours[n] == ' ');
}

/* Does the catalog's table (its columns fcols, in order, of types ftypes) fit t: every metadata
 * column, t's header columns in order, then only extra columns of t's kind? Then adopt its
 * extra columns, and COPY binary data into it when every column has the sink's type. */
static int pg_table_adopt(pg_table *t, char **fcols, char **ftypes, size_t nf) {
  size_t nmeta = 0, nval = 0;
  const char *prefix = colnames_extra_prefix(t->nheader);
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < nf; i++) {
    if (pg_is_meta(fcols[i])) {
      nmeta++;
      continue;
    }
    if (nval < t->nheader ? strcmp(fcols[i], t->cols.names[nval]) != 0
                          : strncmp(fcols[i], prefix, plen) != 0 || fcols[i][plen] != '_') {
      return 0;
    }
    nval++;
  }
  if (nmeta != PG_NMETA || nval < t->nheader) {
    return 0;
  }
  for (size_t i = 0, v = 0; i < nf; i++) {
    if (!pg_is_meta(fcols[i]) && v++ >= t->nheader && colnames_add(&t->cols, fcols[i]) != 0) {
      return -1;
    }
  }
  t->created = 1;
  t->ncols_db = t->cols.n;
  t->binary = 1;
  for (size_t i = 0; i < nf; i++) {
    if (!pg_col_type_ours(fcols[i], ftypes[i])) {
      t->binary = 0; /* text, which PostgreSQL turns into the column's type */
    }
  }
  return 1;
}

/* The catalog answered: name every table that asked. Returns 0 or -1 (failed, logged). */
static int pg_naming_done(sink_pg *p, PGresult *r) {
  int n = PQntuples(r);
  for (pg_table *t = p->tables; t != NULL; t = t->next) {
    if (t->name != NULL) {
      continue;
    }
    int taken_why = 0;
    for (unsigned long k = 1; k <= PG_NAME_TRIES && t->name == NULL; k++) {
      char *cand = colnames_numbered(&pg_colnames, t->stream_name, k);
      int used = 0, found = 0, fits = 0;
      char **fcols = NULL, **ftypes = NULL;
      size_t nf = 0;
      if (cand == NULL) {
        return -1;
      }
      for (pg_table *o = p->tables; o != NULL; o = o->next) {
        if (o != t && o->name != NULL && strcmp(o->name, cand) == 0) {
          used = 1;
        }
      }
      for (int i = 0; i < n && !used; i++) {
        if (strcmp(PQgetvalue(r, i, 0), cand) != 0) {
          continue;
        }
        const char *kind = PQgetvalue(r, i, 1);
        found = 1;
        if ((strcmp(kind, "r") == 0 || strcmp(kind, "p") == 0) && !PQgetisnull(r, i, 2)) {
          char **grown = realloc(fcols, (nf + 1) * sizeof *fcols);
          char **grown_types = grown != NULL ? realloc(ftypes, (nf + 1) * sizeof *ftypes) : NULL;
          if (grown != NULL) {
            fcols = grown;
          }
          if (grown_types != NULL) {
            ftypes = grown_types;
            fcols[nf] = PQgetvalue(r, i, 2);
            ftypes[nf++] = PQgetvalue(r, i, 4);
          }
        } else {
          nf = 0;
          fits = -2; /* another kind of object (a view, an index, a type) */
          break;
        }
      }
      if (!used && found && fits != -2) {
        fits = pg_table_adopt(t, fcols, ftypes, nf);
      }
      free(fcols);
      free(ftypes);
      if (fits < 0 && fits != -2) {
        free(cand);
        return -1;
      }
      if (!used && (!found || fits == 1)) {
        t->name = cand;
        log_escape(t->name_label, sizeof t->name_label, cand, strlen(cand));
        if (fits == 1) {
          log_info("stream '%s' -> existing table '%s' in %s (appending%s)", t->stream_label,
                   t->name_label, p->shown,
                   t->binary ? "" : "; COPY text, since some columns have other types");
        } else if (k > 1) {
          log_info("stream '%s' -> table '%s' in %s (%s)", t->stream_label, t->name_label, p->shown,
                   taken_why == 1 ? "its name is taken by another header in this run"
                                  : "its name is taken in the database by other columns");
        } else {
          log_info("stream '%s' -> table '%s' in %s", t->stream_label, t->name_label, p->shown);
        }
        if (colnames_widen(&t->cols, t->nheader, t->max_fields) != 0) {
          return -1;
        }
        break;
      }
      if (k == 1) {
        taken_why = used ? 1 : 2;
      }
      free(cand);
    }
    if (t->name == NULL) {
      log_error("database %s: no free table name for stream '%s' (tried %d); stopping", p->shown,
                t->stream_label, PG_NAME_TRIES);
      return -1;
    }
  }
  return 0;
}

static int pg_mark_cmp(const void *a, const void *b) {
  const pg_mark *x = a, *y = b;
  int c = strcmp(x->st->producer_hex, y->st->producer_hex);
  return c != 0 ? c : strcmp(x->st->name, y->st->name);
}

/* The acknowledged streams among the batch's rows, sorted by (producer, stream): into
 * l->marks. Returns 0 or CS_ENOMEM. */
static int pg_marks_collect(pg_lane *l) {
  l->nmarks = 0;
  for (size_t i = 0; i < l->batch_tally.n; i++) {
    const pg_tally *e = &l->batch_tally.v[i];
    if (!e->st->acked) {
      continue;
    }
    if (l->nmarks == l->marks_cap) {
      size_t cap = l->marks_cap ? l->marks_cap * 2 : 16;
      pg_mark *grown = realloc(l->marks, cap * sizeof *grown);
      if (grown == NULL) {
        return CS_ENOMEM;
      }
      l->marks = grown;
      l->marks_cap = cap;
    }
    l->marks[l->nmarks].st = e->st;
    l->marks[l->nmarks].first = e->first;
    l->marks[l->nmarks].last = e->last;
    l->nmarks++;
  }
  if (l->nmarks > 1) {
    qsort(l->marks, l->nmarks, sizeof *l->marks, pg_mark_cmp);
  }
  return 0;
}

/* A stream name as decode('HEX', 'hex'): any bytes, no quoting to get wrong. */
static void pg_bytea(cs_buf *sql, const char *name) {
  static const char digits[] = "0123456789abcdef";
  cs_buf_append(sql, "decode('", 8);
  for (const unsigned char *q = (const unsigned char *)name; *q; q++) {
    char hx[2] = {digits[*q >> 4], digits[*q & 15]};
    cs_buf_append(sql, hx, 2);
  }
  cs_buf_append(sql, "', 'hex')", 9);
}

/* "VALUES ('producer', decode(stream), N), ..." of the marks, N their first (which 0) or last
 * (which 1) number, or 0 (which 2). */
static void pg_marks_values(const pg_lane *l, cs_buf *sql, int which) {
  cs_buf_append(sql, "VALUES ", 7);
  for (size_t i = 0; i < l->nmarks; i++) {
    char num[32];
    cs_buf_append(sql, i ? ", (" : "(", i ? 3 : 1);
    pg_literal(sql, l->marks[i].st->producer_hex);
    cs_buf_append(sql, ", ", 2);
    pg_bytea(sql, l->marks[i].st->name);
    snprintf(num, sizeof num, ", %" PRIu64 "::bigint)",
             which == 0   ? l->marks[i].first
             : which == 1 ? l->marks[i].last
                          : (uint64_t)0);
    cs_buf_append(sql, num, strlen(num));
  }
}

/* The progress of the batch's acknowledged streams, before their rows: each stream's row made
 * if missing, then locked (FOR UPDATE, in a fixed order) until the commit, so that two
 * consumers writing one stream (a producer that moved from one to the other) take turns, and
 * returned as "has the table rows of this batch already?" (the batch's first number at or
 * below the stored one). Every commit raises the stored number to its last row, so rows of an
 * acknowledged stream are in the table exactly up to it. */
static void pg_progress_lock_sql(const pg_lane *l, cs_buf *sql) {
  static const char ins[] = "INSERT INTO " PG_PROGRESS_TABLE " (producer, stream, seq) ";
  static const char conflict[] =
      " ON CONFLICT DO NOTHING;\nSELECT p.seq >= v.first FROM " PG_PROGRESS_TABLE " p JOIN (";
  static const char tail[] = ") AS v(producer, stream, first) ON p.producer = v.producer AND "
                             "p.stream = v.stream ORDER BY p.producer, p.stream FOR UPDATE OF "
                             "p;\n";
  cs_buf_append(sql, ins, sizeof ins - 1);
  pg_marks_values(l, sql, 2);
  cs_buf_append(sql, conflict, sizeof conflict - 1);
  pg_marks_values(l, sql, 0);
  cs_buf_append(sql, tail, sizeof tail - 1);
}

/* After the rows: each stream's stored number raised to the batch's last. */
static void pg_progress_update_sql(const pg_lane *l, cs_buf *sql) {
  static const char head[] =
      "UPDATE " PG_PROGRESS_TABLE " AS p SET seq = GREATEST(p.seq, v.last) FROM (";
  static const char tail[] = ") AS v(producer, stream, last) WHERE p.producer = v.producer AND "
                             "p.stream = v.stream;\n";
  cs_buf_append(sql, head, sizeof head - 1);
  pg_marks_values(l, sql, 1);
  cs_buf_append(sql, tail, sizeof tail - 1);
}

/* The first queued row no batch in flight holds: the one after the newest batch, or the
 * queue's head (NULL: there is none). */
static const rowq_row *pg_unbatched(const sink_pg *p) {
  const pg_lane *newest = NULL;
  for (int i = 0; i < PG_LANES; i++) {
    if (p->lanes[i].order != 0 && (newest == NULL || p->lanes[i].order > newest->order)) {
      newest = &p->lanes[i];
    }
  }
  return newest != NULL ? rowq_next(newest->batch_last) : rowq_head(p->rows);
}

/* How many queued rows no batch in flight holds. */
static size_t pg_unbatched_count(const sink_pg *p) {
  size_t n = rowq_count(p->rows);
  for (int i = 0; i < PG_LANES; i++) {
    n -= p->lanes[i].batch_n;
  }
  return n;
}

/* Is l's batch the oldest in flight (the next to commit)? */
static int pg_lane_oldest(const sink_pg *p, const pg_lane *l) {
  for (int i = 0; i < PG_LANES; i++) {
    if (p->lanes[i].order != 0 && p->lanes[i].order < l->order) {
      return 0;
    }
  }
  return 1;
}

/* May rows of t go into a batch beside another one: named, made, with all its columns (a batch
 * that makes or changes a table goes alone)? */
static int pg_table_settled(const pg_table *t) {
  return t->name != NULL && t->created && t->ncols_db == t->cols.n;
}

/* The lane's segment for t, added when t has none yet in the batch being built. Returns it, or
 * NULL when out of memory. */
static pg_seg *pg_seg_for(pg_lane *l, pg_table *t) {
  if (t->in_batch) {
    return &l->segs[t->in_batch - 1];
  }
  if (l->nsegs == l->segs_cap) {
    size_t cap = l->segs_cap ? l->segs_cap * 2 : 8;
    pg_seg *grown = realloc(l->segs, cap * sizeof *grown);
    if (grown == NULL) {
      return NULL;
    }
    for (size_t i = l->segs_cap; i < cap; i++) {
      memset(&grown[i], 0, sizeof grown[i]);
      cs_buf_init(&grown[i].copy);
    }
    l->segs = grown;
    l->segs_cap = cap;
  }
  pg_seg *sg = &l->segs[l->nsegs++];
  sg->t = t;
  sg->rows = 0;
  sg->ncols_tx = t->created ? t->ncols_db : 0;
  t->in_batch = (int)l->nsegs;
  return sg;
}

/* The first statements of a batch: BEGIN, and the commit's wait for the disk with --fsync. */
static void pg_batch_begin_sql(const sink_pg *p, cs_buf *sql) {
  /* READ COMMITTED whatever the server's default: a stepped batch locks its progress rows after
   * the batch before it raised them, and reads them as that commit left them (a snapshot from
   * its start would fail with a serialization error every time). A lock wait ends after
   * PG_LOCK_TIMEOUT: a stepped batch waits for the one before it on this side, where the
   * server's deadlock detector cannot see it, so a third party's lock between the two (another
   * client's ALTER TABLE, a unique index) would hold both for ever. The timeout (55P03) is
   * passing trouble: the batch and those after it are tried again. */
  static const char begin[] = "BEGIN ISOLATION LEVEL READ COMMITTED;\nSET LOCAL lock_timeout = "
                              "'" PG_LOCK_TIMEOUT "';\n";
  cs_buf_append(sql, begin, sizeof begin - 1);
  if (p->fsync) {
    /* --fsync: the commit waits for the server's disk, whatever the server's default. */
    static const char sync[] = "SET LOCAL synchronous_commit = on;\n";
    cs_buf_append(sql, sync, sizeof sync - 1);
  }
}

/* Build the lane's next batch from the first rows no batch in flight holds: COPY data per
 * table, from the lines made ahead when they fit. stepped: it goes beside a batch in flight, so
 * only rows of settled tables (it stops before the first other one). Returns the rows taken (0:
 * none, or out of memory: tried again at the next flush). */
static size_t pg_batch_build(sink_pg *p, pg_lane *l, int stepped) {
  const rowq_row *start = pg_unbatched(p), *row, *last = NULL;
  size_t k = 0, bytes = 0;
  pg_batch_clear(l);
  pg_pre_catch_up(p, PG_BATCH_ROWS); /* a whole batch, when that many rows wait */
  int pre_ok = p->pre_valid && p->pre_rows > 0;
  for (size_t i = 0; pre_ok && i < p->npre; i++) {
    const pg_table *t = p->pre_tables[i];
    pre_ok = t->pre_ncols == t->cols.n && t->pre_binary == t->binary &&
             (!stepped || pg_table_settled(t));
  }
  if (pre_ok) {
    /* The lines made ahead are the batch: the first pre_rows rows after start, table by
     * table. */
    for (size_t i = 0; i < p->npre; i++) {
      pg_table *t = p->pre_tables[i];
      pg_seg *sg = pg_seg_for(l, t);
      if (sg == NULL) {
        /* Some tables' lines are in segments already: drop them all, the rows are made into
         * lines again by the next batch. */
        pg_batch_clear(l);
        pg_pre_drop(p);
        return 0;
      }
      cs_buf swap = sg->copy;
      sg->copy = t->pre;
      t->pre = swap;
      cs_buf_reset(&t->pre);
      sg->rows = t->pre_rows;
      t->pre_rows = 0;
      t->in_pre = 0;
    }
    k = p->pre_rows;
    last = p->pre_last;
    pg_tallies swap = l->batch_tally;
    l->batch_tally = p->pre_tally;
    p->pre_tally = swap;
    p->pre_tally.n = 0;
    p->npre = 0;
    p->pre_rows = 0;
    p->pre_bytes = 0;
    p->pre_last = NULL;
    row = NULL;
  } else {
    if (stepped && p->pre_valid && p->pre_rows > 0) {
      return 0; /* a table of the lines made ahead changed: the batch waits to go alone */
    }
    pg_pre_drop(p);
    row = start;
  }
  for (; row != NULL && k < PG_BATCH_ROWS && bytes < PG_BATCH_BYTES; row = rowq_next(row), k++) {
    pg_table *t = row->tag;
    if (stepped && !pg_table_settled(t)) {
      break;
    }
    pg_seg *sg = pg_seg_for(l, t);
    size_t before = sg != NULL ? sg->copy.len : 0;
    if (sg == NULL ||
        pg_copy_line(p, t, &sg->copy, row->stream, row->seq, row->sent_us, row->received_us,
                     row->nfields, row->fields) != 0 ||
        pg_tally_add(&l->batch_tally, row) != 0) {
      pg_batch_clear(l);
      pg_pre_drop(p);
      return 0;
    }
    sg->rows++;
    bytes += sg->copy.len - before;
    last = row;
  }
  for (size_t i = 0; i < l->nsegs; i++) {
    l->segs[i].t->in_batch = 0; /* only while building */
  }
  if (!pre_ok) {
    /* The rows behind this batch get their lines from now on: those queued already in the
     * flushes, those that come in as they come. */
    p->pre_valid = 1;
    p->pre_next = row;
  }
  if (k == 0) {
    pg_batch_clear(l);
    return 0;
  }
  l->batch_n = k;
  l->batch_first = start;
  l->batch_last = last;
  l->order = ++p->next_order;
  l->stepped = stepped;
  l->batch_conflict = 0;
  l->progress_tx = 0;
  if (pg_marks_collect(l) != 0) {
    pg_batch_abandon(p, l);
    return 0;
  }
  return k;
}

/* Build and send the lane's next batch when no other is in flight: the first rows of the queue,
 * tables made or widened, COPY per table, the progress, one transaction. Returns 0 (sent, or
 * nothing to do) or -1 (failed: logged). */
static int pg_batch_start(sink_pg *p, pg_lane *l) {
  cs_buf sql;
  int rc;
  if (rowq_head(p->rows) == NULL) {
    return 0;
  }
  rc = pg_naming_start(p, l);
  if (rc != 0) {
    return 0; /* the catalog query went out (the batch follows its answer), or the connection
               * was lost (retried later) */
  }
  if (pg_batch_build(p, l, 0) == 0) {
    return 0;
  }
  l->batch_safe = clock_mono_us() < p->safe_until_us;
  cs_buf_init(&sql);
  pg_batch_begin_sql(p, &sql);
  if (!p->progress_table) {
    static const char ddl[] =
        "CREATE TABLE IF NOT EXISTS " PG_PROGRESS_TABLE " (producer text COLLATE \"C\" NOT NULL, "
        "stream bytea NOT NULL, seq bigint NOT NULL, PRIMARY KEY (producer, stream));\n";
    cs_buf_append(&sql, ddl, sizeof ddl - 1);
    l->progress_tx = 1;
  }
  for (size_t i = 0; i < l->nsegs; i++) {
    pg_seg *sg = &l->segs[i];
    pg_table *t = sg->t;
    if (t->created) {
      continue;
    }
    cs_buf_append(&sql, "CREATE TABLE IF NOT EXISTS ", 27);
    pg_ident(&sql, t->name);
    cs_buf_append(&sql, " (", 2);
    for (size_t c = 0; c < t->cols.n; c++) {
      pg_ident(&sql, t->cols.names[c]);
      cs_buf_append(&sql, " text, ", 7);
    }
    for (size_t c = 0; c < PG_NMETA; c++) {
      pg_ident(&sql, pg_meta_names[c]);
      cs_buf_append_byte(&sql, ' ');
      cs_buf_append(&sql, pg_meta_types[c], strlen(pg_meta_types[c]));
      cs_buf_append(&sql, c + 1 < PG_NMETA ? " NOT NULL, " : " NOT NULL);\n",
                    c + 1 < PG_NMETA ? 11 : 12);
    }
    sg->ncols_tx = t->cols.n;
  }
  if (l->nmarks > 0) {
    pg_progress_lock_sql(l, &sql);
  }
  for (size_t i = 0; i < l->nsegs; i++) {
    pg_seg *sg = &l->segs[i];
    pg_table *t = sg->t;
    for (size_t c = sg->ncols_tx; c < t->cols.n; c++) {
      cs_buf_append(&sql, "ALTER TABLE ", 12);
      pg_ident(&sql, t->name);
      cs_buf_append(&sql, " ADD COLUMN IF NOT EXISTS ", 26);
      pg_ident(&sql, t->cols.names[c]);
      cs_buf_append(&sql, " text;\n", 7);
    }
    sg->ncols_tx = t->cols.n;
    if (l->batch_safe) {
      char stage[40];
      snprintf(stage, sizeof stage, "_csvstream_stage_%zu", i + 1);
      cs_buf_append(&sql, "CREATE TEMP TABLE ", 18);
      pg_ident(&sql, stage);
      cs_buf_append(&sql, " (LIKE ", 7);
      pg_ident(&sql, t->name);
      cs_buf_append(&sql, ") ON COMMIT DROP;\nCOPY ", 23);
      pg_ident(&sql, stage);
      cs_buf_append_byte(&sql, ' ');
      pg_col_list(&sql, t);
      pg_copy_from(&sql, t);
      cs_buf_append(&sql, "INSERT INTO ", 12);
      pg_ident(&sql, t->name);
      cs_buf_append_byte(&sql, ' ');
      pg_col_list(&sql, t);
      cs_buf_append(&sql, " SELECT ", 8);
      {
        cs_buf cols;
        cs_buf_init(&cols);
        pg_col_list(&cols, t);
        cs_buf_append(&sql, cols.data + 1, cols.len - 2);
        cs_buf_free(&cols);
      }
      cs_buf_append(&sql, " FROM ", 6);
      pg_ident(&sql, stage);
      /* Only the rows the table does not have: those above their stream's stored number
       * (the progress rows are locked above, so no other consumer moves it meanwhile). */
      {
        static const char filt[] = " s WHERE NOT EXISTS (SELECT 1 FROM " PG_PROGRESS_TABLE
                                   " p WHERE p.producer = s._producer AND p.stream = ";
        cs_buf_append(&sql, filt, sizeof filt - 1);
      }
      pg_bytea(&sql, t->stream_name);
      cs_buf_append(&sql, " AND p.seq >= s._seq);\n", 23);
    } else {
      cs_buf_append(&sql, "COPY ", 5);
      pg_ident(&sql, t->name);
      cs_buf_append_byte(&sql, ' ');
      pg_col_list(&sql, t);
      pg_copy_from(&sql, t);
    }
  }
  if (l->nmarks > 0) {
    pg_progress_update_sql(l, &sql);
  }
  cs_buf_append(&sql, "COMMIT;", 7);
  if (cs_buf_append_byte(&sql, '\0') != 0) {
    cs_buf_free(&sql);
    pg_batch_abandon(p, l);
    return 0;
  }
  (void)pg_send(l, sql.data, PG_BATCH); /* a lost connection is retried later */
  cs_buf_free(&sql);
  return 0;
}

/* Build and send a batch beside the one in flight: rows of settled tables only, COPY inside an
 * open transaction (PG_COPYING). Its streams' progress is locked, checked and raised, and it
 * commits, once every batch before it committed (pg_step_finish). Returns the rows sent. */
static size_t pg_batch_step(sink_pg *p, pg_lane *l) {
  cs_buf sql;
  size_t k = pg_batch_build(p, l, 1);
  if (k == 0) {
    return 0;
  }
  l->batch_safe = 0;
  cs_buf_init(&sql);
  pg_batch_begin_sql(p, &sql);
  for (size_t i = 0; i < l->nsegs; i++) {
    pg_table *t = l->segs[i].t;
    cs_buf_append(&sql, "COPY ", 5);
    pg_ident(&sql, t->name);
    cs_buf_append_byte(&sql, ' ');
    pg_col_list(&sql, t);
    pg_copy_from(&sql, t);
  }
  if (cs_buf_append_byte(&sql, '\0') != 0) {
    cs_buf_free(&sql);
    pg_batch_abandon(p, l);
    return 0;
  }
  (void)pg_send(l, sql.data, PG_COPYING);
  cs_buf_free(&sql);
  return k;
}

/* A stepped batch's rows are in and every batch before it committed: lock and read its streams'
 * progress (PG_CHECK), or commit at once when none is acknowledged; roll it back when a batch
 * before it failed. */
static void pg_step_finish(pg_lane *l) {
  cs_buf sql;
  if (l->doomed) {
    (void)pg_send(l, "ROLLBACK", PG_ROLLBACK);
    return;
  }
  if (l->nmarks == 0) {
    (void)pg_send(l, "COMMIT", PG_BATCH);
    return;
  }
  cs_buf_init(&sql);
  pg_progress_lock_sql(l, &sql);
  if (cs_buf_append_byte(&sql, '\0') != 0) {
    cs_buf_free(&sql);
    (void)pg_send(l, "ROLLBACK", PG_ROLLBACK);
    return;
  }
  (void)pg_send(l, sql.data, PG_CHECK);
  cs_buf_free(&sql);
}

/* The stepped batch's progress is locked, and none of its rows were stored before: raise the
 * progress and commit. Returns 0 or -1 (the connection was lost). */
static int pg_step_commit(pg_lane *l) {
  cs_buf sql;
  cs_buf_init(&sql);
  pg_progress_update_sql(l, &sql);
  cs_buf_append(&sql, "COMMIT;", 7);
  if (cs_buf_append_byte(&sql, '\0') != 0) {
    cs_buf_free(&sql);
    return pg_send(l, "ROLLBACK", PG_ROLLBACK);
  }
  int rc = pg_send(l, sql.data, PG_BATCH);
  cs_buf_free(&sql);
  return rc;
}

/* The lane's batch committed: its rows are durable; out of the queue they go (they are its
 * head: batches commit in order). */
static void pg_batch_committed(sink_pg *p, pg_lane *l) {
  if (rowq_head(p->rows) != l->batch_first) {
    log_error("database %s: a batch committed out of order (a bug); stopping", p->shown);
    pg_fail(p);
    return;
  }
  for (size_t i = 0; i < l->batch_tally.n; i++) {
    const pg_tally *e = &l->batch_tally.v[i];
    if (e->st->durable[p->env.slot] < e->last) {
      e->st->durable[p->env.slot] = e->last;
    }
    e->st->held[p->env.slot] -= e->rows;
  }
  for (size_t i = 0; i < l->nsegs; i++) {
    l->segs[i].t->created = 1;
    l->segs[i].t->ncols_db = l->segs[i].ncols_tx;
  }
  if (l->progress_tx) {
    p->progress_table = 1;
  }
  if (rowq_pop(p->rows, l->batch_n) == 0) {
    p->committed += l->batch_n;
  }
  p->batches++;
  p->batches_parallel += l->stepped;
  p->step_hold = 0;
  p->last_commit_us = clock_mono_us();
  p->backoff_ms = 0;
  pg_batch_clear(l);
}

/* Which row of the lane's batch is line `line` of its COPY into t (for the error message)? */
static const rowq_row *pg_row_of_line(const pg_lane *l, const pg_table *t, size_t line) {
  size_t k = 0, seen = 0;
  for (const rowq_row *row = l->batch_first; row != NULL && k < l->batch_n;
       row = rowq_next(row), k++) {
    if (row->tag == t && ++seen == line) {
      return row;
    }
  }
  return NULL;
}

/* Is a failed batch worth trying again (SQLSTATE classes of passing trouble)? */
static int pg_state_transient(const char *state) {
  return strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
         strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
         strcmp(state, "55P03") == 0 || strncmp(state, "58", 2) == 0 || state[0] == '\0';
}

/* Does an error of this SQLSTATE in a COPY name the row that caused it (see pg_batch_failed)? */
static int pg_state_names_row(const char *state) {
  return strncmp(state, "22", 2) == 0 || strcmp(state, "23502") == 0 || strcmp(state, "23514") == 0;
}

/* The lane's batch failed and was rolled back: try it again, through the staging table after a
 * conflict, later after a passing error, or give up on a permanent one; a batch rolled back
 * because one before it failed is just queued again. Returns 0 or -1 (failed). */
static int pg_batch_failed(sink_pg *p, pg_lane *l) {
  char rows[WORDS_BUF];
  uint64_t now = clock_mono_us();
  size_t n = l->batch_n;
  const rowq_row *bad = NULL;
  int doomed = l->doomed, conflict = l->batch_conflict, safe = l->batch_safe;
  int oldest = pg_lane_oldest(p, l);
  /* The server's line is the row it was reading; that is the bad one only for errors found as
   * the row is read (class 22, NOT NULL, CHECK). A row too big or a unique violation shows when
   * the server writes out the rows it buffered, past the bad one. */
  if (l->err_table != NULL && l->err_seg_line > 0 && pg_state_names_row(l->err_state)) {
    bad = pg_row_of_line(l, l->err_table, l->err_seg_line);
  }
  pg_batch_abandon(p, l); /* the batch's rows are queued again, in front of the rest */
  l->state = PG_IDLE;
  if (doomed) {
    return 0;
  }
  if (conflict && !safe) {
    /* Rows another consumer (or an earlier try of this batch, whose commit went through while
     * the connection broke) stored already: this batch and the next ones for a while go
     * through a staging table that leaves those out. */
    p->conflicts++;
    p->safe_until_us = now + PG_SAFE_MODE_US;
    p->retry_us = 0;
    return 0;
  }
  if (l->err_table != NULL && l->err_table->binary &&
      (strcmp(l->err_state, "08P01") == 0 || strcmp(l->err_state, "22P03") == 0)) {
    /* The server could not read a binary field as its column: the table's types changed since
     * it was named (another client's ALTER TABLE). COPY text from now on, which the server
     * turns into whatever the columns are, or refuses with the record named. */
    l->err_table->binary = 0;
    log_warn("database %s: table '%s': binary COPY refused (%s: %s): its columns' types "
             "changed? sending COPY text from now on",
             p->shown, l->err_table->name_label, l->err_state, l->err_msg);
    p->retry_us = 0;
    return 0;
  }
  /* A unique violation outside COPY: two consumers adding one stream's progress row at once.
   * In a COPY it is the table's own constraint, and trying again cannot help. */
  if (pg_state_transient(l->err_state) ||
      (strcmp(l->err_state, "23505") == 0 && l->err_table == NULL) ||
      strcmp(l->err_state, "42P07") == 0) {
    /* A deadlock, a serialization failure, two consumers creating one table at once. */
    p->retries++;
    p->backoff_ms = p->backoff_ms ? (p->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
                                                                           : p->backoff_ms * 2)
                                  : PG_BACKOFF_FIRST_MS / 4;
    p->retry_us = now + (p->backoff_ms * 3 / 4 + pg_random(p) % (p->backoff_ms / 2 + 1)) * 1000;
    if (!pg_state_transient(l->err_state)) {
      /* Another client made the same table or progress row at the same moment: harmless. */
      log_info("database %s: another client created the same table or progress row at the same "
               "moment (%s); trying the batch of %s again",
               p->shown, l->err_state, words_count_of(rows, sizeof rows, n, "row", "rows"));
    } else if (log_limiter_allow(&p->down_log, now, PG_LOG_INTERVAL_US)) {
      log_warn("database %s: batch of %s not committed (%s: %s); trying again", p->shown,
               words_count_of(rows, sizeof rows, n, "row", "rows"), l->err_state, l->err_msg);
    }
    return 0;
  }
  if (!oldest) {
    /* A batch is in flight before this one, maybe committing: stopping now would break it off.
     * These rows go again once the batches before them are in (no batch goes beside another
     * until one commits, so they are not sent again and again meanwhile), and the error, if it
     * comes again, is said then. */
    p->step_hold = 1;
    log_debug("database %s: batch of %s behind another not committed (%s: %s); trying again "
              "after it",
              p->shown, words_count_of(rows, sizeof rows, n, "row", "rows"), l->err_state,
              l->err_msg);
    return 0;
  }
  if (bad != NULL) {
    log_error("database %s: table '%s': %s record %s #%" PRIu64 " refused: %s (SQLSTATE %s); "
              "stopping",
              p->shown, l->err_table->name_label, bad->stream->protocol, bad->stream->label,
              bad->seq, l->err_msg, l->err_state);
    pg_fail(p);
    return -1;
  }
  log_error("database %s: %s (SQLSTATE %s)%s%s; stopping", p->shown, l->err_msg, l->err_state,
            l->err_table != NULL ? " in table " : "",
            l->err_table != NULL ? l->err_table->name_label : "");
  pg_fail(p);
  return -1;
}

/* Keep the first error of the lane's query in flight. */
static void pg_note_error(pg_lane *l, PGresult *r) {
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
  const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  if (l->err_msg[0] != '\0') {
    return;
  }
  snprintf(l->err_state, sizeof l->err_state, "%s", st != NULL ? st : "");
  pg_message(msg != NULL ? msg : PQresultErrorMessage(r), l->err_msg, sizeof l->err_msg);
  if (detail != NULL && detail[0] != '\0') {
    /* "Key (id)=(7) already exists.": which value, where the server cannot name the row. */
    char first[512];
    size_t n = strlen(l->err_msg);
    pg_message(detail, first, sizeof first);
    snprintf(l->err_msg + n, sizeof l->err_msg - n, " (%s)", first);
  }
  if (l->err_msg[0] == '\0') {
    snprintf(l->err_msg, sizeof l->err_msg, "error without a message");
  }
  if (l->copying && l->seg_next > 0) {
    l->err_table = l->segs[l->seg_next - 1].t;
    /* "COPY t, line 5, column x: ..." */
    const char *line = ctx != NULL ? strstr(ctx, ", line ") : NULL;
    if (line != NULL) {
      l->err_seg_line = strtoul(line + 7, NULL, 10);
    }
  }
}

/* Send COPY data for the lane's segment in progress as far as the socket takes it (a doomed
 * batch's COPY is ended with an error instead). Returns 1 when the data and its end went out, 0
 * when it must wait for the socket, -1 when the COPY ended early (an error comes in the results)
 * or the connection broke. */
static int pg_copy_send(pg_lane *l) {
  const pg_seg *sg = &l->segs[l->seg_next - 1];
  while (!l->copy_ended) {
    if (l->doomed) {
      int rc = PQputCopyEnd(l->conn, "a batch before this one failed");
      if (rc <= 0) {
        return rc < 0 ? -1 : 0;
      }
      l->copy_ended = 1;
    } else if (l->copy_off < sg->copy.len) {
      size_t n = sg->copy.len - l->copy_off;
      n = n > PG_COPY_CHUNK ? PG_COPY_CHUNK : n;
      int rc = PQputCopyData(l->conn, sg->copy.data + l->copy_off, (int)n);
      if (rc < 0) {
        return -1;
      }
      if (rc == 0) {
        return 0;
      }
      l->copy_off += n;
    } else {
      int rc = PQputCopyEnd(l->conn, NULL);
      if (rc < 0) {
        return -1;
      }
      if (rc == 0) {
        return 0;
      }
      l->copy_ended = 1;
    }
    int f = PQflush(l->conn);
    if (f < 0) {
      return -1;
    }
    if (f == 1) {
      l->want_write = 1;
      return 0;
    }
  }
  return 1;
}

/* Is the lane's query one of a batch (its end decides the batch's fate)? */
static int pg_state_batch(enum pg_state st) {
  return st == PG_BATCH || st == PG_COPYING || st == PG_CHECK || st == PG_ROLLBACK;
}

/* The lane's query is over (was: its state). Returns 1 when another query went out on the lane
 * (its results are read next), 0 when the lane is done for now. */
static int pg_query_over(sink_pg *p, pg_lane *l, enum pg_state was) {
  PGTransactionStatusType ts = PQtransactionStatus(l->conn);
  int clean = l->err_msg[0] == '\0';
  if (was == PG_BATCH && clean && ts == PQTRANS_IDLE) {
    pg_batch_committed(p, l);
    return 0;
  }
  if (was == PG_COPYING && clean && ts == PQTRANS_INTRANS && !l->doomed) {
    l->state = PG_COPIED; /* waits for the batches before it (pg_advance) */
    return 0;
  }
  if (was == PG_CHECK && clean && ts == PQTRANS_INTRANS && !l->batch_conflict) {
    return pg_step_commit(l) == 0;
  }
  if (pg_state_batch(was)) {
    if (ts != PQTRANS_IDLE) {
      char keep_state[6], keep_msg[1024];
      pg_table *keep_table = l->err_table;
      size_t keep_line = l->err_seg_line;
      memcpy(keep_state, l->err_state, sizeof keep_state);
      memcpy(keep_msg, l->err_msg, sizeof keep_msg);
      if (pg_send(l, "ROLLBACK", PG_ROLLBACK) != 0) {
        return 0;
      }
      memcpy(l->err_state, keep_state, sizeof keep_state);
      memcpy(l->err_msg, keep_msg, sizeof keep_msg);
      l->err_table = keep_table;
      l->err_seg_line = keep_line;
      return 1;
    }
    (void)pg_batch_failed(p, l);
    return 0;
  }
  if (was == PG_NAMING && !clean) {
    log_error("database %s: reading the catalog: %s; stopping", p->shown, l->err_msg);
    pg_fail(p);
  }
  return 0;
}

/* Read what the server sent for the lane's query in flight, send COPY data when it asks. */
static void pg_query_step(sink_pg *p, pg_lane *l) {
  if (l->want_write) {
    int f = PQflush(l->conn);
    if (f < 0) {
      pg_lost(l, PQerrorMessage(l->conn));
      return;
    }
    l->want_write = f == 1;
  }
  if (PQconsumeInput(l->conn) == 0) {
    pg_lost(l, PQerrorMessage(l->conn));
    return;
  }
  for (;;) {
    if (l->copying && !l->copy_ended) {
      int rc = pg_copy_send(l);
      if (rc == 0) {
        break;
      }
      if (rc < 0 && PQstatus(l->conn) == CONNECTION_BAD) {
        pg_lost(l, PQerrorMessage(l->conn));
        return;
      }
      l->copy_ended = 1;
    }
    if (PQisBusy(l->conn)) {
      break;
    }
    PGresult *r = PQgetResult(l->conn);
    if (r == NULL) {
      /* The query is over. */
      enum pg_state was = l->state;
      l->state = PG_IDLE;
      if (PQstatus(l->conn) == CONNECTION_BAD) {
        pg_lost(l, PQerrorMessage(l->conn));
        return;
      }
      if (pg_query_over(p, l, was)) {
        continue;
      }
      if (l->state == PG_IDLE || l->state == PG_COPIED) {
        pg_watch(l, UV_READABLE, 0);
      }
      return;
    }
    switch (PQresultStatus(r)) {
    case PGRES_COPY_IN:
      if ((l->state != PG_BATCH && l->state != PG_COPYING) || l->seg_next >= l->nsegs ||
          l->batch_conflict || l->doomed) {
        /* Ends the COPY with an error, and so the transaction: a conflict is retried through
         * the staging table (pg_batch_failed). */
        (void)PQputCopyEnd(l->conn, l->batch_conflict ? "rows of this batch are stored already"
                                    : l->doomed       ? "a batch before this one failed"
                                                      : "unexpected COPY");
        l->copy_ended = 1;
        break;
      }
      l->seg_next++;
      l->copying = 1;
      l->copy_ended = 0;
      l->copy_off = 0;
      break;
    case PGRES_TUPLES_OK:
      if ((l->state == PG_BATCH || l->state == PG_CHECK) && !l->batch_safe) {
        /* The progress rows, locked: does the table have rows of this batch already? */
        for (int i = 0; i < PQntuples(r); i++) {
          if (strcmp(PQgetvalue(r, i, 0), "t") == 0) {
            l->batch_conflict = 1;
          }
        }
      }
      if (l->state == PG_NAMING && pg_naming_done(p, r) != 0) {
        PQclear(r);
        pg_fail(p);
        return;
      }
      break;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      break;
    default:
      pg_note_error(l, r);
      break;
    }
    if (PQresultStatus(r) != PGRES_COPY_IN) {
      l->copying = 0;
    }
    PQclear(r);
  }
  pg_watch(l, UV_READABLE | (l->want_write ? UV_WRITABLE : 0), 0);
}

/* Do everything that can be done now on every lane without waiting. */
static void pg_drive(sink_pg *p) {
  for (int i = 0; i < PG_LANES && !p->failed; i++) {
    pg_lane *l = &p->lanes[i];
    switch (l->state) {
    case PG_CONNECTING:
      pg_connect_step(l);
      break;
    case PG_NAMING:
    case PG_BATCH:
    case PG_COPYING:
    case PG_CHECK:
    case PG_ROLLBACK:
      pg_query_step(p, l);
      break;
    case PG_IDLE:
    case PG_COPIED:
      /* Nothing asked, yet the socket is readable: a notice, or the server going away. */
      if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) == CONNECTION_BAD) {
        pg_lost(l, PQerrorMessage(l->conn));
      }
      break;
    default:
      break;
    }
  }
}

/* Is any lane's batch in flight, and is one of them rolled back? */
static int pg_in_flight(const sink_pg *p, int *doomed) {
  int any = 0;
  *doomed = 0;
  for (int i = 0; i < PG_LANES; i++) {
    if (p->lanes[i].order != 0) {
      any = 1;
      *doomed |= p->lanes[i].doomed;
    }
  }
  return any;
}

/* Should the queued rows go now rather than wait for more (the pace)? When a batch's worth of a
 * fast stream waits, or the newest row's stream ended (its END came: nothing follows it). */
static int pg_no_more_soon(const sink_pg *p) {
  const rowq_row *tail = rowq_tail(p->rows);
  return rowq_count(p->rows) >= PG_STEP_MIN_ROWS || (tail != NULL && tail->stream->ended);
}

/* While a batch is in flight and enough rows wait behind it, send the next one beside it on an
 * idle lane (connecting one when none is). force: any rows at all (the drain). */
static void pg_step_more(sink_pg *p, uint64_t now, int force) {
  int doomed;
  size_t waiting = pg_unbatched_count(p);
  int backlog = waiting >= PG_STEP_MIN_ROWS;
  if (!pg_in_flight(p, &doomed) || doomed || waiting == 0 || p->step_hold ||
      (!force && !backlog && !rowq_tail(p->rows)->stream->ended) || now < p->retry_us ||
      now < p->safe_until_us || !p->progress_table || p->lanes[0].conn == NULL) {
    return;
  }
  for (int i = 0; i < PG_LANES; i++) {
    pg_lane *l = &p->lanes[i];
    if (l->state == PG_IDLE && l->order == 0) {
      if (pg_batch_step(p, l) > 0) {
        pg_drive(p);
      }
      return;
    }
  }
  /* Another connection only for a backlog, not for the last rows of a stream. */
  for (int i = 1; i < PG_LANES && backlog; i++) {
    pg_lane *l = &p->lanes[i];
    if (l->state == PG_DOWN && now >= l->retry_us) {
      pg_connect_start(l);
      pg_drive(p);
      return;
    }
  }
}

/* Let a stepped batch whose rows are in go on once it is the oldest in flight. */
static void pg_steps_finish(sink_pg *p) {
  for (int i = 0; i < PG_LANES; i++) {
    pg_lane *l = &p->lanes[i];
    if (l->state == PG_COPIED && pg_lane_oldest(p, l)) {
      pg_step_finish(l);
      pg_drive(p);
    }
  }
}

/* Move on: connect when it is time, let stepped batches commit in turn, start the next batch
 * when one is due. now: monotonic. force: do not wait for the pace (the drain). Returns the time
 * to be called again (0: at the next turn with records). */
static uint64_t pg_advance(sink_pg *p, uint64_t now, int force) {
  pg_lane *l0 = &p->lanes[0];
  int doomed;
  uint64_t next = 0;
  if (p->failed) {
    return 0;
  }
  pg_drive(p);
  pg_pre_catch_up(p, PG_PRE_STEP);
  if (l0->state == PG_DOWN && now >= p->retry_us) {
    pg_connect_start(l0);
    pg_drive(p);
  }
  pg_steps_finish(p);
  if (l0->state == PG_IDLE && !pg_in_flight(p, &doomed) && rowq_head(p->rows) != NULL) {
    if (now < p->retry_us) {
      return p->retry_us;
    }
    if (!force && !pg_no_more_soon(p) && now - p->last_commit_us < PG_COMMIT_PACE_US) {
      return p->last_commit_us + PG_COMMIT_PACE_US + 1000;
    }
    (void)pg_batch_start(p, l0);
    pg_drive(p);
    if (l0->state == PG_IDLE && l0->order == 0 && rowq_head(p->rows) != NULL) {
      /* The catalog answered at once: the batch proper goes now. */
      (void)pg_batch_start(p, l0);
      pg_drive(p);
    }
  }
  pg_step_more(p, now, force);
  pg_steps_finish(p); /* one may have become the oldest meanwhile */
  for (int i = 0; i < PG_LANES; i++) {
    const pg_lane *l = &p->lanes[i];
    uint64_t at = 0;
    switch (l->state) {
    case PG_DOWN:
      at = i == 0 ? p->retry_us : 0;
      break;
    case PG_CONNECTING:
    case PG_NAMING:
    case PG_BATCH:
    case PG_COPYING:
    case PG_COPIED:
    case PG_CHECK:
    case PG_ROLLBACK:
      /* The socket's watcher wakes the loop; without one (or as a guard), look again soon. */
      at = now + (l->poll != NULL ? 100000 : 1000);
      break;
    case PG_IDLE:
      /* Rows wait and nothing is in flight (else the batch in flight's socket wakes us). */
      at = i == 0 && rowq_head(p->rows) != NULL && !pg_in_flight(p, &doomed) ? now + 1000 : 0;
      break;
    default:
      break;
    }
    if (at != 0 && (next == 0 || at < next)) {
      next = at;
    }
  }
  return next;
}

/* ---- the sink's operations ---- */

static int sink_pg_open(void **self, const consumer_options *opt, const sink_env *env) {
  sink_pg *p;
  pg_lane *l0;
  const char *keys[6], *values[6];
  char msg[512];
  *self = NULL;
  if (opt->db_path == NULL || !consumer_options_db_is_postgres(opt->db_path)) {
    return SINK_OFF;
  }
  p = calloc(1, sizeof *p);
  if (p == NULL || rowq_new(&p->rows) != 0) {
    free(p);
    log_error("--db: out of memory");
    return CS_ENOMEM;
  }
  p->env = *env;
  p->loop = env->loop;
  p->target = opt->db_path;
  p->fsync = opt->fsync;
  p->pre_valid = 1; /* nothing queued: rows are made into lines as they come */
  p->rng = clock_wall_us() | 1;
  for (int i = 0; i < PG_LANES; i++) {
    p->lanes[i].p = p;
    p->lanes[i].index = i;
    p->lanes[i].state = PG_DOWN;
  }
  l0 = &p->lanes[0];
  pg_target_shown(p->target, p->shown, sizeof p->shown);
  if (strcmp(opt->out_path, "-") == 0) {
    snprintf(p->save_path, sizeof p->save_path, "csvstream-pg.uncommitted.csv");
  } else {
    snprintf(p->save_path, sizeof p->save_path, "%s.pg-uncommitted.csv", opt->out_path);
  }
  {
    struct stat sb;
    if (stat(p->save_path, &sb) == 0 && sb.st_size > 0) {
      log_warn("%s holds rows an earlier run could not commit: TCP producers resend what was not "
               "acknowledged, so some may be in the database by now; compare them with the table "
               "(by _producer and _seq) before importing any",
               p->save_path);
    }
  }
  /* The first connection at the start, waiting (nothing is read from the network yet): a
   * wrong target or user is said at once, and the progress of earlier runs is read. */
  pg_conn_params(p, keys, values);
  l0->conn = PQconnectdbParams(keys, values, 1);
  if (l0->conn == NULL || PQstatus(l0->conn) != CONNECTION_OK) {
    const char *why = l0->conn != NULL ? PQerrorMessage(l0->conn) : "out of memory";
    pg_message(why, msg, sizeof msg);
    if (l0->conn == NULL || !pg_connect_transient(why)) {
      log_error("--db: cannot connect to %s: %s (check the target, the user and its password "
                "in PGPASSWORD or ~/.pgpass)",
                p->shown, msg);
      PQfinish(l0->conn);
      rowq_free(p->rows);
      free(p);
      return CS_EIO;
    }
    log_warn("database %s unreachable (%s): starting anyway; rows wait in memory and the "
             "consumer keeps trying",
             p->shown, msg);
    PQfinish(l0->conn);
    l0->conn = NULL;
    p->down_since_us = clock_mono_us();
    p->backoff_ms = PG_BACKOFF_FIRST_MS;
    p->retry_us = p->down_since_us + PG_BACKOFF_FIRST_MS * 1000;
    *self = p;
    return 0;
  }
  PQsetNoticeProcessor(l0->conn, pg_notice_cb, NULL);
  {
    PGresult *r = PQexec(l0->conn, "CREATE TABLE IF NOT EXISTS " PG_PROGRESS_TABLE
                                   " (producer text COLLATE \"C\" NOT NULL, stream bytea NOT "
                                   "NULL, seq bigint NOT NULL, PRIMARY KEY (producer, stream))");
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && st != NULL &&
        (strcmp(st, "23505") == 0 || strcmp(st, "42P07") == 0)) {
      /* Another consumer created it at the same moment: it is there. */
      log_debug("database %s: the progress table was created by another client meanwhile",
                p->shown);
    } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      log_warn("database %s: cannot create the progress table (%s); trying again with the "
               "first rows",
               p->shown, pg_message(PQresultErrorMessage(r), msg, sizeof msg));
    }
    PQclear(r);
  }
  if (pg_progress_load(p) != 0) {
    log_warn("database %s: cannot read the progress table (%s): acknowledged streams start "
             "from nothing (each batch still reads the progress it locks, so each record is stored "
             "once)",
             p->shown, pg_message(PQerrorMessage(l0->conn), msg, sizeof msg));
  }
  log_info("database %s: connected (PostgreSQL %d, server %s)", p->shown,
           PQserverVersion(l0->conn) / 10000,
           PQparameterStatus(l0->conn, "server_version") != NULL
               ? PQparameterStatus(l0->conn, "server_version")
               : "?");
  pg_connected(l0); /* a loss here is retried like any other */
  *self = p;
  return 0;
}

/* Queue one row. Values PostgreSQL cannot hold as text (a NUL byte, bytes that are not UTF-8)
 * and rows wider than a table are refused here, alone: counted and logged (they are in the CSV
 * file), or the stream refused when it is acknowledged. */
static int sink_pg_add(void *self, const sink_record *r) {
  sink_pg *p = self;
  char where[4200], n[WORDS_BUF];
  const char *why = NULL;
  if (p->failed) {
    return CS_EIO;
  }
  if (r->nfields + PG_NMETA > PG_MAX_COLUMNS || r->stream->ncolumns + PG_NMETA > PG_MAX_COLUMNS) {
    why = "has more fields than a PostgreSQL table has columns (1600 with the metadata)";
  } else if (rowq_bytes(p->rows) >= PG_MAX_PENDING_BYTES) {
    why = "finds the queue full";
  } else {
    for (size_t i = 0; i < r->nfields && why == NULL; i++) {
      if (!pg_text_ok((const unsigned char *)r->fields[i].data, r->fields[i].len)) {
        why = "has a value that is not UTF-8 text (or holds a NUL byte), which PostgreSQL's "
              "text cannot hold";
      }
    }
  }
  if (why != NULL) {
    if (r->stream->acked) {
      log_error("database %s: %s record %s #%" PRIu64 " %s: stream refused", p->shown,
                r->stream->protocol, r->stream->label, r->seq, why);
      return CS_EREFUSED;
    }
    p->dropped++;
    if (log_limiter_allow(&p->drop_log, clock_mono_us(), PG_LOG_INTERVAL_US)) {
      log_error("database %s: %s record %s #%" PRIu64 " %s: not stored there (%s so far; it is "
                "in %s)",
                p->shown, r->stream->protocol, r->stream->label, r->seq, why,
                words_count(n, sizeof n, p->dropped),
                p->env.copy_where(p->env.arg, r->stream, where, sizeof where));
    }
    return 0;
  }
  pg_table *t = pg_table_for(p, r->stream);
  if (t == NULL) {
    log_error("database %s: out of memory; stopping", p->shown);
    pg_fail(p);
    return CS_ENOMEM;
  }
  if ((t->name != NULL && colnames_widen(&t->cols, t->nheader, r->nfields) != 0) ||
      rowq_push(p->rows, r, t) != 0) {
    log_error("database %s: out of memory; stopping", p->shown);
    pg_fail(p);
    return CS_ENOMEM;
  }
  r->stream->held[p->env.slot]++; /* until its batch commits: the stream is not retired */
  if (t->name == NULL && r->nfields > t->max_fields) {
    t->max_fields = r->nfields;
  }
  pg_pre_add(p, rowq_tail(p->rows));
  return 0;
}

/* An acknowledged stream resumes where the progress table said it stood at the start. */
static void sink_pg_resume(void *self, sink_stream *st) {
  sink_pg *p = self;
  size_t len = strlen(st->name);
  for (size_t i = 0; i < p->nprogress; i++) {
    const pg_progress *e = &p->progress[i];
    if (strcmp(e->producer, st->producer_hex) == 0 && e->len == len &&
        memcmp(e->stream, st->name, len) == 0) {
      st->durable[p->env.slot] = e->seq;
      return;
    }
  }
}

/* A stream leaves the table (no row of it queued): drop its slot, and remember an acknowledged
 * stream's number as the progress table has it now, for a resume later in this run. */
static void sink_pg_forget(void *self, sink_stream *st) {
  sink_pg *p = self;
  size_t len = strlen(st->name);
  uint64_t seq = st->durable[p->env.slot];
  pg_progress *grown, *e;
  st->slot[p->env.slot] = NULL;
  if (p->meta_st == st) {
    p->meta_st = NULL; /* its memory may be the next stream's */
  }
  if (!st->acked || seq == 0) {
    return;
  }
  for (size_t i = 0; i < p->nprogress; i++) {
    e = &p->progress[i];
    if (strcmp(e->producer, st->producer_hex) == 0 && e->len == len &&
        memcmp(e->stream, st->name, len) == 0) {
      e->seq = e->seq > seq ? e->seq : seq;
      return;
    }
  }
  grown = realloc(p->progress, (p->nprogress + 1) * sizeof(*grown));
  if (grown == NULL) {
    return; /* the table has it: a resume in this run would start lower, and resend */
  }
  p->progress = grown;
  e = &p->progress[p->nprogress];
  e->stream = malloc(len > 0 ? len : 1);
  if (e->stream == NULL) {
    return;
  }
  memcpy(e->stream, st->name, len);
  e->len = len;
  snprintf(e->producer, sizeof e->producer, "%s", st->producer_hex);
  e->seq = seq;
  p->nprogress++;
}

static int sink_pg_flush(void *self, uint64_t now, uint64_t *next_us) {
  sink_pg *p = self;
  *next_us = 0;
  if (p->failed) {
    return CS_EIO;
  }
  *next_us = pg_advance(p, now, 0);
  return p->failed ? CS_EIO : 0;
}

/* Pause the peers that can wait at half the queue's bound, let them go on at a quarter. */
static int sink_pg_pressure(void *self, int paused, char *why, size_t len) {
  sink_pg *p = self;
  size_t bytes = rowq_bytes(p->rows);
  char rows[WORDS_BUF], mib[WORDS_BUF];
  words_count_of(rows, sizeof rows, rowq_count(p->rows), "row", "rows");
  if (!paused && bytes > PG_MAX_PENDING_BYTES / 2) {
    snprintf(why, len, "database %s is behind (%s, %s MiB queued)", p->shown, rows,
             words_count(mib, sizeof mib, bytes >> 20));
    return SINK_PRESSURE_HIGH;
  }
  if (paused && bytes < PG_MAX_PENDING_BYTES / 4) {
    snprintf(why, len, "database %s caught up (%s queued)", p->shown, rows);
    return SINK_PRESSURE_LOW;
  }
  return SINK_PRESSURE_KEEP;
}

/* The table name a queued row is saved under. */
static const char *pg_row_table_name(const rowq_row *row, void *arg) {
  const pg_table *t = row->tag;
  (void)arg;
  return t->name != NULL ? t->name : t->stream_name;
}

/* Is a commit in flight, whose rows may be in the database or not? */
static int pg_committing(const sink_pg *p) {
  if (p->commit_unknown) {
    return 1;
  }
  for (int i = 0; i < PG_LANES; i++) {
    if (p->lanes[i].state == PG_BATCH) {
      return 1;
    }
  }
  return 0;
}

/* Save what is left to the .pg-uncommitted.csv file and say why. */
static void pg_give_up(sink_pg *p, const char *reason) {
  char err[512], where[4200], rows[WORDS_BUF];
  size_t n = rowq_count(p->rows), saved = 0;
  if (n == 0) {
    return;
  }
  words_count_of(rows, sizeof rows, n, "row", "rows");
  const char *csv = p->env.copy_where(p->env.arg, NULL, where, sizeof where);
  if (rowq_save(p->rows, p->save_path, pg_row_table_name, NULL, &saved, err, sizeof err) != 0) {
    log_error("database %s: %s not committed (%s); they are in %s, but could not be saved apart: "
              "%s",
              p->shown, rows, reason, csv, err);
    return;
  }
  log_error("database %s: %s not committed: saved to %s (%s; they are in %s too)%s", p->shown, rows,
            p->save_path, reason, csv,
            pg_committing(p) ? "; the last batch was being committed when the wait ended, so "
                               "its rows may be in the database as well"
                             : "");
}

/* At the stop: commit everything, waiting up to 10 s for a server that is away. */
static int sink_pg_drain(void *self, uint64_t now, int give_up, uint64_t *next_us) {
  sink_pg *p = self;
  if (!p->drain_started) {
    p->drain_started = 1;
    p->drain_deadline_us = now + PG_DRAIN_TIMEOUT_US;
  }
  if (p->failed) {
    pg_give_up(p, "see the error above");
    return 1;
  }
  uint64_t next = pg_advance(p, now, 1);
  if (p->failed) {
    pg_give_up(p, "see the error above");
    return 1;
  }
  if (rowq_head(p->rows) == NULL && !pg_committing(p) && p->lanes[0].state != PG_NAMING) {
    if (p->dropped > 0) {
      char where[4200];
      char nrec[WORDS_BUF];
      log_error("database %s: %s not stored in it (see the errors above); they are in %s", p->shown,
                words_count_of(nrec, sizeof nrec, p->dropped, "record was", "records were"),
                p->env.copy_where(p->env.arg, NULL, where, sizeof where));
      return 1;
    }
    return 0;
  }
  if (give_up) {
    pg_give_up(p, "the wait for the database was stopped");
    return 1;
  }
  if (now >= p->drain_deadline_us) {
    pg_give_up(p, "the database did not take them within 10 s");
    return 1;
  }
  if (!p->drain_warned && p->lanes[0].state == PG_DOWN) {
    char rows[WORDS_BUF];
    p->drain_warned = 1;
    log_warn("database %s is unreachable: waiting up to %d s to commit %s (Ctrl-C again to stop "
             "waiting)",
             p->shown, PG_DRAIN_TIMEOUT_US / 1000000,
             words_count_of(rows, sizeof rows, rowq_count(p->rows), "row", "rows"));
  }
  if (next == 0 || next > now + 2000) {
    next = p->lanes[0].state == PG_DOWN && next != 0 ? next : now + 2000;
  }
  *next_us = next < p->drain_deadline_us ? next : p->drain_deadline_us;
  return SINK_AGAIN;
}

static int sink_pg_waiting(void *self, char *what, size_t len) {
  sink_pg *p = self;
  if (rowq_head(p->rows) == NULL) {
    return 0;
  }
  snprintf(what, len, "database %s", p->shown);
  return 1;
}

static void sink_pg_report_text(void *self, FILE *out) {
  sink_pg *p = self;
  char rows[WORDS_BUF], pending[WORDS_BUF], rec[WORDS_BUF], dropped[WORDS_BUF];
  fprintf(out,
          "database %s: %s committed, %s pending, %s, %s not stored (not UTF-8 text, or more "
          "fields than a table takes)\n",
          p->shown, words_count_of(rows, sizeof rows, p->committed, "row", "rows"),
          words_count(pending, sizeof pending, rowq_count(p->rows)),
          words_count_of(rec, sizeof rec, p->reconnects, "reconnect", "reconnects"),
          words_count(dropped, sizeof dropped, p->dropped));
}

/* "postgres": target (password removed; null without a PostgreSQL --db), rows committed and
 * pending, reconnects, batches that met rows stored before, retried batches, batches committed
 * and how many of them went beside another on a second connection, rows dropped. */
static void sink_pg_report_json(void *self, json_out *j) {
  sink_pg *p = self;
  json_object_begin(j, "postgres");
  json_string(j, "target", p != NULL ? p->shown : NULL);
  json_uint(j, "committed", p != NULL ? p->committed : 0);
  json_uint(j, "pending", p != NULL ? rowq_count(p->rows) : 0);
  json_uint(j, "reconnects", p != NULL ? p->reconnects : 0);
  json_uint(j, "conflicts", p != NULL ? p->conflicts : 0);
  json_uint(j, "retries", p != NULL ? p->retries : 0);
  json_uint(j, "batches", p != NULL ? p->batches : 0);
  json_uint(j, "batches_parallel", p != NULL ? p->batches_parallel : 0);
  json_uint(j, "dropped", p != NULL ? p->dropped : 0);
  json_object_end(j);
}

static int sink_pg_close(void *self, int discard) {
  sink_pg *p = self;
  (void)discard;
  if (p == NULL) {
    return 0;
  }
  for (int i = 0; i < PG_LANES; i++) {
    pg_lane *l = &p->lanes[i];
    pg_unwatch(l);
    PQfinish(l->conn);
    for (size_t k = 0; k < l->segs_cap; k++) {
      cs_buf_free(&l->segs[k].copy);
    }
    free(l->segs);
    free(l->marks);
    free(l->batch_tally.v);
  }
  for (pg_table *t = p->tables, *next; t != NULL; t = next) {
    next = t->next;
    pg_table_free(t);
  }
  for (size_t i = 0; i < p->nprogress; i++) {
    free(p->progress[i].stream);
  }
  free(p->progress);
  free(p->pre_tally.v);
  free(p->pre_tables);
  cs_buf_free(&p->meta_head);
  cs_buf_free(&p->meta_tail);
  rowq_free(p->rows);
  free(p);
  return 0;
}

const sink_ops sink_pg_ops = {
    .name = "postgres",
    .open = sink_pg_open,
    .add = sink_pg_add,
    .resume = sink_pg_resume,
    .forget = sink_pg_forget,
    .flush = sink_pg_flush,
    .pressure = sink_pg_pressure,
    .drain = sink_pg_drain,
    .waiting = sink_pg_waiting,
    .summary = sink_pg_report_text,
    .json = sink_pg_report_json,
    .close = sink_pg_close,
};

#endif
