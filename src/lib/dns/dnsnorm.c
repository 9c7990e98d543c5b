/* DNS name normalisation (see dnsnorm.h). */
#include "dns/dnsnorm.h"

#include <string.h>

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

bool dnsname_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int dnsname_wire_to_text(const uint8_t *wire, size_t wire_len, char *out, size_t cap)
{
    size_t off = 0, o = 0;
    if (cap == 0 || wire_len == 0 || wire_len > DNS_NAME_WIRE_MAX)
        return -1;
    for (;;) {
        if (off >= wire_len)
            return -1;
        size_t l = wire[off++];
        if (l == 0)
            break;
        if (l > DNS_LABEL_MAX || off + l > wire_len)
            return -1;
        if (o > 0) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = '.';
        }
        for (size_t i = 0; i < l; i++) {
            uint8_t c = ascii_lower(wire[off + i]);
            if (!dnsname_char_ok(c) || o + 1 >= cap)
                return -1;
            out[o++] = (char)c;
        }
        off += l;
    }
    if (off != wire_len || o > DNS_NAME_TEXT_MAX)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int dnsname_text_to_wire(const char *text, uint8_t *out, size_t cap)
{
    size_t tlen = strlen(text);
    if (tlen > 0 && text[tlen - 1] == '.')
        tlen--;
    if (tlen == 0) {
        if (cap < 1)
            return -1;
        out[0] = 0;
        return 1;
    }
    /* Labels plus their length bytes, plus the root label. */
    if (tlen + 2 > DNS_NAME_WIRE_MAX || tlen + 2 > cap)
        return -1;
    size_t o = 0, start = 0;
    while (start <= tlen) {
        size_t end = start;
        while (end < tlen && text[end] != '.')
            end++;
        size_t l = end - start;
        if (l == 0 || l > DNS_LABEL_MAX)
            return -1;
        out[o++] = (uint8_t)l;
        for (size_t i = start; i < end; i++) {
            uint8_t c = (uint8_t)text[i];
            if (!dnsname_char_ok(ascii_lower(c)))
                return -1;
            out[o++] = c;
        }
        start = end + 1;
    }
    out[o++] = 0;
    return (int)o;
}

int dnsname_normalise(const char *in, char *out, size_t cap)
{
    uint8_t wire[DNS_NAME_WIRE_MAX];
    int wl = dnsname_text_to_wire(in, wire, sizeof(wire));
    if (wl < 0)
        return -1;
    return dnsname_wire_to_text(wire, (size_t)wl, out, cap);
}

bool dnsname_wire_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

size_t dnsname_label_count(const char *name)
{
    if (!name[0])
        return 0;
    size_t n = 1;
    for (const char *p = name; *p; p++)
        if (*p == '.')
            n++;
    return n;
}

size_t dnsname_longest_label(const char *name)
{
    size_t best = 0, cur = 0;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            if (cur > best)
                best = cur;
            cur = 0;
            if (*p == '\0')
                break;
        } else {
            cur++;
        }
    }
    return best;
}
