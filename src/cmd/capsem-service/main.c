/* capsem-service: the Capsem daemon. See src/lib/service/svc_main.c. */
#include "service/service.h"

int main(int argc, char **argv)
{
    return svc_main(argc, argv);
}
