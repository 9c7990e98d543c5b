/* Everything capsem-process needs to run one VM. The service writes it as
 * vm.json in the VM directory; capsem-process reads it at start. */
#ifndef CAPSEM_VMCONFIG_H
#define CAPSEM_VMCONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Hosts in each host list of vm.json (apt_hosts, npm_hosts); more is refused. */
#define VM_CONFIG_MAX_HOSTS 64

struct vm_config {
    char *id;
    char *name;
    char *profile;
    bool persistent;
    uint32_t cpus;
    uint32_t ram_mb;
    char *kernel;
    char *initrd;
    char *rootfs;
    char *vm_dir;
    char *instance_sock; /* real path (may be shortened when bound) */
    char *ws_sock;
    char *ready_path;
    char *template_dir;
    uint64_t disk_bytes;      /* overlay.img size */
    uint64_t workspace_bytes; /* workspace.img size */
    char *accel;              /* "kvm" or "tcg" */
    char *qemu_binary;
    uint32_t tsc_khz;         /* 0 = let the guest calibrate */
    uint32_t boot_timeout_secs;
    uint32_t shutdown_grace_secs;
    uint64_t max_output_bytes;
    uint32_t max_concurrent_execs;
    uint64_t files_max_bytes;
    char *restore_from; /* checkpoint to restore (Suspended VMs), or NULL */
    bool restore_keep;  /* the checkpoint is a shared boot template: read, never move */
    char *home;        /* $CAPSEM_HOME: policy.toml, profiles/, ca/, credentials */
    char *share_dir;   /* bundled data: profiles/<name>.toml, prices.json */
    char *corp_config; /* the corp file, "" for none */
    char **env; /* "K=V", NULL-terminated */
    size_t nenv;
    /* The network policy's host lists (docs/policy.md "Host lists"): the
     * rootfs's apt hosts from the image manifest (@debian) and the npm
     * registry host recorded by `capsem setup` (@npm). Each 0..64 host
     * names, NULL-terminated when loaded; empty when absent from vm.json. */
    char **apt_hosts;
    size_t napt_hosts;
    char **npm_hosts;
    size_t nnpm_hosts;
};

int vm_config_load(const char *path, struct vm_config *c, struct err **errp);
int vm_config_from_json(json_t *j, struct vm_config *c, struct err **errp);
json_t *vm_config_to_json(const struct vm_config *c);
void vm_config_free(struct vm_config *c);

#endif
