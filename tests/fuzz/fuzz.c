/* fuzz.c: the scratch directory and checks the harnesses share (see fuzz.h). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char dir[4096];

/* Harnesses write files straight into the directory, never subdirectories. */
static void
remove_dir(void)
{
	char path[sizeof dir + 256];
	struct dirent *e;
	DIR *d;

	if (!dir[0] || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

const char *
fuzz_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0])
		return dir;
	if (!tmp || !tmp[0])
		tmp = "/tmp";
	snprintf(dir, sizeof dir, "%s/herald-fuzz.XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "fuzz: cannot make a directory under %s: %s\n", tmp, strerror(errno));
		abort();
	}
	atexit(remove_dir);
	return dir;
}

const char *
fuzz_write(const char *name, const void *data, size_t size)
{
	static char path[4200];
	const char *p = data;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		fuzz_fail(__FILE__, __LINE__, "cannot write the input file");
	while (size > 0) {
		n = write(fd, p, size);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			fuzz_fail(__FILE__, __LINE__, "cannot write the input file");
		p += n;
		size -= (size_t)n;
	}
	close(fd);
	return path;
}

char *
fuzz_str(const void *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}
