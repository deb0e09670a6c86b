/* herald: a scheduled campaign engine. main is argv in, exit status out; cli.c does the rest. */
#include <signal.h>

#include "cli.h"

int
main(int argc, char **argv)
{
	/* libcurl runs with NOSIGNAL; a peer closing a socket must not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	return cli_main(argc, argv);
}
