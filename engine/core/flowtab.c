// SPDX-License-Identifier: MIT
/* Shard flow table (see flowtab.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "flowtab.h"

void flow_key_from_sockaddr(struct flow_key *k, uint32_t fwd_id, const struct sockaddr *sa)
{
	memset(k, 0, sizeof(*k));
	k->fwd_id = fwd_id;
	k->family = sa->sa_family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		k->port = s4->sin_port;
		memcpy(k->addr, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		k->port = s6->sin6_port;
		memcpy(k->addr, &s6->sin6_addr, 16);
	}
}

uint64_t flow_key_hash(const struct flow_key *k)
{
	uint64_t h = XXH3_64bits(k, sizeof(*k));

	return h ? h : 1;
}

int flowtab_init(struct flowtab *t, uint32_t cap_hint)
{
	uint32_t cap = 16;

	memset(t, 0, sizeof(*t));
	while (cap < cap_hint * 2 && cap < (1u << 30)) {
		cap <<= 1;
	}
	t->e = calloc(cap, sizeof(*t->e));
	if (!t->e) {
		return -ENOMEM;
	}
	t->cap = cap;
	return 0;
}

void flowtab_cleanup(struct flowtab *t)
{
	free(t->e);
	t->e = NULL;
	t->cap = 0;
	t->n = 0;
}

/* flowtab_find - index of @k (found) or of the empty entry where it would go. */
static uint32_t flowtab_find(const struct flowtab *t, const struct flow_key *k, uint64_t h,
			     bool *found)
{
	uint32_t mask = t->cap - 1, i = (uint32_t)h & mask;

	for (;;) {
		const struct flowtab_entry *e = &t->e[i];

		if (!e->hash) {
			*found = false;
			return i;
		}
		if (e->hash == h && !memcmp(&e->key, k, sizeof(*k))) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

/* flowtab_grow - double the capacity, rehashing every entry. */
static int flowtab_grow(struct flowtab *t)
{
	struct flowtab nt = { 0 };

	nt.cap = t->cap * 2;
	nt.e = calloc(nt.cap, sizeof(*nt.e));
	if (!nt.e) {
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < t->cap; i++) {
		bool found;

		if (t->e[i].hash) {
			nt.e[flowtab_find(&nt, &t->e[i].key, t->e[i].hash, &found)] = t->e[i];
		}
	}
	nt.n = t->n;
	free(t->e);
	*t = nt;
	return 0;
}

int flowtab_insert(struct flowtab *t, const struct flow_key *k, uint32_t slot)
{
	uint64_t h = flow_key_hash(k);
	bool found;
	uint32_t i;

	if ((t->n + 1) * 2 > t->cap) {
		int ret = flowtab_grow(t);

		if (ret) {
			return ret;
		}
	}
	i = flowtab_find(t, k, h, &found);
	if (found) {
		return -EEXIST;
	}
	t->e[i].hash = h;
	t->e[i].key = *k;
	t->e[i].slot = slot;
	t->n++;
	return 0;
}

bool flowtab_lookup(const struct flowtab *t, const struct flow_key *k, uint32_t *slot)
{
	bool found;
	uint32_t i;

	if (!t->cap) {
		return false;
	}
	i = flowtab_find(t, k, flow_key_hash(k), &found);
	if (found) {
		*slot = t->e[i].slot;
	}
	return found;
}

int flowtab_remove(struct flowtab *t, const struct flow_key *k)
{
	uint32_t mask = t->cap - 1, i, j;
	bool found;

	if (!t->cap) {
		return -ENOENT;
	}
	i = flowtab_find(t, k, flow_key_hash(k), &found);
	if (!found) {
		return -ENOENT;
	}
	/* Backward shift: move later entries of the probe run into the hole. */
	j = i;
	for (;;) {
		uint32_t home;

		j = (j + 1) & mask;
		if (!t->e[j].hash) {
			break;
		}
		home = (uint32_t)t->e[j].hash & mask;
		/* Entry at j may move to i only if its home is not in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->e[i] = t->e[j];
			i = j;
		}
	}
	memset(&t->e[i], 0, sizeof(t->e[i]));
	t->n--;
	return 0;
}
