/* loop.c -- the consumer's libuv loop: listeners, signals, the per-turn flush of the sinks,
 * their timer, back-pressure, the clean stop, the drain and the reports. */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "clock.h"
#include "error.h"
#include "ingest.h"
#include "json.h"
#include "http.h"
#include "listen_plain.h"
#include "listen_tcp.h"
#include "listen_udp.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "sinks.h"
#include "streams.h"

struct consumer {
  consumer_options opt;
  uv_loop_t loop;
  int loop_ready;
  uv_signal_t sigint, sigterm;
  uv_signal_t sighup;      /* reopen the CSV files (logrotate) */
  uv_check_t check;        /* end of every loop turn: the sinks write what arrived */
  uv_timer_t sink_timer;   /* the time a sink asked for (commit pace, lock back-off) */
  uv_timer_t stats_timer;  /* the live --stats line */
  uv_timer_t retire_timer; /* the tick, once a second: streams that ended or went idle leave
                            * the table, and the loop turns (the sinks' checks ride on it) */
  int sigint_open, sigterm_open, sighup_open, check_open, sink_timer_open, stats_timer_open,
      retire_timer_open;

  listen_tcp *tcp;
  listen_udp *udp;
  listen_plain *plain;        /* --plain-port */
  http_server *http;          /* --http */
  metrics_interval json_live; /* --stats-format json */
  streams table;
  sinks *sinks;
  ingest in;
  report_live live;

  int reads_paused;
  int stopping;
  int exit_code;
  /* At the stop, the drain waits for a locked database by running the loop for the sink
   * timer, so that a second SIGINT/SIGTERM can end the wait. */
  int drain_woken;  /* the timer fired */
  int stop_waiting; /* a second SIGINT/SIGTERM: give up waiting at once */
};

static void loop_stop(consumer *c, int exit_code);

/* What the reports read. */
static report_view loop_view(consumer *c) {
  report_view v;
  v.opt = &c->opt;
  v.table = &c->table;
  v.proto = c->in.proto;
  v.sinks = c->sinks;
  return v;
}

/* Pause TCP reads while a sink is behind, resume when it caught up. */
static void loop_pressure(consumer *c) {
  char why[512];
  int p;
  if (c->stopping || c->sinks == NULL) {
    return;
  }
  p = sinks_pressure(c->sinks, c->reads_paused, why, sizeof(why));
  if (p == SINK_PRESSURE_HIGH) {
    c->reads_paused = 1;
    listen_tcp_pause(c->tcp, 1);
    listen_plain_pause(c->plain, 1);
    log_warn("%s: pausing TCP reads until it catches up", why);
  } else if (p == SINK_PRESSURE_LOW) {
    c->reads_paused = 0;
    listen_tcp_pause(c->tcp, 0);
    listen_plain_pause(c->plain, 0);
    log_info("%s: resuming TCP reads", why);
  }
}

static void loop_sink_timer_cb(uv_timer_t *t);

/* Let the sinks write what is due, and arm the timer for the next time one asked for. */
static void loop_flush(consumer *c) {
  uint64_t now, next;
  int rc;
  if (c->stopping) {
    return;
  }
  now = clock_mono_us();
  if (sinks_flush(c->sinks, now, &next) != 0) {
    loop_stop(c, 1); /* the sink said why */
    return;
  }
  listen_tcp_ack(c->tcp); /* what became durable now */
  if (next != 0) {
    rc =
        uv_timer_start(&c->sink_timer, loop_sink_timer_cb, next > now ? (next - now) / 1000 : 0, 0);
    if (rc != 0) {
      log_warn("cannot arm the sinks' timer: %s", uv_strerror(rc));
    }
  }
  loop_pressure(c);
}

static void loop_sink_timer_cb(uv_timer_t *t) {
  loop_flush(t->data);
}

/* End of a loop turn: the sinks write what arrived in it. */
static void loop_check_cb(uv_check_t *h) {
  loop_flush(h->data);
}

/* listen_env.stop and .input. */
static void loop_stop_cb(void *arg, int exit_code) {
  loop_stop(arg, exit_code);
}

static void loop_input_cb(void *arg) {
  loop_pressure(arg);
}

/* SIGINT or SIGTERM: stop cleanly. A second one, while the stop waits for a locked database,
 * ends that wait (the rows not committed are reported, and the exit code is 1). */
static void loop_signal_cb(uv_signal_t *h, int signum) {
  consumer *c = h->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  char what[512];
  if (c->stopping) {
    c->stop_waiting = 1;
    if (c->sinks != NULL && sinks_waiting(c->sinks, what, sizeof(what))) {
      log_warn("%s again: not waiting for %s any longer", name, what);
    } else {
      log_info("%s again: already stopping", name);
    }
    return;
  }
  log_info("%s: stopping (draining what arrived, then the summary)", name);
  loop_stop(c, 0);
}

/* SIGHUP: the sinks reopen their files at their paths, as logrotate expects. */
static void loop_sighup_cb(uv_signal_t *h, int signum) {
  consumer *c = h->data;
  (void)signum;
  if (c->stopping || c->sinks == NULL) {
    return;
  }
  if (sinks_reopen(c->sinks) != 0) {
    log_warn("SIGHUP: some files could not be reopened (see above); writing on to them");
  }
}

/* --stats-format json: one JSON object per tick on standard output, idle or not (a monitor
 * reads it as a time series). A stdout that cannot be written is said once, and the lines stop. */
static void loop_stats_json_line(consumer *c, const report_view *v) {
  int rc = metrics_json_line(&c->json_live, v, stdout);
  if (rc != 0) {
    log_error("--stats-format json: cannot write to standard output: %s; no more stats lines",
              cs_strerror(rc == CS_EIO ? -errno : rc));
    uv_timer_stop(&c->stats_timer);
    if (c->exit_code < 1) {
      c->exit_code = 1;
    }
  }
}

/* What the HTTP server reads: the counts as they stand, the kernel's drop count read now. */
static report_view loop_http_view(void *arg) {
  consumer *c = arg;
  listen_udp_update_drops(c->udp);
  return loop_view(c);
}

/* The live --stats line: a tick that prints only when something changed since the last. */
static void loop_stats_timer_cb(uv_timer_t *t) {
  consumer *c = t->data;
  report_view v = loop_view(c);
  listen_udp_update_drops(c->udp); /* kernel drops are among the counts that make a change */
  if (c->opt.stats_json_lines) {
    loop_stats_json_line(c, &v);
    return;
  }
  (void)report_live_line(&c->live, &v); /* 0: idle, nothing to say this tick */
}

/* What a retiring stream leaves in the final JSON (ingest's describe hook). */
static char *loop_describe(void *arg, stream *e) {
  consumer *c = arg;
  report_view v = loop_view(c);
  return report_stream_json(&v, e);
}

/* Once a second: retire the streams that ended or went idle. The turn it makes also runs the
 * sinks' flush (the check handle), whose once-a-second checks need no timer of their own. */
static void loop_retire_timer_cb(uv_timer_t *t) {
  consumer *c = t->data;
  (void)ingest_retire(&c->in, clock_wall_us());
}

/* Close a handle if it is open (flag cleared: it is closed once). */
static void loop_close_handle(uv_handle_t *h, int *open) {
  if (*open && !uv_is_closing(h)) {
    uv_close(h, NULL);
  }
  *open = 0;
}

/* Begin a clean stop from any callback: close the listeners, their connections and the
 * timers; the loop then ends and loop_run drains. exit_code 1 marks a failure. */
static void loop_stop(consumer *c, int exit_code) {
  if (exit_code > c->exit_code) {
    c->exit_code = exit_code;
  }
  if (c->stopping) {
    return;
  }
  /* A clean stop (--max-records, SIGINT): what the sinks can make durable now is acknowledged
   * while the connections are still open, so that producers do not keep (and resend) records
   * that were stored. The drain writes the rest. */
  if (exit_code == 0 && !c->stopping && c->sinks != NULL && c->tcp != NULL) {
    uint64_t next;
    if (sinks_flush(c->sinks, clock_mono_us(), &next) == 0) {
      listen_tcp_ack(c->tcp);
    }
  }
  c->stopping = 1;
  listen_udp_stop(c->udp); /* takes the last kernel drop count first */
  listen_tcp_stop(c->tcp);
  listen_plain_stop(c->plain);
  http_stop(c->http);
  c->udp = NULL;
  c->tcp = NULL;
  c->plain = NULL;
  c->http = NULL;
  /* The signal handlers stay (unreferenced, so the loop can end without them): a second
   * Ctrl-C must reach the drain rather than kill the process silently. The sinks' timer stays
   * too, stopped: the drain waits on it. loop_free closes them (and ignores the three signals
   * from then on). */
  if (c->sigint_open) {
    uv_unref((uv_handle_t *)&c->sigint);
  }
  if (c->sigterm_open) {
    uv_unref((uv_handle_t *)&c->sigterm);
  }
  if (c->sighup_open) {
    uv_unref((uv_handle_t *)&c->sighup); /* ignored from now on, but not fatal */
  }
  if (c->sink_timer_open) {
    uv_timer_stop(&c->sink_timer);
  }
  loop_close_handle((uv_handle_t *)&c->check, &c->check_open);
  loop_close_handle((uv_handle_t *)&c->stats_timer, &c->stats_timer_open);
  loop_close_handle((uv_handle_t *)&c->retire_timer, &c->retire_timer_open);
}

/* The loop's own handles: signals, the per-turn check, the timers. Returns 0 or a negative
 * code (logged). */
static int loop_handles_init(consumer *c) {
  int rc;
#define LOOP_INIT_HANDLE(call, handle, flag)                                                       \
  do {                                                                                             \
    rc = (call);                                                                                   \
    if (rc != 0) {                                                                                 \
      log_error("cannot set up the event loop: %s", uv_strerror(rc));                              \
      return rc;                                                                                   \
    }                                                                                              \
    (handle).data = c;                                                                             \
    c->flag = 1;                                                                                   \
  } while (0)
  LOOP_INIT_HANDLE(uv_signal_init(&c->loop, &c->sigint), c->sigint, sigint_open);
  LOOP_INIT_HANDLE(uv_signal_init(&c->loop, &c->sigterm), c->sigterm, sigterm_open);
  LOOP_INIT_HANDLE(uv_signal_init(&c->loop, &c->sighup), c->sighup, sighup_open);
  LOOP_INIT_HANDLE(uv_check_init(&c->loop, &c->check), c->check, check_open);
  LOOP_INIT_HANDLE(uv_timer_init(&c->loop, &c->sink_timer), c->sink_timer, sink_timer_open);
  LOOP_INIT_HANDLE(uv_timer_init(&c->loop, &c->stats_timer), c->stats_timer, stats_timer_open);
  LOOP_INIT_HANDLE(uv_timer_init(&c->loop, &c->retire_timer), c->retire_timer, retire_timer_open);
#undef LOOP_INIT_HANDLE
  if ((rc = uv_signal_start(&c->sigint, loop_signal_cb, SIGINT)) != 0 ||
      (rc = uv_signal_start(&c->sigterm, loop_signal_cb, SIGTERM)) != 0 ||
      (rc = uv_signal_start(&c->sighup, loop_sighup_cb, SIGHUP)) != 0 ||
      (rc = uv_check_start(&c->check, loop_check_cb)) != 0 ||
      (rc = uv_timer_start(&c->retire_timer, loop_retire_timer_cb, 1000, 1000)) != 0) {
    log_error("cannot set up the event loop: %s", uv_strerror(rc));
    return rc;
  }
  if (c->opt.stats_interval > 0) {
    uint64_t ms = (uint64_t)(c->opt.stats_interval * 1000.0);
    if (ms == 0) {
      ms = 1;
    }
    rc = uv_timer_start(&c->stats_timer, loop_stats_timer_cb, ms, ms);
    if (rc != 0) {
      log_error("--stats: cannot start the timer: %s", uv_strerror(rc));
      return rc;
    }
  }
  report_live_init(&c->live);
  metrics_interval_init(&c->json_live);
  return 0;
}

/* Build the consumer; see loop.h. */
int loop_new(consumer **out, const consumer_options *opt) {
  listen_env env;
  consumer *c = calloc(1, sizeof(*c));
  int rc;
  *out = c;
  if (c == NULL) {
    log_error("out of memory");
    return CS_ENOMEM;
  }
  c->opt = *opt;
  streams_init(&c->table);
  rc = uv_loop_init(&c->loop);
  if (rc != 0) {
    log_error("cannot start the event loop: %s", uv_strerror(rc));
    return rc;
  }
  c->loop_ready = 1;
  if ((rc = loop_handles_init(c)) != 0) {
    return rc;
  }
  ingest_init(&c->in, &c->table, NULL, &c->opt);
  c->in.describe = loop_describe;
  c->in.describe_arg = c;
  env.loop = &c->loop;
  env.in = &c->in;
  env.opt = &c->opt;
  env.stop = loop_stop_cb;
  env.input = loop_input_cb;
  env.arg = c;
  /* The ports first: a consumer that cannot listen (another one runs) must not create or
   * touch --out and --db. Nothing is read before loop_run, so the sinks can come after. */
  if (opt->tcp && (rc = listen_tcp_start(&c->tcp, &env)) != 0) {
    return rc;
  }
  if (opt->udp && (rc = listen_udp_start(&c->udp, &env)) != 0) {
    return rc;
  }
  if (opt->plain_port != 0 && (rc = listen_plain_start(&c->plain, &env)) != 0) {
    return rc;
  }
  if ((rc = sinks_open_on(&c->sinks, &c->opt, &c->loop)) != 0) {
    return rc;
  }
  c->in.sinks = c->sinks;
  if (opt->http_port != 0) {
    http_env henv;
    henv.loop = &c->loop;
    henv.opt = &c->opt;
    henv.view = loop_http_view;
    henv.arg = c;
    if ((rc = http_start(&c->http, &henv)) != 0) {
      return rc;
    }
  }
  /* Said only now that records can be taken: tests and scripts wait for these lines. */
  if (c->tcp != NULL) {
    log_info("listening on %s", listen_tcp_name(c->tcp));
  }
  if (c->udp != NULL) {
    log_info("listening on %s", listen_udp_name(c->udp));
  }
  if (c->plain != NULL) {
    listen_plain_announce(c->plain);
  }
  if (c->http != NULL) {
    log_info("serving http://%s/ (/metrics, /stats.json)", http_name(c->http));
  }
  return 0;
}

/* The drain's timer. */
static void loop_drain_timer_cb(uv_timer_t *t) {
  consumer *c = t->data;
  c->drain_woken = 1;
}

/* Wait until next_us (monotonic) for the drain, running the loop so that a second
 * SIGINT/SIGTERM is seen at once (it sets c->stop_waiting). */
static void loop_drain_wait(consumer *c, uint64_t next_us) {
  uint64_t now = clock_mono_us(), delay_ms = next_us > now ? (next_us - now) / 1000 : 0;
  c->drain_woken = 0;
  if (!c->sink_timer_open ||
      uv_timer_start(&c->sink_timer, loop_drain_timer_cb, delay_ms, 0) != 0) {
    clock_sleep_until(next_us, NULL);
    return;
  }
  while (!c->drain_woken && !c->stop_waiting) {
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&c->sink_timer);
}

/* At the stop: every sink makes what it holds durable, in registry order, waiting as long as
 * a sink asks (a locked database). Returns 0, or 1 when a sink left records behind. */
static int loop_drain(consumer *c) {
  uint64_t next = 0;
  int rc;
  for (;;) {
    rc = sinks_drain(c->sinks, clock_mono_us(), c->stop_waiting, &next);
    if (rc != SINK_AGAIN) {
      return rc;
    }
    loop_drain_wait(c, next);
  }
}

/* The summary table: a result, so to standard output, unless --out - or --stats-json - put
 * data there, which the table must not be mixed into; then to standard error. A summary that
 * cannot be written (stdout closed, a full disk) is an error: returns 0 or 1. */
static int loop_summary(const report_view *v) {
  int data_on_stdout = strcmp(v->opt->out_path, "-") == 0 ||
                       json_path_is_stdout(v->opt->stats_json) || v->opt->stats_json_lines;
  FILE *out = data_on_stdout ? stderr : stdout;
  report_summary(v, out);
  if (out == stdout && (fflush(stdout) != 0 || ferror(stdout))) {
    log_error("cannot write the summary to standard output: %s", strerror(errno));
    return 1;
  }
  return 0;
}

/* Run, then drain and report; see loop.h. */
int loop_run(consumer *c) {
  report_view v = loop_view(c);
  char err[512];
  int rc = uv_run(&c->loop, UV_RUN_DEFAULT);
  (void)rc; /* uv_run returns non-zero only if handles remain, which the stop has closed */

  if (loop_drain(c) != 0) {
    c->exit_code = 1;
  }
  ingest_finish(&c->in);
  if (loop_summary(&v) != 0) {
    c->exit_code = 1;
  }
  if (c->opt.stats_json != NULL && report_json(&v, c->opt.stats_json, err, sizeof(err)) != 0) {
    log_error("--stats-json: %s", err);
    c->exit_code = 1;
  }
  /* Close the sinks here so that a failure reaches the exit code. */
  if (sinks_close(c->sinks) != 0) {
    c->exit_code = 1;
  }
  c->sinks = NULL;
  c->in.sinks = NULL;
  return c->exit_code;
}

/* uv_walk callback: close whatever is still open. */
static void loop_close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) {
    uv_close(h, NULL);
  }
}

/* Close every handle of the loop, the signal handles among them, and ignore SIGINT, SIGTERM
 * and SIGHUP from then on. Closing a signal handle gives the signal back its default action,
 * which would kill the process in its last steps (the loop closed, the tables freed, the exit)
 * and lose the exit code the stop earned. The program is stopping already and nothing long
 * runs after this (the sinks are closed, or were never fed), so the signals are ignored, as a
 * SIGHUP already is during the stop: they are blocked while the handles close (the consumer has
 * one thread), set to SIG_IGN once the handles are gone, which also drops one that came
 * meanwhile, then unblocked. */
static void loop_close_all(consumer *c) {
  static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
  sigset_t blocked_set, saved;
  size_t i;
  int blocked;
  sigemptyset(&blocked_set);
  for (i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
    sigaddset(&blocked_set, stop_signals[i]);
  }
  blocked = sigprocmask(SIG_BLOCK, &blocked_set, &saved) == 0;
  uv_walk(&c->loop, loop_close_walk_cb, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  for (i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
    signal(stop_signals[i], SIG_IGN);
  }
  if (blocked) {
    sigprocmask(SIG_SETMASK, &saved, NULL);
  }
}

/* Free everything; see loop.h. */
void loop_free(consumer *c) {
  if (c == NULL) {
    return;
  }
  if (c->loop_ready) {
    if (!c->stopping) {
      loop_stop(c, 0);
    }
    loop_close_all(c);
    if (uv_loop_close(&c->loop) != 0) {
      log_warn("event loop closed with handles still open");
    }
    c->loop_ready = 0;
  }
  sinks_close(c->sinks);
  streams_free(&c->table);
  free(c);
}
