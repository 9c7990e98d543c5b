/* capsem: the Capsem command-line client. All logic is in cli.c and the
 * cmd_*.c files; see docs/cli.md. */
#include "cli.h"

int main(int argc, char **argv)
{
    return capsem_main(argc, argv);
}
