/* SPDX-License-Identifier: MIT */
/*
 * POST /api/rathole/proxy/register (docs/l402.md), without the HTTP library: http.c passes the
 * Authorization value and the body and sends what comes back, so unit tests drive the same
 * code with an injected clock.
 *
 *   no credential (or another scheme)  -> 402 + WWW-Authenticate L402 and LSAT challenges
 *   valid credential, invoice settled  -> 200 + the registration (idempotent per token)
 *   any refusal                        -> 400/401/402/403/409/413/503 + one log line + counter
 */
#ifndef NATX_CTL_L402_HTTP_H
#define NATX_CTL_L402_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "l402_svc.h"

struct l402_http_reply {
	unsigned status; /* HTTP status */
	cJSON *body; /* owned by the caller after the call; NULL only on allocation failure */
	char www_l402[L402_OFFER_HEADER_MAX]; /* WWW-Authenticate values, "" when none */
	char www_lsat[L402_OFFER_HEADER_MAX];
};

/*
 * l402_http_register - handle one request. @authz is the Authorization header value or NULL;
 * @body/@len the request body (NUL-terminated), @too_big when it exceeded the limit; @client
 * keys the per-client offer rate limit (e.g. "ip:192.0.2.1"; NULL = not limited). Fills @out
 * (large: keep it off small stacks).
 */
void l402_http_register(struct l402_svc *ps, const char *client, const char *authz,
			const char *body, size_t len, bool too_big, struct l402_http_reply *out);

#endif
