/* capsem-process: runs one VM. Started by capsem-service with the path of
 * the VM's vm.json; see src/lib/vmm/vmproc.c. */
#include <stdio.h>
#include <string.h>

#include "vmm/vmproc.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: capsem-process --config VM_DIR/vm.json\n"
                 "Runs one Capsem VM (QEMU + guest channel). Started by capsem-service;\n"
                 "not meant to be run by hand.\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("capsem-process %s\n", CAPSEM_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    return vmproc_run(config);
}
