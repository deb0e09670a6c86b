/*
 * bench-raw-http: the dispatch benchmark's limit. It posts prepared requests to the mock
 * provider through libcurl's multi interface, keeping CONCURRENCY of them in flight and
 * reusing each connection, and records nothing: no claims, no rendering, no judging, no
 * database. What it cannot go faster than, Herald cannot either.
 *
 *   bench-raw-http CONCURRENCY FILE
 *   bench-raw-http --version        (prints the libcurl it runs on)
 *
 * FILE holds one request per line: URL, then zero or more header lines, then the body,
 * separated by tabs (a JSON body has no raw tab). It is read as the requests go, so memory
 * does not grow with its length. Prints "requests N http_200 M" and exits 0 when every
 * request got an HTTP answer, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define MAX_HEADERS 8

struct slot {
	CURL *easy;
	struct curl_slist *headers;
	char *line;                   /* the request's line; URL, headers and body point into it */
	size_t cap;
};

struct client {
	CURLM *multi;
	FILE *in;
	long requests, ok, failed;
	long active;                  /* transfers added and not yet done */
	int eof;
};

/* Answers are read and dropped: the limit judges nothing. */
static size_t
discard(char *data, size_t size, size_t nmemb, void *arg)
{
	(void)data;
	(void)arg;
	return size * nmemb;
}

/* Loads the next line into s and adds its transfer; 0, or -1 at end of input or on error. */
static int
slot_start(struct client *c, struct slot *s)
{
	char *f[MAX_HEADERS + 2], *p;
	ssize_t len;
	int n = 0, i;

	if (c->eof || (len = getline(&s->line, &s->cap, c->in)) <= 0) {
		c->eof = 1;
		return -1;
	}
	if (s->line[len - 1] == '\n')
		s->line[len - 1] = '\0';
	for (p = s->line; n < MAX_HEADERS + 2; ) {
		f[n++] = p;
		if (!(p = strchr(p, '\t')))
			break;
		*p++ = '\0';
	}
	if (n < 2) {
		fprintf(stderr, "bench-raw-http: a line needs a URL and a body\n");
		c->eof = 1;
		return -1;
	}
	curl_slist_free_all(s->headers);
	s->headers = NULL;
	for (i = 1; i < n - 1; i++)
		s->headers = curl_slist_append(s->headers, f[i]);
	s->headers = curl_slist_append(s->headers, "Expect:");
	curl_easy_setopt(s->easy, CURLOPT_URL, f[0]);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, f[n - 1]);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(f[n - 1]));
	if (curl_multi_add_handle(c->multi, s->easy) != CURLM_OK) {
		c->eof = 1;
		return -1;
	}
	c->requests++;
	c->active++;
	return 0;
}

static void
slot_done(struct client *c, CURLMsg *m)
{
	struct slot *s = NULL;
	long status = 0;

	curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
	curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
	if (m->data.result == CURLE_OK && status == 200)
		c->ok++;
	else
		c->failed++;
	curl_multi_remove_handle(c->multi, m->easy_handle);
	c->active--;
	slot_start(c, s);
}

int
main(int argc, char **argv)
{
	struct client c = {0};
	struct slot *slots = NULL;
	long concurrency;
	int i, running, left, rc = 1;
	CURLMsg *m;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%s\n", curl_version());
		return 0;
	}
	if (argc != 3 || (concurrency = strtol(argv[1], NULL, 10)) < 1 || concurrency > 4096) {
		fprintf(stderr, "usage: bench-raw-http CONCURRENCY FILE\n");
		return 64;
	}
	if (!(c.in = fopen(argv[2], "r"))) {
		perror(argv[2]);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!(c.multi = curl_multi_init()) || !(slots = calloc((size_t)concurrency, sizeof *slots)))
		goto out;
	curl_multi_setopt(c.multi, CURLMOPT_MAXCONNECTS, concurrency);
	for (i = 0; i < concurrency; i++) {
		struct slot *s = &slots[i];

		if (!(s->easy = curl_easy_init()))
			goto out;
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, 30000L);
		slot_start(&c, s);
	}
	while (c.active > 0) {
		if (curl_multi_perform(c.multi, &running) != CURLM_OK)
			goto out;
		while ((m = curl_multi_info_read(c.multi, &left)))
			if (m->msg == CURLMSG_DONE)
				slot_done(&c, m);
		if (c.active > 0 && curl_multi_poll(c.multi, NULL, 0, 1000, NULL) != CURLM_OK)
			goto out;
	}
	printf("requests %ld http_200 %ld\n", c.requests, c.ok);
	rc = c.failed ? 1 : 0;
out:
	for (i = 0; slots && i < concurrency; i++) {
		curl_multi_remove_handle(c.multi, slots[i].easy);
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].headers);
		free(slots[i].line);
	}
	free(slots);
	curl_multi_cleanup(c.multi);
	curl_global_cleanup();
	fclose(c.in);
	return rc;
}
