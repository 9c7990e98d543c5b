/* First-bytes classifier and TLS ClientHello parser for the MITM (network.md
 * section 6 steps 2-3, sections 14 and 15; docs/tls.md).
 *
 * Pure C, no OpenSSL: the proxy runs it on the raw bytes the guest sent
 * before any TLS object exists, to pick the connection kind and the name the
 * leaf certificate is minted for. OpenSSL then gets the same raw bytes.
 *
 * Nothing here allocates except clienthello_parser_new(). Strings in the
 * results are inline arrays owned by the result struct. */
#ifndef CAPSEM_TLS_CLIENTHELLO_H
#define CAPSEM_TLS_CLIENTHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* ---- First bytes (section 6 step 2) ---- */

enum conn_class {
    CONN_CLASS_NEED_MORE = 0, /* not enough bytes to decide yet */
    CONN_CLASS_TLS,           /* 16 03 */
    CONN_CLASS_HTTP,          /* HTTP token + SP (not "PRI") */
    CONN_CLASS_UNKNOWN,       /* SSLv2 hello, HTTP/2 preface, binary: unknown_protocol */
};

/* Longest method token the classifier waits for; a longer run of token
 * characters without a space is unknown_protocol. */
#define CONN_CLASS_MAX_TOKEN 32

/* Classifies the first bytes of a guest connection. Deterministic and
 * monotonic: once it returns a class other than NEED_MORE, any extension of
 * the input returns the same class. */
enum conn_class conn_classify(const uint8_t *data, size_t len);

/* Lowercase hex of the first min(len, 16) bytes into out (>= 33 bytes), for
 * the `unknown_protocol` error_detail. */
void conn_first_bytes_hex(const uint8_t *data, size_t len, char out[33]);

/* ---- Host names (SNI, leaf certificates) ---- */

#define TLS_NAME_MAX 253

enum tls_name_kind {
    TLS_NAME_INVALID = 0,
    TLS_NAME_DNS,  /* ASCII LDH labels of 1..63, total <= 253, no trailing dot */
    TLS_NAME_IPV4, /* dotted quad (inet_pton) */
    TLS_NAME_IPV6, /* inet_pton AF_INET6 */
};

/* Classifies a name of len bytes (not necessarily NUL-terminated). An
 * all-digit last label that is not a dotted quad ("127.1") is INVALID, so no
 * resolver can read it as an address. */
enum tls_name_kind tls_name_classify(const char *name, size_t len);

/* ---- ClientHello (section 6 step 3, section 15) ---- */

#define CLIENTHELLO_RECORD_MAX  16384 /* TLS plaintext record payload */
#define CLIENTHELLO_MAX         16384 /* handshake message incl. its 4-byte header */
#define CLIENTHELLO_MAX_RECORDS 64    /* records a fragmented hello may span */
/* Raw bytes (record headers included) the parser may consume: the caller's
 * first-bytes buffer must hold at least this much. */
#define CLIENTHELLO_RAW_MAX (CLIENTHELLO_MAX + 5 * CLIENTHELLO_MAX_RECORDS)

enum clienthello_status {
    CLIENTHELLO_NEED_MORE = 0,
    CLIENTHELLO_OK,
    CLIENTHELLO_ERROR, /* reason bad_client_hello; send the decode_error alert */
};

struct clienthello {
    uint16_t record_version; /* of the first record */
    uint16_t legacy_version; /* client_version field */
    uint16_t max_version;    /* highest non-GREASE supported_versions entry, else legacy_version */
    bool has_supported_versions;
    bool offers_tls13; /* 0x0304 in supported_versions */

    /* SNI: has_sni only for a valid DNS host_name. An IP literal counts as
     * no SNI (sni_is_ip set, sni empty). sni is lowercase, NUL-terminated. */
    bool has_sni;
    bool sni_is_ip;
    char sni[TLS_NAME_MAX + 1];

    /* ALPN: whether the extension was present and what it offers. */
    bool has_alpn;
    bool alpn_http11;
    bool alpn_h2;
    uint16_t alpn_count;

    uint16_t cipher_suites; /* number of suites offered */
    uint16_t extensions;    /* number of extensions */
    size_t hello_len;       /* handshake message bytes (header included) */
    size_t records;         /* records it spanned */
    size_t raw_len;         /* raw bytes consumed (record headers included) */
};

struct clienthello_parser;

struct clienthello_parser *clienthello_parser_new(struct err **errp);
void clienthello_parser_free(struct clienthello_parser *p);

/* Feeds the next bytes of the connection as they arrive. *used is how many
 * were consumed: on OK, bytes past the ClientHello's last record are left
 * unconsumed (the caller still hands everything to OpenSSL). Once OK or
 * ERROR is returned, later calls return the same status with *used = 0.
 * Never reads beyond data[len - 1]; never allocates. */
enum clienthello_status clienthello_parser_feed(struct clienthello_parser *p, const uint8_t *data,
                                                size_t len, size_t *used);

/* Valid after OK; borrowed from the parser. */
const struct clienthello *clienthello_parser_result(const struct clienthello_parser *p);
/* After ERROR: a static-lifetime-of-parser description for error_detail. */
const char *clienthello_parser_error(const struct clienthello_parser *p);

/* One-shot parse of a buffer holding the start of a connection (allocates a
 * parser internally). NEED_MORE means the buffer ends inside the hello; on
 * ERROR (or allocation failure) a description is copied into err (may be
 * NULL). */
enum clienthello_status clienthello_parse(const uint8_t *data, size_t len, struct clienthello *out,
                                          char *err, size_t errcap);

/* Parses the body of a server_name extension (RFC 6066 ServerNameList) into
 * out->has_sni / sni_is_ip / sni. 0 on success (including no host_name entry),
 * -1 if malformed (detail into err, may be NULL). Used by the parser and by
 * the TLS server's ClientHello callback. */
int clienthello_parse_sni(const uint8_t *ext, size_t len, struct clienthello *out, char *err,
                          size_t errcap);

/* The 7-byte plaintext record carrying a fatal decode_error alert (TLS 1.2
 * record version), to send before closing on CLIENTHELLO_ERROR. Static. */
const uint8_t *clienthello_decode_error_alert(size_t *len);

#endif
