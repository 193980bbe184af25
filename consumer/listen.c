/* listen.c -- the listeners' shared start: resolve, bind, name, and errors in plain words. */
#include "listen.h"

#include <stdio.h>

#include "log.h"
#include "net.h"

/* Log a listen failure in words a person can act on; see listen.h. */
void listen_log_error(const char *name, int rc) {
  if (rc == UV_EADDRINUSE) {
    log_error("cannot listen on %s: address already in use (is another consumer running? pick "
              "another --port)",
              name);
  } else if (rc == UV_EADDRNOTAVAIL) {
    log_error("cannot listen on %s: address not available on this machine (check --host)", name);
  } else if (rc == UV_EACCES) {
    log_error("cannot listen on %s: permission denied (ports below 1024 need root; pick "
              "another --port)",
              name);
  } else {
    log_error("cannot listen on %s: %s", name, uv_strerror(rc));
  }
}

/* "tcp" or "udp" for a socket type. */
static const char *listen_suffix(int socktype) {
  return socktype == SOCK_STREAM ? "tcp" : "udp";
}

/* Resolve and name a listener; see listen.h. */
int listen_resolve(const listen_env *env, int socktype, struct sockaddr_storage *ss, char *name,
                   size_t namelen) {
  socklen_t len;
  char err[256];
  int rc = net_resolve(env->opt->host, env->opt->port, socktype, ss, &len, err, sizeof(err));
  if (rc != 0) {
    log_error("--host: %s", err);
    return rc;
  }
  listen_rename((const struct sockaddr *)ss, socktype, name, namelen);
  return 0;
}

/* See listen.h. */
void listen_rename(const struct sockaddr *bound, int socktype, char *name, size_t namelen) {
  char addr[64];
  snprintf(name, namelen, "%s/%s", net_format(bound, addr, sizeof(addr)), listen_suffix(socktype));
}
