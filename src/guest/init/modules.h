/* Kernel module loading for capsem-init. */
#ifndef CAPSEM_INIT_MODULES_H
#define CAPSEM_INIT_MODULES_H

#include <stdbool.h>

#include "base/err.h"

/* Loads the modules named in DIR/load-order (one file name per line, every
 * module after its dependencies) with finit_module(2); a module that is
 * already loaded is fine. When DIR/modules.dep exists ("a.ko: b.ko c.ko" per
 * line, names from load-order), modules load on `workers` threads in
 * parallel, each as soon as its dependencies are in; otherwise in order.
 * `trace` (may be NULL) is called after each module, from any thread. */
int modules_load(const char *dir, int workers, void (*trace)(const char *name), struct err **errp);

#endif
