/* Strict, incremental HTTP/1.x request parser (server side), a bounded
 * response-head parser (client side) and head/chunk writers. docs/http.md
 * describes the limits and the strictness rules (network.md sections 14, 15).
 *
 * Parsing is pull-driven: the caller pushes bytes with http1_parser_feed(),
 * which consumes some of them and returns at most one event per call:
 *
 *   for (off = 0;;) {
 *       ev = http1_parser_feed(p, data + off, len - off, &used);
 *       off += used;
 *       if (ev == HTTP1_NEED_MORE) break;          // every byte consumed
 *       if (ev == HTTP1_HEAD)  ... http1_parser_request(p) ...
 *       if (ev == HTTP1_BODY)  ... http1_parser_body(p, &n) ...
 *       if (ev == HTTP1_DONE)  ... message complete; the rest is the next one
 *       if (ev == HTTP1_ERROR) ... http1_parser_error(p), reply, close
 *   }
 *
 * After HTTP1_DONE the parser stops: bytes after the message are left
 * unconsumed until the next call, so an upgraded connection (101) keeps them.
 * The next call starts a new request (keep-alive, pipelining). No callbacks:
 * the caller stays in control of its connection's lifetime.
 */
#ifndef CAPSEM_NET_HTTP1_H
#define CAPSEM_NET_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/err.h"

/* ---- limits (network.md section 14) ---- */

struct http1_limits {
    size_t max_request_line; /* bytes, without CRLF (8 KiB) -> 414 uri_too_long */
    size_t max_header_block; /* field lines + final CRLF, CRLFs counted (64 KiB) -> 431 */
    size_t max_fields;       /* header fields (100) -> 431 */
    size_t max_field_line;   /* one field line without CRLF (16 KiB) -> 431 */
    size_t max_chunk_line;   /* chunk-size line with extensions, without CRLF (1 KiB) -> 400 */
    size_t max_trailers;     /* trailer section, CRLFs counted (8 KiB) -> 400 bad_chunked */
    uint64_t max_body;       /* decoded body bytes (256 MiB) -> 413 body_too_large */
};

#define HTTP1_DEFAULT_MAX_BODY (256ULL << 20)

/* Fills the network.md defaults. */
void http1_limits_default(struct http1_limits *l);

/* ---- errors ---- */

enum http1_error {
    HTTP1_ERR_NONE = 0,
    HTTP1_ERR_BAD_REQUEST,       /* 400 bad_request */
    HTTP1_ERR_BAD_HOST,          /* 400 bad_host */
    HTTP1_ERR_AMBIGUOUS_LENGTH,  /* 400 ambiguous_length */
    HTTP1_ERR_BAD_CHUNKED,       /* 400 bad_chunked */
    HTTP1_ERR_CLIENT_ABORTED,    /* 400 client_aborted: EOF inside a message */
    HTTP1_ERR_BODY_TOO_LARGE,    /* 413 body_too_large */
    HTTP1_ERR_URI_TOO_LONG,      /* 414 uri_too_long */
    HTTP1_ERR_HEADERS_TOO_LARGE, /* 431 headers_too_large */
    HTTP1_ERR_UNSUPPORTED,       /* 501 unsupported: transfer coding other than chunked */
    HTTP1_ERR_VERSION,           /* 505 version_not_supported */
    HTTP1_ERR_INTERNAL,          /* 500 internal: out of memory */
};

/* Reason code string ("bad_request", ...) and HTTP status for an error. */
const char *http1_error_reason(enum http1_error e);
int http1_error_status(enum http1_error e);

/* ---- parsed request ---- */

struct http1_header {
    const char *name;  /* NUL-terminated, as received (case kept) */
    const char *value; /* NUL-terminated, surrounding whitespace trimmed */
    size_t name_len;
    size_t value_len;
};

enum http1_target_form {
    HTTP1_TARGET_ORIGIN,    /* "/path?query" */
    HTTP1_TARGET_ABSOLUTE,  /* "http://host/path" */
    HTTP1_TARGET_AUTHORITY, /* "host:port" (CONNECT only) */
    HTTP1_TARGET_ASTERISK,  /* "*" (OPTIONS only) */
};

enum http1_body_kind {
    HTTP1_BODY_EMPTY,   /* no Content-Length, no Transfer-Encoding (or Content-Length: 0) */
    HTTP1_BODY_LENGTH,  /* content_length bytes */
    HTTP1_BODY_CHUNKED, /* Transfer-Encoding: chunked, delivered decoded */
};

enum http1_expect {
    HTTP1_EXPECT_NONE,
    HTTP1_EXPECT_CONTINUE, /* "Expect: 100-continue" on HTTP/1.1: answer 100 or a final status */
    HTTP1_EXPECT_OTHER,    /* any other expectation: callers answer 417 */
};

/* Valid from HTTP1_HEAD until the feed call after HTTP1_DONE (or an error),
 * or http1_parser_free(). All strings are owned by the parser. */
struct http1_request {
    const char *method; /* token, case-sensitive ("GET") */
    const char *target; /* request-target as received */
    enum http1_target_form form;
    int version_minor;                  /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    const struct http1_header *headers; /* in arrival order, duplicates kept */
    size_t nheaders;
    const char *host; /* the single Host value, or NULL (HTTP/1.0 without Host) */
    enum http1_body_kind body;
    uint64_t content_length; /* HTTP1_BODY_LENGTH only */
    enum http1_expect expect;
    bool keep_alive; /* persistence per HTTP/1.0/1.1 rules and Connection */
    bool upgrade;    /* HTTP/1.1, Connection has "upgrade" and an Upgrade field is present */
};

/* ---- request parser ---- */

struct http1_parser;

enum http1_event {
    HTTP1_NEED_MORE = 0, /* all input consumed; feed more */
    HTTP1_HEAD,          /* request head complete: http1_parser_request() */
    HTTP1_BODY,          /* decoded body bytes: http1_parser_body() */
    HTTP1_DONE,          /* message complete (trailers validated and dropped) */
    HTTP1_ERROR,         /* sticky: http1_parser_error(); close after answering */
};

/* limits may be NULL (defaults). Free with http1_parser_free(). */
struct http1_parser *http1_parser_new(const struct http1_limits *limits, struct err **errp);
void http1_parser_free(struct http1_parser *p);

/* Consumes a prefix of data (*consumed bytes) and returns the next event.
 * HTTP1_NEED_MORE always means *consumed == len. data is borrowed for the
 * call only; HTTP1_BODY points into it. */
enum http1_event http1_parser_feed(struct http1_parser *p, const uint8_t *data, size_t len,
                                   size_t *consumed);

/* The peer closed its side. Returns 0 when the parser is between messages
 * (nothing lost), else -1 with the parser in the error state
 * (HTTP1_ERR_CLIENT_ABORTED). */
int http1_parser_eof(struct http1_parser *p);

/* The current request (after HTTP1_HEAD), else NULL. */
const struct http1_request *http1_parser_request(const struct http1_parser *p);

/* After HTTP1_BODY: the decoded bytes, borrowed from the data given to the
 * feed call that returned the event. */
const uint8_t *http1_parser_body(const struct http1_parser *p, size_t *len);

/* After HTTP1_ERROR: the error and a human message (owned by the parser,
 * valid until it is freed). Both stay set; further feeds return HTTP1_ERROR. */
enum http1_error http1_parser_error(const struct http1_parser *p);
const char *http1_parser_error_msg(const struct http1_parser *p);

/* True when the parser is between messages with nothing buffered. */
bool http1_parser_idle(const struct http1_parser *p);

/* Whether the connection may carry another request after this one: the
 * request's keep_alive, false once an error occurred. */
bool http1_keep_alive(const struct http1_parser *p);

/* ---- header helpers (work on any header array) ---- */

/* First field named `name` (ASCII case-insensitive) at index >= *pos (0 when
 * pos is NULL); *pos becomes its index + 1, so repeated calls walk duplicates. */
const struct http1_header *http1_header_find(const struct http1_header *h, size_t n,
                                             const char *name, size_t *pos);
/* Value of the first field named `name`, or NULL. */
const char *http1_header_get(const struct http1_header *h, size_t n, const char *name);
/* True when any field named `name` holds `token` (case-insensitive) as one of
 * its comma-separated elements (parameters after ';' ignored). */
bool http1_header_has_token(const struct http1_header *h, size_t n, const char *name,
                            const char *token);

/* ---- syntax helpers ---- */

/* True when [s, s+n) is a non-empty RFC 9110 token (method, field name). */
bool http1_token_valid(const char *s, size_t n);

/* Validates a Host value / authority "host[:port]" (reg-name, IPv4 or
 * "[IPv6]"; port 0-65535) and splits it. name/name_len/port may be NULL;
 * *port is -1 without a port. The empty string is valid (RFC 9112 3.2) and
 * gives an empty name. Returns 0, or -1 when malformed. */
int http1_host_split(const char *host, const char **name, size_t *name_len, int *port);

/* ---- request-target helpers ---- */

/* Splits an origin-form target into path and query (without '?'). Pointers
 * are into target; *query is NULL (and *query_len 0) when there is no '?'. */
void http1_target_split(const char *target, const char **path, size_t *path_len, const char **query,
                        size_t *query_len);

/* Percent-decodes [s, s+n) into out (NUL-terminated, cap includes the NUL).
 * plus_space turns '+' into ' ' (query strings). Returns the decoded length,
 * or -1 on a bad escape, a decoded NUL, or an output that does not fit. */
ssize_t http1_pct_decode(const char *s, size_t n, bool plus_space, char *out, size_t cap);

/* Looks up query parameter `name` in target (first occurrence; names compared
 * after decoding) and decodes its value into buf ('+' is a space).
 * Returns the value length (>= 0, "?a" and "?a=" give 0), -1 when absent,
 * -2 when present but malformed or longer than cap - 1. */
ssize_t http1_query_get(const char *target, const char *name, char *buf, size_t cap);

/* ---- writers ---- */

/* A header to write; both strings are borrowed. */
struct http1_field {
    const char *name;
    const char *value;
};

/* body_len >= 0: "Content-Length: body_len"; HTTP1_LEN_CHUNKED:
 * "Transfer-Encoding: chunked"; HTTP1_LEN_NONE: neither (1xx, 204, 304, or a
 * body delimited by close). */
#define HTTP1_LEN_CHUNKED (-1)
#define HTTP1_LEN_NONE    (-2)

/* Appends "HTTP/1.1 <status> <reason>", the fields, the length field and the
 * final CRLF. reason NULL means http1_status_text(status). Names must be
 * tokens and values free of control characters (no header injection), else
 * -1 (EINVAL). On any failure nothing is appended. */
int http1_write_response_head(struct buf *b, int status, const char *reason,
                              const struct http1_field *fields, size_t nfields, int64_t body_len,
                              struct err **errp);
/* Same for a request head: "<method> <target> HTTP/1.1". */
int http1_write_request_head(struct buf *b, const char *method, const char *target,
                             const struct http1_field *fields, size_t nfields, int64_t body_len,
                             struct err **errp);
/* One chunk ("<hex>\r\n<data>\r\n"); len 0 appends nothing (it would end the body). */
int http1_write_chunk(struct buf *b, const void *data, size_t len, struct err **errp);
/* The last chunk and an empty trailer section: "0\r\n\r\n". */
int http1_write_chunk_end(struct buf *b, struct err **errp);

/* "OK", "Not Found", ...; "Unknown" for codes without a standard phrase. */
const char *http1_status_text(int status);

/* ---- response head parser (clients) ---- */

/* Owns everything it points to; free with http1_response_free(). */
struct http1_response {
    int version_minor;
    int status;
    char *reason; /* may be "" */
    struct http1_header *headers;
    size_t nheaders;
    char *raw_; /* backing storage */
};

/* Parses a response head at the start of data: status line and fields up to
 * and including the empty line. Returns the head's length in bytes (> 0) and
 * fills *resp when complete; 0 when more bytes are needed; -1 (errp; status
 * 502) when malformed, longer than max_head bytes, or with more than
 * max_fields fields. The same strictness as for requests applies to fields. */
ssize_t http1_response_parse(const uint8_t *data, size_t len, size_t max_head, size_t max_fields,
                             struct http1_response *resp, struct err **errp);
void http1_response_free(struct http1_response *resp);

#endif
