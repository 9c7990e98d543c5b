#include "vm/vmconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define VM_CONFIG_MAX (1024u * 1024u)

static int get_str(json_t *j, const char *key, bool required, char **out, struct err **errp)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) {
        if (required)
            return err_status(errp, 400, "vm config: missing %s", key);
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return err_status(errp, 400, "vm config: %s must be a string", key);
    *out = strdup(json_string_value(v));
    return *out ? 0 : err_set(errp, ENOMEM, "out of memory");
}

static int get_u64(json_t *j, const char *key, uint64_t def, uint64_t *out, struct err **errp)
{
    json_t *v = json_object_get(j, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return err_status(errp, 400, "vm config: %s must be a non-negative integer", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_u32(json_t *j, const char *key, uint32_t def, uint32_t *out, struct err **errp)
{
    uint64_t v;
    if (get_u64(j, key, def, &v, errp) < 0)
        return -1;
    if (v > UINT32_MAX)
        return err_status(errp, 400, "vm config: %s out of range", key);
    *out = (uint32_t)v;
    return 0;
}

static int get_env(json_t *j, struct vm_config *c, struct err **errp)
{
    json_t *arr = json_object_get(j, "env");
    size_t n = arr ? json_array_size(arr) : 0;
    if (arr && !json_is_array(arr))
        return err_status(errp, 400, "vm config: env must be an array");
    c->env = calloc(n + 1, sizeof(char *));
    if (!c->env)
        return err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || !strchr(json_string_value(v), '='))
            return err_status(errp, 400, "vm config: env entries must be K=V strings");
        c->env[i] = strdup(json_string_value(v));
        if (!c->env[i])
            return err_set(errp, ENOMEM, "out of memory");
        c->nenv = i + 1;
    }
    return 0;
}

/* An optional array of at most VM_CONFIG_MAX_HOSTS non-empty strings of at
 * most 253 bytes (the policy loader checks the names themselves). */
static int get_hosts(json_t *j, const char *key, char ***out, size_t *nout, struct err **errp)
{
    json_t *arr = json_object_get(j, key);
    size_t n = arr ? json_array_size(arr) : 0;
    if (arr && !json_is_array(arr))
        return err_status(errp, 400, "vm config: %s must be an array", key);
    if (n > VM_CONFIG_MAX_HOSTS)
        return err_status(errp, 400, "vm config: %s holds %zu hosts (at most %d)", key, n,
                          VM_CONFIG_MAX_HOSTS);
    *out = calloc(n + 1, sizeof(char *));
    if (!*out)
        return err_set(errp, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *h = json_string_value(json_array_get(arr, i));
        if (!h || !*h || strlen(h) > 253)
            return err_status(errp, 400, "vm config: %s entries must be host names", key);
        (*out)[i] = strdup(h);
        if (!(*out)[i])
            return err_set(errp, ENOMEM, "out of memory");
        *nout = i + 1;
    }
    return 0;
}

static json_t *hosts_to_json(char *const *hosts, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_string(hosts[i]));
    return arr;
}

static void free_hosts(char ***hosts, size_t *n)
{
    for (size_t i = 0; *hosts && i < *n; i++)
        free((*hosts)[i]);
    free(*hosts);
    *hosts = NULL;
    *n = 0;
}

int vm_config_from_json(json_t *j, struct vm_config *c, struct err **errp)
{
    memset(c, 0, sizeof(*c));
    json_t *p = json_object_get(j, "persistent");
    c->persistent = p && json_is_true(p);
    c->restore_keep = json_is_true(json_object_get(j, "restore_keep"));
    if (get_str(j, "id", true, &c->id, errp) < 0 || get_str(j, "name", true, &c->name, errp) < 0 ||
        get_str(j, "profile", true, &c->profile, errp) < 0 ||
        get_str(j, "kernel", true, &c->kernel, errp) < 0 ||
        get_str(j, "initrd", true, &c->initrd, errp) < 0 ||
        get_str(j, "rootfs", true, &c->rootfs, errp) < 0 ||
        get_str(j, "vm_dir", true, &c->vm_dir, errp) < 0 ||
        get_str(j, "instance_sock", true, &c->instance_sock, errp) < 0 ||
        get_str(j, "ws_sock", true, &c->ws_sock, errp) < 0 ||
        get_str(j, "ready_path", true, &c->ready_path, errp) < 0 ||
        get_str(j, "template_dir", true, &c->template_dir, errp) < 0 ||
        get_str(j, "accel", true, &c->accel, errp) < 0 ||
        get_str(j, "qemu_binary", true, &c->qemu_binary, errp) < 0 ||
        get_str(j, "restore_from", false, &c->restore_from, errp) < 0 ||
        get_str(j, "home", false, &c->home, errp) < 0 ||
        get_str(j, "share_dir", false, &c->share_dir, errp) < 0 ||
        get_str(j, "corp_config", false, &c->corp_config, errp) < 0 ||
        get_u32(j, "cpus", 2, &c->cpus, errp) < 0 || get_u32(j, "ram_mb", 2048, &c->ram_mb, errp) < 0 ||
        get_u64(j, "disk_bytes", 16ull << 30, &c->disk_bytes, errp) < 0 ||
        get_u64(j, "workspace_bytes", 16ull << 30, &c->workspace_bytes, errp) < 0 ||
        get_u32(j, "tsc_khz", 0, &c->tsc_khz, errp) < 0 ||
        get_u32(j, "boot_timeout_secs", 60, &c->boot_timeout_secs, errp) < 0 ||
        get_u32(j, "shutdown_grace_secs", 10, &c->shutdown_grace_secs, errp) < 0 ||
        get_u64(j, "max_output_bytes", 10u << 20, &c->max_output_bytes, errp) < 0 ||
        get_u32(j, "max_concurrent_execs", 32, &c->max_concurrent_execs, errp) < 0 ||
        get_u64(j, "files_max_bytes", 10u << 20, &c->files_max_bytes, errp) < 0 ||
        get_env(j, c, errp) < 0 ||
        get_hosts(j, "apt_hosts", &c->apt_hosts, &c->napt_hosts, errp) < 0 ||
        get_hosts(j, "npm_hosts", &c->npm_hosts, &c->nnpm_hosts, errp) < 0) {
        vm_config_free(c);
        return -1;
    }
    if (strcmp(c->accel, "kvm") != 0 && strcmp(c->accel, "tcg") != 0) {
        vm_config_free(c);
        return err_status(errp, 400, "vm config: accel must be kvm or tcg");
    }
    return 0;
}

int vm_config_load(const char *path, struct vm_config *c, struct err **errp)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (file_read_all(path, VM_CONFIG_MAX, &text, &len, errp) < 0)
        return -1;
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return err_status(errp, 400, "%s:%d: %s", path, jerr.line, jerr.text);
    }
    int rc = vm_config_from_json(j, c, errp);
    json_decref(j);
    return rc;
}

json_t *vm_config_to_json(const struct vm_config *c)
{
    json_t *env = json_array();
    for (size_t i = 0; i < c->nenv; i++)
        json_array_append_new(env, json_string(c->env[i]));
    json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
                     " s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
                     "id", c->id, "name", c->name, "profile", c->profile, "persistent",
                     c->persistent, "cpus", (json_int_t)c->cpus, "ram_mb", (json_int_t)c->ram_mb,
                     "kernel", c->kernel, "initrd", c->initrd, "rootfs", c->rootfs, "vm_dir",
                     c->vm_dir, "instance_sock", c->instance_sock, "ws_sock", c->ws_sock,
                     "ready_path", c->ready_path, "template_dir", c->template_dir, "disk_bytes",
                     (json_int_t)c->disk_bytes, "workspace_bytes", (json_int_t)c->workspace_bytes,
                     "accel", c->accel, "qemu_binary", c->qemu_binary, "tsc_khz",
                     (json_int_t)c->tsc_khz, "boot_timeout_secs", (json_int_t)c->boot_timeout_secs,
                     "shutdown_grace_secs", (json_int_t)c->shutdown_grace_secs,
                     "max_output_bytes", (json_int_t)c->max_output_bytes, "max_concurrent_execs",
                     (json_int_t)c->max_concurrent_execs, "files_max_bytes",
                     (json_int_t)c->files_max_bytes, "env", env);
    const char *extra[][2] = {{"home", c->home}, {"share_dir", c->share_dir},
                              {"corp_config", c->corp_config}};
    for (size_t i = 0; i < ARRAY_SIZE(extra); i++)
        if (extra[i][1])
            json_object_set_new(j, extra[i][0], json_string(extra[i][1]));
    json_object_set_new(j, "apt_hosts", hosts_to_json(c->apt_hosts, c->napt_hosts));
    json_object_set_new(j, "npm_hosts", hosts_to_json(c->npm_hosts, c->nnpm_hosts));
    if (c->restore_from) {
        json_object_set_new(j, "restore_from", json_string(c->restore_from));
        json_object_set_new(j, "restore_keep", json_boolean(c->restore_keep));
    }
    return j;
}

void vm_config_free(struct vm_config *c)
{
    char **strs[] = {&c->id,       &c->name,          &c->profile,    &c->kernel,
                     &c->initrd,   &c->rootfs,        &c->vm_dir,     &c->instance_sock,
                     &c->ws_sock,  &c->ready_path,    &c->template_dir, &c->accel,
                     &c->qemu_binary, &c->restore_from, &c->home, &c->share_dir,
                     &c->corp_config};
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    if (c->env) {
        for (size_t i = 0; i < c->nenv; i++)
            free(c->env[i]);
        free(c->env);
    }
    c->env = NULL;
    c->nenv = 0;
    free_hosts(&c->apt_hosts, &c->napt_hosts);
    free_hosts(&c->npm_hosts, &c->nnpm_hosts);
}
