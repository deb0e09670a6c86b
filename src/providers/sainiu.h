/*
 * sainiu: the one piece of the SaiNiu provider module exported besides `provider_sainiu`
 * (provider.h): the HttpSign, so tests can check it against a known answer.
 */
#ifndef HERALD_SAINIU_H
#define HERALD_SAINIU_H

/*
 * The framework's HttpSign (providers.md §1.3): lowercase hex MD5 of key + post + data + time,
 * concatenated as they are, into out (33 bytes). 0 / -1.
 */
int sainiu_sign(const char *key, const char *post, const char *data, const char *stamp,
                char out[33]);

#endif
