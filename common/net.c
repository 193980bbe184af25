/* net.c -- address helpers: resolve HOST:PORT (every address, or the first) and print an address
 * as "HOST:PORT". */
#include "net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define NET_HOST_MAX 256 /* an IPv6 literal with a zone index fits easily */

/* Resolve host for socktype and keep every address getaddrinfo returns, in its order (RFC 6724's,
 * as glibc sorts them), up to NET_ADDRS_MAX. */
int net_resolve_all(const char *host, int port, int socktype, net_addrs *out, char *err,
                    size_t errlen) {
  char service[16];
  struct addrinfo hints;
  struct addrinfo *res = NULL;
  const struct addrinfo *ai;
  int rc = CS_EINVAL;

  out->count = 0;
  if (host == NULL || host[0] == '\0' || port < 0 || port > 65535) {
    snprintf(err, errlen, "cannot resolve '%s' port %d: empty host or port out of range",
             host != NULL ? host : "", port);
    goto done;
  }
  snprintf(service, sizeof service, "%d", port);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  /* "[::1]", the form net_format prints and both programs log, is an IPv6 literal in brackets
   * (as in URLs); getaddrinfo wants it without them. */
  const char *lookup = host;
  char literal[NET_HOST_MAX];
  if (host[0] == '[') {
    size_t len = strlen(host);
    if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof literal ||
        memchr(host + 1, ']', len - 2) != NULL) {
      snprintf(err, errlen,
               "cannot resolve '%s': expected an IPv6 address in brackets, "
               "e.g. '[::1]' (the port goes in --port)",
               host);
      goto done;
    }
    memcpy(literal, host + 1, len - 2);
    literal[len - 2] = '\0';
    lookup = literal;
    hints.ai_family = AF_INET6;
    hints.ai_flags |= AI_NUMERICHOST;
  }
  int gai = getaddrinfo(lookup, service, &hints, &res);
  if (gai != 0) {
    const char *colon = strchr(host, ':');
    size_t digits = colon != NULL ? strspn(colon + 1, "0123456789") : 0;
    if (colon != NULL && colon != host && digits > 0 && colon[1 + digits] == '\0') {
      /* "127.0.0.1:9999" or "name:9999": one colon, a port after it. */
      snprintf(err, errlen, "cannot resolve '%s': %s (the port goes in --port: -H %.*s -p %s)",
               host, gai_strerror(gai), (int)(colon - host), host, colon + 1);
    } else {
      snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(gai));
    }
    goto done;
  }
  for (ai = res; ai != NULL && out->count < NET_ADDRS_MAX; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof out->addr[0]) {
      continue; /* not an address family a sockaddr_storage holds: none in practice */
    }
    memset(&out->addr[out->count], 0, sizeof out->addr[0]);
    memcpy(&out->addr[out->count], ai->ai_addr, ai->ai_addrlen);
    out->len[out->count] = (socklen_t)ai->ai_addrlen;
    out->count++;
  }
  if (out->count == 0) {
    snprintf(err, errlen, "cannot resolve '%s': no usable address", host);
    goto done;
  }
  rc = 0;
done:
  if (res != NULL) {
    freeaddrinfo(res);
  }
  return rc;
}

/* The first address of net_resolve_all. */
int net_resolve(const char *host, int port, int socktype, struct sockaddr_storage *addr,
                socklen_t *addrlen, char *err, size_t errlen) {
  net_addrs all;
  int rc = net_resolve_all(host, port, socktype, &all, err, errlen);
  if (rc != 0) {
    return rc;
  }
  *addr = all.addr[0];
  *addrlen = all.len[0];
  return 0;
}

/* Print IPv4 as "a.b.c.d:port" and IPv6 as "[addr]:port"; anything else as "?". */
char *net_format(const struct sockaddr *addr, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN];
  if (len == 0) {
    return buf;
  }
  if (addr != NULL && addr->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
    if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) != NULL) {
      snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
      return buf;
    }
  } else if (addr != NULL && addr->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
    if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host) != NULL) {
      snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
      return buf;
    }
  }
  snprintf(buf, len, "?");
  return buf;
}
