/* herald: a scheduled campaign engine. main is argv in, exit status out; cli.c does the rest. */
#include <malloc.h>
#include <signal.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"

int
main(int argc, char **argv)
{
	/* libcurl runs with NOSIGNAL; a peer closing a socket must not kill the process. */
	signal(SIGPIPE, SIG_IGN);
#ifdef __linux__
	/*
	 * The process holds channel secrets (and Tencent SecretKeys) in memory: no core dump of it
	 * may land on disk, and other processes of the same user may not ptrace it.
	 */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
#ifdef M_TRIM_THRESHOLD
	/*
	 * SQLite opens a statement journal with a 64 KiB buffer for most writes and frees it when
	 * the statement ends. At glibc's default trim threshold that memory went back to the
	 * kernel and was faulted in again for every row, which made a million-row import three
	 * times slower (most of it system time). Keeping up to 1 MiB of free heap stops that.
	 */
	mallopt(M_TRIM_THRESHOLD, 1 << 20);
#endif
	return cli_main(argc, argv);
}
