/* The VM's DNS service (network.md section 4): the guest's DNS relay opens
 * one MUX_SVC_DNS stream and sends each query as a DNS_QUERY record; every
 * query is parsed, rate-limited, decided by policy, checked by the
 * exfiltration guard, resolved through the per-VM cache and resolver, and
 * answered by a message the host builds (DNS_ANSWER), or dropped
 * (DNS_DROP). One dns_events row per query. Names an upstream override
 * redirects get a synthetic TEST-NET-1 answer: the proxy dials the override,
 * never that address. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "dns/dnsaddr.h"
#include "dns/dnsvm.h"
#include "proto/agent_proto.h"
#include "proto/hstream.h"
#include "proto/tlv.h"
#include "store/session_db.h"
#include "vmm/vmproc_net_int.h"

#define DNS_REC_MAX (DNS_QUERY_MAX + 1024) /* one DNS_QUERY record */
#define DNS_MAX_JOBS 512                   /* queries in flight per VM (rate caps at 256) */

struct dns_job {
    struct dns_job *next, *prev;
    struct dns_conn *conn;
    uint32_t tag;
    bool tcp;
    uint32_t pid;
    char comm[65];
    struct dns_query_msg q;
    bool admitted;
    struct policy *pol;
    struct policy_decision pd;
    bool suspicious;
    struct dns_lookup *lookup;
    uint64_t started_ms;
};

struct dns_conn {
    struct hstream hs; /* first: the stream's user pointer */
    struct vmproc *vp;
    struct mux_stream *s;
    struct rec_reader rr;
    struct dns_job *jobs;
    unsigned njobs;
};

/* ---------- replies and rows ---------- */

struct dns_outcome {
    unsigned rcode;
    const struct dns_result *answers;
    const char *decision; /* allowed | denied | error */
    const char *rule;
    const char *reason;
    const char *ede_text;
    bool cache_hit;
    int64_t upstream_ms; /* -1 none */
};

static void send_rec(struct dns_conn *dc, uint16_t type, uint32_t tag, const uint8_t *p, size_t n)
{
    struct buf b;
    buf_init(&b, DNS_TCP_ANSWER_MAX + 64);
    tlv_put_u32(&b, T_TAG, tag);
    if (p)
        tlv_put(&b, T_PAYLOAD, p, n);
    if (dc->s && vp_send_rec(dc->s, type, buf_head(&b), b.len) < 0)
        log_warn("dns: answer dropped: the guest is not reading its DNS stream");
    buf_free(&b);
    vp_channel_kick(dc->vp);
}

static void write_row(struct dns_job *j, const struct dns_outcome *o)
{
    struct vmproc *vp = j->conn->vp;
    if (!vp->sdb)
        return;
    char qtype[DNS_TYPE_STR_MAX], ip[16] = "";
    uint32_t addrs[1];
    size_t nans = o->answers ? o->answers->n : 0;
    if (o->answers && dns_result_ipv4(o->answers, addrs, 1) == 1)
        dns_ipv4_format(addrs[0], ip, sizeof(ip));
    struct sdb_val v[] = {
        SDB_TEXT_V("vm_id", vp->cfg.id),
        SDB_TEXT_V("process_name", j->comm[0] ? j->comm : NULL),
        j->pid ? SDB_INT_V("pid", j->pid) : SDB_NULL_V("pid"),
        SDB_TEXT_V("qname", j->q.has_question ? j->q.q.name : NULL),
        SDB_TEXT_V("qtype", j->q.has_question ? dns_type_str(j->q.q.qtype, qtype, sizeof(qtype))
                                              : NULL),
        SDB_TEXT_V("qclass", j->q.has_question && j->q.q.qclass == DNS_CLASS_IN ? "IN" : NULL),
        SDB_TEXT_V("rcode", o->rcode == (unsigned)-1 ? NULL : dns_rcode_str(o->rcode)),
        SDB_TEXT_V("answer_ip", ip[0] ? ip : NULL),
        SDB_INT_V("answer_count", nans),
        SDB_TEXT_V("decision", o->decision),
        SDB_TEXT_V("matched_rule", o->rule),
        SDB_TEXT_V("reason", o->reason),
        SDB_TEXT_V("source_proto", j->tcp ? "tcp" : "udp"),
        SDB_INT_V("cache_hit", o->cache_hit),
        SDB_INT_V("suspicious", j->suspicious),
        o->upstream_ms >= 0 ? SDB_INT_V("upstream_resolver_ms", o->upstream_ms)
                            : SDB_NULL_V("upstream_resolver_ms"),
    };
    session_db_insert(vp->sdb, SDB_DNS_EVENTS, (int64_t)j->started_ms, v, ARRAY_SIZE(v), NULL);
}

static void job_free(struct dns_job *j)
{
    struct dns_conn *dc = j->conn;
    if (j->prev)
        j->prev->next = j->next;
    else
        dc->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    dc->njobs--;
    if (j->lookup)
        dns_lookup_cancel(j->lookup);
    if (j->admitted)
        dns_vm_done(dc->vp->net->dns);
    policy_unref(j->pol);
    free(j);
}

/* Answers (or drops, rcode -1) the job's query, writes its row, frees it. */
static void finish(struct dns_job *j, const struct dns_outcome *o)
{
    struct dns_conn *dc = j->conn;
    if (o->rcode == (unsigned)-1) {
        send_rec(dc, DNS_DROP, j->tag, NULL, 0);
    } else {
        struct dns_reply r = {.query = &j->q,
                              .rcode = o->rcode,
                              .answers = o->answers,
                              .ede = o->ede_text != NULL,
                              .ede_code = DNS_EDE_BLOCKED,
                              .ede_text = o->ede_text,
                              .tcp = j->tcp};
        uint8_t out[DNS_TCP_ANSWER_MAX];
        struct err *e = NULL;
        int n = dnsmsg_build_reply(&r, out, sizeof(out), &e);
        if (n < 0) {
            log_warn("dns: cannot build an answer: %s", err_msg(e));
            err_free(e);
            send_rec(dc, DNS_DROP, j->tag, NULL, 0);
        } else {
            send_rec(dc, DNS_ANSWER, j->tag, out, (size_t)n);
        }
    }
    write_row(j, o);
    job_free(j);
}

static void finish_simple(struct dns_job *j, unsigned rcode, const char *decision,
                          const char *rule, const char *reason)
{
    struct dns_outcome o = {.rcode = rcode, .decision = decision, .rule = rule,
                            .reason = reason, .upstream_ms = -1};
    finish(j, &o);
}

/* ---------- the pipeline ---------- */

static void answer_result(struct dns_job *j, struct dns_result *res, bool cache_hit,
                          int64_t upstream_ms)
{
    struct vmproc *vp = j->conn->vp;
    struct dns_outcome o = {.rcode = res->rcode, .answers = res, .decision = "allowed",
                            .rule = j->pd.rule, .cache_hit = cache_hit,
                            .upstream_ms = upstream_ms};
    if (dns_result_filter_private(res, j->pd.names_destination, NULL) == DNS_FILTER_EMPTY) {
        o.rcode = DNS_RCODE_NXDOMAIN;
        o.answers = NULL;
        o.decision = "denied";
        o.reason = "private_address";
    } else {
        struct err *e = NULL;
        if (dns_vm_pin_answer(vp->net->dns, j->q.q.name, res, &e) < 0) {
            log_warn("dns: pin set: %s", err_msg(e));
            err_free(e);
        }
    }
    finish(j, &o);
}

static void lookup_done(void *arg, const struct dns_lookup_info *info)
{
    struct dns_job *j = arg;
    j->lookup = NULL;
    if (!info->ok) {
        struct dns_outcome o = {.rcode = DNS_RCODE_SERVFAIL, .decision = "error",
                                .rule = j->pd.rule,
                                .reason = info->detail ? info->detail : "upstream_failed",
                                .upstream_ms = info->upstream_ms};
        finish(j, &o);
        return;
    }
    struct dns_result res = {0};
    struct err *e = NULL;
    if (dns_result_copy(&res, info->result, &e) < 0) {
        err_free(e);
        finish_simple(j, DNS_RCODE_SERVFAIL, "error", j->pd.rule, "out_of_memory");
        return;
    }
    answer_result(j, &res, info->cache_hit, info->upstream_ms);
    dns_result_clear(&res);
}

/* A name an upstream override redirects, or the host alias: one synthetic
 * A record, address a. */
static void answer_synthetic(struct dns_job *j, uint32_t a, const char *reason)
{
    struct dns_result res = {0};
    if (j->q.q.qtype == DNS_T_A) {
        uint8_t rdata[4] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a};
        dns_result_add(&res, DNS_T_A, 30, j->q.q.wire, j->q.q.wire_len, rdata, sizeof(rdata));
        struct err *e = NULL;
        if (dns_vm_pin_answer(j->conn->vp->net->dns, j->q.q.name, &res, &e) < 0)
            err_free(e);
    }
    struct dns_outcome o = {.rcode = DNS_RCODE_NOERROR, .answers = &res, .decision = "allowed",
                            .rule = j->pd.rule, .reason = reason, .upstream_ms = -1};
    finish(j, &o);
    dns_result_clear(&res);
}

static void exfil_row(struct vmproc *vp, struct dns_job *j, const struct dns_exfil_verdict *v)
{
    if (!vp->sdb || !v->first_trip)
        return;
    struct sdb_val pv[] = {
        SDB_TEXT_V("subject", "exfil"),      SDB_TEXT_V("ref_table", "dns_events"),
        SDB_TEXT_V("action", "block"),       SDB_TEXT_V("status", "auto"),
        SDB_TEXT_V("resolver", "policy"),    SDB_TEXT_V("host", v->domain),
        SDB_TEXT_V("process_name", j->comm), SDB_TEXT_V("reason", v->why),
    };
    session_db_insert(vp->sdb, SDB_POLICY_DECISIONS, 0, pv, ARRAY_SIZE(pv), NULL);
}

static void run_query(struct dns_job *j, const uint8_t *pkt, size_t len)
{
    struct vmproc *vp = j->conn->vp;
    struct dns_vm *dns = vp->net->dns;
    enum dns_parse_status st = dnsmsg_parse_query(pkt, len, &j->q);
    if (st == DNS_PARSE_DROP) {
        finish_simple(j, (unsigned)-1, "error", NULL, "malformed");
        return;
    }
    if (st != DNS_PARSE_OK) {
        unsigned rc = st == DNS_PARSE_NOTIMP    ? DNS_RCODE_NOTIMP
                      : st == DNS_PARSE_BADVERS ? DNS_RCODE_BADVERS
                                                : DNS_RCODE_FORMERR;
        finish_simple(j, rc, "error", NULL, "malformed");
        return;
    }
    enum dns_rate_verdict rv = dns_vm_admit(dns);
    if (rv != DNS_RATE_OK) {
        finish_simple(j, DNS_RCODE_REFUSED, "denied", NULL, dns_rate_reason(rv));
        return;
    }
    j->admitted = true;
    const char *qname = j->q.q.name;
    if (dns_qname_has_placeholder(qname)) {
        finish_simple(j, DNS_RCODE_NXDOMAIN, "denied", NULL, "placeholder_misuse");
        return;
    }
    struct dns_exfil_class cls;
    dns_exfil_classify(dns_vm_exfil_config(dns), qname, &cls);
    j->suspicious = cls.suspicious;
    char qtype[DNS_TYPE_STR_MAX];
    struct policy_request pr = {0};
    pr.dns.qname = qname;
    pr.dns.qtype = dns_type_str(j->q.q.qtype, qtype, sizeof(qtype));
    pr.dns.suspicious = cls.suspicious;
    pr.dns.has_suspicious = true;
    vp_net_fill_identity(vp, &pr, j->comm, NULL, j->pid);
    j->pol = vp_net_policy(vp);
    if (policy_eval_dns(j->pol, &pr, &j->pd) != POLICY_ALLOW) {
        struct policy_block_info bi;
        policy_block_info_from(&j->pd, qname, 0, &bi);
        char ede[DNS_EDE_TEXT_MAX + 1];
        bool have = policy_render_dns_ede(&bi, ede, sizeof(ede)) >= 0;
        struct dns_outcome o = {.rcode = DNS_RCODE_NXDOMAIN, .decision = "denied",
                                .rule = j->pd.rule, .reason = bi.code,
                                .ede_text = have && j->q.edns ? ede : NULL, .upstream_ms = -1};
        finish(j, &o);
        return;
    }
    enum dns_type_action ta = dns_type_action(j->q.q.qtype);
    if (ta == DNS_TYPE_NOTIMP) {
        finish_simple(j, DNS_RCODE_NOTIMP, "allowed", j->pd.rule, "type_not_supported");
        return;
    }
    if (strcmp(qname, NET_HOST_ALIAS) == 0) {
        answer_synthetic(j, NET_HOST_ALIAS_ADDR, "host_alias");
        return;
    }
    int oi = vp_net_override_index(policy_settings(j->pol), qname, 0);
    if (oi >= 0) {
        answer_synthetic(j, NET_SYNTH_BASE + NET_SYNTH_FIRST + (uint32_t)oi, "upstream_override");
        return;
    }
    if (ta == DNS_TYPE_NODATA) {
        finish_simple(j, DNS_RCODE_NOERROR, "allowed", j->pd.rule, "no_data_type");
        return;
    }
    struct dns_exfil_verdict ev;
    struct err *e = NULL;
    if (dns_vm_exfil_account(dns, qname, &cls, &ev, &e) < 0) {
        err_free(e);
        finish_simple(j, DNS_RCODE_SERVFAIL, "error", j->pd.rule, "out_of_memory");
        return;
    }
    if (ev.tripped) {
        exfil_row(vp, j, &ev);
        finish_simple(j, DNS_RCODE_NXDOMAIN, "denied", j->pd.rule, "dns_exfil_guard");
        return;
    }
    struct dns_result hit = {0};
    int rc = dns_vm_lookup(dns, qname, j->q.q.qtype, &hit, lookup_done, j, &j->lookup, &e);
    if (rc < 0) {
        log_warn("dns: lookup of %s: %s", qname, err_msg(e));
        err_free(e);
        finish_simple(j, DNS_RCODE_SERVFAIL, "error", j->pd.rule, "resolver_error");
    } else if (rc == 1) {
        answer_result(j, &hit, true, -1);
        dns_result_clear(&hit);
    }
    /* rc == 0: lookup_done answers */
}

static void handle_query(struct dns_conn *dc, const uint8_t *p, size_t n)
{
    struct tlv_iter it;
    tlv_iter_init(&it, p, n);
    uint16_t tag;
    const uint8_t *v;
    size_t len;
    uint32_t qtag = 0, proto = 1, pid = 0;
    bool have_tag = false;
    const uint8_t *pkt = NULL;
    size_t pkt_len = 0;
    char comm[65] = "";
    while (tlv_next(&it, &tag, &v, &len) == 1) {
        if (tag == T_TAG)
            have_tag = tlv_as_u32(v, len, &qtag) == 0;
        else if (tag == T_PROTO_L4)
            tlv_as_u32(v, len, &proto);
        else if (tag == T_PID)
            tlv_as_u32(v, len, &pid);
        else if (tag == T_COMM)
            snprintf(comm, sizeof(comm), "%.*s", (int)MIN(len, 64u), v);
        else if (tag == T_PAYLOAD)
            pkt = v, pkt_len = len;
    }
    if (!have_tag) {
        log_warn("dns: query without a tag ignored");
        return;
    }
    for (char *c = comm; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            *c = '?';
    if (dc->njobs >= DNS_MAX_JOBS) {
        send_rec(dc, DNS_DROP, qtag, NULL, 0);
        return;
    }
    struct dns_job *j = calloc(1, sizeof(*j));
    if (!j) {
        send_rec(dc, DNS_DROP, qtag, NULL, 0);
        return;
    }
    j->conn = dc;
    j->tag = qtag;
    j->tcp = proto == 2;
    j->pid = pid < (1u << 22) ? pid : 0;
    str_copy(j->comm, sizeof(j->comm), comm);
    j->started_ms = time_real_ms();
    j->next = dc->jobs;
    if (dc->jobs)
        dc->jobs->prev = j;
    dc->jobs = j;
    dc->njobs++;
    run_query(j, pkt ? pkt : (const uint8_t *)"", pkt ? pkt_len : 0);
}

/* ---------- the stream ---------- */

static void conn_free(struct dns_conn *dc)
{
    while (dc->jobs)
        job_free(dc->jobs);
    if (dc->s) {
        mux_stream_set_user(dc->s, NULL);
        mux_stream_release(dc->s);
    }
    rec_reader_free(&dc->rr);
    if (dc->vp->net && dc->vp->net->dns_conn == dc)
        dc->vp->net->dns_conn = NULL;
    free(dc);
}

static void dc_on_data(void *h, const uint8_t *d, size_t len)
{
    struct dns_conn *dc = h;
    if (rec_reader_feed(&dc->rr, d, len) < 0) {
        log_warn("dns: oversized record from the guest: stream reset");
        mux_stream_reset(dc->s, MUX_RST_PROTOCOL);
        conn_free(dc);
        return;
    }
    mux_stream_consumed(dc->s, len);
    uint16_t type;
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = rec_reader_next(&dc->rr, &type, &p, &n)) == 1) {
        if (type == DNS_QUERY)
            handle_query(dc, p, n);
        else
            log_warn("dns: unknown record %u ignored", type);
    }
    if (rc < 0) {
        log_warn("dns: malformed record from the guest: stream reset");
        mux_stream_reset(dc->s, MUX_RST_PROTOCOL);
        conn_free(dc);
    }
}

static void dc_on_fin(void *h)
{
    struct dns_conn *dc = h;
    mux_stream_close_write(dc->s);
    conn_free(dc);
}

static void dc_on_reset(void *h, uint32_t reason)
{
    struct dns_conn *dc = h;
    log_warn("dns: stream reset by the guest (%s)", mux_reset_reason_name(reason));
    conn_free(dc);
}

static const struct hstream_ops dns_ops = {
    .on_data = dc_on_data,
    .on_fin = dc_on_fin,
    .on_reset = dc_on_reset,
};

int vp_dns_open(struct vmproc *vp, struct mux_stream *s, const uint8_t *meta, size_t len)
{
    if (!vp->net || !vp->net->dns)
        return MUX_RST_REFUSED;
    if (vp->net->dns_conn) {
        /* A restarted relay: the new stream replaces the old one. */
        struct dns_conn *old = vp->net->dns_conn;
        mux_stream_reset(old->s, MUX_RST_CANCEL);
        conn_free(old);
    }
    struct dns_conn *dc = calloc(1, sizeof(*dc));
    if (!dc)
        return MUX_RST_REFUSED;
    dc->hs.ops = &dns_ops;
    dc->vp = vp;
    dc->s = s;
    rec_reader_init(&dc->rr, DNS_REC_MAX);
    mux_stream_set_user(s, &dc->hs);
    mux_stream_set_priority(s, true);
    vp->net->dns_conn = dc;
    return 0;
}

/* ---------- setup ---------- */

int vp_dns_init(struct vmproc *vp, const struct policy_settings *st, struct err **errp)
{
    struct dns_vm_config cfg;
    dns_vm_config_default(&cfg);
    const char *items[DNS_MAX_UPSTREAMS];
    char bufs[DNS_MAX_UPSTREAMS][32];
    size_t n = 0;
    for (size_t i = 0; i < st->n_upstreams && n < DNS_MAX_UPSTREAMS; i++) {
        if (st->upstreams[i].system) {
            items[n++] = "system";
        } else {
            char ip[16];
            dns_ipv4_format(st->upstreams[i].ip, ip, sizeof(ip));
            snprintf(bufs[n], sizeof(bufs[n]), "%s:%u", ip, st->upstreams[i].port);
            items[n] = bufs[n];
            n++;
        }
    }
    struct err *e = NULL;
    if (dns_upstreams_configure(&cfg.resolver, items, n, NULL, &e) < 0) {
        /* An air-gapped host: names resolve only through overrides. */
        log_warn("dns: no upstream resolver (%s): allowed names get SERVFAIL", err_msg(e));
        err_free(e);
        cfg.resolver.n_servers = 0;
    }
    const struct policy_exfil *x = &st->exfil;
    cfg.exfil.max_label = (unsigned)x->max_label;
    cfg.exfil.max_name = (unsigned)x->max_name;
    cfg.exfil.max_sub_labels = (unsigned)x->max_sub_labels;
    cfg.exfil.entropy_min_len = (unsigned)x->entropy_min_len;
    cfg.exfil.entropy_bits = x->entropy_bits;
    cfg.exfil.suspicious_burst = (unsigned)x->suspicious_burst;
    cfg.exfil.suspicious_per_min = (double)x->suspicious_per_min;
    cfg.exfil.unique_subdomains_per_10min = (unsigned)x->unique_subdomains_per_10min;
    vp->net->dns = dns_vm_new(vp->base, &cfg, errp);
    return vp->net->dns ? 0 : -1;
}

void vp_dns_detach(struct vmproc *vp)
{
    if (vp->net->dns_conn)
        conn_free(vp->net->dns_conn);
}

void vp_dns_free(struct vmproc *vp)
{
    vp_dns_detach(vp);
    dns_vm_free(vp->net->dns);
    vp->net->dns = NULL;
}
