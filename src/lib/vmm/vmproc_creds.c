/* Credentials in capsem-process (network.md section 10): the host-held
 * secrets ($CAPSEM_HOME/credentials.toml, reloaded when the file changes),
 * this VM's placeholders (made at its first boot, kept in the VM directory
 * so a restart or resume keeps them, exported to the guest at boot), the
 * per-request check and substitution, and header redaction for telemetry. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "creds/creds.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "proxy/proxy.h"
#include "vmm/vmproc_net_int.h"

#define PLACEHOLDER_FILE "placeholders"

/* The VM's placeholders: "<provider> <placeholder>" lines, 0600. */
static int read_placeholders(const char *path, struct creds_vm *vm)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[160];
    memset(vm, 0, sizeof(*vm));
    while (fgets(line, sizeof(line), f)) {
        char name[32], ph[CREDS_PLACEHOLDER_MAX];
        enum creds_provider p;
        if (sscanf(line, "%31s %63s", name, ph) != 2 || !creds_placeholder_valid(ph, &p) ||
            creds_provider_from_name(name) != (int)p)
            continue;
        str_copy(vm->placeholder[p], sizeof(vm->placeholder[p]), ph);
    }
    fclose(f);
    return 0;
}

static int write_placeholders(const char *path, const struct creds_vm *vm, struct err **errp)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return err_set(errp, ENAMETOOLONG, "VM directory path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_sys(errp, "%s", tmp);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return err_sys(errp, "%s", tmp);
    }
    for (int p = 0; p < CREDS_NPROV; p++)
        if (vm->placeholder[p][0])
            fprintf(f, "%s %s\n", creds_provider_name((enum creds_provider)p), vm->placeholder[p]);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return err_sys(errp, "%s", tmp);
    }
    fclose(f);
    if (rename(tmp, path) < 0)
        return err_sys(errp, "%s", path);
    return 0;
}

static void load_secrets(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    struct err *e = NULL;
    struct creds *c = creds_load(vp->cfg.home, &e);
    if (!c) {
        log_error("credentials: %s; no secret is substituted", err_msg(e));
        err_free(e);
        e = NULL;
        const char *none[CREDS_NPROV] = {0};
        c = creds_from_values(none, &e); /* placeholders are still policed */
        if (!c) {
            err_free(e);
            return;
        }
    }
    creds_free(n->creds);
    n->creds = c;
}

/* The secrets file changed since it was read: read it again. */
static void refresh_secrets(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", vp->cfg.home, CREDS_FILE);
    struct stat st;
    int64_t stamp = stat(path, &st) == 0 ? (int64_t)st.st_mtim.tv_sec * 1000000000 +
                                               st.st_mtim.tv_nsec + (int64_t)st.st_size
                                         : -1;
    if (stamp == n->creds_stamp && n->creds)
        return;
    if (n->active_scans > 0 && n->creds)
        return; /* body scans borrow the current secrets: reload later */
    n->creds_stamp = stamp;
    load_secrets(vp);
}

int vp_creds_init(struct vmproc *vp, struct err **errp)
{
    struct vp_net *n = vp->net;
    refresh_secrets(vp);
    struct err *e = NULL;
    if (creds_hmac_key(vp->cfg.home, n->hmac_key, &e) == 0) {
        n->have_hmac = true;
    } else {
        log_warn("telemetry key: %s; header values are recorded as [redacted]", err_msg(e));
        err_free(e);
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", vp->cfg.vm_dir, PLACEHOLDER_FILE);
    if (read_placeholders(path, &n->placeholders) < 0) {
        if (!n->creds)
            return 0;
        if (creds_vm_new(n->creds, &n->placeholders, errp) < 0)
            return -1;
        return write_placeholders(path, &n->placeholders, errp);
    }
    /* Kept values stay (forks, restarts); a provider whose secret was added
     * since gets its placeholder now. */
    bool added = false;
    for (int p = 0; n->creds && p < CREDS_NPROV; p++) {
        if (n->placeholders.placeholder[p][0] || !creds_secret(n->creds, (enum creds_provider)p))
            continue;
        if (creds_placeholder_new((enum creds_provider)p, n->placeholders.placeholder[p], errp) < 0)
            return -1;
        added = true;
    }
    return added ? write_placeholders(path, &n->placeholders, errp) : 0;
}

void vp_creds_free(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    creds_free(n->creds);
    n->creds = NULL;
    explicit_bzero(n->hmac_key, sizeof(n->hmac_key));
}

void vp_creds_boot_env(struct vmproc *vp, struct buf *b)
{
    struct vp_net *n = vp->net;
    if (!n)
        return;
    for (int p = 0; p < CREDS_NPROV; p++) {
        if (!n->placeholders.placeholder[p][0])
            continue;
        char kv[160];
        snprintf(kv, sizeof(kv), "%s=%s", creds_provider_env((enum creds_provider)p),
                 n->placeholders.placeholder[p]);
        tlv_put_str(b, T_ENV, kv);
        if (p == CREDS_GOOGLE) { /* Google's SDKs read either name */
            snprintf(kv, sizeof(kv), "GOOGLE_API_KEY=%s", n->placeholders.placeholder[p]);
            tlv_put_str(b, T_ENV, kv);
        }
        if (p == CREDS_GITHUB) {
            snprintf(kv, sizeof(kv), "GITHUB_TOKEN=%s", n->placeholders.placeholder[p]);
            tlv_put_str(b, T_ENV, kv);
        }
    }
}

int vp_creds_check(struct vmproc *vp, const struct proxy_request *r, struct proxy_decision *d)
{
    struct vp_net *n = vp->net;
    refresh_secrets(vp);
    struct creds_outcome *o = calloc(1, sizeof(*o));
    if (!o)
        return -1;
    struct err *e = NULL;
    int rc = creds_check_request(n->creds, &n->placeholders, r->host, r->headers, r->nheaders,
                                 r->target, o, &e);
    if (rc < 0) {
        d->action = PROXY_BLOCK;
        d->status = e && e->status ? e->status : 400;
        str_copy(d->reason, sizeof(d->reason), "bad_request");
        str_copy(d->text, sizeof(d->text), err_msg(e));
        err_free(e);
    } else if (o->verdict != CREDS_OK) {
        d->action = PROXY_BLOCK;
        d->status = 403;
        str_copy(d->reason, sizeof(d->reason), creds_verdict_reason(o->verdict));
        str_copy(d->rule, sizeof(d->rule), "-");
        snprintf(d->text, sizeof(d->text), "%s: %s",
                 o->verdict == CREDS_SECRET_LEAK
                     ? "a host-held secret was sent toward a host that does not own it"
                     : "a credential placeholder was sent toward a host that does not own it",
                 o->detail);
        rc = 1;
    } else if (o->provider >= 0 && o->nsubst > 0) {
        for (size_t i = 0; i < o->nsubst && i < PROXY_MAX_SUBST; i++) {
            str_copy(d->subst[i].name, sizeof(d->subst[i].name), o->subst[i].name);
            str_copy(d->subst[i].value, sizeof(d->subst[i].value), o->subst[i].value);
        }
        d->nsubst = MIN(o->nsubst, (size_t)PROXY_MAX_SUBST);
        str_copy(d->target_rewrite, sizeof(d->target_rewrite), o->target);
        str_copy(d->credential_provider, sizeof(d->credential_provider),
                 creds_provider_name((enum creds_provider)o->provider));
    } else if (o->target[0]) {
        str_copy(d->target_rewrite, sizeof(d->target_rewrite), o->target);
    }
    creds_outcome_wipe(o);
    free(o);
    return rc;
}

/* ---------- request bodies toward non-owner hosts ---------- */

struct body_vet {
    struct vmproc *vp;
    struct creds_body_scan *scan;
};

static void *vet_start(void *ctx, const struct proxy_request *r)
{
    struct vmproc *vp = ctx;
    struct vp_net *n = vp->net;
    if (!n->creds || creds_host_provider(r->host) >= 0)
        return NULL; /* an owner host gets its own conversation unscanned */
    const char *enc = http1_header_get(r->headers, r->nheaders, "content-encoding");
    if (enc && strcasecmp(enc, "identity") != 0)
        return NULL; /* encoded bodies are not scanned (network.md 10) */
    struct body_vet *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->vp = vp;
    v->scan = creds_body_scan_new(n->creds);
    if (!v->scan) {
        free(v);
        return NULL;
    }
    n->active_scans++;
    return v;
}

static int vet(void *state, const uint8_t *p, size_t len, char reason[48], char text[512])
{
    struct body_vet *v = state;
    if (!creds_body_scan_feed(v->scan, p, len))
        return 0;
    enum creds_verdict verdict = creds_body_scan_verdict(v->scan);
    snprintf(reason, 48, "%s", creds_verdict_reason(verdict));
    snprintf(text, 512, "the request body carries %s; the upload was stopped before it left",
             verdict == CREDS_SECRET_LEAK ? "a host-held secret" : "a credential placeholder");
    return 1;
}

static void vet_end(void *state)
{
    struct body_vet *v = state;
    creds_body_scan_free(v->scan);
    v->vp->net->active_scans--;
    free(v);
}

void vp_creds_hooks(struct proxy_hooks *h)
{
    h->vet_start = vet_start;
    h->vet = vet;
    h->vet_end = vet_end;
}

int vp_creds_redact(struct vmproc *vp, const char *name, const char *value, char *out, size_t cap)
{
    struct vp_net *n = vp->net;
    if (!n || !n->have_hmac)
        return -1;
    return creds_redact_header(n->creds, n->hmac_key, name, value, out, cap);
}
