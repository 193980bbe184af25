/* rowq.c -- a database sink's queue of rows not yet committed, and its .uncommitted.csv dump. */
#include "rowq.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "csvout.h"
#include "error.h"

/* Rows live in blocks of at least ROWQ_BLOCK_BYTES, filled in arrival order and freed when
 * their last row is popped: one malloc per block instead of one per row (the queue is FIFO, so
 * the oldest row is always in the oldest block). Emptied blocks are kept for reuse, up to
 * ROWQ_SPARES of them: a queue that fills and drains by a batch at a time (a database sink's
 * commits) then writes into memory it has, instead of the allocator handing back to the kernel
 * what it is asked for again at once (a page fault on every new page). */
#define ROWQ_BLOCK_BYTES (256u * 1024u)
#if defined(__SANITIZE_ADDRESS__)
#define ROWQ_SPARES                                                                                \
  0 /* AddressSanitizer sees a pointer into a block freed at once, not one reused */
#else
#define ROWQ_SPARES 64 /* 16 MiB at most */
#endif

typedef struct rowq_block {
  struct rowq_block *next;
  size_t used;  /* bytes handed out from data */
  size_t cap;   /* bytes of data */
  size_t live;  /* rows in it not yet popped */
  size_t bytes; /* the alloc of those rows, summed */
} rowq_block;

/* A row with rowq's own bookkeeping, followed by the field array and the bytes, inside a block.
 * The public part comes first, so a rowq_row handed out is the start of its node. */
typedef struct rowq_node {
  rowq_row row;
  struct rowq_node *next;
  rowq_block *block;
  size_t alloc; /* bytes of this row, counted in rowq_bytes */
} rowq_node;

struct rowq {
  rowq_node *head, *tail;
  rowq_block *first, *last; /* the blocks, oldest first */
  rowq_block *spare;        /* empty blocks kept for the next ones needed (a list); owned */
  size_t nspare;
  size_t count;
  size_t bytes;
};

/* The dump's metadata columns, before the row's values. */
static const char *const rowq_meta_names[] = {"table",    "_producer",    "_protocol", "_seq",
                                              "_sent_us", "_received_us", "_peer"};
#define ROWQ_NMETA (sizeof rowq_meta_names / sizeof rowq_meta_names[0])

/* The dump is written a block at a time, so its memory stays bounded by one block plus a row. */
#define ROWQ_SAVE_BLOCK (1u << 20)

int rowq_new(rowq **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : CS_ENOMEM;
}

void rowq_free(rowq *q) {
  if (q == NULL) {
    return;
  }
  for (rowq_block *b = q->first, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  for (rowq_block *b = q->spare, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(q);
}

/* Room for `need` bytes (a multiple of 8) at the end of the last block: the block itself, or a
 * new one (a spare, when the row fits in one). Returns the bytes' address or NULL. */
static void *rowq_room(rowq *q, size_t need) {
  rowq_block *b = q->last;
  if (b == NULL || b->cap - b->used < need) {
    size_t cap = need > ROWQ_BLOCK_BYTES ? need : ROWQ_BLOCK_BYTES;
    if (q->spare != NULL && cap == ROWQ_BLOCK_BYTES) {
      b = q->spare;
      q->spare = b->next;
      q->nspare--;
    } else {
      if (cap > SIZE_MAX - sizeof(rowq_block)) {
        return NULL;
      }
      b = malloc(sizeof(rowq_block) + cap);
      if (b == NULL) {
        return NULL;
      }
      b->cap = cap;
    }
    b->next = NULL;
    b->used = 0;
    b->live = 0;
    b->bytes = 0;
    if (q->last) {
      q->last->next = b;
    } else {
      q->first = b;
    }
    q->last = b;
  }
  void *p = (char *)(b + 1) + b->used;
  b->used += need;
  b->live++;
  b->bytes += need;
  return p;
}

int rowq_push(rowq *q, const sink_record *r, void *tag) {
  size_t total = sizeof(rowq_node);
  /* A size that does not fit in size_t could not be allocated either. */
  if (r->nfields > (SIZE_MAX - total) / sizeof(cs_field)) {
    return CS_ENOMEM;
  }
  total += r->nfields * sizeof(cs_field);
  for (size_t i = 0; i < r->nfields; i++) {
    if (r->fields[i].len > SIZE_MAX - total) {
      return CS_ENOMEM;
    }
    total += r->fields[i].len;
  }
  if (total > SIZE_MAX - 7) {
    return CS_ENOMEM;
  }
  total = (total + 7) & ~(size_t)7; /* the next row's node stays aligned */
  rowq_node *node = rowq_room(q, total);
  if (node == NULL) {
    return CS_ENOMEM;
  }
  node->block = q->last;
  cs_field *fields = (cs_field *)(node + 1);
  char *bytes = (char *)(fields + r->nfields);
  for (size_t i = 0; i < r->nfields; i++) {
    if (r->fields[i].len) {
      memcpy(bytes, r->fields[i].data, r->fields[i].len);
    }
    fields[i].data = bytes;
    fields[i].len = r->fields[i].len;
    bytes += r->fields[i].len;
  }
  node->row.tag = tag;
  node->row.stream = r->stream;
  node->row.seq = r->seq;
  node->row.sent_us = r->sent_us;
  node->row.received_us = r->received_us;
  node->row.nfields = r->nfields;
  node->row.fields = fields;
  node->next = NULL;
  node->alloc = total;
  if (q->tail) {
    q->tail->next = node;
  } else {
    q->head = node;
  }
  q->tail = node;
  q->count++;
  q->bytes += total;
  return 0;
}

const rowq_row *rowq_head(const rowq *q) {
  return q->head ? &q->head->row : NULL;
}

const rowq_row *rowq_tail(const rowq *q) {
  return q->tail ? &q->tail->row : NULL;
}

const rowq_row *rowq_next(const rowq_row *row) {
  const rowq_node *next = ((const rowq_node *)row)->next;
  return next ? &next->row : NULL;
}

int rowq_pop(rowq *q, size_t n) {
  if (n > q->count) {
    return CS_ERANGE;
  }
  while (n > 0) {
    rowq_node *node = q->head;
    rowq_block *b = node->block;
    if (n >= b->live) {
      /* Every row left in the oldest block goes: the block at once, without a walk over its
       * rows (the next row, if any, is the first in the next block). */
      n -= b->live;
      q->count -= b->live;
      q->bytes -= b->bytes;
      b->live = 0;
      q->head = b->next != NULL ? (rowq_node *)(b->next + 1) : NULL;
    } else {
      n--;
      q->head = node->next;
      q->count--;
      q->bytes -= node->alloc;
      b->bytes -= node->alloc;
      b->live--;
    }
    if (b->live == 0) {
      /* The oldest block is empty: the head row was in it, so it is q->first. */
      q->first = b->next;
      if (q->last == b) {
        q->last = NULL;
      }
      if (q->nspare < ROWQ_SPARES && b->cap == ROWQ_BLOCK_BYTES) {
        b->next = q->spare;
        q->spare = b;
        q->nspare++;
      } else {
        free(b);
      }
    }
  }
  if (q->head == NULL) {
    q->tail = NULL;
  }
  return 0;
}

size_t rowq_count(const rowq *q) {
  return q->count;
}

size_t rowq_bytes(const rowq *q) {
  return q->bytes;
}

/* Write len bytes to fp. Returns 0, or CS_EIO with errno set. */
static int rowq_write_all(FILE *fp, const char *data, size_t len) {
  if (len > 0 && fwrite(data, 1, len, fp) != len) {
    return CS_EIO;
  }
  return 0;
}

/* Start the dump in fp (opened "a+b"): into line, the header when the file is empty, else a
 * line break when its last line was cut off. Returns 0, CS_EIO (errno set) or CS_ENOMEM. */
static int rowq_save_start(FILE *fp, cs_buf *line) {
  struct stat sb;
  int last;

  if (fstat(fileno(fp), &sb) != 0) {
    return CS_EIO;
  }
  if (sb.st_size == 0) {
    cs_field hdr[ROWQ_NMETA];
    for (size_t i = 0; i < ROWQ_NMETA; i++) {
      hdr[i].data = rowq_meta_names[i];
      hdr[i].len = strlen(rowq_meta_names[i]);
    }
    return csvout_record(line, hdr, ROWQ_NMETA);
  }
  /* C requires a seek between reading and writing the same stream: the one after fgetc. */
  if (fseek(fp, -1, SEEK_END) != 0 || (last = fgetc(fp)) == EOF || fseek(fp, 0, SEEK_END) != 0) {
    return CS_EIO;
  }
  /* An earlier save cut off mid-line: start on a new line rather than glue onto it. */
  if (last != '\n') {
    return cs_buf_append(line, "\r\n", 2);
  }
  return 0;
}

/* Append row to line as one CSV record: table, the other metadata, the values. *fields (of
 * *cap entries, realloc'd as needed, owned by the caller) is the scratch array of the record's
 * fields. Returns 0 or CS_ENOMEM. */
static int rowq_save_row(cs_buf *line, const rowq_row *row, const char *table, cs_field **fields,
                         size_t *cap) {
  char pid[17], seq[24], sent[24], recv[24];
  size_t n = ROWQ_NMETA + row->nfields;

  if (*cap < n) {
    cs_field *f2 = realloc(*fields, n * sizeof *f2);
    if (f2 == NULL) {
      return CS_ENOMEM;
    }
    *fields = f2;
    *cap = n;
  }
  snprintf(pid, sizeof pid, "%016" PRIx64, row->stream->producer_id);
  snprintf(seq, sizeof seq, "%" PRIu64, row->seq);
  snprintf(sent, sizeof sent, "%" PRIu64, row->sent_us);
  snprintf(recv, sizeof recv, "%" PRIu64, row->received_us);
  const char *vals[ROWQ_NMETA] = {table, pid,  row->stream->protocol, seq,
                                  sent,  recv, row->stream->peer};
  for (size_t i = 0; i < ROWQ_NMETA; i++) {
    (*fields)[i].data = vals[i];
    (*fields)[i].len = strlen(vals[i]);
  }
  for (size_t i = 0; i < row->nfields; i++) {
    (*fields)[ROWQ_NMETA + i] = row->fields[i];
  }
  return csvout_record(line, *fields, n);
}

/* Append the queued rows to a CSV file; see rowq.h. */
int rowq_save(const rowq *q, const char *path, rowq_table_name_cb table_name, void *arg,
              size_t *saved, char *err, size_t errlen) {
  FILE *fp = NULL;
  cs_field *fields = NULL;
  size_t cap = 0, n = 0;
  cs_buf line;
  int rc = CS_EIO, closed;

  cs_buf_init(&line);
  if (saved) {
    *saved = 0;
  }
  /* "a+": every write appends, and the last byte can be read to see if the line ended. */
  fp = fopen(path, "a+b");
  if (fp == NULL) {
    goto fail;
  }
  rc = rowq_save_start(fp, &line);
  if (rc) {
    goto fail;
  }
  for (const rowq_node *node = q->head; node; node = node->next, n++) {
    rc = rowq_save_row(&line, &node->row, table_name(&node->row, arg), &fields, &cap);
    if (rc) {
      goto fail;
    }
    if (line.len >= ROWQ_SAVE_BLOCK) {
      rc = rowq_write_all(fp, line.data, line.len);
      if (rc) {
        goto fail;
      }
      cs_buf_reset(&line);
    }
  }
  rc = CS_EIO;
  if (rowq_write_all(fp, line.data, line.len) != 0 || fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
    goto fail;
  }
  closed = fclose(fp);
  fp = NULL;
  if (closed != 0) {
    goto fail;
  }
  if (saved) {
    *saved = n;
  }
  rc = 0;
  goto done;
fail:
  if (rc == CS_ENOMEM) {
    snprintf(err, errlen, "%s: out of memory", path);
  } else {
    snprintf(err, errlen, "%s: %s (check the directory is writable and has space)", path,
             strerror(errno));
  }
done:
  if (fp) {
    fclose(fp);
  }
  free(fields);
  cs_buf_free(&line);
  return rc;
}
