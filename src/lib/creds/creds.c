/* Host-held secrets (credentials.toml), placeholders and the telemetry HMAC
 * key; see creds.h. The file format is a fixed subset of TOML parsed here,
 * not by config/toml: this way the only copies of a secret are in locked
 * memory that is wiped, never in a parse tree or a realloc'd buffer. */
#include "creds/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "creds/creds_int.h"

struct creds {
    char *mem; /* CREDS_NPROV slots of CREDS_SECRET_MAX + 1 bytes, locked */
    size_t memlen;
    bool locked;
    size_t len[CREDS_NPROV]; /* 0 = none */
};

#define SLOT (CREDS_SECRET_MAX + 1)

static const char *const provider_names[CREDS_NPROV] = {
    [CREDS_ANTHROPIC] = "anthropic",
    [CREDS_OPENAI] = "openai",
    [CREDS_GOOGLE] = "google",
    [CREDS_GITHUB] = "github",
};

static const char *const provider_envs[CREDS_NPROV] = {
    [CREDS_ANTHROPIC] = "ANTHROPIC_API_KEY",
    [CREDS_OPENAI] = "OPENAI_API_KEY",
    [CREDS_GOOGLE] = "GEMINI_API_KEY",
    [CREDS_GITHUB] = "GH_TOKEN",
};

/* network.md section 10 table. */
static const char *const owner_hosts[][2] = {
    [CREDS_ANTHROPIC] = {"api.anthropic.com", NULL},
    [CREDS_OPENAI] = {"api.openai.com", NULL},
    [CREDS_GOOGLE] = {"generativelanguage.googleapis.com", NULL},
    [CREDS_GITHUB] = {"github.com", "api.github.com"},
};

const char *creds_provider_name(enum creds_provider p)
{
    return (unsigned)p < CREDS_NPROV ? provider_names[p] : NULL;
}

const char *creds_provider_env(enum creds_provider p)
{
    return (unsigned)p < CREDS_NPROV ? provider_envs[p] : NULL;
}

int creds_provider_from_name(const char *name)
{
    for (int p = 0; name && p < CREDS_NPROV; p++)
        if (strcmp(name, provider_names[p]) == 0)
            return p;
    return -1;
}

bool creds_owner(enum creds_provider p, const char *host)
{
    if ((unsigned)p >= CREDS_NPROV || !host)
        return false;
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    for (size_t i = 0; i < 2 && owner_hosts[p][i]; i++)
        if (strlen(owner_hosts[p][i]) == n && strncasecmp(host, owner_hosts[p][i], n) == 0)
            return true;
    return false;
}

const char *creds_owner_host(enum creds_provider p, size_t i)
{
    return (unsigned)p < CREDS_NPROV && i < 2 ? owner_hosts[p][i] : NULL;
}

int creds_host_provider(const char *host)
{
    for (int p = 0; p < CREDS_NPROV; p++)
        if (creds_owner((enum creds_provider)p, host))
            return p;
    return -1;
}

/* ---------- secure memory ---------- */

void *creds_secure_alloc(size_t n, bool *locked)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* mlock can fail under a small RLIMIT_MEMLOCK: the secrets still work,
     * they may just reach swap. */
    *locked = mlock(p, n) == 0;
    (void)madvise(p, n, MADV_DONTDUMP);
    return p;
}

void creds_secure_free(void *p, size_t n, bool locked)
{
    if (!p)
        return;
    explicit_bzero(p, n);
    if (locked)
        munlock(p, n);
    munmap(p, n);
}

/* ---------- the set ---------- */

static struct creds *creds_alloc(struct err **errp)
{
    struct creds *c = calloc(1, sizeof(*c));
    if (c) {
        c->memlen = CREDS_NPROV * SLOT;
        c->mem = creds_secure_alloc(c->memlen, &c->locked);
    }
    if (!c || !c->mem) {
        free(c);
        err_set(errp, ENOMEM, "cannot allocate memory for secrets");
        return NULL;
    }
    return c;
}

void creds_free(struct creds *c)
{
    if (!c)
        return;
    creds_secure_free(c->mem, c->memlen, c->locked);
    explicit_bzero(c, sizeof(*c));
    free(c);
}

const char *creds_secret(const struct creds *c, enum creds_provider p)
{
    if (!c || (unsigned)p >= CREDS_NPROV || !c->len[p])
        return NULL;
    return c->mem + (size_t)p * SLOT;
}

size_t creds_secret_len(const struct creds *c, enum creds_provider p)
{
    return c && (unsigned)p < CREDS_NPROV ? c->len[p] : 0;
}

static void creds_put(struct creds *c, enum creds_provider p, const char *v, size_t n)
{
    if (!c->mem || (unsigned)p >= CREDS_NPROV || n > CREDS_SECRET_MAX)
        return;
    char *slot = c->mem + (size_t)p * SLOT;
    explicit_bzero(slot, SLOT);
    memcpy(slot, v, n);
    c->len[p] = n;
}

static int secret_check_n(enum creds_provider p, const char *v, size_t n, struct err **errp)
{
    const char *name = creds_provider_name(p);
    if (!name)
        return err_status(errp, 400, "unknown credential provider %d", (int)p);
    if (n < CREDS_SECRET_MIN || n > CREDS_SECRET_MAX)
        return err_status(errp, 400, "the %s secret must be %d to %d characters (it has %zu)", name,
                          CREDS_SECRET_MIN, CREDS_SECRET_MAX, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\')
            return err_status(errp, 400,
                              "the %s secret may only hold visible ASCII characters other than "
                              "'\"' and '\\' (character %zu is not)",
                              name, i + 1);
    }
    if (creds_find_ci(v, n, CREDS_PLACEHOLDER_PREFIX, CREDS_PREFIX_LEN))
        return err_status(errp, 400,
                          "the %s secret is a capsem placeholder, not a key: set the real key "
                          "on the host",
                          name);
    return 0;
}

int creds_secret_check(enum creds_provider p, const char *value, struct err **errp)
{
    return secret_check_n(p, value ? value : "", value ? strlen(value) : 0, errp);
}

struct creds *creds_from_values(const char *const values[CREDS_NPROV], struct err **errp)
{
    struct creds *c = creds_alloc(errp);
    for (int p = 0; c && values && p < CREDS_NPROV; p++) {
        if (!values[p] || !*values[p])
            continue;
        if (creds_secret_check((enum creds_provider)p, values[p], errp) < 0) {
            creds_free(c);
            return NULL;
        }
        creds_put(c, (enum creds_provider)p, values[p], strlen(values[p]));
    }
    return c;
}

/* ---------- credentials.toml ---------- */

struct parse {
    const char *path;
    int line;
    bool in_secrets, secrets_seen, schema_seen;
    bool seen[CREDS_NPROV];
    struct creds *c;
};

static int perr(const struct parse *ps, struct err **errp, const char *what)
{
    return err_status(errp, 400, "%s:%d: %s", ps->path, ps->line, what);
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_bare_key(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

/* Only spaces and a comment may follow a value or a table header. */
static bool rest_is_empty(const char *s, const char *end)
{
    while (s < end && is_ws(*s))
        s++;
    return s == end || *s == '#';
}

static int parse_table(struct parse *ps, const char *s, const char *end, struct err **errp)
{
    if (s + 1 < end && s[1] == '[')
        return perr(ps, errp, "arrays of tables are not allowed (only a [secrets] table)");
    const char *close = memchr(s, ']', (size_t)(end - s));
    if (!close || !rest_is_empty(close + 1, end))
        return perr(ps, errp, "bad table header (expected [secrets])");
    const char *a = s + 1, *b = close;
    while (a < b && is_ws(*a))
        a++;
    while (b > a && is_ws(b[-1]))
        b--;
    if ((size_t)(b - a) != 7 || memcmp(a, "secrets", 7) != 0)
        return perr(ps, errp, "unknown table (credentials.toml has only [secrets])");
    if (ps->secrets_seen)
        return perr(ps, errp, "[secrets] appears twice");
    ps->secrets_seen = ps->in_secrets = true;
    return 0;
}

static int parse_schema(struct parse *ps, const char *v, const char *end, struct err **errp)
{
    const char *d = v;
    while (d < end && *d >= '0' && *d <= '9')
        d++;
    if (d == v || !rest_is_empty(d, end))
        return perr(ps, errp, "schema must be an integer");
    if (d - v != 1 || *v != '1')
        return perr(ps, errp, "unsupported schema (this version reads schema = 1)");
    ps->schema_seen = true;
    return 0;
}

static int parse_secret(struct parse *ps, enum creds_provider p, const char *v, const char *end,
                        struct err **errp)
{
    if (v >= end || (*v != '"' && *v != '\''))
        return perr(ps, errp, "expected a quoted string");
    char q = *v;
    if (end - v >= 3 && v[1] == q && v[2] == q)
        return perr(ps, errp, "multi-line strings are not supported");
    const char *close = memchr(v + 1, q, (size_t)(end - v - 1));
    if (!close)
        return perr(ps, errp, "unterminated string");
    if (!rest_is_empty(close + 1, end))
        return perr(ps, errp, "unexpected text after the value");
    const char *val = v + 1;
    size_t n = (size_t)(close - val);
    if (q == '"' && memchr(val, '\\', n))
        return perr(ps, errp, "escapes are not supported in credentials.toml");
    if (ps->seen[p])
        return perr(ps, errp, "duplicate key");
    ps->seen[p] = true;
    if (n == 0)
        return 0; /* an emptied value: no secret */
    _cleanup_err_ struct err *e = NULL;
    if (secret_check_n(p, val, n, &e) < 0)
        return perr(ps, errp, err_msg(e));
    creds_put(ps->c, p, val, n);
    return 0;
}

static int parse_line(struct parse *ps, const char *s, const char *end, struct err **errp)
{
    while (s < end && is_ws(*s))
        s++;
    while (end > s && (is_ws(end[-1]) || end[-1] == '\r'))
        end--;
    if (s == end || *s == '#')
        return 0;
    if (*s == '[')
        return parse_table(ps, s, end, errp);
    const char *k = s;
    while (s < end && is_bare_key(*s))
        s++;
    size_t klen = (size_t)(s - k);
    while (s < end && is_ws(*s))
        s++;
    if (!klen || s == end || *s != '=')
        return perr(ps, errp, "expected key = value");
    s++;
    while (s < end && is_ws(*s))
        s++;
    char key[16] = "";
    if (klen < sizeof(key))
        memcpy(key, k, klen);
    if (!ps->in_secrets) {
        if (strcmp(key, "schema") != 0)
            return perr(ps, errp, "unknown key (expected schema = 1, then a [secrets] table)");
        if (ps->schema_seen)
            return perr(ps, errp, "duplicate key");
        return parse_schema(ps, s, end, errp);
    }
    int p = creds_provider_from_name(key);
    if (p < 0)
        return perr(ps, errp,
                    "unknown key in [secrets] (expected anthropic, openai, google or github)");
    return parse_secret(ps, (enum creds_provider)p, s, end, errp);
}

static int parse_text(struct parse *ps, const char *text, size_t len, struct err **errp)
{
    const char *s = text, *end = text + len;
    bool any = false;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl ? nl : end;
        ps->line++;
        if (memchr(s, '\0', (size_t)(eol - s)))
            return perr(ps, errp, "NUL byte");
        if (parse_line(ps, s, eol, errp) < 0)
            return -1;
        const char *t = s;
        while (t < eol && (is_ws(*t) || *t == '\r'))
            t++;
        any |= t < eol && *t != '#';
        s = nl ? nl + 1 : end;
    }
    if (any && !ps->schema_seen)
        return err_status(errp, 400, "%s: missing schema = 1", ps->path);
    return 0;
}

static int creds_path(const char *home, const char *name, char out[PATH_MAX], struct err **errp)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", home ? home : "", name);
    if (!home || !*home)
        return err_set(errp, EINVAL, "no capsem home directory given");
    if (n < 0 || n >= PATH_MAX)
        return err_set(errp, ENAMETOOLONG, "path too long: %s/%s", home, name);
    return 0;
}

static int check_private(const char *path, const struct stat *st, const char *what,
                         struct err **errp)
{
    if (!S_ISREG(st->st_mode))
        return err_set(errp, EINVAL, "%s is not a regular file; refusing to read %s from it", path,
                       what);
    if ((st->st_mode & 077) == 0)
        return 0;
    err_set(errp, EACCES,
            "%s is accessible by group or others (mode %04o); refusing to read %s from it. Fix "
            "it with: chmod 600 %s",
            path, (unsigned)(st->st_mode & 07777), what, path);
    if (errp && *errp && (*errp)->code == EACCES)
        (*errp)->status = 403;
    return -1;
}

/* Opens path for reading without following a symlink; -1 with errno
 * ENOENT (no error stored) when it does not exist. */
static int open_private(const char *path, const char *what, struct stat *st, struct err **errp)
{
    int fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) {
        if (errno == ENOENT)
            return -1;
        if (errno == ELOOP)
            err_set(errp, ELOOP, "%s is a symbolic link; refusing to read %s from it", path, what);
        else
            err_sys(errp, "open %s", path);
        errno = EACCES;
        return -1;
    }
    if (fstat(fd, st) < 0) {
        err_sys(errp, "stat %s", path);
        close(fd);
        errno = EIO;
        return -1;
    }
    if (check_private(path, st, what, errp) < 0) {
        close(fd);
        errno = EACCES;
        return -1;
    }
    return fd;
}

/* Reads the whole file into locked memory and parses it into c. */
static int load_into(struct creds *c, const char *path, int fd, size_t size, struct err **errp)
{
    if (size > CREDS_FILE_MAX)
        return err_status(errp, 400, "%s is larger than %d bytes", path, CREDS_FILE_MAX);
    bool locked = false;
    size_t cap = size + 1;
    char *buf = creds_secure_alloc(cap, &locked);
    if (!buf)
        return err_set(errp, ENOMEM, "cannot allocate memory for %s", path);
    size_t n = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = fd_read_retry(fd, buf + n, cap - n);
        if (r < 0) {
            rc = err_sys(errp, "read %s", path);
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap) { /* grew while we read */
            rc = err_status(errp, 400, "%s changed while being read", path);
            break;
        }
    }
    struct parse ps = {.path = path, .c = c};
    if (rc == 0)
        rc = parse_text(&ps, buf, n, errp);
    creds_secure_free(buf, cap, locked);
    return rc;
}

struct creds *creds_load(const char *home, struct err **errp)
{
    char path[PATH_MAX];
    if (creds_path(home, CREDS_FILE, path, errp) < 0)
        return NULL;
    struct creds *c = creds_alloc(errp);
    if (!c)
        return NULL;
    struct stat st;
    _cleanup_close_ int fd = open_private(path, "secrets", &st, errp);
    if (fd < 0 && errno == ENOENT)
        return c;
    if (fd < 0 || load_into(c, path, fd, (size_t)st.st_size, errp) < 0) {
        creds_free(c);
        return NULL;
    }
    return c;
}

static size_t append(char *buf, size_t cap, size_t len, const char *s, size_t n)
{
    if (len + n < cap) {
        memcpy(buf + len, s, n);
        len += n;
        buf[len] = '\0';
    }
    return len;
}

int creds_save(const char *home, const char *const values[CREDS_NPROV], struct err **errp)
{
    char path[PATH_MAX];
    if (creds_path(home, CREDS_FILE, path, errp) < 0)
        return -1;
    for (int p = 0; p < CREDS_NPROV; p++)
        if (values && values[p] && *values[p] &&
            creds_secret_check((enum creds_provider)p, values[p], errp) < 0)
            return -1;
    if (mkdir_p(home, 0700, errp) < 0)
        return -1;
    struct creds *old = creds_load(home, errp);
    if (!old)
        return -1;
    static const char head[] =
        "# capsem host-held API keys (network.md section 10). Keep this file mode 0600:\n"
        "# guests never see these values, only per-VM placeholders.\n"
        "schema = 1\n\n[secrets]\n";
    bool locked = false;
    size_t cap = sizeof(head) + CREDS_NPROV * (SLOT + 32);
    char *buf = creds_secure_alloc(cap, &locked);
    if (!buf) {
        creds_free(old);
        return err_set(errp, ENOMEM, "cannot allocate memory for secrets");
    }
    size_t len = append(buf, cap, 0, head, sizeof(head) - 1);
    for (int p = 0; p < CREDS_NPROV; p++) {
        const char *v = values && values[p] ? values[p] : creds_secret(old, (enum creds_provider)p);
        if (!v || !*v)
            continue;
        const char *name = provider_names[p];
        len = append(buf, cap, len, name, strlen(name));
        len = append(buf, cap, len, " = \"", 4);
        len = append(buf, cap, len, v, strlen(v));
        len = append(buf, cap, len, "\"\n", 2);
    }
    creds_free(old);
    int rc = file_write_atomic(path, buf, len, 0600, errp);
    creds_secure_free(buf, cap, locked);
    return rc;
}

/* ---------- placeholders ---------- */

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool is_b32(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '2' && ch <= '7');
}

static int random_bytes(uint8_t *out, size_t n, struct err **errp)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return err_sys(errp, "getrandom");
        got += (size_t)r;
    }
    return 0;
}

int creds_placeholder_new(enum creds_provider p, char out[CREDS_PLACEHOLDER_MAX], struct err **errp)
{
    const char *name = creds_provider_name(p);
    if (!name)
        return err_status(errp, 400, "unknown credential provider %d", (int)p);
    uint8_t rnd[17]; /* 136 bits; the first 130 are used */
    if (random_bytes(rnd, sizeof(rnd), errp) < 0)
        return -1;
    char body[CREDS_PLACEHOLDER_RANDOM + 1];
    for (unsigned i = 0; i < CREDS_PLACEHOLDER_RANDOM; i++) {
        unsigned bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = ((unsigned)rnd[byte] << 8 | rnd[byte + 1]) >> (11 - shift);
        body[i] = b32_alphabet[v & 31];
    }
    body[CREDS_PLACEHOLDER_RANDOM] = '\0';
    snprintf(out, CREDS_PLACEHOLDER_MAX, "%s%s-%s", CREDS_PLACEHOLDER_PREFIX, name, body);
    return 0;
}

size_t creds_placeholder_at(const char *s, size_t n, enum creds_provider *p)
{
    if (n < CREDS_PREFIX_LEN || memcmp(s, CREDS_PLACEHOLDER_PREFIX, CREDS_PREFIX_LEN) != 0)
        return 0;
    for (int q = 0; q < CREDS_NPROV; q++) {
        size_t pl = strlen(provider_names[q]);
        size_t total = CREDS_PREFIX_LEN + pl + 1 + CREDS_PLACEHOLDER_RANDOM;
        const char *t = s + CREDS_PREFIX_LEN;
        if (n < total || memcmp(t, provider_names[q], pl) != 0 || t[pl] != '-')
            continue;
        for (size_t i = 0; i < CREDS_PLACEHOLDER_RANDOM; i++)
            if (!is_b32(t[pl + 1 + i]))
                return 0;
        if (n > total && is_alnum(s[total]))
            return 0; /* more letters or digits: not this placeholder */
        if (p)
            *p = (enum creds_provider)q;
        return total;
    }
    return 0;
}

bool creds_placeholder_valid(const char *s, enum creds_provider *p)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    return n > 0 && creds_placeholder_at(s, n, p) == n;
}

int creds_vm_new(const struct creds *c, struct creds_vm *vm, struct err **errp)
{
    memset(vm, 0, sizeof(*vm));
    for (int p = 0; p < CREDS_NPROV; p++)
        if (creds_secret(c, (enum creds_provider)p) &&
            creds_placeholder_new((enum creds_provider)p, vm->placeholder[p], errp) < 0)
            return -1;
    return 0;
}

/* ---------- scanning helpers ---------- */

const char *creds_find_ci(const char *h, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0 || hn < nn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn) {
            char ch = h[i + j];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (ch != needle[j])
                break;
            j++;
        }
        if (j == nn)
            return h + i;
    }
    return NULL;
}

/* ---------- telemetry HMAC key ---------- */

static int read_key(const char *path, int fd, uint8_t out[32], struct err **errp)
{
    uint8_t buf[33];
    ssize_t n = fd_read_full(fd, buf, sizeof(buf));
    int rc = 0;
    if (n < 0)
        rc = err_sys(errp, "read %s", path);
    else if (n != 32)
        rc = err_set(errp, EINVAL,
                     "%s is not a 32-byte key (remove it to have a new one made; telemetry "
                     "hashes recorded before will no longer match)",
                     path);
    else
        memcpy(out, buf, 32);
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* Writes a new key to a private temp file and links it into place; EEXIST
 * (returned as 1) means another process made one first. */
static int create_key(const char *path, uint8_t out[32], struct err **errp)
{
    char tmp[PATH_MAX];
    uint8_t key[32];
    if (random_bytes(key, sizeof(key), errp) < 0)
        return -1;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return err_set(errp, ENAMETOOLONG, "path too long: %s", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_sys(errp, "create %s", tmp);
    int rc = fchmod(fd, 0600) < 0 || fd_write_all(fd, key, sizeof(key)) < 0 || fsync(fd) < 0
                 ? err_sys(errp, "write %s", tmp)
                 : 0;
    close(fd);
    if (rc == 0 && link(tmp, path) < 0)
        rc = errno == EEXIST ? 1 : err_sys(errp, "link %s", path);
    unlink(tmp);
    if (rc == 0)
        memcpy(out, key, sizeof(key));
    explicit_bzero(key, sizeof(key));
    return rc;
}

int creds_hmac_key(const char *home, uint8_t out[32], struct err **errp)
{
    char dir[PATH_MAX], path[PATH_MAX];
    if (creds_path(home, "ca", dir, errp) < 0 ||
        creds_path(dir, CREDS_HMAC_KEY_FILE, path, errp) < 0)
        return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct stat st;
        _cleanup_close_ int fd = open_private(path, "the telemetry key", &st, errp);
        if (fd >= 0)
            return read_key(path, fd, out, errp);
        if (errno != ENOENT)
            return -1;
        if (mkdir_p(dir, 0700, errp) < 0)
            return -1;
        int rc = create_key(path, out, errp);
        if (rc <= 0)
            return rc;
    }
    return err_set(errp, EAGAIN, "cannot create %s", path);
}
