#ifndef CRESOLV_H
#define CRESOLV_H

/// TXT lookups through libresolv, for DNSLink (`_dnslink.<domain>`).
///
/// The same answer parser serves the system resolver, a configured nameserver (address and
/// port, e.g. a local dnsmasq), and DNS-over-HTTPS, whose body is a DNS message too (RFC 8484).

/// Sends a TXT query for `name`: to the resolvers of /etc/resolv.conf when `server` is NULL,
/// otherwise to the IPv4 or IPv6 address `server` on `port`. Writes the raw answer into
/// `answer` and returns its length, or -1 when no answer came (timeout, refused, …).
/// An NXDOMAIN or empty answer is a valid answer (its length is returned).
int xfer_txt_query(const char *name, const char *server, int port, int timeout_seconds,
                   unsigned char *answer, int answer_size);

/// Builds a TXT query message for `name` (for DNS over HTTPS) with message id 0, as RFC 8484
/// recommends for caching. Returns its length, or -1.
int xfer_txt_make_query(const char *name, unsigned char *buffer, int buffer_size);

/// Parses a DNS answer and writes the text of each TXT record in its answer section (the
/// record's character-strings joined; the resolver has followed any CNAME) into `out`, one
/// record per line. Returns the number of records (0 for NXDOMAIN or
/// none), -1 for a malformed message, or -2 for a server failure (SERVFAIL, REFUSED, …).
int xfer_txt_records(const unsigned char *answer, int length, char *out, int out_size);

#endif
