// SPDX-License-Identifier: MIT
/* Forward spec parsing: every accepted form and every error case. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>

#include "core/spec.h"

Test(spec, parses_ipv4_tcp, .timeout = 5)
{
	struct spec s;
	char err[SPEC_ERR_MAX];

	cr_assert_eq(spec_parse("tcp:0.0.0.0:8080=127.0.0.1:80", &s, err), 0);
	cr_assert_eq(s.proto, SPEC_TCP);
	cr_assert_str_eq(s.listen.host, "0.0.0.0");
	cr_assert_eq(s.listen.port, 8080);
	cr_assert_str_eq(s.upstream.host, "127.0.0.1");
	cr_assert_eq(s.upstream.port, 80);
}

Test(spec, parses_ipv6_udp_and_names, .timeout = 5)
{
	struct spec s;
	char err[SPEC_ERR_MAX];

	cr_assert_eq(spec_parse("udp:[::1]:5353=[::1]:53", &s, err), 0);
	cr_assert_eq(s.proto, SPEC_UDP);
	cr_assert_str_eq(s.listen.host, "::1");
	cr_assert_eq(s.listen.port, 5353);
	cr_assert_str_eq(s.upstream.host, "::1");
	cr_assert_eq(spec_parse("tcp:localhost:0=example.invalid:65535", &s, err), 0);
	cr_assert_eq(s.listen.port, 0);
	cr_assert_eq(s.upstream.port, 65535);
}

Test(spec, rejects_every_malformed_form, .timeout = 5)
{
	static const char *const bad[] = {
		"",
		"sctp:1.2.3.4:1=1.2.3.4:2",
		"tcp",
		"tcp:",
		"tcp:1.2.3.4:80",
		"tcp:1.2.3.4:80=",
		"tcp:=1.2.3.4:80",
		"tcp:1.2.3.4=1.2.3.4:80",
		"tcp:1.2.3.4:=1.2.3.4:80",
		"tcp::80=1.2.3.4:80",
		"tcp:1.2.3.4:80=1.2.3.4:0",
		"tcp:1.2.3.4:65536=1.2.3.4:80",
		"tcp:1.2.3.4:123456=1.2.3.4:80",
		"tcp:1.2.3.4:8a=1.2.3.4:80",
		"tcp:1.2.3.4:-1=1.2.3.4:80",
		"tcp:1.2.3.4:80=1.2.3.4:80=1.2.3.4:81",
		"tcp:::1:80=1.2.3.4:80",
		"tcp:[::1:80=1.2.3.4:80",
		"tcp:[::1]80=1.2.3.4:80",
		"tcp:[1.2.3.4]:80=1.2.3.4:80",
		"tcp:[]:80=1.2.3.4:80",
		"tcp:a b:80=1.2.3.4:80",
		"tcp:a/b:80=1.2.3.4:80",
		"TCP:1.2.3.4:80=1.2.3.4:80",
	};
	char err[SPEC_ERR_MAX];
	struct spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(spec_parse(bad[i], &s, err), -EINVAL, "accepted '%s'", bad[i]);
		cr_assert_neq(err[0], '\0', "no reason for '%s'", bad[i]);
	}
}

Test(spec, rejects_overlong_host_and_spec, .timeout = 5)
{
	char text[SPEC_TEXT_MAX + 10], err[SPEC_ERR_MAX];
	struct spec s;

	memset(text, 'a', sizeof(text));
	memcpy(text, "tcp:", 4);
	text[sizeof(text) - 1] = '\0';
	cr_assert_eq(spec_parse(text, &s, err), -EINVAL);
	snprintf(text, sizeof(text), "tcp:%0300d:80=1.2.3.4:80", 1);
	cr_assert_eq(spec_parse(text, &s, err), -EINVAL);
	cr_assert(strstr(err, "longer"), "%s", err);
}

Test(spec, names_the_failing_side, .timeout = 5)
{
	char err[SPEC_ERR_MAX];
	struct spec s;

	cr_assert_eq(spec_parse("tcp:1.2.3.4:80=1.2.3.4:x", &s, err), -EINVAL);
	cr_assert(strstr(err, "upstream"), "%s", err);
	cr_assert_eq(spec_parse("tcp:1.2.3.4:x=1.2.3.4:80", &s, err), -EINVAL);
	cr_assert(strstr(err, "listen"), "%s", err);
}

Test(spec, resolves_and_canonicalises, .timeout = 10)
{
	struct spec_addr a;
	struct spec s;
	char err[SPEC_ERR_MAX], canon[SPEC_TEXT_MAX];

	cr_assert_eq(spec_parse("udp:[::1]:5353=127.0.0.1:53", &s, err), 0);
	cr_assert_eq(spec_resolve(&s, &a, err), 0, "%s", err);
	cr_assert_eq(a.listen.ss_family, AF_INET6);
	cr_assert_eq(a.upstream.ss_family, AF_INET);
	spec_canonical(&a, canon, sizeof(canon));
	cr_assert_str_eq(canon, "udp:[::1]:5353=127.0.0.1:53");
	cr_assert(spec_sockaddr_equal(&a.listen, &a.listen));
	cr_assert_not(spec_sockaddr_equal(&a.listen, &a.upstream));
}

Test(spec, unresolvable_host_is_an_error, .timeout = 20)
{
	struct spec_addr a;
	struct spec s;
	char err[SPEC_ERR_MAX];

	cr_assert_eq(spec_parse("tcp:127.0.0.1:1=no-such-host.invalid:80", &s, err), 0);
	cr_assert_eq(spec_resolve(&s, &a, err), -ENOENT);
	cr_assert(strstr(err, "no-such-host.invalid"), "%s", err);
	cr_assert(strstr(err, "upstream"), "%s", err);
}
