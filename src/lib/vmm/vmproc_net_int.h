/* Internals of the air gap in capsem-process, shared by vmproc_net.c (policy,
 * TLS, proxy hooks, guest network configuration) and vmproc_dns.c (the DNS
 * service and host-side name resolution for the proxy's dials). */
#ifndef CAPSEM_VMPROC_NET_INT_H
#define CAPSEM_VMPROC_NET_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "creds/creds.h"
#include "dns/dnsnorm.h"
#include "policy/policy.h"
#include "proto/rec.h"
#include "vmm/vmproc.h"

struct ca;
struct leaf_cache;
struct tlsctx;
struct dns_vm;
struct creds;
struct net_hold;
struct dns_conn;

/* Synthetic answers for names an upstream override redirects (tests point a
 * public name at a local server): TEST-NET-1, never dialled. */
#define NET_SYNTH_BASE 0xC0000200u /* 192.0.2.0 */
#define NET_SYNTH_FIRST 10u
/* network.md 2.8: this name answers 10.0.0.2 in the guest; the proxy dials
 * the host's 127.0.0.1 for it. */
#define NET_HOST_ALIAS "host.capsem.internal"
#define NET_HOST_ALIAS_ADDR 0x0A000002u /* 10.0.0.2 */

struct vp_net {
    struct policy_store *store;
    struct event *watch_ev;
    struct ca *ca;
    struct leaf_cache *leaves;
    struct tlsctx *tls;
    struct dns_vm *dns;
    struct creds *creds;
    char *ca_pem;
    size_t ca_pem_len;
    char policy_profile[64];
    struct net_hold *holds; /* requests whose decision is pending */
    struct dns_conn *dns_conn; /* the guest's DNS stream (one per VM) */
    bool configured;           /* the guest answered CTL_NET_OK */
    uint16_t sent_ports[POLICY_MAX_HTTP_PORTS];
    size_t n_sent_ports;
    char pin_name[DNS_NAME_BUF]; /* name_for_ip's answer */
    /* credentials (vmproc_creds.c) */
    int64_t creds_stamp;          /* credentials.toml mtime+size when read */
    struct creds_vm placeholders; /* this VM's, exported at boot */
    uint8_t hmac_key[32];         /* telemetry hashes of header values */
    bool have_hmac;
    unsigned active_scans;        /* request bodies being scanned (borrow creds) */
};

/* The current policy snapshot (a reference the caller drops). */
struct policy *vp_net_policy(struct vmproc *vp);
/* Fills the vm.* and process.* fields of a policy request. */
void vp_net_fill_identity(struct vmproc *vp, struct policy_request *r, const char *comm,
                          const char *exe, uint32_t pid);
/* The index of the upstream override for (host, port), or -1. port 0 matches
 * any port (DNS). */
int vp_net_override_index(const struct policy_settings *st, const char *host, uint16_t port);
/* Resends CTL_NET_CONFIG when the policy's http_ports changed. */
void vp_net_policy_changed(struct vmproc *vp);

/* vmproc_creds.c */
struct proxy_request;
struct proxy_decision;
int vp_creds_init(struct vmproc *vp, struct err **errp);
void vp_creds_free(struct vmproc *vp);
/* T_ENV entries for the placeholders of providers with a host-held secret. */
void vp_creds_boot_env(struct vmproc *vp, struct buf *b);
/* Section 10 on one request: 0 (d may now carry substitutions), 1 (d is a
 * 403 block), -1 (out of memory: the caller's block stands). */
int vp_creds_check(struct vmproc *vp, const struct proxy_request *r, struct proxy_decision *d);
/* The body-vetting hooks (vet_start/vet/vet_end). */
struct proxy_hooks;
void vp_creds_hooks(struct proxy_hooks *h);
/* A header value for telemetry; -1 when no telemetry key is available. */
int vp_creds_redact(struct vmproc *vp, const char *name, const char *value, char *out, size_t cap);

/* vmproc_dns.c */
int vp_dns_init(struct vmproc *vp, const struct policy_settings *st, struct err **errp);
void vp_dns_free(struct vmproc *vp);
/* Drops the guest's DNS stream (before the channel goes away). */
void vp_dns_detach(struct vmproc *vp);

/* vmproc_preview.c: body previews (network.md sections 10, 11) */
#define VP_PREVIEW_MAX (1u << 20) /* body_preview_bytes' ceiling */
/* A Content-Type whose body is previewed: text/..., application/json, xml,
 * x-www-form-urlencoded, ...+json, ...+xml (parameters ignored). */
bool vp_preview_textual(const char *content_type);
/* No Content-Encoding, an empty one, or identity. */
bool vp_preview_identity(const char *content_encoding);
/* Installs the observer hooks: the AI interpreters (vp_ai_hooks) and the
 * body previews, each on the requests it wants. */
void vp_observers_hooks(struct vmproc *vp, struct proxy_hooks *h);

#endif
