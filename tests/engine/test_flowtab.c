// SPDX-License-Identifier: MIT
/* Flow table: insert/lookup/remove, growth, and deletion keeping probe runs intact. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>

#include "core/flowtab.h"

static struct flow_key key4(uint32_t fwd, uint32_t addr, uint16_t port)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct flow_key k;

	s.sin_addr.s_addr = htonl(addr);
	flow_key_from_sockaddr(&k, fwd, (struct sockaddr *)&s);
	return k;
}

Test(flowtab, insert_lookup_remove, .timeout = 5)
{
	struct flowtab t;
	struct flow_key k = key4(1, 0x7f000001, 5000);
	uint32_t slot = 0;

	cr_assert_eq(flowtab_init(&t, 4), 0);
	cr_assert_not(flowtab_lookup(&t, &k, &slot));
	cr_assert_eq(flowtab_insert(&t, &k, 42), 0);
	cr_assert_eq(flowtab_insert(&t, &k, 43), -EEXIST);
	cr_assert(flowtab_lookup(&t, &k, &slot));
	cr_assert_eq(slot, 42);
	cr_assert_eq(flowtab_remove(&t, &k), 0);
	cr_assert_eq(flowtab_remove(&t, &k), -ENOENT);
	cr_assert_not(flowtab_lookup(&t, &k, &slot));
	flowtab_cleanup(&t);
	flowtab_cleanup(&t);
}

Test(flowtab, key_covers_forward_family_address_port, .timeout = 5)
{
	struct flow_key a = key4(1, 0x0a000001, 80), b = key4(2, 0x0a000001, 80);
	struct flow_key c = key4(1, 0x0a000002, 80), d = key4(1, 0x0a000001, 81);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
	struct flow_key e;

	flow_key_from_sockaddr(&e, 1, (struct sockaddr *)&s6);
	cr_assert_neq(flow_key_hash(&a), flow_key_hash(&b));
	cr_assert_neq(flow_key_hash(&a), flow_key_hash(&c));
	cr_assert_neq(flow_key_hash(&a), flow_key_hash(&d));
	cr_assert_neq(flow_key_hash(&a), flow_key_hash(&e));
	cr_assert_eq(flow_key_hash(&a), flow_key_hash(&a));
	cr_assert_neq(flow_key_hash(&a), 0);
}

Test(flowtab, many_keys_grow_and_churn, .timeout = 20)
{
	enum { N = 50000 };
	struct flowtab t;
	uint32_t slot;

	cr_assert_eq(flowtab_init(&t, 16), 0);
	for (uint32_t i = 0; i < N; i++) {
		struct flow_key k = key4(i % 3, 0x0a000000 + i / 60000, (uint16_t)(i % 60000));

		cr_assert_eq(flowtab_insert(&t, &k, i), 0);
	}
	cr_assert_eq(t.n, N);
	cr_assert_geq(t.cap, 2 * N);
	/* Remove every other key; every survivor must still be found (backward shift). */
	for (uint32_t i = 0; i < N; i += 2) {
		struct flow_key k = key4(i % 3, 0x0a000000 + i / 60000, (uint16_t)(i % 60000));

		cr_assert_eq(flowtab_remove(&t, &k), 0);
	}
	for (uint32_t i = 0; i < N; i++) {
		struct flow_key k = key4(i % 3, 0x0a000000 + i / 60000, (uint16_t)(i % 60000));
		bool found = flowtab_lookup(&t, &k, &slot);

		cr_assert_eq(found, i % 2 == 1, "key %u", i);
		if (found) {
			cr_assert_eq(slot, i);
		}
	}
	cr_assert_eq(t.n, N / 2);
	flowtab_cleanup(&t);
}

Test(flowtab, collisions_in_a_tiny_table, .timeout = 10)
{
	struct flowtab t;
	struct flow_key keys[6];
	uint32_t slot;

	/* Force wrap-around probe runs: capacity 16, keys removed from the middle of runs. */
	cr_assert_eq(flowtab_init(&t, 1), 0);
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 6; i++) {
			keys[i] = key4((uint32_t)round, (uint32_t)i, (uint16_t)round);
			cr_assert_eq(flowtab_insert(&t, &keys[i], (uint32_t)i), 0);
		}
		cr_assert_eq(flowtab_remove(&t, &keys[round % 6]), 0);
		for (int i = 0; i < 6; i++) {
			cr_assert_eq(flowtab_lookup(&t, &keys[i], &slot), i != round % 6);
		}
		for (int i = 0; i < 6; i++) {
			if (i != round % 6) {
				cr_assert_eq(flowtab_remove(&t, &keys[i]), 0);
			}
		}
		cr_assert_eq(t.n, 0);
	}
	flowtab_cleanup(&t);
}
