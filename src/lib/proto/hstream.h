/* Host-side stream handlers: a mux stream's user pointer points at a struct
 * whose first member is struct hstream, and capsem-process dispatches the
 * mux callbacks to its ops. Lets modules (exec, files, terminal, proxy, DNS)
 * own streams without knowing each other. */
#ifndef CAPSEM_HSTREAM_H
#define CAPSEM_HSTREAM_H

#include <stddef.h>
#include <stdint.h>

struct hstream_ops {
    void (*on_data)(void *h, const uint8_t *data, size_t len);
    void (*on_fin)(void *h);
    void (*on_reset)(void *h, uint32_t reason);
    void (*on_writable)(void *h);
};

struct hstream {
    const struct hstream_ops *ops;
};

#endif
