// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>

#include "natx/log.h"

TestSuite(log, .timeout = 10);

Test(log, default_is_info)
{
	cr_assert_eq(log_filter_set(NULL), 0);
	cr_assert(log_enabled("engine", LOG_INFO));
	cr_assert(log_enabled("engine", LOG_WARN));
	cr_assert_not(log_enabled("engine", LOG_DEBUG));
}

Test(log, module_rule_overrides_default)
{
	cr_assert_eq(log_filter_set("warn,engine=debug"), 0);
	cr_assert(log_enabled("engine", LOG_DEBUG));
	cr_assert_not(log_enabled("engine", LOG_TRACE));
	cr_assert_not(log_enabled("ctl", LOG_INFO));
	cr_assert(log_enabled("ctl", LOG_ERROR));
}

Test(log, off_silences_everything)
{
	cr_assert_eq(log_filter_set("off"), 0);
	cr_assert_not(log_enabled("engine", LOG_ERROR));
}

Test(log, bad_filter_is_rejected_and_keeps_old_one)
{
	cr_assert_eq(log_filter_set("debug"), 0);
	cr_assert_eq(log_filter_set("loud"), -EINVAL);
	cr_assert_eq(log_filter_set("engine=shouty"), -EINVAL);
	cr_assert_eq(log_filter_set("=debug"), -EINVAL);
	cr_assert(log_enabled("engine", LOG_DEBUG));
}
