/* Request normalisation for policy matching: paths (network.md section 6
 * step 6), host names (section 4 step 2, 8.2) and strict IPv4 literals. */
#include <errno.h>
#include <string.h>

#include "base/util.h"
#include "policy/policy.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Stage 1: a leading '/', then the input with unreserved escapes decoded. */
static size_t decode_unreserved(const char *in, size_t len, char *out)
{
    size_t o = 0;
    if (len == 0 || in[0] != '/')
        out[o++] = '/';
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '%' && i + 2 < len && hex_digit(in[i + 1]) >= 0 && hex_digit(in[i + 2]) >= 0) {
            unsigned char c = (unsigned char)(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2]));
            if (unreserved(c)) {
                out[o++] = (char)c;
                i += 2;
                continue;
            }
        }
        out[o++] = in[i];
    }
    return o;
}

/* Stage 2, in place on buf[0..n) (starts with '/'): drops empty and "."
 * segments, applies "..", keeps a trailing slash. Returns the new length. */
static size_t resolve_segments(char *buf, size_t n)
{
    size_t w = 1, i = 1;
    while (i <= n) {
        size_t j = i;
        while (j < n && buf[j] != '/')
            j++;
        size_t sl = j - i;
        bool last = j >= n;
        if (sl == 2 && buf[i] == '.' && buf[i + 1] == '.') {
            if (w > 1) {
                w--;
                while (w > 0 && buf[w - 1] != '/')
                    w--;
            }
        } else if (sl > 0 && !(sl == 1 && buf[i] == '.')) {
            memmove(buf + w, buf + i, sl);
            w += sl;
            if (!last)
                buf[w++] = '/';
        }
        i = j + 1;
    }
    return w;
}

ssize_t policy_path_normalize(const char *path, size_t len, char *out, size_t cap)
{
    if (cap < len + 2) {
        errno = ENOSPC;
        return -1;
    }
    size_t n = decode_unreserved(path, len, out);
    n = resolve_segments(out, n);
    out[n] = '\0';
    return (ssize_t)n;
}

int policy_ipv4_parse(const char *s, size_t len, uint32_t *out)
{
    uint32_t v = 0;
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= len || s[i] != '.')
                return -1;
            i++;
        }
        size_t start = i;
        unsigned x = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
            x = x * 10 + (unsigned)(s[i++] - '0');
        if (i == start || x > 255 || (s[start] == '0' && i - start > 1))
            return -1;
        v = v << 8 | x;
    }
    if (i != len)
        return -1;
    *out = v;
    return 0;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Label rules on a lowercased name of n bytes. NULL when fine, else why. */
static const char *check_labels(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                return "a host name holds only letters, digits, '-', '_' and dots";
            continue;
        }
        if (i == start)
            return "empty label in host name";
        if (i - start > 63)
            return "a label is longer than 63 bytes";
        start = i + 1;
    }
    size_t last = n;
    while (last > 0 && s[last - 1] != '.')
        last--;
    uint32_t ip;
    if (all_digits(s + last, n - last) && policy_ipv4_parse(s, n, &ip) < 0)
        return "not a host name or a dotted-quad IPv4 address";
    return NULL;
}

int policy_host_normalize(const char *in, size_t len, char *out, size_t cap, struct err **errp)
{
    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0)
        return err_status(errp, 400, "empty host name");
    if (len > 253)
        return err_status(errp, 400, "host name is longer than 253 bytes");
    if (len + 1 > cap)
        return err_status(errp, 400, "host name does not fit");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80)
            return err_status(errp, 400,
                              "host name is not ASCII: write it in A-label form (xn--...)");
        if (c == ':' || c == '[')
            return err_status(errp, 400, "IPv6 addresses are not supported (IPv4 only)");
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[len] = '\0';
    const char *why = check_labels(out, len);
    if (why)
        return err_status(errp, 400, "%s", why);
    return (int)len;
}
