// SPDX-License-Identifier: MIT
/* Tokens, receipts and tunnel registrations in SQLite (control/pay_store.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "natx/err.h"
#include "natx/log.h"
#include "pay_store.h"

#define MOD "store"

/* A registration is live while active and not past its expiry (0 = none). */
#define PAY_LIVE "state = 'active' AND (expires_at IS NULL OR expires_at = 0 OR expires_at > ?)"

static int pay_prepare(struct store *st, const char *sql, sqlite3_stmt **q)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, q, NULL) != SQLITE_OK) {
		pr_warn(MOD, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -EIO;
	}
	return 0;
}

/* pay_step_done - run a statement that returns no rows and finalize it. */
static int pay_step_done(struct store *st, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	sqlite3_finalize(q);
	if (rc == SQLITE_DONE) {
		return 0;
	}
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		return -EEXIST;
	}
	pr_warn(MOD, "%s: %s", st->path, sqlite3_errmsg(st->db));
	return -EIO;
}

static void pay_col(sqlite3_stmt *q, int col, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(q, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* pay_alloc_port - lowest port of [min, max] no live registration holds; -NATX_E_LIMIT. */
static int pay_alloc_port(struct store *st, const struct pay_issue *is, unsigned *port)
{
	sqlite3_stmt *q;
	unsigned want = is->port_min;
	int rc = pay_prepare(st,
			     "SELECT DISTINCT public_port FROM registrations WHERE " PAY_LIVE
			     " AND public_port BETWEEN ? AND ? ORDER BY public_port",
			     &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_int64(q, 1, (sqlite3_int64)is->now);
	sqlite3_bind_int(q, 2, (int)is->port_min);
	sqlite3_bind_int(q, 3, (int)is->port_max);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		unsigned used = (unsigned)sqlite3_column_int(q, 0);

		if (used > want) {
			break;
		}
		want = used + 1;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return -EIO;
	}
	if (want > is->port_max) {
		return -NATX_E_LIMIT;
	}
	*port = want;
	return 0;
}

/* pay_register_rows - the writes of pay_store_register, inside its transaction. */
static int pay_register_rows(struct store *st, struct pay_reg *r, const struct pay_issue *is)
{
	char proxy[192];
	sqlite3_stmt *q;
	int rc;

	/* A dead registration (revoked or expired) of the same name gives its name back. */
	rc = pay_prepare(st,
			 "DELETE FROM registrations WHERE node_id = ? AND service_name = ? AND"
			 " NOT (" PAY_LIVE ")",
			 &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, r->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, r->service_name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)is->now);
	rc = pay_step_done(st, q) ?: pay_alloc_port(st, is, &r->public_port);
	if (rc) {
		return rc;
	}
	r->created_at = is->now;
	snprintf(r->state, sizeof(r->state), "active");
	rc = pay_prepare(st,
			 "INSERT INTO registrations (node_id, service_name, proto, local_addr,"
			 " public_port, token_id, state, created_at, expires_at)"
			 " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
			 &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, r->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, r->service_name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, r->proto, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 4, r->local_addr, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 5, (int)r->public_port);
	sqlite3_bind_text(q, 6, r->token_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)r->created_at);
	sqlite3_bind_int64(q, 8, (sqlite3_int64)r->expires_at);
	rc = pay_step_done(st, q);
	if (rc) {
		return rc;
	}
	r->id = sqlite3_last_insert_rowid(st->db);
	rc = pay_prepare(st,
			 "INSERT INTO tokens (token_id, macaroon, payment_hash, caveats, node_id,"
			 " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			 &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, r->token_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, is->macaroon, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, is->payment_hash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 4, is->caveats, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, r->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)is->now);
	sqlite3_bind_int64(q, 7, (sqlite3_int64)r->expires_at);
	rc = pay_step_done(st, q);
	if (rc) {
		return rc == -EEXIST ? -EIO : rc; /* token ids are random: a clash is a fault */
	}
	rc = pay_prepare(st,
			 "INSERT OR IGNORE INTO payment_receipts (payment_hash, preimage,"
			 " amount_sats, token_id, node_id, settled_at) VALUES (?, ?, ?, ?, ?, ?)",
			 &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, is->payment_hash, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, is->preimage, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)is->amount_sats);
	sqlite3_bind_text(q, 4, r->token_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, r->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 6, (sqlite3_int64)is->settled_at);
	rc = pay_step_done(st, q);
	if (rc) {
		return rc;
	}
	snprintf(proxy, sizeof(proxy), strchr(is->public_host, ':') ? "[%s]:%u" : "%s:%u",
		 is->public_host, r->public_port);
	rc = pay_prepare(st,
			 "INSERT INTO nodes (node_id, offers_proxy, proxy_address, last_seen)"
			 " VALUES (?, 1, ?, ?) ON CONFLICT (node_id) DO UPDATE SET"
			 " offers_proxy = 1, proxy_address = excluded.proxy_address,"
			 " last_seen = excluded.last_seen",
			 &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, r->node_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, proxy, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)is->now);
	return pay_step_done(st, q);
}

int pay_store_register(struct store *st, struct pay_reg *r, const struct pay_issue *is)
{
	int rc;

	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		pr_warn(MOD, "%s: %s", st->path, sqlite3_errmsg(st->db));
		return -EIO;
	}
	rc = pay_register_rows(st, r, is);
	if (!rc && sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		pr_warn(MOD, "%s: commit: %s", st->path, sqlite3_errmsg(st->db));
		rc = -EIO;
	}
	if (rc) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

#define PAY_REG_COLS                                                             \
	"r.id, r.node_id, r.service_name, r.proto, r.local_addr, r.public_port," \
	" r.token_id, r.state, r.created_at, coalesce(r.expires_at, 0),"         \
	" coalesce(t.macaroon, ''), coalesce(t.revoked, 0)"                      \
	" FROM registrations r LEFT JOIN tokens t ON t.token_id = r.token_id"

static void pay_reg_row(sqlite3_stmt *q, struct pay_reg *o)
{
	memset(o, 0, sizeof(*o));
	o->id = sqlite3_column_int64(q, 0);
	pay_col(q, 1, o->node_id, sizeof(o->node_id));
	pay_col(q, 2, o->service_name, sizeof(o->service_name));
	pay_col(q, 3, o->proto, sizeof(o->proto));
	pay_col(q, 4, o->local_addr, sizeof(o->local_addr));
	o->public_port = (unsigned)sqlite3_column_int(q, 5);
	pay_col(q, 6, o->token_id, sizeof(o->token_id));
	pay_col(q, 7, o->state, sizeof(o->state));
	o->created_at = (uint64_t)sqlite3_column_int64(q, 8);
	o->expires_at = (uint64_t)sqlite3_column_int64(q, 9);
	pay_col(q, 10, o->macaroon, sizeof(o->macaroon));
	o->revoked = sqlite3_column_int(q, 11) != 0;
}

/* pay_reg_one - the first row of "SELECT PAY_REG_COLS WHERE <where>" bound to @key. */
static int pay_reg_one(struct store *st, const char *sql, const char *key, struct pay_reg *out)
{
	sqlite3_stmt *q;
	int rc = pay_prepare(st, sql, &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		pay_reg_row(q, out);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : (rc == SQLITE_DONE ? -ENOENT : -EIO);
}

int pay_store_reg_by_token(struct store *st, const char *token_id, struct pay_reg *out)
{
	return pay_reg_one(st, "SELECT " PAY_REG_COLS " WHERE r.token_id = ?", token_id, out);
}

int pay_store_reg_by_node(struct store *st, const char *node_id, struct pay_reg *out)
{
	return pay_reg_one(st, "SELECT " PAY_REG_COLS " WHERE r.node_id = ? ORDER BY r.id DESC",
			   node_id, out);
}

int pay_store_token_state(struct store *st, const char *token_id, bool *revoked)
{
	sqlite3_stmt *q;
	int rc = pay_prepare(st, "SELECT revoked FROM tokens WHERE token_id = ?", &q);

	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, token_id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*revoked = sqlite3_column_int(q, 0) != 0;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : (rc == SQLITE_DONE ? -ENOENT : -EIO);
}

int pay_store_token_revoke(struct store *st, const char *id, uint64_t now, char *full)
{
	char pattern[PAY_HEX32_LEN + 1];
	size_t n = strlen(id);
	sqlite3_stmt *q;
	int rc, rows = 0;

	if (n < 8 || n > 64) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)id[i])) {
			return -EINVAL;
		}
		pattern[i] = (char)tolower((unsigned char)id[i]);
	}
	pattern[n] = '%';
	pattern[n + 1] = '\0';
	rc = pay_prepare(st, "SELECT token_id FROM tokens WHERE token_id LIKE ? LIMIT 2", &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, pattern, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (!rows++) {
			pay_col(q, 0, full, PAY_HEX32_LEN);
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		return -EIO;
	}
	if (rows != 1) {
		return rows ? -EEXIST : -ENOENT;
	}
	rc = pay_prepare(st, "UPDATE tokens SET revoked = 1 WHERE token_id = ?", &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, full, -1, SQLITE_TRANSIENT);
	rc = pay_step_done(st, q);
	if (rc) {
		return rc;
	}
	rc = pay_prepare(st, "UPDATE registrations SET state = 'revoked' WHERE token_id = ?", &q);
	if (rc) {
		return rc;
	}
	sqlite3_bind_text(q, 1, full, -1, SQLITE_TRANSIENT);
	(void)now;
	return pay_step_done(st, q);
}

/* pay_json_rows - run @sql (bound to @now when @bind) and turn rows into objects of @cols. */
static cJSON *pay_json_rows(struct store *st, const char *sql, const char *const *cols, bool bind,
			    uint64_t now)
{
	cJSON *a = cJSON_CreateArray();
	sqlite3_stmt *q;
	int rc;

	if (!a || pay_prepare(st, sql, &q)) {
		cJSON_Delete(a);
		return NULL;
	}
	if (bind) {
		sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();

		if (!o) {
			break;
		}
		cJSON_AddItemToArray(a, o);
		for (int i = 0; cols[i]; i++) {
			switch (sqlite3_column_type(q, i)) {
			case SQLITE_INTEGER:
				cJSON_AddNumberToObject(o, cols[i],
							(double)sqlite3_column_int64(q, i));
				break;
			case SQLITE_NULL:
				cJSON_AddNullToObject(o, cols[i]);
				break;
			default:
				cJSON_AddStringToObject(o, cols[i],
							(const char *)sqlite3_column_text(q, i));
				break;
			}
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		cJSON_Delete(a);
		return NULL;
	}
	return a;
}

cJSON *pay_store_tokens_json(struct store *st)
{
	static const char *const cols[] = { "token_id",	  "payment_hash", "caveats", "node_id",
					    "created_at", "expires_at",	  "revoked", NULL };
	cJSON *a = pay_json_rows(st,
				 "SELECT token_id, payment_hash, caveats, node_id, created_at,"
				 " expires_at, revoked FROM tokens ORDER BY id",
				 cols, false, 0);
	cJSON *it;

	cJSON_ArrayForEach(it, a)
	{
		cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "revoked");

		cJSON_ReplaceItemInObjectCaseSensitive(it, "revoked",
						       cJSON_CreateBool(r && r->valuedouble != 0));
	}
	return a;
}

cJSON *pay_store_regs_json(struct store *st, uint64_t now)
{
	static const char *const cols[] = { "id",	  "node_id",	"service_name",
					    "proto",	  "local_addr", "public_port",
					    "token_id",	  "state",	"created_at",
					    "expires_at", NULL };

	return pay_json_rows(st,
			     "SELECT id, node_id, service_name, proto, local_addr, public_port,"
			     " token_id, CASE WHEN state = 'active' AND expires_at > 0 AND"
			     " expires_at <= ?1 THEN 'expired' ELSE state END, created_at,"
			     " expires_at FROM registrations ORDER BY id",
			     cols, true, now);
}

static const char *const pay_receipt_cols[] = { "payment_hash", "amount_sats", "token_id",
						"node_id",	"settled_at",  NULL };

cJSON *pay_store_receipts_json(struct store *st)
{
	return pay_json_rows(st,
			     "SELECT payment_hash, amount_sats, token_id, node_id, settled_at"
			     " FROM payment_receipts ORDER BY id",
			     pay_receipt_cols, false, 0);
}

cJSON *pay_store_receipt_json(struct store *st, const char *payment_hash)
{
	cJSON *a = pay_store_receipts_json(st), *it, *found = NULL;

	cJSON_ArrayForEach(it, a)
	{
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "payment_hash");

		if (cJSON_IsString(h) && !strcmp(h->valuestring, payment_hash)) {
			found = cJSON_Duplicate(it, true);
			break;
		}
	}
	cJSON_Delete(a);
	return found;
}
