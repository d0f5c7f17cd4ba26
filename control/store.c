// SPDX-License-Identifier: MIT
/* SQLite store and its migrations (control/store.h). */
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "natx/log.h"
#include "store.h"

/*
 * Migration N (1-based) takes the schema from version N-1 to N. Append only: a released
 * migration never changes, because databases in the field already ran it.
 */
static const char *const store_migrations[] = {
	/* 1: initial schema */
	"CREATE TABLE nodes ("
	" node_id TEXT PRIMARY KEY,"
	" offers_proxy INTEGER NOT NULL DEFAULT 0,"
	" offers_relay INTEGER NOT NULL DEFAULT 0,"
	" public_address TEXT NOT NULL DEFAULT '',"
	" proxy_address TEXT NOT NULL DEFAULT '',"
	" multiaddrs TEXT NOT NULL DEFAULT '',"
	" price_sats INTEGER NOT NULL DEFAULT 0,"
	" last_seen INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE registrations ("
	" id INTEGER PRIMARY KEY,"
	" node_id TEXT NOT NULL,"
	" service_name TEXT NOT NULL,"
	" proto TEXT NOT NULL CHECK (proto IN ('tcp','udp')),"
	" local_addr TEXT NOT NULL,"
	" public_port INTEGER,"
	" token_id TEXT,"
	" state TEXT NOT NULL DEFAULT 'pending',"
	" created_at INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" UNIQUE (node_id, service_name));"
	"CREATE TABLE tokens ("
	" id INTEGER PRIMARY KEY,"
	" token_id TEXT NOT NULL UNIQUE,"
	" macaroon TEXT NOT NULL,"
	" payment_hash TEXT NOT NULL,"
	" caveats TEXT NOT NULL DEFAULT '',"
	" node_id TEXT,"
	" created_at INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE payment_receipts ("
	" id INTEGER PRIMARY KEY,"
	" payment_hash TEXT NOT NULL UNIQUE,"
	" preimage TEXT,"
	" amount_sats INTEGER NOT NULL,"
	" token_id TEXT,"
	" node_id TEXT,"
	" settled_at INTEGER);"
	"CREATE TABLE forwards ("
	" id INTEGER PRIMARY KEY,"
	" spec TEXT NOT NULL UNIQUE,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE connection_history ("
	" id INTEGER PRIMARY KEY,"
	" target TEXT NOT NULL,"
	" service TEXT,"
	" ok INTEGER NOT NULL,"
	" error_code TEXT,"
	" latency_ms INTEGER NOT NULL,"
	" at INTEGER NOT NULL);",
	/* 2: indexes for the lookups natxd makes */
	"CREATE INDEX history_at ON connection_history (at);"
	"CREATE INDEX tokens_payment_hash ON tokens (payment_hash);"
	"CREATE INDEX registrations_token ON registrations (token_id);",
	/* 3: connections opened with a local port (natxctl connect --local, control/conns.c) */
	"CREATE TABLE connections ("
	" id INTEGER PRIMARY KEY,"
	" target TEXT NOT NULL,"
	" service TEXT NOT NULL DEFAULT '',"
	" local TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" via TEXT NOT NULL,"
	" handle TEXT NOT NULL,"
	" reason TEXT NOT NULL DEFAULT '',"
	" created_at INTEGER NOT NULL);",
	/* 4: libp2p services of `natxctl p2p expose|forward`, pushed to the engine at start */
	"CREATE TABLE p2p_services ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT," /* ids are never reused: a stale close fails */
	" kind TEXT NOT NULL CHECK (kind IN ('expose','forward')),"
	" protocol TEXT NOT NULL,"
	" addr TEXT NOT NULL,"
	" peer TEXT NOT NULL DEFAULT '',"
	" created_at INTEGER NOT NULL,"
	" UNIQUE (kind, protocol, addr, peer));"
	"CREATE UNIQUE INDEX p2p_services_expose ON p2p_services (protocol)"
	" WHERE kind = 'expose';",
	/* 5: tunnel services added at run time (natxctl tunnel add), defined again at start */
	"CREATE TABLE tunnel_services ("
	" id INTEGER PRIMARY KEY,"
	" role TEXT NOT NULL CHECK (role IN ('server','client')),"
	" name TEXT NOT NULL,"
	" request TEXT NOT NULL," /* the tunnel.add request as JSON, token included */
	" created_at INTEGER NOT NULL,"
	" UNIQUE (role, name));",
};

enum { STORE_VERSION = sizeof(store_migrations) / sizeof(store_migrations[0]) };

int store_schema_version(void)
{
	return STORE_VERSION;
}

const char *store_errmsg(struct store *st)
{
	return st->db ? sqlite3_errmsg(st->db) : "database not open";
}

/* store_code - map an SQLite result to -errno. */
static int store_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EIO;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void store_describe(struct store *st, int rc, const char *what, char *err)
{
	const char *hint = "";

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		hint = " (locked by another process; is another natxd running?)";
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		hint = " (corrupt or not an SQLite database; natxd will not touch it: restore a "
		       "backup or move it away)";
		break;
	default:
		break;
	}
	snprintf(err, STORE_ERR_MAX, "database %.200s: %.40s: %.100s%s", st->path, what,
		 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), hint);
}

int store_version(struct store *st)
{
	sqlite3_stmt *q;
	int rc, v;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		return store_code(rc) ? store_code(rc) : -EIO;
	}
	rc = sqlite3_step(q);
	v = rc == SQLITE_ROW ? sqlite3_column_int(q, 0) : (store_code(rc) ? store_code(rc) : -EIO);
	sqlite3_finalize(q);
	return v;
}

/* store_migrate_one - apply migration @to (1-based) and bump user_version, atomically. */
static int store_migrate_one(struct store *st, int to, char *err)
{
	char sql[64];
	int rc;

	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		store_describe(st, rc, "cannot start migration", err);
		return store_code(rc);
	}
	rc = sqlite3_exec(st->db, store_migrations[to - 1], NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", to);
		rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		char what[48];

		snprintf(what, sizeof(what), "migration %d failed", to);
		store_describe(st, rc, what, err);
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return store_code(rc) ? store_code(rc) : -EIO;
	}
	pr_info("store", "%s: migrated schema to version %d", st->path, to);
	return 0;
}

/* store_check_row - PRAGMA quick_check answers one row "ok", or rows describing damage. */
static int store_check_row(void *arg, int ncol, char **val, char **names)
{
	if (ncol < 1 || !val[0] || strcmp(val[0], "ok")) {
		*(bool *)arg = true;
	}
	return 0;
}

int store_open(struct store *st, const char *path, bool create, char *err)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	struct stat sb;
	bool bad = false;
	int rc, v;

	memset(st, 0, sizeof(*st));
	snprintf(st->path, sizeof(st->path), "%s", path);
	if (!create && stat(path, &sb)) {
		snprintf(err, STORE_ERR_MAX, "database %.200s: %s (run natxd --init-db)", path,
			 strerror(errno));
		return -errno;
	}
	if (create && stat(path, &sb) && errno == ENOENT) {
		/*
		 * The database holds bearer credentials (L402 macaroons): create it owner-only.
		 * SQLite gives its -wal and -shm files the database file's mode.
		 */
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (fd >= 0) {
			close(fd);
		}
	}
	rc = sqlite3_open_v2(path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		store_describe(st, rc, "cannot open", err);
		goto close_db;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(st->db, 0);
	v = store_version(st);
	if (v < 0) {
		rc = v == -EBUSY ? SQLITE_BUSY : SQLITE_NOTADB;
		store_describe(st, rc, "cannot read schema version", err);
		goto close_db;
	}
	if (v > STORE_VERSION) {
		snprintf(
			err, STORE_ERR_MAX,
			"database %.200s: schema version %d is newer than this natxd supports (%d)",
			path, v, STORE_VERSION);
		sqlite3_close(st->db);
		st->db = NULL;
		return -EPROTO;
	}
	/* quick_check catches a damaged file early instead of at the first unlucky query. */
	rc = sqlite3_exec(st->db, "PRAGMA quick_check", store_check_row, &bad, NULL);
	if (rc == SQLITE_OK && bad) {
		rc = SQLITE_CORRUPT;
	}
	if (rc != SQLITE_OK) {
		store_describe(st, rc, "integrity check failed", err);
		goto close_db;
	}
	rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON", NULL, NULL,
			  NULL);
	if (rc != SQLITE_OK) {
		store_describe(st, rc, "cannot configure", err);
		goto close_db;
	}
	for (int to = v + 1; to <= STORE_VERSION; to++) {
		int r = store_migrate_one(st, to, err);

		if (r) {
			sqlite3_close(st->db);
			st->db = NULL;
			return r;
		}
	}
	return 0;

close_db:
	sqlite3_close(st->db);
	st->db = NULL;
	return store_code(rc) ? store_code(rc) : -EIO;
}

void store_close(struct store *st)
{
	sqlite3_close(st->db);
	st->db = NULL;
}

static int store_run(struct store *st, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		pr_warn("store", "%s: %s", st->path, sqlite3_errmsg(st->db));
		return store_code(rc) ? store_code(rc) : -EIO;
	}
	return 0;
}

static int store_prepare(struct store *st, const char *sql, sqlite3_stmt **q)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, q, NULL);

	if (rc != SQLITE_OK) {
		pr_warn("store", "%s: %s", st->path, sqlite3_errmsg(st->db));
		return store_code(rc) ? store_code(rc) : -EIO;
	}
	return 0;
}

int store_forward_add(struct store *st, const char *spec, uint64_t now_s)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "INSERT INTO forwards (spec, created_at) VALUES (?, ?)", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, spec, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)now_s);
	return store_run(st, q);
}

int store_forward_rm(struct store *st, const char *spec)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "DELETE FROM forwards WHERE spec = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, spec, -1, SQLITE_TRANSIENT);
	rc = store_run(st, q);
	if (!rc && sqlite3_changes(st->db) == 0) {
		return -ENOENT;
	}
	return rc;
}

int store_forward_each(struct store *st, int (*fn)(void *arg, const char *spec), void *arg)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "SELECT spec FROM forwards ORDER BY id", &q);

	if (rc) {
		return rc;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int r = fn(arg, (const char *)sqlite3_column_text(q, 0));

		if (r) {
			sqlite3_finalize(q);
			return r;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_history_add(struct store *st, const char *target, const char *service, bool ok,
		      const char *error_code, uint64_t latency_ms, uint64_t at_s)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "INSERT INTO connection_history (target, service, ok, error_code,"
			       " latency_ms, at) VALUES (?, ?, ?, ?, ?, ?)",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, target, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, service, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 3, ok);
	sqlite3_bind_text(q, 4, error_code, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 5, (sqlite3_int64)latency_ms);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)at_s);
	return store_run(st, q);
}

int64_t store_history_count(struct store *st, bool ok_only)
{
	sqlite3_stmt *q;
	int64_t n;
	int rc = store_prepare(st,
			       ok_only ? "SELECT count(*) FROM connection_history WHERE ok" :
					 "SELECT count(*) FROM connection_history",
			       &q);

	if (rc) {
		return rc;
	}
	rc = sqlite3_step(q);
	n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -EIO;
	sqlite3_finalize(q);
	return n;
}

int store_node_put(struct store *st, const struct store_node *n)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "INSERT OR REPLACE INTO nodes (node_id, offers_proxy, offers_relay,"
			       " public_address, proxy_address, multiaddrs, price_sats, last_seen)"
			       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, n->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 2, n->offers_proxy);
	sqlite3_bind_int(q, 3, n->offers_relay);
	sqlite3_bind_text(q, 4, n->public_address, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, n->proxy_address, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 6, n->multiaddrs, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)n->price_sats);
	sqlite3_bind_int64(q, 8, (sqlite3_int64)n->last_seen);
	return store_run(st, q);
}

static void store_col(sqlite3_stmt *q, int col, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(q, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

int store_node_get(struct store *st, const char *node_id, struct store_node *out)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "SELECT node_id, offers_proxy, offers_relay, public_address,"
			       " proxy_address, multiaddrs, price_sats, last_seen FROM nodes"
			       " WHERE node_id = ?",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, node_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(q);
		return rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	memset(out, 0, sizeof(*out));
	store_col(q, 0, out->node_id, sizeof(out->node_id));
	out->offers_proxy = sqlite3_column_int(q, 1);
	out->offers_relay = sqlite3_column_int(q, 2);
	store_col(q, 3, out->public_address, sizeof(out->public_address));
	store_col(q, 4, out->proxy_address, sizeof(out->proxy_address));
	store_col(q, 5, out->multiaddrs, sizeof(out->multiaddrs));
	out->price_sats = (uint64_t)sqlite3_column_int64(q, 6);
	out->last_seen = (uint64_t)sqlite3_column_int64(q, 7);
	sqlite3_finalize(q);
	return 0;
}

int store_conn_add(struct store *st, const struct store_conn *c)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "INSERT INTO connections (id, target, service, local, type, via,"
			       " handle, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(q, 1, c->id);
	sqlite3_bind_text(q, 2, c->target, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, c->service, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 4, c->local, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, c->type, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 6, c->via, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 7, c->handle, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 8, c->reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 9, (sqlite3_int64)c->created_s);
	return store_run(st, q);
}

int store_conn_rm(struct store *st, uint32_t id)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "DELETE FROM connections WHERE id = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(q, 1, id);
	rc = store_run(st, q);
	if (!rc && sqlite3_changes(st->db) == 0) {
		return -ENOENT;
	}
	return rc;
}

int store_conn_each(struct store *st, int (*fn)(void *arg, const struct store_conn *c), void *arg)
{
	struct store_conn c;
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "SELECT id, target, service, local, type, via, handle, reason,"
			       " created_at FROM connections ORDER BY id",
			       &q);

	if (rc) {
		return rc;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int r;

		memset(&c, 0, sizeof(c));
		c.id = (uint32_t)sqlite3_column_int64(q, 0);
		store_col(q, 1, c.target, sizeof(c.target));
		store_col(q, 2, c.service, sizeof(c.service));
		store_col(q, 3, c.local, sizeof(c.local));
		store_col(q, 4, c.type, sizeof(c.type));
		store_col(q, 5, c.via, sizeof(c.via));
		store_col(q, 6, c.handle, sizeof(c.handle));
		store_col(q, 7, c.reason, sizeof(c.reason));
		c.created_s = (uint64_t)sqlite3_column_int64(q, 8);
		r = fn(arg, &c);
		if (r) {
			sqlite3_finalize(q);
			return r;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_p2p_add(struct store *st, struct store_p2p *s, uint64_t now_s)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "INSERT INTO p2p_services (kind, protocol, addr, peer, created_at)"
			       " VALUES (?, ?, ?, ?, ?)",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, s->forward ? "forward" : "expose", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, s->protocol, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, s->addr, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 4, s->forward ? s->peer : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 5, (sqlite3_int64)now_s);
	rc = store_run(st, q);
	if (!rc) {
		s->id = (uint64_t)sqlite3_last_insert_rowid(st->db);
	}
	return rc;
}

int store_p2p_rm(struct store *st, uint64_t id)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "DELETE FROM p2p_services WHERE id = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(q, 1, (sqlite3_int64)id);
	rc = store_run(st, q);
	if (!rc && sqlite3_changes(st->db) == 0) {
		return -ENOENT;
	}
	return rc;
}

int store_p2p_each(struct store *st, int (*fn)(void *arg, const struct store_p2p *s), void *arg)
{
	struct store_p2p s;
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "SELECT id, kind, protocol, addr, peer FROM p2p_services"
			       " ORDER BY id",
			       &q);

	if (rc) {
		return rc;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const unsigned char *kind = sqlite3_column_text(q, 1);
		int r;

		memset(&s, 0, sizeof(s));
		s.id = (uint64_t)sqlite3_column_int64(q, 0);
		s.forward = kind && !strcmp((const char *)kind, "forward");
		store_col(q, 2, s.protocol, sizeof(s.protocol));
		store_col(q, 3, s.addr, sizeof(s.addr));
		store_col(q, 4, s.peer, sizeof(s.peer));
		r = fn(arg, &s);
		if (r) {
			sqlite3_finalize(q);
			return r;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_node_rm(struct store *st, const char *node_id)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "DELETE FROM nodes WHERE node_id = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, node_id, -1, SQLITE_TRANSIENT);
	rc = store_run(st, q);
	if (!rc && sqlite3_changes(st->db) == 0) {
		return -ENOENT;
	}
	return rc;
}

int store_node_each(struct store *st, int (*fn)(void *arg, const struct store_node *n), void *arg)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "SELECT node_id FROM nodes ORDER BY node_id", &q);

	if (rc) {
		return rc;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_node n;
		int r;

		r = store_node_get(st, (const char *)sqlite3_column_text(q, 0), &n);
		if (!r) {
			r = fn(arg, &n);
		}
		if (r && r != -ENOENT) {
			sqlite3_finalize(q);
			return r;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int store_tunnel_add(struct store *st, const char *role, const char *name, const char *request,
		     uint64_t now_s)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st,
			       "INSERT INTO tunnel_services (role, name, request, created_at)"
			       " VALUES (?, ?, ?, ?)",
			       &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, request, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 4, (sqlite3_int64)now_s);
	return store_run(st, q);
}

int store_tunnel_rm(struct store *st, const char *role, const char *name)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "DELETE FROM tunnel_services WHERE role = ? AND name = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
	rc = store_run(st, q);
	if (!rc && sqlite3_changes(st->db) == 0) {
		return -ENOENT;
	}
	return rc;
}

int store_tunnel_each(struct store *st, int (*fn)(void *arg, const char *request), void *arg)
{
	sqlite3_stmt *q;
	int rc = store_prepare(st, "SELECT request FROM tunnel_services ORDER BY id", &q);

	if (rc) {
		return rc;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int r = fn(arg, (const char *)sqlite3_column_text(q, 0));

		if (r) {
			sqlite3_finalize(q);
			return r;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -EIO;
}
