/* streams.c -- the stream table: entries by (protocol, producer id, name), hashed with FNV-1a. */
#include "streams.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fields.h"

static const char *const stream_proto_names[STREAM_NPROTO] = {"tcp", "udp", "plain-tcp",
                                                              "plain-udp"};

const char *stream_proto_name(int proto) {
  return proto >= 0 && proto < STREAM_NPROTO ? stream_proto_names[proto] : "?";
}

int stream_proto_sequenced(int proto) {
  return proto == STREAM_TCP || proto == STREAM_UDP;
}

/* FNV-1a over the stream key. */
static uint64_t streams_hash(int proto, uint64_t producer_id, const char *name, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  size_t i;
  h = (h ^ (uint64_t)proto) * 1099511628211ULL;
  for (i = 0; i < 8; i++) {
    h = (h ^ ((producer_id >> (8 * i)) & 0xff)) * 1099511628211ULL;
  }
  for (i = 0; i < len; i++) {
    h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
  }
  return h;
}

void streams_init(streams *t) {
  memset(t, 0, sizeof(*t));
}

/* Free one entry and everything it owns. */
static void stream_free(stream *e) {
  if (e == NULL) {
    return;
  }
  stats_stream_free(&e->stats);
  seqwin_free(&e->win);
  free((char *)e->sink.name);
  free((char *)e->sink.peer);
  free(e->columns_data);
  free((cs_field *)e->sink.columns);
  free(e);
}

void streams_free(streams *t) {
  size_t i;
  for (i = 0; i < t->n; i++) {
    stream_free(t->v[i]);
  }
  free(t->v);
  free(t->buckets);
  free(t->ghosts);
  for (i = 0; i < t->listed_n; i++) {
    free(t->listed[i]);
  }
  streams_init(t);
}

size_t streams_entry_cost(size_t name_len, const char *peer) {
  /* The entry, its name and peer, its first window (1024 bits), its slots in v and buckets. */
  return sizeof(stream) + name_len + 1 + strlen(peer) + 1 + 1024 / 8 + 2 * sizeof(stream *);
}

/* What e holds now. */
static size_t stream_bytes(const stream *e) {
  size_t n = sizeof(stream) + e->name_len + 1 + strlen(e->sink.peer) + 1 + e->win.seen_bits / 8 +
             2 * sizeof(stream *);
  for (size_t i = 0; i < e->sink.ncolumns; i++) {
    n += sizeof(cs_field) + e->sink.columns[i].len + 1;
  }
  return n;
}

void streams_recount(streams *t, stream *e) {
  size_t now = stream_bytes(e);
  t->bytes = t->bytes - e->bytes + now;
  e->bytes = now;
  e->win_bits = e->win.seen_bits;
}

/* The ghost slot for a key hash. */
static size_t streams_ghost_slot(uint64_t hash) {
  return (size_t)(hash ^ (hash >> 32)) & (STREAMS_GHOSTS - 1);
}

const stream_ghost *streams_ghost(const streams *t, int proto, uint64_t producer_id,
                                  const char *name, size_t len) {
  uint64_t h;
  const stream_ghost *g;
  if (t->ghosts == NULL) {
    return NULL;
  }
  h = streams_hash(proto, producer_id, name, len);
  g = &t->ghosts[streams_ghost_slot(h)];
  /* The hash is 64 bits over the whole key: equal hashes and ids are taken as the same key. */
  return g->hash == h && g->producer_id == producer_id && g->proto == proto ? g : NULL;
}

const char *streams_listed(const streams *t, size_t i) {
  size_t first = t->listed_n < STREAMS_RETIRED_LISTED ? 0 : t->listed_next;
  return t->listed[(first + i) % STREAMS_RETIRED_LISTED];
}

void streams_retire(streams *t, stream *e, char *json) {
  stream **b = &t->buckets[e->hash & (t->nbuckets - 1)];
  size_t i;
  if (json == NULL) {
    t->unlisted++; /* out of memory rendering it: counted, not listed */
  } else if (t->listed_n < STREAMS_RETIRED_LISTED) {
    t->listed[t->listed_n++] = json;
    t->listed_next = t->listed_n % STREAMS_RETIRED_LISTED;
  } else {
    free(t->listed[t->listed_next]);
    t->listed[t->listed_next] = json;
    t->listed_next = (t->listed_next + 1) % STREAMS_RETIRED_LISTED;
    t->unlisted++;
  }
  stats_stream_lost(&e->stats);
  stats_counts_add(&t->retired[e->proto], &e->stats.c);
  t->nretired[e->proto]++;
  if (t->ghosts == NULL) {
    t->ghosts = calloc(STREAMS_GHOSTS, sizeof(*t->ghosts)); /* none kept if out of memory */
  }
  if (t->ghosts != NULL) {
    stream_ghost *g = &t->ghosts[streams_ghost_slot(e->hash)];
    g->hash = e->hash;
    g->producer_id = e->sink.producer_id;
    g->top = seqwin_max(&e->win);
    memcpy(g->key, e->key, WIRE_KEY_LEN);
    g->keyed = (unsigned char)e->keyed;
    g->ended = (unsigned char)e->ended;
    g->proto = (unsigned char)e->proto;
    g->acked = (unsigned char)e->sink.acked;
  }
  while (*b != e) {
    b = &(*b)->chain;
  }
  *b = e->chain;
  for (i = 0; i < t->n && t->v[i] != e; i++) {
  }
  memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
  t->n--;
  t->bytes -= e->bytes;
  stream_free(e);
}

/* The entry for a key; see streams.h. */
stream *streams_find(const streams *t, int proto, uint64_t producer_id, const char *name,
                     size_t len) {
  uint64_t h;
  stream *e;
  if (t->nbuckets == 0) {
    return NULL;
  }
  h = streams_hash(proto, producer_id, name, len);
  for (e = t->buckets[h & (t->nbuckets - 1)]; e != NULL; e = e->chain) {
    if (e->hash == h && e->proto == proto && e->sink.producer_id == producer_id &&
        e->name_len == len && memcmp(e->sink.name, name, len) == 0) {
      return e;
    }
  }
  return NULL;
}

/* Double the hash table (or make the first one). Returns 0 or CS_ENOMEM. */
static int streams_grow(streams *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 64, i;
  stream **b = calloc(n, sizeof(*b));
  if (b == NULL) {
    return CS_ENOMEM;
  }
  for (i = 0; i < t->n; i++) {
    stream *e = t->v[i];
    e->chain = b[e->hash & (n - 1)];
    b[e->hash & (n - 1)] = e;
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
  return 0;
}

/* A new entry, not yet in the table. Returns it, or NULL when out of memory. */
static stream *stream_new(int proto, uint64_t producer_id, const char *name, size_t len,
                          const char *peer) {
  stream *e = calloc(1, sizeof(*e));
  char *name_copy = malloc(len + 1), *peer_copy = strdup(peer);
  if (e == NULL || name_copy == NULL || peer_copy == NULL || stats_stream_init(&e->stats) != 0 ||
      seqwin_init(&e->win) != 0) {
    free(name_copy);
    free(peer_copy);
    if (e != NULL) {
      stats_stream_free(&e->stats); /* both accept what their init left after a failure */
      seqwin_free(&e->win);
    }
    free(e);
    return NULL;
  }
  memcpy(name_copy, name, len);
  name_copy[len] = '\0';
  e->sink.producer_id = producer_id;
  snprintf(e->sink.producer_hex, sizeof(e->sink.producer_hex), "%016" PRIx64, producer_id);
  e->sink.name = name_copy;
  e->sink.protocol = stream_proto_name(proto);
  e->sink.peer = peer_copy;
  e->sink.label = e->label;
  e->proto = proto;
  e->name_len = len;
  log_escape(e->label, sizeof(e->label), name_copy, len);
  e->hash = streams_hash(proto, producer_id, name, len);
  return e;
}

/* Add an entry; see streams.h. */
int streams_add(streams *t, int proto, uint64_t producer_id, const char *name, size_t len,
                const char *peer, stream **out) {
  stream *e;
  *out = NULL;
  if (t->n >= STREAMS_MAX) {
    return CS_EREFUSED;
  }
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    stream **v = realloc(t->v, cap * sizeof(*v));
    if (v == NULL) {
      return CS_ENOMEM;
    }
    t->v = v;
    t->cap = cap;
  }
  if (t->n >= t->nbuckets && streams_grow(t) != 0) {
    return CS_ENOMEM;
  }
  e = stream_new(proto, producer_id, name, len, peer);
  if (e == NULL) {
    return CS_ENOMEM;
  }
  t->v[t->n++] = e;
  e->chain = t->buckets[e->hash & (t->nbuckets - 1)];
  t->buckets[e->hash & (t->nbuckets - 1)] = e;
  streams_recount(t, e);
  *out = e;
  return 0;
}

/* Copy the header; see streams.h. */
int stream_set_columns(stream *e, const cs_field *columns, size_t n) {
  cs_field *cols;
  char *data;
  int rc = cs_fields_copy(columns, n, &cols, &data);
  if (rc != 0) {
    return rc;
  }
  free((cs_field *)e->sink.columns);
  free(e->columns_data);
  e->sink.columns = cols;
  e->sink.ncolumns = n;
  e->columns_data = data;
  return 0;
}

int streams_set_columns(streams *t, stream *e, const cs_field *columns, size_t n) {
  int rc = stream_set_columns(e, columns, n);
  if (rc == 0) {
    streams_recount(t, e);
  }
  return rc;
}

int stream_same_columns(const stream *e, const cs_field *columns, size_t n) {
  return cs_fields_equal(e->sink.columns, e->sink.ncolumns, columns, n);
}

size_t streams_of(const streams *t, int proto) {
  size_t i, n = 0;
  for (i = 0; i < t->n; i++) {
    if (t->v[i]->proto == proto) {
      n++;
    }
  }
  return n;
}

/* Sum one protocol's streams; see streams.h. */
void streams_totals(streams *t, int proto, stats_counts *total) {
  size_t i;
  stats_counts_init(total);
  stats_counts_add(total, &t->retired[proto]);
  for (i = 0; i < t->n; i++) {
    stream *e = t->v[i];
    if (e->proto != proto) {
      continue;
    }
    stats_stream_lost(&e->stats);
    stats_counts_add(total, &e->stats.c);
  }
}
