// SPDX-License-Identifier: MIT
/* The relay's settings from JSON (p2p_relay_conf_parse, see p2p_relay_conf.h). */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "p2p/multiaddr.h"
#include "p2p/relay.h"
#include "p2p_relay_conf.h"

/* p2p_conf_num - optional integer @key of @conf in [0, @max] into *@v. 0, or -EINVAL. */
static int p2p_conf_num(const cJSON *conf, const char *key, double max, uint64_t *v, char *err,
			size_t errlen)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(conf, key);

	if (!it) {
		return 0;
	}
	if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > max ||
	    floor(it->valuedouble) != it->valuedouble) {
		snprintf(err, errlen, "relay %s: need an integer 0..%.0f", key, max);
		return -EINVAL;
	}
	*v = (uint64_t)it->valuedouble;
	return 0;
}

/* p2p_conf_ids - optional array @key of peer IDs into @out (at most P2P_RELAY_ACL_MAX). */
static int p2p_conf_ids(const cJSON *conf, const char *key, struct peer_id *out, uint32_t *n,
			char *err, size_t errlen)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(conf, key), *it;

	*n = 0;
	if (!a) {
		return 0;
	}
	if (!cJSON_IsArray(a)) {
		snprintf(err, errlen, "relay %s: need an array of peer IDs", key);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, a)
	{
		if (*n == P2P_RELAY_ACL_MAX) {
			snprintf(err, errlen, "relay %s: at most %d peer IDs", key,
				 P2P_RELAY_ACL_MAX);
			return -EINVAL;
		}
		if (!cJSON_IsString(it) ||
		    peerid_from_text(&out[*n], it->valuestring, strlen(it->valuestring))) {
			snprintf(err, errlen, "relay %s: '%.80s' is not a peer ID", key,
				 cJSON_IsString(it) ? it->valuestring : "?");
			return -EINVAL;
		}
		(*n)++;
	}
	return 0;
}

/* p2p_conf_addr_add - @bin (+ /p2p/<us> when it has no peer ID) as an announced address. */
static int p2p_conf_addr_add(struct p2p_relay_conf *rc, const struct peer_id *self,
			     const uint8_t *bin, size_t len)
{
	struct sockaddr_storage ss;
	struct peer_id id;
	char txt[MADDR_TEXT_MAX], id_txt[PEERID_TEXT_MAX];
	int has_id = 0;
	size_t out;

	if (rc->n_addrs == P2P_RELAY_ADDRS_MAX || maddr_to_sockaddr(bin, len, &ss, &id, &has_id)) {
		return -EINVAL;
	}
	if (has_id) {
		if (!peerid_equal(&id, self)) {
			return -EINVAL;
		}
		memcpy(rc->addrs[rc->n_addrs], bin, len);
		rc->addr_lens[rc->n_addrs++] = len;
		return 0;
	}
	if (maddr_to_text(bin, len, txt, sizeof(txt)) < 0 ||
	    peerid_to_text(self, id_txt, sizeof(id_txt)) < 0 ||
	    strlen(txt) + strlen(id_txt) + 6 >= sizeof(txt)) {
		return -EINVAL;
	}
	strcat(txt, "/p2p/");
	strcat(txt, id_txt);
	if (maddr_from_text(txt, rc->addrs[rc->n_addrs], MADDR_MAX_LEN, &out)) {
		return -EINVAL;
	}
	rc->addr_lens[rc->n_addrs++] = out;
	return 0;
}

/* p2p_conf_unspecified - @ss is 0.0.0.0 or :: (nobody can dial it). */
static bool p2p_conf_unspecified(const struct sockaddr_storage *ss)
{
	static const uint8_t zero[16];

	if (ss->ss_family == AF_INET) {
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
	}
	return !memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, zero, 16);
}

int p2p_relay_conf_parse(const cJSON *conf, const struct peer_id *self, const uint8_t *laddr,
			 size_t laddr_len, struct p2p_relay_conf *out, char *err, size_t errlen)
{
	const cJSON *ann, *it;
	uint64_t v[8] = { 0, 0, 0, 0, 0, 0, RELAY_DEF_DURATION_S, RELAY_DEF_DATA };
	static const char *const keys[8] = {
		"max_reservations",   "max_reservations_per_peer", "max_reservations_per_ip",
		"max_circuits",	      "max_circuits_per_peer",	   "reservation_ttl_s",
		"circuit_duration_s", "circuit_data_bytes",
	};
	int ret;

	if (!cJSON_IsObject(conf)) {
		snprintf(err, errlen, "relay settings must be an object");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 8; i++) {
		ret = p2p_conf_num(conf, keys[i], i == 7 ? 9007199254740991.0 : 4294967295.0, &v[i],
				   err, errlen);
		if (ret) {
			return ret;
		}
	}
	out->max_rsvp = (uint32_t)v[0];
	out->max_rsvp_per_peer = (uint32_t)v[1];
	out->max_rsvp_per_ip = (uint32_t)v[2];
	out->max_circuits = (uint32_t)v[3];
	out->max_circuits_per_peer = (uint32_t)v[4];
	out->rsvp_ttl_s = (uint32_t)v[5];
	out->duration_s = (uint32_t)v[6];
	out->data = v[7];
	ret = p2p_conf_ids(conf, "allow", out->allow, &out->n_allow, err, errlen);
	if (!ret) {
		ret = p2p_conf_ids(conf, "deny", out->deny, &out->n_deny, err, errlen);
	}
	if (ret) {
		return ret;
	}
	ann = cJSON_GetObjectItemCaseSensitive(conf, "announce");
	if (ann && !cJSON_IsArray(ann)) {
		snprintf(err, errlen, "relay announce: need an array of multiaddrs");
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, ann)
	{
		uint8_t bin[MADDR_MAX_LEN];
		size_t len;

		if (!cJSON_IsString(it) ||
		    maddr_from_text(it->valuestring, bin, sizeof(bin), &len) ||
		    p2p_conf_addr_add(out, self, bin, len)) {
			snprintf(
				err, errlen,
				"relay announce '%.100s': need /ip4|ip6/ADDR/tcp/PORT[/p2p/<our ID>], "
				"at most %d",
				cJSON_IsString(it) ? it->valuestring : "?", P2P_RELAY_ADDRS_MAX);
			return -EINVAL;
		}
	}
	if (!out->n_addrs) {
		/* No announced address: our listen address, when others can dial it. */
		struct sockaddr_storage ss;
		int has_id;

		if (!maddr_to_sockaddr(laddr, laddr_len, &ss, NULL, &has_id) &&
		    !p2p_conf_unspecified(&ss)) {
			p2p_conf_addr_add(out, self, laddr, laddr_len);
		}
	}
	return 0;
}
