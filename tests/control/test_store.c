// SPDX-License-Identifier: MIT
/* SQLite store: migrations, forwards, nodes, history, and refusing bad databases. */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char dir[64], db[128];

static void setup(void)
{
	strcpy(dir, "/tmp/natx-ctl-store-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/natx.db", dir);
}

static void teardown(void)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 20);

Test(store, creates_and_migrates_to_latest_and_reopens)
{
	struct stat sb;
	struct store st;
	char err[STORE_ERR_MAX];

	cr_assert_eq(store_open(&st, db, false, err), -ENOENT);
	cr_assert(strstr(err, "--init-db"), "%s", err);
	cr_assert_eq(store_open(&st, db, true, err), 0, "%s", err);
	cr_assert_eq(store_version(&st), store_schema_version());
	cr_assert_geq(store_schema_version(), 2);
	/* It holds bearer credentials (macaroons): owner-only whatever the umask. */
	cr_assert_eq(stat(db, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600, "mode %o", sb.st_mode & 0777);
	store_close(&st);
	store_close(&st);
	cr_assert_eq(store_open(&st, db, false, err), 0, "%s", err);
	cr_assert_eq(store_version(&st), store_schema_version());
	store_close(&st);
}

Test(store, migrates_an_old_version_forward_keeping_data)
{
	struct store st;
	char err[STORE_ERR_MAX];
	sqlite3 *raw;

	/* build a version-1 database by hand: the table of migration 1 and user_version 1 */
	cr_assert_eq(sqlite3_open(db, &raw), SQLITE_OK);
	cr_assert_eq(
		sqlite3_exec(
			raw,
			"CREATE TABLE nodes (node_id TEXT PRIMARY KEY, offers_proxy INTEGER"
			" NOT NULL DEFAULT 0, offers_relay INTEGER NOT NULL DEFAULT 0,"
			" public_address TEXT NOT NULL DEFAULT '', proxy_address TEXT NOT"
			" NULL DEFAULT '', multiaddrs TEXT NOT NULL DEFAULT '', price_sats"
			" INTEGER NOT NULL DEFAULT 0, last_seen INTEGER NOT NULL DEFAULT 0);"
			"CREATE TABLE registrations (id INTEGER PRIMARY KEY, token_id TEXT);"
			"CREATE TABLE tokens (id INTEGER PRIMARY KEY, payment_hash TEXT);"
			"CREATE TABLE connection_history (id INTEGER PRIMARY KEY, at INTEGER);"
			"CREATE TABLE forwards (id INTEGER PRIMARY KEY, spec TEXT NOT NULL"
			" UNIQUE, created_at INTEGER NOT NULL);"
			"INSERT INTO forwards (spec, created_at) VALUES ('tcp:1.2.3.4:1=5.6.7.8:2', 1);"
			"PRAGMA user_version = 1;",
			NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(raw);
	cr_assert_eq(store_open(&st, db, false, err), 0, "%s", err);
	cr_assert_eq(store_version(&st), store_schema_version());
	cr_assert_eq(store_forward_add(&st, "tcp:1.2.3.4:1=5.6.7.8:2", 2), -EEXIST);
	store_close(&st);
}

Test(store, refuses_newer_schema_corrupt_file_and_locked_database)
{
	struct store st;
	char err[STORE_ERR_MAX];
	sqlite3 *raw;
	int fd;

	cr_assert_eq(sqlite3_open(db, &raw), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(raw, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	cr_assert_eq(store_open(&st, db, true, err), -EPROTO);
	cr_assert(strstr(err, "schema version 999 is newer"), "%s", err);
	cr_assert_null(st.db);

	/* a file that is not a database is reported and left exactly as it was */
	unlink(db);
	fd = open(db, O_CREAT | O_WRONLY, 0600);
	cr_assert_eq(write(fd,
			   "this is not sqlite, just some text that is long enough......"
			   "..............................................................",
			   120),
		     120);
	close(fd);
	cr_assert_eq(store_open(&st, db, true, err), -EIO);
	cr_assert(strstr(err, "corrupt or not an SQLite database"), "%s", err);
	{
		char buf[32] = { 0 };

		fd = open(db, O_RDONLY);
		cr_assert_eq(read(fd, buf, 11), 11);
		close(fd);
		cr_assert_str_eq(buf, "this is not");
	}

	/* locked: another connection holds an exclusive lock */
	unlink(db);
	cr_assert_eq(store_open(&st, db, true, err), 0, "%s", err);
	store_close(&st);
	cr_assert_eq(sqlite3_open(db, &raw), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(raw, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;", NULL,
				  NULL, NULL),
		     SQLITE_OK);
	cr_assert_eq(store_open(&st, db, false, err), -EBUSY);
	cr_assert(strstr(err, "locked"), "%s", err);
	sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(raw);
}

static int collect(void *arg, const char *spec)
{
	char *out = arg;

	strcat(out, spec);
	strcat(out, ";");
	return 0;
}

Test(store, forwards_nodes_and_history)
{
	struct store st;
	struct store_node n = { .node_id = "node-a", .offers_proxy = true, .price_sats = 10 }, got;
	char err[STORE_ERR_MAX], list[512] = "";

	cr_assert_eq(store_open(&st, db, true, err), 0, "%s", err);
	cr_assert_eq(store_forward_add(&st, "tcp:1.1.1.1:1=2.2.2.2:2", 1), 0);
	cr_assert_eq(store_forward_add(&st, "udp:1.1.1.1:1=2.2.2.2:2", 2), 0);
	cr_assert_eq(store_forward_add(&st, "tcp:1.1.1.1:1=2.2.2.2:2", 3), -EEXIST);
	cr_assert_eq(store_forward_each(&st, collect, list), 0);
	cr_assert_str_eq(list, "tcp:1.1.1.1:1=2.2.2.2:2;udp:1.1.1.1:1=2.2.2.2:2;");
	cr_assert_eq(store_forward_rm(&st, "tcp:1.1.1.1:1=2.2.2.2:2"), 0);
	cr_assert_eq(store_forward_rm(&st, "tcp:1.1.1.1:1=2.2.2.2:2"), -ENOENT);
	strcpy(n.proxy_address, "203.0.113.5:7000");
	cr_assert_eq(store_node_put(&st, &n), 0);
	cr_assert_eq(store_node_get(&st, "node-a", &got), 0);
	cr_assert(got.offers_proxy);
	cr_assert_not(got.offers_relay);
	cr_assert_str_eq(got.proxy_address, "203.0.113.5:7000");
	cr_assert_eq(got.price_sats, 10);
	cr_assert_eq(store_node_get(&st, "node-b", &got), -ENOENT);
	cr_assert_eq(store_history_add(&st, "node-a", "rathole", true, "", 12, 100), 0);
	cr_assert_eq(store_history_add(&st, "node-b", "", false, "node_not_found", 1, 101), 0);
	cr_assert_eq(store_history_count(&st, false), 2);
	cr_assert_eq(store_history_count(&st, true), 1);
	store_close(&st);
	/* data survives reopening */
	cr_assert_eq(store_open(&st, db, false, err), 0, "%s", err);
	cr_assert_eq(store_history_count(&st, false), 2);
	store_close(&st);
}

static int collect_p2p(void *arg, const struct store_p2p *s)
{
	char *out = arg;

	snprintf(out + strlen(out), 512 - strlen(out), "%llu %s %s %s %s;",
		 (unsigned long long)s->id, s->forward ? "forward" : "expose", s->protocol, s->addr,
		 s->peer);
	return 0;
}

Test(store, p2p_services_ids_are_stable_and_never_reused)
{
	struct store st;
	struct store_p2p e = { .protocol = "/echo/1", .addr = "127.0.0.1:7" };
	struct store_p2p f = { .forward = true,
			       .protocol = "/echo/1",
			       .addr = "127.0.0.1:4100",
			       .peer = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA" };
	struct store_p2p e2 = { .protocol = "/echo/1", .addr = "127.0.0.1:8" };
	char err[STORE_ERR_MAX], list[512] = "";

	cr_assert_eq(store_open(&st, db, true, err), 0, "%s", err);
	cr_assert_eq(store_p2p_add(&st, &e, 1), 0);
	cr_assert_eq(store_p2p_add(&st, &f, 2), 0);
	cr_assert_neq(e.id, f.id);
	/* one expose per protocol (the engine's rule), the same forward once */
	cr_assert_eq(store_p2p_add(&st, &e2, 3), -EEXIST);
	cr_assert_eq(store_p2p_add(&st, &f, 3), -EEXIST);
	cr_assert_eq(store_p2p_each(&st, collect_p2p, list), 0);
	snprintf(err, sizeof(err),
		 "%llu expose /echo/1 127.0.0.1:7 ;%llu forward /echo/1 "
		 "127.0.0.1:4100 /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA;",
		 (unsigned long long)e.id, (unsigned long long)f.id);
	cr_assert_str_eq(list, err);
	/* removing the newest row does not hand its id to the next service */
	cr_assert_eq(store_p2p_rm(&st, f.id), 0);
	cr_assert_eq(store_p2p_rm(&st, f.id), -ENOENT);
	cr_assert_eq(store_p2p_add(&st, &f, 4), 0);
	cr_assert_gt(f.id, e.id + 1);
	store_close(&st);
	/* survives reopening */
	cr_assert_eq(store_open(&st, db, false, err), 0, "%s", err);
	list[0] = '\0';
	cr_assert_eq(store_p2p_each(&st, collect_p2p, list), 0);
	cr_assert(strstr(list, "forward /echo/1 127.0.0.1:4100"), "%s", list);
	cr_assert(strstr(list, "expose /echo/1 127.0.0.1:7"), "%s", list);
	store_close(&st);
}
