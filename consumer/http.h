/* http.h -- the consumer's optional HTTP server (--http), on its own loop: GET /metrics (the
 * Prometheus text format), GET /stats.json (the --stats-json document, live) and GET / (a
 * self-contained page that draws the counts every second). Every request is hostile input:
 * bounded, timed out, GET and HEAD only, one request per connection, nothing read from disk. */
#ifndef CSVSTREAM_CONSUMER_HTTP_H
#define CSVSTREAM_CONSUMER_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "options.h"
#include "report.h"

/* Limits: the request line and headers together; the time a request may take to arrive (and,
 * after the answer, to be closed by the peer); connections at once (more are closed). */
#define HTTP_MAX_HEAD_BYTES 8192
#define HTTP_REQUEST_TIMEOUT_MS 5000
#define HTTP_MAX_CONNECTIONS 64

/* What the server is given. view returns the counts as they stand (the consumer refreshes
 * what it must, the kernel's drop count say); the server only reads them. */
typedef struct http_env {
  uv_loop_t *loop;
  const consumer_options *opt; /* --http's host and port */
  report_view (*view)(void *arg);
  void *arg;
} http_env;

typedef struct http_server http_server;

/* 1 if this consumer was built with the HTTP parser (libhttp-parser), so --http works. */
int http_available(void);

/* The HTTP parser's version ("2.9.4"), or "not built in (--http is off)", into buf. */
const char *http_version(char *buf, size_t len);

/* Bind --http's address and serve. Returns 0 with *out set, or a negative code after logging
 * why (*out may be set even then: stop it either way). env is copied. */
int http_start(http_server **out, const http_env *env);

/* "127.0.0.1:8080". */
const char *http_name(const http_server *s);

/* Close the listener and every connection; memory is freed by the close callbacks as the loop
 * runs. Accepts NULL; call once. */
void http_stop(http_server *s);

/* The page GET / serves (http_page.html, embedded at build time) and its length. */
extern const char http_page_html[];
extern const unsigned long http_page_html_len;

#endif
