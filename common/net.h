/* net.h -- address helpers: resolve HOST and PORT, print an address as "HOST:PORT". */
#ifndef CSVSTREAM_NET_H
#define CSVSTREAM_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Resolve host (a name, an IPv4 or an IPv6 literal, bare or in brackets: "::1" or "[::1]") for
 * the given socket type (SOCK_STREAM or SOCK_DGRAM). The first address found is stored. Returns 0,
 * or CS_EINVAL with a message such as "cannot resolve 'nohost': Name or service not known" in err.
 */
int net_resolve(const char *host, int port, int socktype, struct sockaddr_storage *addr,
                socklen_t *addrlen, char *err, size_t errlen);

/* "127.0.0.1:9999" or "[::1]:9999" into buf. Returns buf. */
char *net_format(const struct sockaddr *addr, char *buf, size_t len);

#endif
