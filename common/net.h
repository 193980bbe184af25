/* net.h -- address helpers: resolve HOST and PORT (every address, or the first), print an address
 * as "HOST:PORT". */
#ifndef CSVSTREAM_NET_H
#define CSVSTREAM_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Addresses a name resolves to, in the resolver's order. */
#define NET_ADDRS_MAX 16
typedef struct net_addrs {
  size_t count; /* 1..NET_ADDRS_MAX after a successful net_resolve_all */
  struct sockaddr_storage addr[NET_ADDRS_MAX];
  socklen_t len[NET_ADDRS_MAX];
} net_addrs;

/* Resolve host as net_resolve does, but keep every address found (the first NET_ADDRS_MAX), in
 * getaddrinfo's order: "localhost" may give ::1 and 127.0.0.1. A client that connects tries
 * them in turn. Returns 0 with out->count >= 1, or CS_EINVAL with the message in err. */
int net_resolve_all(const char *host, int port, int socktype, net_addrs *out, char *err,
                    size_t errlen);

/* Resolve host (a name, an IPv4 or an IPv6 literal, bare or in brackets: "::1" or "[::1]") for
 * the given socket type (SOCK_STREAM or SOCK_DGRAM). The first address found is stored (a
 * listener binds one address; a datagram sender cannot learn which address has a listener). Returns
 * 0, or CS_EINVAL with a message such as "cannot resolve 'nohost': Name or service not known" in
 * err.
 */
int net_resolve(const char *host, int port, int socktype, struct sockaddr_storage *addr,
                socklen_t *addrlen, char *err, size_t errlen);

/* "127.0.0.1:9999" or "[::1]:9999" into buf. Returns buf. */
char *net_format(const struct sockaddr *addr, char *buf, size_t len);

#endif
