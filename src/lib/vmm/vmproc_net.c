/* The air gap in capsem-process (network.md): loads the policy (and reloads
 * it when its files change), the install CA and a leaf cache, builds the
 * guest-facing TLS context and the MITM proxy, decides each proxied request
 * (policy, upstream overrides, held asks, the dial address through the VM's
 * resolver with the always-blocked check), records net_events rows, and
 * sends the guest its network configuration (CTL_NET_CONFIG). The DNS
 * service is vmproc_dns.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ai/interp.h"
#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "dns/dnsaddr.h"
#include "dns/dnsvm.h"
#include "proto/agent_proto.h"
#include "proto/tlv.h"
#include "proxy/proxy.h"
#include "store/session_db.h"
#include "tls/ca.h"
#include "tls/leaf.h"
#include "tls/tlsctx.h"
#include "vmm/vmproc_net_int.h"

/* ---------- policy ---------- */

struct policy *vp_net_policy(struct vmproc *vp)
{
    return policy_store_get(vp->net->store);
}

void vp_net_fill_identity(struct vmproc *vp, struct policy_request *r, const char *comm,
                          const char *exe, uint32_t pid)
{
    r->vm.id = vp->cfg.id;
    r->vm.name = vp->cfg.name;
    r->vm.profile = vp->net->policy_profile;
    r->process.name = comm;
    r->process.exe = exe && *exe ? exe : NULL;
    r->process.pid = pid;
    r->process.has_pid = pid != 0;
}

int vp_net_override_index(const struct policy_settings *st, const char *host, uint16_t port)
{
    for (size_t i = 0; i < st->n_overrides; i++)
        if (strcasecmp(st->overrides[i].target_host, host) == 0 &&
            (port == 0 || st->overrides[i].target_port == port))
            return (int)i;
    return -1;
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct vmproc *vp = arg;
    struct err *e = NULL;
    int rc = policy_store_watch_process(vp->net->store, &e);
    if (rc < 0) {
        log_error("policy reload failed, the previous policy stays active: %s", err_msg(e));
        err_free(e);
    } else if (rc == 1) {
        log_info("policy reloaded");
        vp_net_policy_changed(vp);
    }
}

/* The policy profile of this VM: the image profile's name when a policy
 * profile of that name exists, else the bundled `code`. */
static void pick_profile(struct vmproc *vp, char *out, size_t cap)
{
    const char *want = vp->cfg.profile && *vp->cfg.profile ? vp->cfg.profile : "code";
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/profiles/%s.toml", vp->cfg.home, want);
    bool found = stat(path, &st) == 0;
    snprintf(path, sizeof(path), "%s/profiles/%s.toml", vp->cfg.share_dir, want);
    found = found || stat(path, &st) == 0;
    str_copy(out, cap, found ? want : "code");
}

static int policy_init(struct vmproc *vp, struct err **errp)
{
    struct vp_net *n = vp->net;
    pick_profile(vp, n->policy_profile, sizeof(n->policy_profile));
    char bundled[4200];
    snprintf(bundled, sizeof(bundled), "%s/profiles", vp->cfg.share_dir);
    /* @debian and @npm (docs/policy.md "Host lists"); the store copies them. */
    const struct policy_hostlist lists[] = {
        {.name = "debian",
         .hosts = (const char *const *)vp->cfg.apt_hosts,
         .nhosts = vp->cfg.napt_hosts},
        {.name = "npm",
         .hosts = (const char *const *)vp->cfg.npm_hosts,
         .nhosts = vp->cfg.nnpm_hosts},
    };
    struct policy_load_opts o = {
        .home = vp->cfg.home,
        .corp_path = vp->cfg.corp_config,
        .profile = n->policy_profile,
        .bundled_dir = bundled,
        .hostlists = lists,
        .nhostlists = ARRAY_SIZE(lists),
    };
    n->store = policy_store_new(&o, errp);
    if (!n->store)
        return -1;
    struct err *e = NULL;
    if (policy_store_reload(n->store, &e) < 0) {
        /* Fail closed: the compiled defaults deny everything on the net. */
        log_error("policy: %s; every request is denied until the files are fixed", err_msg(e));
        err_free(e);
        e = NULL;
    }
    _cleanup_policy_ struct policy *p = policy_store_get(n->store);
    for (size_t i = 0; i < policy_warning_count(p); i++)
        log_warn("policy: %s", policy_warning(p, i));
    int fd = policy_store_watch_fd(n->store, &e);
    if (fd < 0) {
        log_warn("policy files are not watched (%s): edits apply at the next VM start",
                 err_msg(e));
        err_free(e);
        return 0;
    }
    n->watch_ev = event_new(vp->base, fd, EV_READ | EV_PERSIST, watch_cb, vp);
    if (!n->watch_ev || event_add(n->watch_ev, NULL) < 0)
        return err_set(errp, ENOMEM, "cannot watch the policy files");
    return 0;
}

/* ---------- decisions ---------- */

/* A request whose decision waits for an ask or a DNS lookup. Holds its
 * policy snapshot, so the borrowed decision strings stay valid. */
struct net_hold {
    struct net_hold *next;
    struct vmproc *vp;
    uint64_t conn_id;
    uint32_t seq;
    struct policy *pol;
    struct policy_decision pd;
    struct proxy_decision d;
    char host[256];
    uint16_t port;
    struct vp_ask *ask;
    struct dns_lookup *lookup;
    uint64_t ask_started_ms;
    bool model_phase; /* an ask on a model-scope rule: approval needs no dial */
};

static void block(struct proxy_decision *d, int status, const char *reason, const char *rule,
                  const char *text)
{
    d->action = PROXY_BLOCK;
    d->status = status;
    str_copy(d->reason, sizeof(d->reason), reason);
    str_copy(d->rule, sizeof(d->rule), rule && *rule ? rule : "-");
    str_copy(d->text, sizeof(d->text), text ? text : "");
}

static void block_from_policy(struct proxy_decision *d, const struct policy_decision *pd,
                              const char *code, const char *host, int port)
{
    struct policy_block_info bi;
    policy_block_info_from(pd, host, port, &bi);
    if (code)
        bi.code = code;
    char text[512];
    if (policy_render_reason(&bi, text, sizeof(text)) < 0)
        str_copy(text, sizeof(text), bi.code);
    block(d, 403, bi.code, pd->rule, text);
}

/* The dial address for an allowed request: the override, an IPv4 literal,
 * or the resolver's answer filtered by the always-blocked ranges. Returns 0
 * when d is final, 1 when a lookup is pending (h is then kept). */
static void dial_done(void *arg, const struct dns_dial_info *info);

static void apply_addrs(struct net_hold *h, const uint32_t *addrs, size_t n)
{
    char list[200] = "";
    size_t len = 0, kept = 0;
    for (size_t i = 0; i < n && kept < 4; i++) {
        if (!policy_permits_ipv4(&h->pd, addrs[i]))
            continue;
        char ip[16];
        dns_ipv4_format(addrs[i], ip, sizeof(ip));
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", kept ? "," : "", ip);
        kept++;
    }
    if (!kept) {
        block_from_policy(&h->d, &h->pd, "private_address", h->host, h->port);
        return;
    }
    snprintf(h->d.resolve, sizeof(h->d.resolve), "%s:%u:%s", h->host, h->port, list);
}

static int resolve_dial(struct net_hold *h)
{
    struct vmproc *vp = h->vp;
    uint32_t lit;
    if (dns_ipv4_parse(h->host, &lit) == 0) {
        apply_addrs(h, &lit, 1);
        return 0;
    }
    /* The same exfiltration guard as the guest's own queries (network.md 4.9). */
    struct dns_exfil_class cls;
    struct dns_exfil_verdict xv;
    struct err *e = NULL;
    dns_exfil_classify(dns_vm_exfil_config(vp->net->dns), h->host, &cls);
    if (dns_vm_exfil_account(vp->net->dns, h->host, &cls, &xv, &e) < 0) {
        block(&h->d, 502, "upstream_dns", h->d.rule, err_msg(e));
        err_free(e);
        return 0;
    }
    if (xv.tripped) {
        block(&h->d, 403, "dns_exfil_guard", h->d.rule,
              "too many unusual names under this domain: possible data exfiltration");
        return 0;
    }
    struct dns_dial_info hit = {0};
    int rc = dns_vm_resolve_ipv4(vp->net->dns, h->host, &hit, dial_done, h, &h->lookup, &e);
    if (rc == 0)
        return 1;
    if (rc < 0) {
        block(&h->d, 502, "upstream_dns", h->d.rule, err_msg(e));
        err_free(e);
        return 0;
    }
    if (!hit.ok || hit.n == 0)
        block(&h->d, 502, "upstream_dns", h->d.rule,
              hit.ok ? "the name has no IPv4 address" : hit.detail ? hit.detail : "resolution failed");
    else
        apply_addrs(h, hit.addrs, hit.n);
    return 0;
}

static void hold_unlink(struct net_hold *h)
{
    for (struct net_hold **pp = &h->vp->net->holds; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
}

static void hold_free(struct net_hold *h)
{
    if (h->ask)
        vp_ask_cancel(h->ask);
    if (h->lookup)
        dns_lookup_cancel(h->lookup);
    policy_unref(h->pol);
    free(h);
}

static void hold_finish(struct net_hold *h)
{
    hold_unlink(h);
    struct vmproc *vp = h->vp;
    h->ask = NULL;
    h->lookup = NULL;
    proxy_decided(vp->proxy, h->conn_id, h->seq, &h->d);
    hold_free(h);
}

static void dial_done(void *arg, const struct dns_dial_info *info)
{
    struct net_hold *h = arg;
    h->lookup = NULL;
    if (!info->ok || info->n == 0)
        block(&h->d, 502, "upstream_dns", h->d.rule,
              info->ok ? "the name has no IPv4 address"
                       : info->detail ? info->detail : "resolution failed");
    else
        apply_addrs(h, info->addrs, info->n);
    hold_finish(h);
}

/* Allowed by policy: override or dial resolution. 0 final, 1 pending. */
static int after_allow(struct net_hold *h)
{
    h->d.action = PROXY_ALLOW;
    h->d.status = 0;
    h->d.reason[0] = '\0';
    h->d.text[0] = '\0';
    const struct policy_settings *st = policy_settings(h->pol);
    str_copy(h->d.upstream_proxy, sizeof(h->d.upstream_proxy),
             st->upstream_proxy ? st->upstream_proxy : "");
    if (strcmp(h->host, NET_HOST_ALIAS) == 0) {
        /* network.md 2.8: the host itself, reached on its loopback (the
         * policy only allows this name when a corp/user rule names it). */
        snprintf(h->d.dial, sizeof(h->d.dial), "127.0.0.1:%u", h->port);
        h->d.upstream_proxy[0] = '\0';
        return 0;
    }
    int oi = vp_net_override_index(st, h->host, h->port);
    if (oi >= 0) {
        const struct policy_override *o = &st->overrides[oi];
        snprintf(h->d.dial, sizeof(h->d.dial), "%s:%u", o->dial_host, o->dial_port);
        str_copy(h->d.ca_file, sizeof(h->d.ca_file), o->ca_file ? o->ca_file : "");
        return 0;
    }
    return resolve_dial(h);
}

static void ask_done(void *arg, bool approved, const char *status, int64_t row)
{
    struct net_hold *h = arg;
    h->ask = NULL;
    h->d.ask_id = row;
    if (approved && h->model_phase) {
        hold_finish(h); /* the dial address was settled by the net phase */
        return;
    }
    if (!approved) {
        const char *code = strcmp(status, "timeout") == 0      ? "ask_timeout"
                           : strcmp(status, "queue_full") == 0 ? "ask_queue_full"
                                                               : "ask_denied";
        block_from_policy(&h->d, &h->pd, code, h->host, h->port);
        hold_finish(h);
        return;
    }
    if (after_allow(h) == 1)
        return; /* dial_done finishes */
    hold_finish(h);
}

/* A hold for request r with the decision so far (NULL when out of memory). */
static struct net_hold *hold_new(struct vmproc *vp, const struct proxy_request *r,
                                 const struct proxy_decision *d)
{
    struct net_hold *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->vp = vp;
    h->conn_id = r->conn_id;
    h->seq = r->request_seq;
    h->pol = vp_net_policy(vp);
    h->d = *d;
    str_copy(h->host, sizeof(h->host), r->host);
    h->port = r->port;
    return h;
}

/* The http.*, conn.*, process.* and vm.* fields of a request whose
 * normalised path is npath. */
static void fill_request(struct vmproc *vp, const struct proxy_request *r, const char *npath,
                         struct policy_request *pr)
{
    pr->http.host = r->host;
    pr->http.port = r->port;
    pr->http.has_port = true;
    pr->http.scheme = r->scheme;
    pr->http.method = r->method;
    pr->http.path = npath;
    pr->http.query = r->query;
    pr->http.upgrade = r->websocket ? "websocket" : NULL;
    pr->http.sni = r->sni;
    pr->http.headers = r->headers;
    pr->http.nheaders = r->nheaders;
    pr->conn.dst_ip = r->dst_ip;
    pr->conn.has_dst_ip = true;
    pr->conn.dst_port = r->dst_port;
    pr->conn.has_dst_port = true;
    vp_net_fill_identity(vp, pr, r->comm, r->exe, r->pid);
}

/* An `ask` decided: hold the request. 1 when held, 0 when h->d is now a
 * block (the queue is full). */
static int hold_ask(struct net_hold *h, const char *scope, const struct proxy_request *r,
                    const char *npath)
{
    const struct policy_settings *st = policy_settings(h->pol);
    struct vp_ask_info ai = {.scope = scope,
                             .host = h->host,
                             .port = h->port,
                             .method = r->method,
                             .path = npath,
                             .rule = h->pd.rule,
                             .reason = h->pd.reason,
                             .process = r->comm,
                             .pid = r->pid,
                             .timeout_s = (unsigned)st->ask_timeout_s,
                             .max_pending = (unsigned)st->ask_max_pending};
    h->ask = vp_ask_start(h->vp, &ai, ask_done, h);
    if (h->ask)
        return 1;
    block_from_policy(&h->d, &h->pd, "ask_queue_full", h->host, h->port);
    return 0;
}

/* The decision is pending: keep h until it completes or is cancelled. */
static int hold_park(struct net_hold *h)
{
    h->next = h->vp->net->holds;
    h->vp->net->holds = h;
    return 1;
}

static int decide(void *ctx, const struct proxy_request *r, struct proxy_decision *d)
{
    struct vmproc *vp = ctx;
    struct net_hold *h = hold_new(vp, r, d);
    if (!h)
        return 0; /* stays the proxy's policy_error block */
    char npath[8200];
    if (policy_path_normalize(r->path, strlen(r->path), npath, sizeof(npath)) < 0)
        str_copy(npath, sizeof(npath), r->path);
    struct policy_request pr = {0};
    fill_request(vp, r, npath, &pr);

    enum policy_action act = policy_eval_http(h->pol, &pr, &h->pd);
    str_copy(h->d.rule, sizeof(h->d.rule), h->pd.rule ? h->pd.rule : "-");
    /* AI requests are held whole for the model-scope rules (6 step 10). */
    struct ai_endpoint ep;
    h->d.hold_body = ai_detect(r->host, r->method, npath, r->query, &ep);
    int rc = 0;
    /* Credentials before anything leaves (network.md 6 step 8): misuse is
     * refused even where the policy would allow or ask. */
    if (act != POLICY_BLOCK && vp_creds_check(vp, r, &h->d) != 0) {
        *d = h->d;
        hold_free(h);
        return 0;
    }
    if (act == POLICY_BLOCK)
        block_from_policy(&h->d, &h->pd, NULL, h->host, h->port);
    else if (act == POLICY_ASK)
        rc = hold_ask(h, "net", r, npath);
    else
        rc = after_allow(h);
    if (rc == 1)
        return hold_park(h);
    *d = h->d;
    hold_free(h);
    return 0;
}

/* model scope (network.md 8.3, 6 step 10): the parsed AI request decides
 * after the net layer allowed it. */
static int decide_body(void *ctx, const struct proxy_request *r, const uint8_t *body, size_t len,
                       struct proxy_decision *d)
{
    struct vmproc *vp = ctx;
    char npath[8200];
    if (policy_path_normalize(r->path, strlen(r->path), npath, sizeof(npath)) < 0)
        return 0; /* cannot be an interpreted endpoint then: the net decision stands */
    struct ai_endpoint ep;
    if (!ai_detect(r->host, r->method, npath, r->query, &ep))
        return 0;
    struct ai_request *areq = NULL;
    struct err *e = NULL;
    if (ai_request_parse(&ep, body, len, NULL, &areq, &e) < 0) {
        err_free(e); /* not our JSON to judge: model fields stay absent */
        areq = NULL;
    }
    struct net_hold *h = hold_new(vp, r, d);
    if (!h) {
        ai_request_free(areq);
        block(d, 403, "policy_error", "-", "out of memory");
        return 0;
    }
    h->model_phase = true;
    struct policy_request pr = {0};
    fill_request(vp, r, npath, &pr);
    pr.model.provider = ep.provider;
    pr.model.protocol = ep.protocol_name;
    if (areq) {
        pr.model.name = areq->model;
        pr.model.stream = areq->stream;
        pr.model.has_stream = true;
        pr.model.max_tokens = areq->max_tokens;
        pr.model.has_max_tokens = areq->max_tokens != AI_NULL;
        pr.model.messages_count = areq->messages_count;
        pr.model.has_messages_count = areq->messages_count != AI_NULL;
        pr.model.tools = (const char *const *)areq->tools;
        pr.model.ntools = areq->n_tools;
        pr.model.has_tools = true;
    } else if (ep.url_model[0]) {
        pr.model.name = ep.url_model;
    }
    enum policy_action act = policy_eval_model(h->pol, &pr, &h->pd);
    int rc = 0;
    if (act == POLICY_BLOCK)
        block_from_policy(&h->d, &h->pd, NULL, h->host, h->port);
    else if (act == POLICY_ASK)
        rc = hold_ask(h, "model", r, npath);
    ai_request_free(areq);
    if (rc == 1)
        return hold_park(h);
    if (act != POLICY_ALLOW)
        *d = h->d;
    hold_free(h);
    return 0;
}

static void cancel(void *ctx, uint64_t conn_id, uint32_t seq)
{
    struct vmproc *vp = ctx;
    for (struct net_hold *h = vp->net->holds; h; h = h->next)
        if (h->conn_id == conn_id && h->seq == seq) {
            hold_unlink(h);
            hold_free(h);
            return;
        }
}

/* ---------- certificates, pin set ---------- */

static int use_cert(void *ctx, SSL *ssl, const char *name)
{
    struct vmproc *vp = ctx;
    struct err *e = NULL;
    if (leaf_cache_install(vp->net->leaves, ssl, name, &e) < 0) {
        log_warn("net: no certificate for %s: %s", name, err_msg(e));
        err_free(e);
        return -1;
    }
    return 0;
}

static const char *name_for_ip(void *ctx, uint32_t ip)
{
    struct vmproc *vp = ctx;
    struct vp_net *n = vp->net;
    if (!dns_pinset_lookup(dns_vm_pinset(n->dns), ip, n->pin_name, sizeof(n->pin_name)))
        return NULL;
    return n->pin_name;
}

/* ---------- telemetry ---------- */

static const char *const verbatim_headers[] = {
    "accept",            "content-type", "content-length", "content-encoding",
    "transfer-encoding", "host",         "user-agent",     "server",
    "date",              "cache-control", "location",      "retry-after",
    "x-request-id",      "request-id"};

/* Adds one header to a network.md 11 summary: verbatim values only for a
 * fixed list of harmless headers, others hashed (or [redacted]). */
static void summary_add(struct vmproc *vp, json_t *obj, const char *nm, size_t nlen,
                        const char *value)
{
    char name[128];
    size_t n = MIN(nlen, sizeof(name) - 1);
    for (size_t k = 0; k < n; k++)
        name[k] = (char)(nm[k] >= 'A' && nm[k] <= 'Z' ? nm[k] + 32 : nm[k]);
    name[n] = '\0';
    bool keep = false;
    for (size_t k = 0; k < ARRAY_SIZE(verbatim_headers); k++)
        keep = keep || strcmp(name, verbatim_headers[k]) == 0;
    char red[160];
    const char *val = keep ? value : "[redacted]";
    if (!keep && vp_creds_redact(vp, name, value, red, sizeof(red)) >= 0)
        val = red;
    json_object_set_new(obj, name, json_stringn_nocheck(val, strlen(val)));
}

static char *summary_dump(json_t *obj)
{
    char *s = json_object_size(obj) ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (s && strlen(s) > 8192)
        s[8192] = '\0';
    return s;
}

static char *headers_json(struct vmproc *vp, const struct proxy_request *r)
{
    json_t *obj = json_object();
    for (size_t i = 0; r && i < r->nheaders; i++)
        summary_add(vp, obj, r->headers[i].name, r->headers[i].name_len, r->headers[i].value);
    return summary_dump(obj);
}

/* The upstream head as the proxy kept it: status line, then field lines. */
static char *response_headers_json(struct vmproc *vp, const char *raw)
{
    if (!raw)
        return NULL;
    json_t *obj = json_object();
    const char *line = strchr(raw, '\n');
    while (line && *++line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len && line[len - 1] == '\r')
            len--;
        const char *colon = memchr(line, ':', len);
        if (colon && colon > line && len < 16384) {
            char value[16384];
            const char *v = colon + 1;
            while (v < line + len && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(line + len - v);
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            summary_add(vp, obj, line, (size_t)(colon - line), value);
        }
        line = end;
    }
    return summary_dump(obj);
}

/* "user:no-push" -> source "user", id "no-push". */
static void split_rule(const char *rule, char *src, size_t scap, const char **id)
{
    const char *colon = rule ? strchr(rule, ':') : NULL;
    if (!colon) {
        str_copy(src, scap, "");
        *id = rule;
        return;
    }
    snprintf(src, scap, "%.*s", (int)MIN((size_t)(colon - rule), scap - 1), rule);
    *id = colon + 1;
}

static int64_t record(void *ctx, const struct proxy_event *ev)
{
    struct vmproc *vp = ctx;
    if (!vp->sdb)
        return 0;
    const struct proxy_request *r = ev->req;
    char dst[32];
    struct in_addr a = {.s_addr = htonl(r ? r->dst_ip : 0)};
    inet_ntop(AF_INET, &a, dst, sizeof(dst));
    _cleanup_free_ char *hdrs = headers_json(vp, r);
    _cleanup_free_ char *rhdrs = response_headers_json(vp, ev->response_headers);
    const char *cred = ev->dec && ev->dec->credential_provider[0] ? ev->dec->credential_provider
                                                                   : NULL;
    struct sdb_val v[] = {
        SDB_TEXT_V("vm_id", vp->cfg.id),
        SDB_INT_V("conn_id", ev->conn_id),
        SDB_INT_V("request_seq", ev->request_seq),
        SDB_TEXT_V("process_name", r ? r->comm : NULL),
        r && r->pid ? SDB_INT_V("pid", r->pid) : SDB_NULL_V("pid"),
        SDB_TEXT_V("conn_type", ev->conn_type),
        SDB_TEXT_V("method", r ? r->method : NULL),
        SDB_TEXT_V("scheme", r ? r->scheme : NULL),
        SDB_TEXT_V("domain", r ? r->host : NULL),
        r ? SDB_INT_V("port", r->port) : SDB_NULL_V("port"),
        SDB_TEXT_V("dst_ip", r ? dst : NULL),
        SDB_TEXT_V("path", r ? r->path : NULL),
        SDB_TEXT_V("query", r ? r->query : NULL),
        ev->status ? SDB_INT_V("status_code", ev->status) : SDB_NULL_V("status_code"),
        SDB_INT_V("bytes_sent", ev->bytes_sent),
        SDB_INT_V("bytes_received", ev->bytes_received),
        SDB_INT_V("duration_ms", ev->duration_ms),
        ev->ttfb_ms >= 0 ? SDB_INT_V("ttfb_ms", ev->ttfb_ms) : SDB_NULL_V("ttfb_ms"),
        SDB_TEXT_V("decision", ev->decision),
        SDB_TEXT_V("matched_rule", ev->rule),
        SDB_TEXT_V("reason", ev->reason && *ev->reason ? ev->reason : NULL),
        SDB_TEXT_V("error_detail", ev->error_detail && *ev->error_detail ? ev->error_detail : NULL),
        SDB_TEXT_V("upstream_http_version", ev->upstream_http_version),
        SDB_TEXT_V("request_headers", hdrs),
        SDB_TEXT_V("response_headers", rhdrs),
        ev->ask_id ? SDB_INT_V("ask_id", ev->ask_id) : SDB_NULL_V("ask_id"),
        SDB_TEXT_V("credential_provider", cred),
    };
    int64_t row =
        session_db_insert(vp->sdb, SDB_NET_EVENTS, (int64_t)ev->started_ms, v, ARRAY_SIZE(v), NULL);
    if (strcmp(ev->decision, "denied") == 0 && r && !ev->ask_id) {
        /* Every denial also lands in policy_decisions (network.md 11). */
        char src[16];
        const char *id;
        split_rule(ev->rule, src, sizeof(src), &id);
        char event_id[48];
        snprintf(event_id, sizeof(event_id), "net:%lld", (long long)row);
        struct sdb_val pv[] = {
            SDB_TEXT_V("event_id", event_id),
            SDB_TEXT_V("subject", strstr(ev->reason ? ev->reason : "", "placeholder") ||
                                          strstr(ev->reason ? ev->reason : "", "secret")
                                      ? "credential"
                                      : "net"),
            SDB_TEXT_V("ref_table", "net_events"),
            row > 0 ? SDB_INT_V("ref_id", row) : SDB_NULL_V("ref_id"),
            SDB_TEXT_V("rule_id", id),
            SDB_TEXT_V("rule_source", src),
            SDB_TEXT_V("action", "block"),
            SDB_TEXT_V("status", "auto"),
            SDB_TEXT_V("resolver", "policy"),
            SDB_TEXT_V("host", r->host),
            SDB_INT_V("port", r->port),
            SDB_TEXT_V("method", r->method),
            SDB_TEXT_V("path", r->path),
            SDB_TEXT_V("process_name", r->comm),
            SDB_TEXT_V("reason", ev->reason),
        };
        session_db_insert(vp->sdb, SDB_POLICY_DECISIONS, (int64_t)ev->started_ms, pv,
                          ARRAY_SIZE(pv), NULL);
    }
    log_debug("net: %s %s://%s%s -> %d %s (%s)", r ? r->method : "-", r ? r->scheme : "-",
              r ? r->host : "-", r ? r->path : "", ev->status, ev->decision,
              ev->reason ? ev->reason : "");
    return row > 0 ? row : 0;
}

/* ---------- the guest's network configuration ---------- */

static void send_net_config(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    if (!vp->ctl)
        return;
    _cleanup_policy_ struct policy *p = vp_net_policy(vp);
    const struct policy_settings *st = policy_settings(p);
    struct buf b;
    buf_init(&b, AGENT_MAX_RECORD);
    n->n_sent_ports = 0;
    for (size_t i = 0; i < st->n_http_ports && i < POLICY_MAX_HTTP_PORTS; i++) {
        tlv_put_u32(&b, T_HTTP_PORT, st->http_ports[i]);
        n->sent_ports[n->n_sent_ports++] = st->http_ports[i];
    }
    tlv_put(&b, T_CA_CERT, n->ca_pem, n->ca_pem_len);
    if (vp_send_rec(vp->ctl, CTL_NET_CONFIG, buf_head(&b), b.len) < 0)
        log_error("network configuration does not fit the control stream");
    buf_free(&b);
    vp_channel_kick(vp);
}

void vp_net_guest_ready(struct vmproc *vp)
{
    if (vp->net)
        send_net_config(vp);
}

void vp_net_policy_changed(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    if (!n || !n->configured)
        return;
    _cleanup_policy_ struct policy *p = vp_net_policy(vp);
    const struct policy_settings *st = policy_settings(p);
    bool same = st->n_http_ports == n->n_sent_ports;
    for (size_t i = 0; same && i < st->n_http_ports; i++)
        same = st->http_ports[i] == n->sent_ports[i];
    if (!same) {
        log_info("network.http_ports changed: updating the guest");
        send_net_config(vp);
    }
}

/* ---------- streams ---------- */

static void kick(void *arg)
{
    vp_channel_kick(arg);
}

int vp_net_open(struct vmproc *vp, struct mux_stream *s, const uint8_t *meta, size_t len)
{
    if (!vp->proxy)
        return MUX_RST_REFUSED;
    return proxy_accept(vp->proxy, s, meta, len, kick, vp);
}

/* ---------- setup ---------- */

int vp_net_init(struct vmproc *vp, struct err **errp)
{
    struct vp_net *n = calloc(1, sizeof(*n));
    if (!n)
        return err_set(errp, ENOMEM, "out of memory");
    vp->net = n;
    if (policy_init(vp, errp) < 0)
        return -1;
    _cleanup_free_ char *ca_dir = paths_join(vp->cfg.home, "ca");
    if (!ca_dir)
        return err_set(errp, ENOMEM, "out of memory");
    n->ca = ca_load(ca_dir, errp);
    if (!n->ca)
        return -1;
    size_t pem_len;
    const char *pem = ca_cert_pem(n->ca, &pem_len);
    n->ca_pem = strndup(pem, pem_len);
    n->ca_pem_len = pem_len;
    n->leaves = leaf_cache_new(n->ca, 0, errp);
    if (!n->ca_pem || !n->leaves)
        return n->ca_pem ? -1 : err_set(errp, ENOMEM, "out of memory");
    n->tls = tlsctx_new(n->leaves, errp);
    if (!n->tls)
        return -1;
    if (vp_creds_init(vp, errp) < 0)
        return -1;
    _cleanup_policy_ struct policy *p = vp_net_policy(vp);
    const struct policy_settings *st = policy_settings(p);
    if (vp_dns_init(vp, st, errp) < 0)
        return -1;
    struct proxy_limits lim;
    proxy_limits_default(&lim);
    lim.max_request_body = (uint64_t)st->max_request_body_mib << 20;
    lim.upstream_idle_s = (unsigned)st->upstream_idle_s;
    struct proxy_hooks h = {.ctx = vp,
                            .decide = decide,
                            .decide_body = decide_body,
                            .cancel = cancel,
                            .use_cert = use_cert,
                            .name_for_ip = name_for_ip,
                            .record = record};
    vp_observers_hooks(vp, &h);
    vp_creds_hooks(&h);
    vp->proxy = proxy_new(vp->base, tlsctx_ssl_ctx(n->tls), &lim, &h, errp);
    if (!vp->proxy)
        return -1;
    log_info("air gap up: policy profile %s, CA loaded, %zu http ports", n->policy_profile,
             st->n_http_ports);
    return 0;
}

void vp_net_detach(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    if (!n)
        return;
    while (n->holds) {
        struct net_hold *h = n->holds;
        n->holds = h->next;
        hold_free(h);
    }
    proxy_free(vp->proxy); /* its connections hold mux streams */
    vp->proxy = NULL;
    vp_dns_detach(vp);
}

void vp_net_free(struct vmproc *vp)
{
    struct vp_net *n = vp->net;
    if (!n)
        return;
    vp_net_detach(vp); /* a no-op when teardown already did it */
    vp_dns_free(vp);
    vp_creds_free(vp);
    tlsctx_free(n->tls);
    leaf_cache_free(n->leaves);
    ca_free(n->ca);
    free(n->ca_pem);
    if (n->watch_ev)
        event_free(n->watch_ev);
    policy_store_free(n->store);
    free(n);
    vp->net = NULL;
}
