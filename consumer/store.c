/* store.c -- the SQLite storage behind sink_sqlite.c: per-stream tables built from the CSV
 * header, rows queued in memory (rowq.c) and committed in short BEGIN IMMEDIATE batches that
 * never wait long on another's lock. */
#include "store.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colnames.h"
#include "error.h"
#include "fields.h"
#include "log.h"
#include "rowq.h"
#include "utf8.h"

/* How long a statement waits for a lock held by another connection. The consumer's loop must
 * never stall, so this is a few milliseconds; the caller retries with backoff instead. */
#define STORE_BUSY_TIMEOUT_MS 5
/* While opening (switching to WAL needs a lock once), waiting a little longer is fine. */
#define STORE_OPEN_BUSY_TIMEOUT_MS 2000
/* Candidate table names tried per stream: name, name_2 ... name_STORE_MAX_NAME_TRIES. */
#define STORE_MAX_NAME_TRIES 10000

/* The metadata columns every table carries after the CSV's own columns. */
static const char *const store_meta_names[] = {"_producer", "_protocol",    "_seq",
                                               "_sent_us",  "_received_us", "_peer"};
static const char *const store_meta_types[] = {"TEXT",    "TEXT",    "INTEGER",
                                               "INTEGER", "INTEGER", "TEXT"};
#define STORE_NMETA 6

/* SQLite's rules for value column names: compared without regard to ASCII case, any length,
 * never a metadata column's name; bytes that are not UTF-8 read as Windows-1252. The names are
 * SQLite's allocations (sqlite3_free), whose failures the tests inject. */
static void *store_name_realloc(void *p, size_t n) {
  return sqlite3_realloc64(p, n);
}
static const colnames_policy store_colnames = {.compare = sqlite3_stricmp,
                                               .max_bytes = 0,
                                               .reserved = store_meta_names,
                                               .nreserved = STORE_NMETA,
                                               .repair = COLNAMES_REPAIR_CP1252,
                                               .name_realloc = store_name_realloc,
                                               .name_free = sqlite3_free};

typedef struct store_progress_entry store_progress_entry;

/* One table in the database, shared by every stream of the same name and header. */
typedef struct store_table {
  struct store_table *next;
  store *owner;
  char *name;        /* SQL table name (unquoted), owned; NULL until the first flush names it */
  char *stream_name; /* stream name it serves, owned */
  char stream_label[LOG_ESCAPE_BUF]; /* the two names as log lines and errors show them */
  char name_label[LOG_ESCAPE_BUF];
  /* Why the table is not named after the stream ("" if it is): said in the one line that
   * maps the stream to its table. */
  char route_note[LOG_ESCAPE_BUF + 64];
  size_t nheader;       /* header columns (0 without a header) */
  cs_field *header;     /* copy of the raw header (cs_fields_copy), for matching later streams */
  char *header_data;    /* bytes the header copy points into */
  colnames cols;        /* value column names: header names, then extra_N / column_N */
  size_t max_fields;    /* most values in a row queued before the table had its name */
  size_t ncols_db;      /* value columns that exist in the database (committed) */
  int created;          /* the table exists in the database (committed) */
  size_t ncols_tx;      /* during a flush: value columns after this transaction's DDL */
  int created_tx;       /* during a flush: created in this transaction */
  sqlite3_stmt *insert; /* cached INSERT naming insert_ncols value columns, or NULL */
  size_t insert_ncols;
  int want_empty;  /* a stream without rows: create the table at the next flush */
  int warned_blob; /* a value that is not UTF-8 was stored as a BLOB (said once) */
  /* The same INSERT for insert_rows rows at once (NULL when a row's parameters are too many
   * for that): one statement step per insert_rows rows of a batch. */
  sqlite3_stmt *insert_many;
  size_t insert_rows;
} store_table;

/* Rows one INSERT statement takes at once: each step and reset of a statement costs about as
 * much as binding a row, and a statement that stays open keeps its cursor at the table's end. */
#define STORE_INSERT_ROWS 32
/* In that statement the stream's producer, protocol and peer are parameters ?1 to ?3, bound
 * once per step; each row has its values and three metadata parameters of its own. */
#define STORE_SHARED_PARAMS 3
#define STORE_ROW_META 3

/* The page size of a database the consumer creates, and the WAL pages between automatic
 * checkpoints: 64 MiB of them (16 MiB in a database made elsewhere with 4 KiB pages). */
#define STORE_PAGE_SIZE "16384"
#define STORE_WAL_CHECKPOINT_PAGES "4096"

struct store {
  sqlite3 *db;
  char *path;
  char err[512];
  store_table *tables;
  rowq *rows;  /* queued, not committed; each row's tag is its store_table */
  size_t slot; /* this store's index into sink_stream.slot */
  uint64_t committed;
  /* Acknowledged streams' progress: what the progress table held at open (for streams that
   * resume), and whether the table exists. */
  store_progress_entry *progress;
  size_t nprogress;
  int progress_table;
  int progress_loaded; /* store_progress_load ran (at the first acknowledged stream) */
  sqlite3_stmt *progress_upsert;
  sqlite3_stmt *begin, *commit; /* BEGIN IMMEDIATE and COMMIT, prepared once */
  size_t empty_waiting;         /* tables with want_empty set */
};

/* The table that holds each acknowledged stream's last committed sequence number, written in
 * the same transaction as its rows: after a crash the database and it agree. */
#define STORE_PROGRESS_TABLE "_csvstream_progress"

/* A stream's progress as the table held it at open. */
struct store_progress_entry {
  uint64_t producer_id;
  char *stream; /* the name's bytes, owned */
  size_t len;
  uint64_t seq;
};

/* Record an error as "database PATH: message". */
static void store_set_error(store *s, const char *what) {
  snprintf(s->err, sizeof s->err, "database %s: %s", s->path, what);
}

/* Record the connection's current SQLite error, with the step that failed. */
static void store_set_sqlite_error(store *s, const char *step) {
  snprintf(s->err, sizeof s->err, "database %s: %s: %s", s->path, step, sqlite3_errmsg(s->db));
}

/* SQLITE_BUSY or SQLITE_LOCKED, extended codes included. */
static int store_is_busy(int rc) {
  return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Run one SQL statement without results; a failure is reported as "database PATH: what:
 * message" (what NULL: the statement itself; pass a description for long ones, whose text
 * would crowd SQLite's message out). Returns 0, CS_EBUSY or CS_ESQLITE (error set). */
static int store_exec(store *s, const char *sql, const char *what) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  if (rc == SQLITE_OK) {
    return 0;
  }
  store_set_sqlite_error(s, what != NULL ? what : sql);
  return store_is_busy(rc) ? CS_EBUSY : CS_ESQLITE;
}

/* Run one statement without results that every transaction runs (sql, prepared once into *q,
 * not parsed again at each commit). Errors as store_exec. */
static int store_exec_cached(store *s, sqlite3_stmt **q, const char *sql) {
  int rc;
  if (*q == NULL && sqlite3_prepare_v2(s->db, sql, -1, q, NULL) != SQLITE_OK) {
    store_set_sqlite_error(s, sql);
    rc = sqlite3_errcode(s->db);
    sqlite3_finalize(*q);
    *q = NULL;
    return store_is_busy(rc) ? CS_EBUSY : CS_ESQLITE;
  }
  rc = sqlite3_step(*q);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(*q);
    return 0;
  }
  store_set_sqlite_error(s, sql); /* the message before the reset, which may change it */
  sqlite3_reset(*q);
  return store_is_busy(rc) ? CS_EBUSY : CS_ESQLITE;
}

/* malloc'd copy of n bytes plus a NUL, with NUL bytes inside replaced by '_' (SQL text cannot
 * hold them). NULL when out of memory. */
static char *store_name_dup(const char *data, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    p[i] = data[i] == '\0' ? '_' : data[i];
  }
  p[n] = '\0';
  return p;
}

/* Is name one of the metadata columns (case-insensitive, as SQLite compares names)? */
static int store_is_meta(const char *name) {
  for (size_t i = 0; i < STORE_NMETA; i++) {
    if (sqlite3_stricmp(name, store_meta_names[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Free a table and its cached statement. Accepts NULL. */
static void store_table_free(store_table *t) {
  if (t == NULL) {
    return;
  }
  sqlite3_finalize(t->insert);
  sqlite3_finalize(t->insert_many);
  colnames_free(&t->cols);
  free(t->name);
  free(t->stream_name);
  free(t->header);
  free(t->header_data);
  free(t);
}

/* A new in-memory table for stream st: header copied, column names made unique and non-empty.
 * Returns 0 with *out set, or CS_ENOMEM. */
static int store_table_new(store *s, const sink_stream *st, store_table **out) {
  int rc = CS_ENOMEM;
  store_table *t = calloc(1, sizeof *t);
  if (t == NULL) {
    goto fail;
  }
  t->owner = s;
  colnames_init(&t->cols, &store_colnames);
  t->stream_name = store_name_dup(st->name, strlen(st->name));
  if (t->stream_name == NULL) {
    goto fail;
  }
  log_escape(t->stream_label, sizeof t->stream_label, t->stream_name, strlen(t->stream_name));
  t->nheader = st->ncolumns;
  rc = cs_fields_copy(st->columns, st->ncolumns, &t->header, &t->header_data);
  if (rc) {
    goto fail;
  }
  for (size_t i = 0; i < t->nheader; i++) {
    int repaired = 0;
    char *base =
        colnames_wanted(&store_colnames, st->columns[i].data, st->columns[i].len, i + 1, &repaired);
    /* rc is 0 here (the step before succeeded): set it, or the caller sees success. */
    if (base == NULL) {
      rc = CS_ENOMEM;
      goto fail;
    }
    if (repaired) {
      char was[LOG_ESCAPE_BUF], now[LOG_ESCAPE_BUF];
      log_warn("stream '%s': the name of column %zu, '%s', is not valid UTF-8; in %s it is '%s' "
               "(each byte that is not UTF-8 read as Windows-1252)",
               t->stream_label, i + 1,
               log_escape(was, sizeof was, st->columns[i].data, st->columns[i].len), s->path,
               log_escape(now, sizeof now, base, strlen(base)));
    }
    rc = colnames_add(&t->cols, base);
    sqlite3_free(base);
    if (rc) {
      goto fail;
    }
  }
  *out = t;
  return 0;
fail:
  store_table_free(t);
  return rc;
}

/* Does table t serve streams named like st with st's header (raw bytes compared)? */
static int store_table_matches(const store_table *t, const sink_stream *st) {
  return strcmp(t->stream_name, st->name) == 0 &&
         cs_fields_equal(t->header, t->nheader, st->columns, st->ncolumns);
}

/* Does a table of the file with columns fcols[0..nf) fit t? It fits when every metadata column
 * is there and the other columns are exactly t's header columns, in order, followed only by
 * extra columns of the kind t would add itself; then its extra columns are adopted into t.
 * Returns 0 with *state 1 (adopted) or 2 (does not fit), or CS_ENOMEM. */
static int store_table_adopt(store_table *t, char *const *fcols, size_t nf, int *state) {
  int rc;
  *state = 2;
  size_t nmeta = 0, nval = 0;
  const char *prefix = colnames_extra_prefix(t->nheader);
  size_t plen = strlen(prefix);
  for (size_t i = 0; i < nf; i++) {
    if (store_is_meta(fcols[i])) {
      nmeta++;
      continue;
    }
    if (nval < t->nheader) {
      if (strcmp(fcols[i], t->cols.names[nval]) != 0) {
        return 0;
      }
    } else if (sqlite3_strnicmp(fcols[i], prefix, (int)plen) != 0 || fcols[i][plen] != '_') {
      return 0;
    }
    nval++;
  }
  if (nmeta != STORE_NMETA || nval < t->nheader) {
    return 0;
  }
  /* Adopt the table's extra columns as they are named in the file. */
  for (size_t i = 0, v = 0; i < nf; i++) {
    if (store_is_meta(fcols[i])) {
      continue;
    }
    if (v++ < t->nheader) {
      continue;
    }
    rc = colnames_add(&t->cols, fcols[i]);
    if (rc) {
      return rc;
    }
  }
  t->ncols_db = t->cols.n;
  t->created = 1;
  *state = 1;
  return 0;
}

/* Look the candidate name up in the database file. Returns 0 with *state = 0 (no such name),
 * 1 (a table whose columns fit t: its extra columns have been adopted into t), 2 (the name is
 * taken by something else), or CS_EBUSY / CS_ESQLITE / CS_ENOMEM. */
static int store_probe_name(store *s, store_table *t, const char *name, int *state) {
  sqlite3_stmt *q = NULL;
  char **fcols = NULL;
  size_t nf = 0, cap = 0;
  int rc = 0, step;

  *state = 0;
  /* SQLite compares identifiers case-insensitively (ASCII only), as NOCASE does. */
  step = sqlite3_prepare_v2(s->db, "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE",
                            -1, &q, NULL);
  if (step != SQLITE_OK) {
    goto sqlfail;
  }
  if (sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
    goto sqlfail;
  }
  step = sqlite3_step(q);
  if (step == SQLITE_DONE) {
    goto done;
  }
  if (step != SQLITE_ROW) {
    goto sqlfail;
  }
  const unsigned char *type = sqlite3_column_text(q, 0);
  if (type == NULL || strcmp((const char *)type, "table") != 0) {
    *state = 2;
    goto done;
  }
  sqlite3_finalize(q);
  q = NULL;

  /* Its columns, in order. */
  step = sqlite3_prepare_v2(s->db, "SELECT name FROM pragma_table_info(?1)", -1, &q, NULL);
  if (step != SQLITE_OK) {
    goto sqlfail;
  }
  if (sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
    goto sqlfail;
  }
  while ((step = sqlite3_step(q)) == SQLITE_ROW) {
    const char *c = (const char *)sqlite3_column_text(q, 0);
    if (c == NULL) {
      c = "";
    }
    if (nf == cap) {
      cap = cap ? cap * 2 : 16;
      char **n2 = realloc(fcols, cap * sizeof *n2);
      if (n2 == NULL) {
        rc = CS_ENOMEM;
        goto done;
      }
      fcols = n2;
    }
    fcols[nf] = strdup(c);
    if (fcols[nf] == NULL) {
      rc = CS_ENOMEM;
      goto done;
    }
    nf++;
  }
  if (step != SQLITE_DONE) {
    goto sqlfail;
  }

  rc = store_table_adopt(t, fcols, nf, state);
  goto done;

sqlfail:
  store_set_sqlite_error(s, "reading the schema");
  rc = store_is_busy(step) ? CS_EBUSY : CS_ESQLITE;
done:
  sqlite3_finalize(q);
  for (size_t i = 0; i < nf; i++) {
    free(fcols[i]);
  }
  free(fcols);
  return rc;
}

/* Choose t's table name: the stream name, or name_2, name_3 ... when the name is taken in this
 * run by another header or in the file by a table with other columns. Names SQLite reserves
 * ("sqlite_...") get the prefix "stream_". Returns 0 or a negative code (error set). */
static int store_table_choose_name(store *s, store_table *t) {
  const char *base = t->stream_name;
  char *prefixed = NULL;
  int rc = 0;
  if (!utf8_valid(base, strlen(base))) {
    /* A stream named after a file whose name is not UTF-8: the table's name is made valid. */
    prefixed = colnames_text(&store_colnames, base, strlen(base), NULL);
    if (prefixed == NULL) {
      return CS_ENOMEM;
    }
    base = prefixed;
    snprintf(t->route_note, sizeof t->route_note,
             "the stream's name is not valid UTF-8: bytes read as Windows-1252");
  }
  if (sqlite3_strnicmp(base, "sqlite_", 7) == 0) {
    char *orig = prefixed;
    prefixed = sqlite3_mprintf("stream_%s", base);
    sqlite3_free(orig);
    if (prefixed == NULL) {
      return CS_ENOMEM;
    }
    base = prefixed;
  }
  int why = 0; /* the stream's own name is taken: 1 in this run, 2 in the file (for the log) */
  for (unsigned long k = 1; k <= STORE_MAX_NAME_TRIES; k++) {
    char *cand = k == 1 ? sqlite3_mprintf("%s", base) : sqlite3_mprintf("%s_%lu", base, k);
    if (cand == NULL) {
      rc = CS_ENOMEM;
      goto done;
    }
    int used = 0;
    for (store_table *o = s->tables; o; o = o->next) {
      if (o->name && sqlite3_stricmp(o->name, cand) == 0) {
        used = 1;
      }
    }
    int state = 2;
    if (!used) {
      rc = store_probe_name(s, t, cand, &state);
    }
    if (k == 1 && rc == 0 && state == 2) {
      why = used ? 1 : 2;
    }
    if (rc == 0 && state != 2) {
      t->name = store_name_dup(cand, strlen(cand));
      sqlite3_free(cand);
      rc = t->name ? 0 : CS_ENOMEM;
      if (rc) {
        goto done;
      }
      log_escape(t->name_label, sizeof t->name_label, t->name, strlen(t->name));
      /* Where a stream's rows go is said once: here for a table of the file, else when the
       * batch that creates the table commits (store_flush), with why it is not named after
       * the stream, if it is not. */
      if (why != 0) {
        char base_label[LOG_ESCAPE_BUF];
        snprintf(t->route_note, sizeof t->route_note, "header differs from table '%s'%s",
                 log_escape(base_label, sizeof base_label, base, strlen(base)),
                 why == 2 ? " in the database" : "");
      } else if (prefixed != NULL) {
        snprintf(t->route_note, sizeof t->route_note, "names starting with sqlite_ are SQLite's");
      }
      if (state == 1) {
        log_info("stream '%s' -> existing table '%s' in %s (appending%s%s)", t->stream_label,
                 t->name_label, s->path, t->route_note[0] ? "; " : "", t->route_note);
      }
      goto done;
    }
    sqlite3_free(cand);
    if (rc) {
      goto done;
    }
  }
  store_set_error(s, "no free table name for this stream");
  rc = CS_ESQLITE;
done:
  sqlite3_free(prefixed);
  return rc;
}

/* The table for stream st: cached on st->slot[s->slot], else an in-run table of the same name and
 * header, else a new one (not named yet). Returns 0 with *out set, or CS_ENOMEM (error set). */
static int store_table_for(store *s, sink_stream *st, store_table **out) {
  store_table *t = st->slot[s->slot];
  if (t && t->owner == s) {
    *out = t;
    return 0;
  }
  for (t = s->tables; t; t = t->next) {
    if (store_table_matches(t, st)) {
      st->slot[s->slot] = t;
      *out = t;
      return 0;
    }
  }
  int rc = store_table_new(s, st, &t);
  if (rc) {
    store_set_error(s, "out of memory");
    return rc;
  }
  /* Its name is chosen by the first store_flush, inside the write transaction: reading the
   * schema here could meet another process's lock (SQLITE_BUSY) outside any retry. */
  t->next = s->tables;
  s->tables = t;
  st->slot[s->slot] = t;
  *out = t;
  return 0;
}

/* What a person can do about an open failure with SQLite result code rc ("" if nothing). */
static const char *store_open_hint(int rc) {
  switch (rc & 0xff) {
  case SQLITE_CANTOPEN:
  case SQLITE_READONLY:
  case SQLITE_PERM:
  case SQLITE_AUTH:
    return " (check the directory exists and is writable, or pick another --db)";
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
    return " (is it an SQLite database? pick another --db)";
  default:
    return "";
  }
}

/* Read the progress table, if the file has one, into s->progress. Returns 0 or CS_ESQLITE. */
static int store_progress_load(store *s) {
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_prepare_v2(s->db, "SELECT producer, stream, seq FROM " STORE_PROGRESS_TABLE, -1,
                              &q, NULL);
  if (rc != SQLITE_OK) {
    return 0; /* no such table: no stream to resume */
  }
  s->progress_table = 1;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(q, 0);
    const void *name = sqlite3_column_blob(q, 1);
    int len = sqlite3_column_bytes(q, 1);
    store_progress_entry *e, *grown;
    if (id == NULL || name == NULL || len <= 0) {
      continue;
    }
    grown = realloc(s->progress, (s->nprogress + 1) * sizeof(*grown));
    if (grown == NULL) {
      sqlite3_finalize(q);
      return CS_ENOMEM;
    }
    s->progress = grown;
    e = &s->progress[s->nprogress];
    e->stream = malloc((size_t)len);
    if (e->stream == NULL) {
      sqlite3_finalize(q);
      return CS_ENOMEM;
    }
    memcpy(e->stream, name, (size_t)len);
    e->len = (size_t)len;
    e->producer_id = strtoull(id, NULL, 16);
    e->seq = (uint64_t)sqlite3_column_int64(q, 2);
    s->nprogress++;
  }
  sqlite3_finalize(q);
  return rc == SQLITE_DONE ? 0 : CS_ESQLITE;
}

/* Commits wait for the disk; see store.h. */
int store_set_synchronous_full(store *s) {
  if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
    store_set_sqlite_error(s, "PRAGMA synchronous=FULL");
    return CS_ESQLITE;
  }
  return 0;
}

/* What the progress table said of st; see store.h. */
uint64_t store_progress(store *s, const sink_stream *st) {
  size_t i, len = strlen(st->name);
  if (!s->progress_loaded) {
    /* Read at the first acknowledged stream, not at open: a consumer that only ever sees UDP or
     * version 1 producers reads nothing it does not need. */
    s->progress_loaded = 1;
    if (store_progress_load(s) != 0) {
      log_warn("database %s: cannot read the progress table (%s): acknowledged streams start "
               "from nothing, and resent records may be stored twice",
               s->path, sqlite3_errmsg(s->db));
    }
  }
  for (i = 0; i < s->nprogress; i++) {
    const store_progress_entry *e = &s->progress[i];
    if (e->producer_id == st->producer_id && e->len == len &&
        memcmp(e->stream, st->name, len) == 0) {
      return e->seq;
    }
  }
  return 0;
}

/* In the open transaction: record each acknowledged stream's highest sequence number among the
 * first n queued rows in the progress table (made on first use). Returns 0 or a code (error
 * set). */
static int store_progress_write(store *s, size_t n) {
  const rowq_row *row;
  const sink_stream *last = NULL;
  size_t k = 0;
  int rc;
  for (row = rowq_head(s->rows); row != NULL && k < n; row = rowq_next(row), k++) {
    const rowq_row *next = rowq_next(row);
    char id[17];
    if (!row->stream->acked || row->stream == last) {
      continue;
    }
    /* Rows of a stream come in order: write its last row's number in this batch, once. */
    if (next != NULL && k + 1 < n && next->stream == row->stream) {
      continue;
    }
    if (!s->progress_table) {
      rc = store_exec(s,
                      "CREATE TABLE IF NOT EXISTS " STORE_PROGRESS_TABLE
                      " (producer TEXT NOT NULL, stream BLOB NOT NULL, seq INTEGER NOT NULL, "
                      "PRIMARY KEY (producer, stream))",
                      "creating the progress table");
      if (rc) {
        return rc;
      }
      s->progress_table = 1;
    }
    if (s->progress_upsert == NULL &&
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO " STORE_PROGRESS_TABLE " (producer, stream, seq) VALUES "
                           "(?1, ?2, ?3) ON CONFLICT (producer, stream) DO UPDATE SET seq = "
                           "max(seq, excluded.seq)",
                           -1, &s->progress_upsert, NULL) != SQLITE_OK) {
      store_set_sqlite_error(s, "preparing the progress row");
      return CS_ESQLITE;
    }
    snprintf(id, sizeof id, "%016" PRIx64, row->stream->producer_id);
    sqlite3_reset(s->progress_upsert);
    if (sqlite3_bind_text(s->progress_upsert, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_blob(s->progress_upsert, 2, row->stream->name, (int)strlen(row->stream->name),
                          SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(s->progress_upsert, 3, (sqlite3_int64)row->seq) != SQLITE_OK) {
      store_set_sqlite_error(s, "binding the progress row");
      return CS_ESQLITE;
    }
    rc = sqlite3_step(s->progress_upsert);
    if (rc != SQLITE_DONE) {
      store_set_sqlite_error(s, "writing the progress row");
      return store_is_busy(rc) ? CS_EBUSY : CS_ESQLITE;
    }
    last = row->stream;
  }
  return 0;
}

/* Free what store_progress_load read, and the prepared upsert. */
static void store_progress_free(store *s) {
  size_t i;
  for (i = 0; i < s->nprogress; i++) {
    free(s->progress[i].stream);
  }
  free(s->progress);
  s->progress = NULL;
  s->nprogress = 0;
  sqlite3_finalize(s->progress_upsert);
  s->progress_upsert = NULL;
  sqlite3_finalize(s->begin);
  s->begin = NULL;
  sqlite3_finalize(s->commit);
  s->commit = NULL;
}

/* The first n queued rows are committed: their streams are durable up to them. */
static void store_progress_done(store *s, size_t n) {
  const rowq_row *row;
  size_t k = 0;
  for (row = rowq_head(s->rows); row != NULL && k < n; row = rowq_next(row), k++) {
    sink_stream *st = (sink_stream *)row->stream; /* the stream table's; rowq borrows it */
    if (st->durable[s->slot] < row->seq) {
      st->durable[s->slot] = row->seq;
    }
    st->held[s->slot]--;
  }
}

int store_open(store **out, const char *path, size_t slot, char *err, size_t errlen) {
  store *s = calloc(1, sizeof *s);
  sqlite3_stmt *q = NULL;
  int rc = SQLITE_OK;
  *out = NULL;
  if (s == NULL || (s->path = strdup(path)) == NULL || rowq_new(&s->rows) != 0) {
    snprintf(err, errlen, "cannot open database %s: out of memory", path);
    goto fail;
  }
  s->slot = slot;
  /* No memory statistics: SQLite would take a global mutex around every malloc and free for
   * them (about 3% of a row's instructions). Only possible before SQLite initializes (the first
   * open); later, SQLITE_MISUSE says it runs with the default, which is only slower. */
  rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (rc != SQLITE_OK && rc != SQLITE_MISUSE) {
    snprintf(err, errlen, "cannot open database %s: %s", path, sqlite3_errstr(rc));
    goto fail;
  }
  /* NOMUTEX: one thread uses the connection, so SQLite's serialized-mode locking is pure cost. */
  rc = sqlite3_open_v2(path, &s->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database %s: %s%s", path,
             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), store_open_hint(rc));
    goto fail;
  }
  sqlite3_extended_result_codes(s->db, 1);
  if (sqlite3_busy_timeout(s->db, STORE_OPEN_BUSY_TIMEOUT_MS) != SQLITE_OK) {
    goto sqlfail;
  }
  /* The answer says which journal mode is in force: anything but "wal" means the file cannot
   * use WAL (a read-only directory, a network file system, or not a database at all). */
  /* 16 KiB pages for a new database (an existing one keeps its own): a quarter of the WAL
   * frames to write, each one two system calls, and a quarter of the pages to checkpoint. */
  if (sqlite3_exec(s->db, "PRAGMA page_size=" STORE_PAGE_SIZE, NULL, NULL, NULL) != SQLITE_OK) {
    goto sqlfail;
  }
  rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &q, NULL);
  if (rc != SQLITE_OK) {
    goto sqlfail;
  }
  rc = sqlite3_step(q);
  if (rc != SQLITE_ROW) {
    goto sqlfail;
  }
  const char *mode = (const char *)sqlite3_column_text(q, 0);
  if (mode == NULL || sqlite3_stricmp(mode, "wal") != 0) {
    snprintf(err, errlen, "cannot use database %s: WAL mode refused (journal mode is '%s')", path,
             mode ? mode : "?");
    goto fail;
  }
  sqlite3_finalize(q);
  q = NULL;
  if (sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
    goto sqlfail;
  }
  /* Checkpoint the WAL into the database every 64 MiB of it rather than every 1,000 pages: a
   * stream commits a batch every few milliseconds, and each checkpoint copies pages and syncs
   * both files, so the default made the same table pages be copied again and again. */
  if (sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint=" STORE_WAL_CHECKPOINT_PAGES, NULL, NULL,
                   NULL) != SQLITE_OK) {
    goto sqlfail;
  }
  if (sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
    goto sqlfail;
  }
  *out = s;
  return 0;
sqlfail:
  snprintf(err, errlen, "cannot open database %s: %s%s", path, sqlite3_errmsg(s->db),
           store_open_hint(sqlite3_extended_errcode(s->db)));
fail:
  sqlite3_finalize(q);
  if (s) {
    store_progress_free(s);
    sqlite3_close(s->db);
    rowq_free(s->rows);
    free(s->path);
    free(s);
  }
  return CS_ESQLITE;
}

int store_add(store *s, const sink_record *r) {
  store_table *t;
  /* A table holds at most SQLite's column limit (2000 by default) with the metadata: a row
   * wider than that (a peer can send one in a single datagram) would fail CREATE or ALTER
   * TABLE and with it every batch, so it is refused here, alone. */
  size_t max_values = (size_t)sqlite3_limit(s->db, SQLITE_LIMIT_COLUMN, -1) - STORE_NMETA;
  if (r->nfields > max_values || r->stream->ncolumns > max_values) {
    char what[320], nm[LOG_ESCAPE_BUF];
    snprintf(what, sizeof what,
             "%s record %s #%" PRIu64 " has %zu fields (header: %zu); a table takes at most %zu "
             "besides the metadata, so it is not stored in the database",
             r->stream->protocol,
             log_escape(nm, sizeof nm, r->stream->name, strlen(r->stream->name)), r->seq,
             r->nfields, r->stream->ncolumns, max_values);
    store_set_error(s, what);
    return CS_ETOOBIG;
  }
  if (rowq_bytes(s->rows) >= STORE_MAX_PENDING_BYTES) {
    store_set_error(s, "too many rows waiting for the database (the queue is full)");
    return CS_ENOMEM;
  }
  int rc = store_table_for(s, r->stream, &t);
  if (rc) {
    return rc;
  }
  /* Before it has its name the table may still adopt the extra columns of a table in the file
   * (store_table_name_now): until then only the width is noted. */
  if (t->name) {
    rc = colnames_widen(&t->cols, t->nheader, r->nfields);
  } else if (r->nfields > t->max_fields) {
    t->max_fields = r->nfields;
  }
  if (rc) {
    store_set_error(s, "out of memory");
    return rc;
  }
  rc = rowq_push(s->rows, r, t);
  if (rc) {
    store_set_error(s, "out of memory");
  } else {
    r->stream->held[s->slot]++;
  }
  return rc;
}

/* st leaves the table; see store.h. An acknowledged stream's number is remembered as if the
 * progress table had been read now, so that the stream resumes from it if it comes back. */
void store_forget(store *s, sink_stream *st) {
  size_t len = strlen(st->name);
  uint64_t seq = st->durable[s->slot];
  store_progress_entry *e, *grown;
  st->slot[s->slot] = NULL;
  if (!st->acked || seq == 0) {
    return;
  }
  (void)store_progress(s, st); /* loads the table's numbers first, if not done yet */
  for (size_t i = 0; i < s->nprogress; i++) {
    e = &s->progress[i];
    if (e->producer_id == st->producer_id && e->len == len &&
        memcmp(e->stream, st->name, len) == 0) {
      e->seq = e->seq > seq ? e->seq : seq;
      return;
    }
  }
  grown = realloc(s->progress, (s->nprogress + 1) * sizeof(*grown));
  if (grown == NULL) {
    return; /* the table has it: only a resume in this run would start lower, and resend */
  }
  s->progress = grown;
  e = &s->progress[s->nprogress];
  e->stream = malloc(len > 0 ? len : 1);
  if (e->stream == NULL) {
    return;
  }
  memcpy(e->stream, st->name, len);
  e->len = len;
  e->producer_id = st->producer_id;
  e->seq = seq;
  s->nprogress++;
}

/* A stream without rows; see store.h. */
int store_add_empty(store *s, sink_stream *st) {
  store_table *t;
  int rc = store_table_for(s, st, &t);
  if (rc) {
    return rc;
  }
  if (!t->created && !t->want_empty) {
    t->want_empty = 1;
    s->empty_waiting++;
  }
  return 0;
}

int store_tables_waiting(const store *s) {
  return s->empty_waiting > 0;
}

/* Inside the open transaction, at t's first row: choose t's name (reading the schema, which
 * may adopt a table of the file and its extra columns), then make room for the widest row
 * queued so far. Returns 0 or a negative code (error set). */
static int store_table_name_now(store *s, store_table *t) {
  int rc = store_table_choose_name(s, t);
  if (rc) {
    return rc;
  }
  t->created_tx = t->created;
  t->ncols_tx = t->ncols_db;
  rc = colnames_widen(&t->cols, t->nheader, t->max_fields);
  if (rc) {
    store_set_error(s, "out of memory");
  }
  return rc;
}

/* Prepare "INSERT INTO t (value columns, metadata columns) VALUES (?, ...)" with `rows` rows
 * of parameters into *out. Returns 0, CS_EBUSY, CS_ESQLITE or CS_ENOMEM (error set). */
static int store_prepare_insert(store *s, store_table *t, size_t rows, sqlite3_stmt **out) {
  sqlite3_str *sql = sqlite3_str_new(s->db);
  char *text;
  int prc;
  *out = NULL;
  sqlite3_str_appendf(sql, "INSERT INTO \"%w\" (", t->name);
  if (rows == 1) {
    for (size_t i = 0; i < t->cols.n; i++) {
      sqlite3_str_appendf(sql, "\"%w\", ", t->cols.names[i]);
    }
    for (size_t i = 0; i < STORE_NMETA; i++) {
      sqlite3_str_appendf(sql, "%s\"%w\"", i ? ", " : "", store_meta_names[i]);
    }
    sqlite3_str_appendall(sql, ") VALUES (");
    for (size_t i = 0; i < t->cols.n + STORE_NMETA; i++) {
      sqlite3_str_appendall(sql, i ? ", ?" : "?");
    }
    sqlite3_str_appendall(sql, ")");
  } else {
    /* Several rows, all of one stream: its producer, protocol and peer are bound once, as ?1,
     * ?2 and ?3, and each row has its values, _seq, _sent_us and _received_us
     * (STORE_ROW_META), numbered 4, 5 ... in order. Those go as plain "?" (the next number):
     * SQLite looks up every "?NNN" it codes in a list of all of them, which made a statement of
     * 32 rows of 1,600 columns take seconds to prepare. So the columns go in the order the
     * parameters need: the three shared ones first. */
    sqlite3_str_appendall(sql, "\"_producer\", \"_protocol\", \"_peer\"");
    for (size_t i = 0; i < t->cols.n; i++) {
      sqlite3_str_appendf(sql, ", \"%w\"", t->cols.names[i]);
    }
    sqlite3_str_appendall(sql, ", \"_seq\", \"_sent_us\", \"_received_us\") VALUES ");
    for (size_t r = 0; r < rows; r++) {
      sqlite3_str_appendall(sql, r ? ", (?1, ?2, ?3" : "(?1, ?2, ?3");
      for (size_t i = 0; i < t->cols.n + STORE_ROW_META; i++) {
        sqlite3_str_appendall(sql, ", ?");
      }
      sqlite3_str_appendall(sql, ")");
    }
  }
  text = sqlite3_str_finish(sql);
  if (text == NULL) {
    store_set_error(s, "out of memory");
    return CS_ENOMEM;
  }
  prc = sqlite3_prepare_v2(s->db, text, -1, out, NULL);
  sqlite3_free(text);
  if (prc != SQLITE_OK) {
    store_set_sqlite_error(s, "preparing the INSERT");
    sqlite3_finalize(*out);
    *out = NULL;
    return store_is_busy(prc) ? CS_EBUSY : CS_ESQLITE;
  }
  return 0;
}

/* Inside the open transaction: create t or add its new columns so that the database has all of
 * t's value columns, then (re)prepare its INSERT. Returns 0, CS_EBUSY, CS_ESQLITE or
 * CS_ENOMEM (error set). */
static int store_table_ready(store *s, store_table *t) {
  sqlite3_str *sql = NULL;
  char *text = NULL;
  char what[320];
  int rc = 0;

  if (!t->created_tx) {
    sql = sqlite3_str_new(s->db);
    sqlite3_str_appendf(sql, "CREATE TABLE \"%w\" (", t->name);
    for (size_t i = 0; i < t->cols.n; i++) {
      sqlite3_str_appendf(sql, "\"%w\", ", t->cols.names[i]);
    }
    for (size_t i = 0; i < STORE_NMETA; i++) {
      sqlite3_str_appendf(sql, "%s\"%w\" %s", i ? ", " : "", store_meta_names[i],
                          store_meta_types[i]);
    }
    sqlite3_str_appendall(sql, ")");
    text = sqlite3_str_finish(sql);
    sql = NULL;
    if (text == NULL) {
      goto nomem;
    }
    snprintf(what, sizeof what, "creating table %s", t->name_label);
    rc = store_exec(s, text, what);
    if (rc) {
      goto done;
    }
    t->created_tx = 1;
    t->ncols_tx = t->cols.n;
  }
  while (t->ncols_tx < t->cols.n) {
    sqlite3_free(text);
    text = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN \"%w\"", t->name,
                           t->cols.names[t->ncols_tx]);
    if (text == NULL) {
      goto nomem;
    }
    char col_label[LOG_ESCAPE_BUF];
    snprintf(what, sizeof what, "adding column %s to table %s",
             log_escape(col_label, sizeof col_label, t->cols.names[t->ncols_tx],
                        strlen(t->cols.names[t->ncols_tx])),
             t->name_label);
    rc = store_exec(s, text, what);
    if (rc) {
      goto done;
    }
    t->ncols_tx++;
  }
  if (t->insert && t->insert_ncols == t->cols.n) {
    goto done;
  }

  sqlite3_finalize(t->insert);
  t->insert = NULL;
  sqlite3_finalize(t->insert_many);
  t->insert_many = NULL;
  rc = store_prepare_insert(s, t, 1, &t->insert);
  if (rc) {
    goto done;
  }
  /* The statement for several rows, when their parameters stay within SQLite's limit. */
  size_t per_row = t->cols.n + STORE_ROW_META;
  size_t limit = (size_t)sqlite3_limit(s->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
  limit = limit > STORE_SHARED_PARAMS ? limit - STORE_SHARED_PARAMS : 0;
  t->insert_rows = limit / per_row < STORE_INSERT_ROWS ? limit / per_row : STORE_INSERT_ROWS;
  if (t->insert_rows >= 2) {
    rc = store_prepare_insert(s, t, t->insert_rows, &t->insert_many);
    if (rc) {
      sqlite3_finalize(t->insert);
      t->insert = NULL;
      goto done;
    }
  }
  t->insert_ncols = t->cols.n;
  goto done;
nomem:
  store_set_error(s, "out of memory");
  rc = CS_ENOMEM;
done:
  sqlite3_free(sqlite3_str_finish(sql));
  sqlite3_free(text);
  return rc;
}

/* Bind one value: text when it is valid UTF-8, else a BLOB of its exact bytes, so that every
 * client reads it (Python's sqlite3 fails on text that is not UTF-8; a BLOB is bytes). The
 * first such value of a table is said once, naming its column (ci, the value column's index:
 * col is the parameter's number, which in a statement of several rows is another). */
static int store_bind_value(store *s, store_table *t, sqlite3_stmt *q, int col, size_t ci,
                            const cs_field *f) {
  if (f->len == 0) {
    return sqlite3_bind_text(q, col, "", 0, SQLITE_STATIC);
  }
  if (utf8_valid(f->data, f->len)) {
    return sqlite3_bind_text(q, col, f->data, (int)f->len, SQLITE_STATIC);
  }
  if (!t->warned_blob) {
    char col_label[LOG_ESCAPE_BUF];
    t->warned_blob = 1;
    log_warn("table '%s' in %s: values that are not valid UTF-8 are stored as BLOBs of their "
             "exact bytes (first in column '%s'); the producer's --encoding reads such a file as "
             "text",
             t->name_label, s->path,
             log_escape(col_label, sizeof col_label, t->cols.names[ci], strlen(t->cols.names[ci])));
  }
  return sqlite3_bind_blob(q, col, f->data, (int)f->len, SQLITE_STATIC);
}

/* Bind row's values and metadata to q's parameters from *col on (advanced past them). Values
 * beyond the row's fields are NULL (a short row); an empty field is the empty text, never NULL.
 * Returns an SQLite code. */
static int store_bind_row(store *s, sqlite3_stmt *q, store_table *t, const rowq_row *row,
                          int *col) {
  int rc = SQLITE_OK;
  for (size_t i = 0; i < t->cols.n && rc == SQLITE_OK; i++, (*col)++) {
    if (i < row->nfields) {
      /* The bytes live in the row until it is dequeued after COMMIT, and store_flush clears
       * the bindings at the end of the batch, so the statement never holds a stale pointer. */
      rc = store_bind_value(s, t, q, *col, i, &row->fields[i]);
    } else {
      rc = sqlite3_bind_null(q, *col);
    }
  }
  /* The stream's hex id is made once, when the stream is (not per row), and lives as long as
   * the stream; only a stream without one gets it made here, copied by SQLite. */
  if (rc == SQLITE_OK) {
    const char *id = row->stream->producer_hex;
    if (id[0] != '\0') {
      rc = sqlite3_bind_text(q, (*col)++, id, -1, SQLITE_STATIC);
    } else {
      char pid[17];
      snprintf(pid, sizeof pid, "%016" PRIx64, row->stream->producer_id);
      rc = sqlite3_bind_text(q, (*col)++, pid, -1, SQLITE_TRANSIENT);
    }
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, (*col)++, row->stream->protocol, -1, SQLITE_STATIC);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int64(q, (*col)++, (sqlite3_int64)row->seq);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int64(q, (*col)++, (sqlite3_int64)row->sent_us);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int64(q, (*col)++, (sqlite3_int64)row->received_us);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, (*col)++, row->stream->peer, -1, SQLITE_STATIC);
  }
  return rc;
}

/* Step q and reset it. Returns 0, CS_EBUSY or CS_ESQLITE (error set). */
static int store_step_insert(store *s, const store_table *t, sqlite3_stmt *q) {
  int rc = sqlite3_step(q), out = 0;
  if (rc != SQLITE_DONE) {
    /* Read the message before reset, which may replace it. */
    char step[160];
    snprintf(step, sizeof step, "inserting into table %s", t->name_label);
    store_set_sqlite_error(s, step);
    out = store_is_busy(rc) ? CS_EBUSY : CS_ESQLITE;
  }
  /* Every parameter is bound again for the next rows: clearing them is left to the end of the
   * batch (store_flush_unbind), not paid per step. */
  sqlite3_reset(q);
  return out;
}

/* Inside the open transaction: create the tables of streams that have no rows (header-only
 * files), named and shaped as a first row would have made them. Returns 0 or a code. */
static int store_create_empty(store *s) {
  for (store_table *t = s->tables; t && s->empty_waiting > 0; t = t->next) {
    int rc = 0;
    if (!t->want_empty || t->created_tx) {
      continue;
    }
    if (t->name == NULL) {
      rc = store_table_name_now(s, t);
    }
    if (rc == 0 && !t->created_tx) {
      rc = store_table_ready(s, t);
    }
    if (rc) {
      return rc;
    }
  }
  return 0;
}

/* Insert the row at *row with t->insert and advance *row. Returns 0, CS_EBUSY or CS_ESQLITE
 * (error set). */
static int store_insert_one(store *s, store_table *t, const rowq_row **row) {
  int col = 1;
  if (store_bind_row(s, t->insert, t, *row, &col) != SQLITE_OK) {
    store_set_sqlite_error(s, "binding a value");
    sqlite3_clear_bindings(t->insert);
    return CS_ESQLITE;
  }
  *row = rowq_next(*row);
  return store_step_insert(s, t, t->insert);
}

/* Insert t->insert_rows rows of one stream from *row on with t->insert_many, one step, and
 * advance *row past them. Returns 0, CS_EBUSY or CS_ESQLITE (error set). */
static int store_insert_many(store *s, store_table *t, const rowq_row **row) {
  sqlite3_stmt *q = t->insert_many;
  const sink_stream *st = (*row)->stream;
  const char *id = st->producer_hex;
  char pid[17];
  int rc, col = STORE_SHARED_PARAMS + 1;
  if (id[0] == '\0') {
    snprintf(pid, sizeof pid, "%016" PRIx64, st->producer_id);
    id = pid;
  }
  rc = sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, 2, st->protocol, -1, SQLITE_STATIC);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text(q, 3, st->peer, -1, SQLITE_STATIC);
  }
  for (size_t n = 0; n < t->insert_rows && rc == SQLITE_OK; n++, *row = rowq_next(*row)) {
    const rowq_row *r = *row;
    for (size_t i = 0; i < t->cols.n && rc == SQLITE_OK; i++, col++) {
      /* The bytes live in the row until it is dequeued after COMMIT, and store_flush clears
       * the bindings at the end of the batch, so the statement never holds a stale pointer. */
      rc = i < r->nfields ? store_bind_value(s, t, q, col, i, &r->fields[i])
                          : sqlite3_bind_null(q, col);
    }
    if (rc == SQLITE_OK) {
      rc = sqlite3_bind_int64(q, col++, (sqlite3_int64)r->seq);
    }
    if (rc == SQLITE_OK) {
      rc = sqlite3_bind_int64(q, col++, (sqlite3_int64)r->sent_us);
    }
    if (rc == SQLITE_OK) {
      rc = sqlite3_bind_int64(q, col++, (sqlite3_int64)r->received_us);
    }
  }
  if (rc != SQLITE_OK) {
    store_set_sqlite_error(s, "binding a value");
    sqlite3_clear_bindings(q);
    return CS_ESQLITE;
  }
  return store_step_insert(s, t, q);
}

/* How many rows from row on, at most `max`, belong to the same stream (and so the same table)
 * as row. */
static size_t store_run_length(const rowq_row *row, size_t max) {
  const sink_stream *st = row->stream;
  size_t n = 0;
  while (row != NULL && n < max && row->stream == st) {
    n++;
    row = rowq_next(row);
  }
  return n;
}

/* Drop every table's bindings once a batch is done, before its rows are dequeued and freed. */
static void store_flush_unbind(store *s) {
  for (store_table *t = s->tables; t; t = t->next) {
    if (t->insert != NULL) {
      sqlite3_clear_bindings(t->insert);
    }
    if (t->insert_many != NULL) {
      sqlite3_clear_bindings(t->insert_many);
    }
  }
}

int store_flush(store *s) {
  size_t n = 0;
  const rowq_row *row;
  int rc;

  if (rowq_head(s->rows) == NULL && s->empty_waiting == 0) {
    return 0;
  }
  rc = store_exec_cached(s, &s->begin, "BEGIN IMMEDIATE");
  if (rc == CS_EBUSY) {
    store_set_error(s, "locked by another process (BEGIN IMMEDIATE: busy)");
  }
  if (rc) {
    return rc;
  }
  for (store_table *t = s->tables; t; t = t->next) {
    t->created_tx = t->created;
    t->ncols_tx = t->ncols_db;
  }
  rc = store_create_empty(s);
  if (rc) {
    goto rollback;
  }
  row = rowq_head(s->rows);
  while (row && n < STORE_BATCH_ROWS) {
    store_table *t = row->tag;
    if (t->name == NULL) {
      rc = store_table_name_now(s, t);
      if (rc) {
        goto rollback;
      }
    }
    if (!t->created_tx || t->ncols_tx < t->cols.n || t->insert == NULL ||
        t->insert_ncols != t->cols.n) {
      rc = store_table_ready(s, t);
      if (rc) {
        goto rollback;
      }
    }
    /* A run of rows of one stream goes t->insert_rows at a time, the rest one by one. */
    if (t->insert_many != NULL && n + t->insert_rows <= STORE_BATCH_ROWS &&
        store_run_length(row, t->insert_rows) == t->insert_rows) {
      rc = store_insert_many(s, t, &row);
      n += t->insert_rows;
    } else {
      rc = store_insert_one(s, t, &row);
      n++;
    }
    if (rc) {
      goto rollback;
    }
  }
  rc = store_progress_write(s, n);
  if (rc) {
    goto rollback;
  }
  rc = store_exec_cached(s, &s->commit, "COMMIT");
  if (rc == CS_EBUSY) {
    store_set_error(s, "locked by another process (COMMIT: busy)");
  }
  if (rc) {
    goto rollback;
  }
  store_progress_done(s, n);

  for (store_table *t = s->tables; t; t = t->next) {
    if (t->created_tx && !t->created) {
      log_info("stream '%s' -> table '%s' in %s%s%s%s", t->stream_label, t->name_label, s->path,
               t->route_note[0] ? " (" : "", t->route_note, t->route_note[0] ? ")" : "");
    }
    t->created = t->created_tx;
    t->ncols_db = t->ncols_tx;
    if (t->want_empty && t->created) {
      t->want_empty = 0;
      s->empty_waiting--;
    }
  }
  /* Only now, with the batch durable, do the rows leave the queue: a failed batch is retried
   * whole and never inserted twice. */
  store_flush_unbind(s);
  rc = rowq_pop(s->rows, n);
  if (rc) {
    /* Cannot happen: the n rows were just walked. Said rather than hidden. */
    store_set_error(s, "committed rows missing from the queue");
    return rc;
  }
  s->committed += n;
  return 0;

rollback:
  store_flush_unbind(s);
  if (!sqlite3_get_autocommit(s->db)) {
    (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* the first error is the one kept */
  }
  /* Schema changes of this transaction are gone: statements prepared against them are stale. */
  for (store_table *t = s->tables; t; t = t->next) {
    if (t->created_tx != t->created || t->ncols_tx != t->ncols_db) {
      sqlite3_finalize(t->insert);
      t->insert = NULL;
      sqlite3_finalize(t->insert_many);
      t->insert_many = NULL;
    }
  }
  return rc;
}

int store_pending_ended(const store *s) {
  const rowq_row *last = rowq_tail(s->rows);
  return last != NULL && last->stream->ended;
}

size_t store_pending(const store *s) {
  return rowq_count(s->rows);
}

size_t store_pending_bytes(const store *s) {
  return rowq_bytes(s->rows);
}

uint64_t store_committed(const store *s) {
  return s->committed;
}

const char *store_error(const store *s) {
  return s->err;
}

/* The table a queued row is dumped under (rowq_table_name_cb): its table's name, or its
 * stream's before the table is named. */
static const char *store_row_table_name(const rowq_row *row, void *arg) {
  const store_table *t = row->tag;
  (void)arg;
  return t->name ? t->name : t->stream_name;
}

/* Append the queued rows to a CSV file; see store.h. */
int store_save_pending(const store *s, const char *path, size_t *saved, char *err, size_t errlen) {
  return rowq_save(s->rows, path, store_row_table_name, NULL, saved, err, errlen);
}

const char *store_table_name(const store *s, const sink_stream *st) {
  const store_table *t = st->slot[s->slot];
  return t ? t->name : NULL;
}

int store_close(store *s) {
  int rc = 0;
  if (s == NULL) {
    return 0;
  }
  for (store_table *t = s->tables, *next; t; t = next) {
    next = t->next;
    store_table_free(t);
  }
  rowq_free(s->rows);
  store_progress_free(s);
  if (sqlite3_close(s->db) != SQLITE_OK) {
    /* Every statement is finalized above, so this means a misuse; let SQLite free it later. */
    rc = CS_ESQLITE;
    (void)sqlite3_close_v2(s->db);
  }
  free(s->path);
  free(s);
  return rc;
}
