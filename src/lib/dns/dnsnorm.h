/* DNS names: wire form <-> normalised text (network.md section 4 step 2).
 *
 * A normalised name is lowercase ASCII, without a trailing dot, each label
 * 1..63 bytes of [a-z0-9_-] (IDNA names in their A-label "xn--" form; a label
 * with any other byte, non-ASCII included, is rejected), at most 253 chars.
 * The root is the empty string. Wire form is the uncompressed label sequence
 * ending with the zero-length root label, at most 255 bytes.
 *
 * Pure functions, no allocation: every output goes into a caller buffer. */
#ifndef CAPSEM_DNS_DNSNORM_H
#define CAPSEM_DNS_DNSNORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_WIRE_MAX 255 /* wire form, root label included */
#define DNS_NAME_TEXT_MAX 253 /* text form, without NUL */
#define DNS_NAME_BUF 254      /* text buffer: DNS_NAME_TEXT_MAX + NUL */
#define DNS_LABEL_MAX 63

/* Byte allowed inside a normalised label (after lowercasing). */
bool dnsname_char_ok(uint8_t c);

/* Wire form -> normalised text in out (cap >= DNS_NAME_BUF suffices).
 * Uppercase ASCII is lowered. Returns the text length, or -1 when a label
 * holds a byte outside [A-Za-z0-9_-], the wire form is inconsistent, or
 * the text does not fit. */
int dnsname_wire_to_text(const uint8_t *wire, size_t wire_len, char *out, size_t cap);

/* Text -> wire form (case kept). Accepts one optional trailing dot; "" and
 * "." give the root. Rejects empty labels, labels over 63 bytes, names over
 * 255 wire bytes and bytes outside [A-Za-z0-9_-]. Returns the wire length or
 * -1. */
int dnsname_text_to_wire(const char *text, uint8_t *out, size_t cap);

/* Normalises a host name given as text (policy patterns, Host headers, dial
 * targets): lowercase, one trailing dot removed, labels checked as above.
 * Returns the length or -1. in and out may be the same buffer. */
int dnsname_normalise(const char *in, char *out, size_t cap);

/* Case-insensitive (ASCII) equality of two wire-form names. */
bool dnsname_wire_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* Number of labels in a normalised text name (0 for the root). */
size_t dnsname_label_count(const char *name);

/* Length of the longest label of a normalised text name. */
size_t dnsname_longest_label(const char *name);

#endif
