/* http.c -- the --http server: requests parsed with http_parser on the consumer's libuv loop,
 * answered from the live counts (metrics.c, report.c) and an embedded page. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "conns.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "net.h"

#ifdef CSVSTREAM_HAVE_HTTP_PARSER
#include <http_parser.h>

#define HTTP_MAX_URL 2048
#define HTTP_SWEEP_MS 500

typedef struct http_conn http_conn;

struct http_server {
  uv_tcp_t handle;
  uv_timer_t sweep;
  int handle_open, sweep_open;
  http_env env;
  char name[80];
  conns conns; /* the connections (http_conn), and the handles that free the server */
  int stopping;
  http_parser_settings settings; /* the parser's callbacks, shared by the connections */
  char buf[HTTP_MAX_HEAD_BYTES + 1];
};

/* One connection: one request, one answer, then closed. c first (c.handle.data is the
 * connection), freed only in its close callback (conns.h); c.peer.name names the peer. */
struct http_conn {
  conn c;
  http_server *s;
  http_parser parser;
  char url[HTTP_MAX_URL + 1];
  size_t url_len;
  size_t head_bytes; /* read before the headers ended */
  int url_too_long;
  int headers_done;
  int answered;         /* the answer is written or being written: what comes now is discarded */
  uint64_t deadline_us; /* monotonic: closed when reached */
  uv_write_t write_req;
  uv_shutdown_t shutdown_req;
  cs_buf answer; /* alive until the write callback */
};

int http_available(void) {
  return 1;
}

/* The library's version at run time (http_parser_version packs major, minor, patch). */
const char *http_version(char *buf, size_t len) {
  unsigned long v = http_parser_version();
  snprintf(buf, len, "%lu.%lu.%lu", (v >> 16) & 255, (v >> 8) & 255, v & 255);
  return buf;
}

static void http_free(void *server) {
  free(server);
}

/* A connection's own parts, once libuv is done with it. */
static void http_conn_free(conn *c) {
  http_conn *k = (http_conn *)c;
  cs_buf_free(&k->answer);
  free(k);
}

/* proto is unused: the server hands nothing to ingest. */
static const conns_ops http_conns_ops = {"http", 0, http_conn_free, http_free};

/* Close k (safe in its own callbacks). */
static void http_conn_close(http_conn *k) {
  conns_close(&k->c);
}

/* libhttp_parser callbacks: the URL and the size of the head, bounded. */
static int http_on_url(http_parser *p, const char *at, size_t len) {
  http_conn *k = p->data;
  if (k->url_len + len > HTTP_MAX_URL) {
    k->url_too_long = 1;
    return 0;
  }
  memcpy(k->url + k->url_len, at, len);
  k->url_len += len;
  k->url[k->url_len] = '\0';
  return 0;
}

static int http_on_headers_complete(http_parser *p) {
  http_conn *k = p->data;
  k->headers_done = 1;
  return 0;
}

static void http_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void http_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  http_conn *k = h->data;
  (void)suggested;
  buf->base = k->s->buf;
  buf->len = sizeof(k->s->buf);
}

/* After the answer: the peer closes (we discard what it still sends) or the deadline does. */
static void http_shutdown_cb(uv_shutdown_t *req, int status) {
  http_conn *k = req->data;
  if (status < 0) {
    http_conn_close(k);
  }
}

static void http_write_cb(uv_write_t *req, int status) {
  http_conn *k = req->data;
  int rc;
  cs_buf_free(&k->answer);
  if (k->c.closing) {
    return;
  }
  if (status < 0) {
    http_conn_close(k);
    return;
  }
  /* Half-close, and give the peer a moment to read it all and close: closing at once, with
   * bytes of its request still unread, would reset the connection under the answer. */
  k->shutdown_req.data = k;
  rc = uv_shutdown(&k->shutdown_req, (uv_stream_t *)&k->c.handle, http_shutdown_cb);
  if (rc != 0) {
    http_conn_close(k);
    return;
  }
  k->deadline_us = clock_mono_us() + 2000000;
}

/* Answer k: status line, headers (never kept alive), the body unless head_only. body is
 * copied. */
static void http_answer(http_conn *k, int code, const char *reason, const char *type,
                        const char *extra_headers, const char *body, size_t len, int head_only) {
  char head[512];
  uv_buf_t b;
  int n, rc;
  k->answered = 1;
  n = snprintf(head, sizeof(head),
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s"
               "Connection: close\r\n\r\n",
               code, reason, type, len, extra_headers != NULL ? extra_headers : "");
  cs_buf_init(&k->answer);
  if (n < 0 || (size_t)n >= sizeof(head) || cs_buf_append(&k->answer, head, (size_t)n) != 0 ||
      (!head_only && len > 0 && cs_buf_append(&k->answer, body, len) != 0)) {
    http_conn_close(k);
    return;
  }
  b = uv_buf_init(k->answer.data, (unsigned)k->answer.len);
  k->write_req.data = k;
  rc = uv_write(&k->write_req, (uv_stream_t *)&k->c.handle, &b, 1, http_write_cb);
  if (rc != 0) {
    http_conn_close(k);
  }
}

/* A short plain-text answer (errors). */
static void http_answer_text(http_conn *k, int code, const char *reason, const char *extra,
                             int head_only) {
  char body[128];
  int n = snprintf(body, sizeof(body), "%d %s\n", code, reason);
  http_answer(k, code, reason, "text/plain; charset=utf-8", extra, body, (size_t)n, head_only);
}

/* The request is in: route it. Only the path counts (a query is ignored); nothing is looked up
 * on disk, so "/../x" is just another unknown path. */
static void http_route(http_conn *k) {
  int method = k->parser.method, head_only = method == HTTP_HEAD;
  report_view v;
  char *q;
  if (k->url_too_long) {
    http_answer_text(k, 414, "URI Too Long", NULL, 0);
    return;
  }
  if (method != HTTP_GET && method != HTTP_HEAD) {
    http_answer_text(k, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n", 0);
    return;
  }
  q = strchr(k->url, '?');
  if (q != NULL) {
    *q = '\0';
  }
  v = k->s->env.view(k->s->env.arg);
  if (strcmp(k->url, "/metrics") == 0) {
    cs_buf text;
    cs_buf_init(&text);
    if (metrics_prometheus(&v, &text) != 0) {
      http_answer_text(k, 500, "Internal Server Error", NULL, head_only);
    } else {
      http_answer(k, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, text.data,
                  text.len, head_only);
    }
    cs_buf_free(&text);
  } else if (strcmp(k->url, "/stats.json") == 0) {
    json_out j;
    report_json_doc(&v, NULL, NULL, &j);
    if (j.failed) {
      http_answer_text(k, 500, "Internal Server Error", NULL, head_only);
    } else {
      http_answer(k, 200, "OK", "application/json", NULL, j.buf.data, j.buf.len, head_only);
    }
    json_free(&j);
  } else if (strcmp(k->url, "/") == 0 || strcmp(k->url, "/index.html") == 0) {
    http_answer(k, 200, "OK", "text/html; charset=utf-8",
                "Content-Security-Policy: default-src 'self'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'\r\n",
                http_page_html, http_page_html_len, head_only);
  } else {
    http_answer_text(k, 404, "Not Found", NULL, head_only);
  }
}

/* Bytes of a request: parsed until its head is complete, then answered; after the answer,
 * whatever comes is discarded until the peer closes. */
static void http_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  http_conn *k = st->data;
  size_t done;
  if (k->c.closing || nread == 0) {
    return;
  }
  if (nread < 0) {
    http_conn_close(k);
    return;
  }
  if (k->answered) {
    return; /* the rest of a body, say: not read into anything */
  }
  k->head_bytes += (size_t)nread;
  done = http_parser_execute(&k->parser, &k->s->settings, buf->base, (size_t)nread);
  if (k->headers_done) {
    http_route(k);
  } else if (HTTP_PARSER_ERRNO(&k->parser) != HPE_OK || done != (size_t)nread) {
    log_debug("http %s: bad request: %s", k->c.peer.name,
              http_errno_description(HTTP_PARSER_ERRNO(&k->parser)));
    http_answer_text(k, 400, "Bad Request", NULL, 0);
  } else if (k->head_bytes > HTTP_MAX_HEAD_BYTES) {
    http_answer_text(k, 431, "Request Header Fields Too Large", NULL, 0);
  }
}

/* Twice a second: connections past their deadline (a request too slow, a peer that does not
 * close after the answer) are closed. */
static void http_sweep_cb(uv_timer_t *t) {
  http_server *s = t->data;
  uint64_t now = clock_mono_us();
  conn *c;
  for (c = s->conns.list; c != NULL; c = c->next) {
    http_conn *k = (http_conn *)c;
    if (!k->c.closing && now >= k->deadline_us) {
      if (!k->answered) {
        log_debug("http %s: request not complete within %d ms; closing", k->c.peer.name,
                  HTTP_REQUEST_TIMEOUT_MS);
      }
      http_conn_close(k);
    }
  }
}

/* Over the cap: close the connection that has waited longest (a flood of idle connections then
 * cannot keep a scrape out; each of them has its deadline anyway). */
static void http_evict_oldest(http_server *s, http_conn *keep) {
  http_conn *oldest = NULL;
  conn *c;
  for (c = s->conns.list; c != NULL; c = c->next) {
    http_conn *k = (http_conn *)c;
    if (k != keep && !c->closing && (oldest == NULL || k->deadline_us < oldest->deadline_us)) {
      oldest = k;
    }
  }
  http_conn_close(oldest != NULL ? oldest : keep);
}

static void http_connection_cb(uv_stream_t *server, int status) {
  http_server *s = server->data;
  int rc;
  http_conn *k;
  if (status < 0) {
    conns_accept_failed(&s->conns, status);
    return;
  }
  k = calloc(1, sizeof(*k));
  if (k == NULL) {
    log_warn("http: out of memory for a connection");
    return;
  }
  k->s = s;
  if (conns_accept(&s->conns, server, &k->c) != 0) {
    return;
  }
  if (s->conns.n > HTTP_MAX_CONNECTIONS) {
    http_evict_oldest(s, k);
  }
  http_parser_init(&k->parser, HTTP_REQUEST);
  k->parser.data = k;
  k->deadline_us = clock_mono_us() + (uint64_t)HTTP_REQUEST_TIMEOUT_MS * 1000;
  rc = uv_read_start((uv_stream_t *)&k->c.handle, http_alloc_cb, http_read_cb);
  if (rc != 0) {
    http_conn_close(k);
  }
}

/* Bind and listen; see http.h. */
int http_start(http_server **out, const http_env *env) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int namelen = sizeof(ss);
  char err[256], addr[64];
  http_server *s = calloc(1, sizeof(*s));
  int rc;
  *out = NULL;
  if (s == NULL) {
    log_error("out of memory for the HTTP server");
    return CS_ENOMEM;
  }
  http_parser_settings_init(&s->settings);
  s->settings.on_url = http_on_url;
  s->settings.on_headers_complete = http_on_headers_complete;
  s->env = *env;
  conns_init(&s->conns, &http_conns_ops, s, NULL, s->name); /* its hold: released by http_stop */
  *out = s;
  rc = net_resolve(env->opt->http_host, env->opt->http_port, SOCK_STREAM, &ss, &sslen, err,
                   sizeof(err));
  if (rc != 0) {
    log_error("--http: %s", err);
    return rc;
  }
  snprintf(s->name, sizeof(s->name), "%s", net_format((struct sockaddr *)&ss, addr, sizeof addr));
  if ((rc = uv_tcp_init(env->loop, &s->handle)) != 0) {
    log_error("--http: cannot listen on %s: %s", s->name, uv_strerror(rc));
    return rc;
  }
  s->handle.data = s;
  s->handle_open = 1;
  conns_hold(&s->conns);
  rc = uv_tcp_bind(&s->handle, (struct sockaddr *)&ss, 0);
  if (rc == 0) {
    rc = uv_listen((uv_stream_t *)&s->handle, 128, http_connection_cb);
  }
  if (rc != 0) {
    log_error("--http: cannot listen on %s: %s%s", s->name, uv_strerror(rc),
              rc == UV_EADDRINUSE ? " (pick another port for --http)" : "");
    return rc;
  }
  if (uv_tcp_getsockname(&s->handle, (struct sockaddr *)&ss, &namelen) == 0) {
    snprintf(s->name, sizeof(s->name), "%s", net_format((struct sockaddr *)&ss, addr, sizeof addr));
  }
  if ((rc = uv_timer_init(env->loop, &s->sweep)) == 0) {
    s->sweep.data = s;
    s->sweep_open = 1;
    conns_hold(&s->conns);
    rc = uv_timer_start(&s->sweep, http_sweep_cb, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
  }
  if (rc != 0) {
    log_error("--http: cannot start its timer: %s", uv_strerror(rc));
  }
  return rc;
}

const char *http_name(const http_server *s) {
  return s->name;
}

/* Close everything; see http.h. */
void http_stop(http_server *s) {
  conn *c;
  if (s == NULL || s->stopping) {
    return;
  }
  s->stopping = 1;
  for (c = s->conns.list; c != NULL; c = c->next) {
    conns_close(c);
  }
  if (s->sweep_open) {
    conns_close_handle(&s->conns, (uv_handle_t *)&s->sweep);
  }
  if (s->handle_open) {
    conns_close_handle(&s->conns, (uv_handle_t *)&s->handle);
  }
  conns_release(&s->conns);
}

#else /* !CSVSTREAM_HAVE_HTTP_PARSER */

int http_available(void) {
  return 0;
}

const char *http_version(char *buf, size_t len) {
  snprintf(buf, len, "not built in (--http is off)");
  return buf;
}

int http_start(http_server **out, const http_env *env) {
  (void)env;
  *out = NULL;
  log_error("--http: this consumer was built without libhttp-parser (install libhttp-parser-dev "
            "and build again)");
  return CS_EINVAL;
}

const char *http_name(const http_server *s) {
  (void)s;
  return "";
}

void http_stop(http_server *s) {
  (void)s;
}

#endif
